"""The trainer's one interface to what it trains: a `TrainTask`.

A task owns its model(s) and its data and turns a batch into losses; the trainer owns everything else
(optimizer, schedule, precision, accumulation, clipping, EMA, checkpoints, logging, validation timing):

    class MyTask(TrainTask):
        config_class = MyTaskConfig                     # a TaskConfig dataclass, `kind: str = "mine"`
        def __init__(self, config: TrainConfig): ...    # build modules; freeze per config.train_mode
        def train_dataset(self) -> Dataset: ...         # items addressed by (epoch, index), see dataset.py
        def compute_losses(self, batch, ctx) -> dict:   # {"loss": total, "mse": ..., ...}; draw noise from ctx.generator

`trainable_parameters()` / `trainable_state_dict()` / `load_trainable_state_dict()` cover exactly the
weights that are optimised, EMA'd and checkpointed (everything else is rebuilt from the config).
Register a task with `register_task("mine", "package.module:MyTask")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from idvid.errors import InputError
from idvid.train.config import TaskConfig

if TYPE_CHECKING:
    from accelerate import Accelerator

    from idvid.train.config import TrainConfig


@dataclass
class StepContext:
    """What a task needs to know about the micro-step it is computing.

    `generator` is a fresh CPU torch.Generator seeded from (run seed, step, micro, process): draw every
    noise sample and timestep from it (on the CPU, then `.to(device)`) and the step is reproducible after
    a resume, on any device.
    """

    step: int  # optimizer step being computed, 0-based
    micro: int  # micro-batch within the step (gradient accumulation)
    generator: torch.Generator
    device: torch.device
    training: bool = True


@dataclass
class ValidationContext:
    """Passed to `TrainTask.validate` and to validation hooks."""

    accelerator: Accelerator
    config: TrainConfig
    task: TrainTask  # unwrapped; EMA weights swapped in when validation.use_ema
    step: int  # optimizer steps done
    out_dir: Path  # RUN/samples/step-XXXXXXXX: write samples here (created on demand)
    ema: bool  # whether the EMA weights are in the model right now
    extras: dict[str, Any] = field(default_factory=dict)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator that is the same at every validation (fixed noise: comparable metrics over time)."""
        g = torch.Generator()
        g.manual_seed(self.config.seed * 1_000_003 + 7919 + salt)
        return g


class TrainTask(nn.Module):
    """Base class; see the module docstring. Subclasses set `config_class` and implement the methods that
    raise NotImplementedError."""

    config_class: ClassVar[type[TaskConfig]] = TaskConfig
    # DDP: some parameters may get no gradient in a step (e.g. identity modules when the identity is dropped)
    find_unused_parameters: ClassVar[bool] = True

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.run_config = config

    # -- what is trained
    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_trainable_parameters()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_trainable_parameters()}

    def weights_swapped_in(self, weights: dict[str, torch.Tensor] | None):
        """Context in which the trainable parameters hold `weights` (e.g. the EMA), restored on exit;
        a no-op context for `None`."""
        import contextlib

        from idvid.train.ema import EMA

        if weights is None:
            return contextlib.nullcontext()
        named = self.named_trainable_parameters()
        ema = EMA(named)
        ema.load_state_dict(weights, 0)
        return ema.swapped_in(named)

    def load_trainable_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        own = dict(self.named_trainable_parameters())
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise InputError(
                f"checkpoint weights do not fit this task: {len(missing)} missing (e.g. {missing[:2]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); was train_mode or the model changed?"
            )
        with torch.no_grad():
            for name, value in tensors.items():
                if own[name].shape != value.shape:
                    raise InputError(f"checkpoint tensor {name} has shape {tuple(value.shape)}, expected {tuple(own[name].shape)}")
                own[name].copy_(value)

    def enable_gradient_checkpointing(self) -> None:
        raise InputError(f"{type(self).__name__} does not support gradient checkpointing")

    # -- data
    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> Any:
        return default_collate(list(items))

    def move_batch(self, batch: Any, device: torch.device) -> Any:
        """Send the batch's tensors to `device` (strings and other values stay)."""
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.move_batch(v, device) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
            return type(batch)(self.move_batch(v, device) for v in batch)
        return batch

    # -- losses
    def compute_losses(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        # the trainer calls the (accelerate-prepared, possibly DDP-wrapped) task, so autocast and gradient
        # synchronisation apply; the work is in compute_losses.
        return self.compute_losses(batch, ctx)

    # -- validation
    def validate(self, ctx: ValidationContext) -> dict[str, float]:
        """Metrics (and samples under ctx.out_dir) at a validation step; none by default."""
        return {}

    # -- export
    def export(self, folder: str | Path, weights: dict[str, torch.Tensor] | None = None) -> Path:
        """Write the trained weights (`weights`, e.g. the EMA, or the current ones) for use outside the
        trainer. Default: `weights.safetensors` + the run's `config.yaml`; tasks with a model format of
        their own (the identity task: a model folder) override this."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = weights if weights is not None else self.trainable_state_dict()
        tmp = folder / ".weights.safetensors.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        tmp.replace(folder / "weights.safetensors")
        self.run_config.to_yaml(folder / "config.yaml")
        return folder


# ---------------------------------------------------------------------------------------------- registry
TASKS: dict[str, str] = {
    "toy": "idvid.train.toy:ToyTask",
    "identity": "idvid.train.identity_task:IdentityVideoTask",
    "vae": "idvid.train.vae_task:VAETask",
}


def register_task(kind: str, target: str) -> None:
    """Make `task.kind: <kind>` build `target` ("module:Class", a TrainTask subclass)."""
    TASKS[kind] = target


def task_class(kind: str, key: str = "task") -> type[TrainTask]:
    if kind not in TASKS:
        raise InputError(f"config {key}.kind: unknown task {kind!r} (known: {', '.join(sorted(TASKS))})")
    module, attr = TASKS[kind].split(":")
    return getattr(importlib.import_module(module), attr)


def task_config_class(kind: str, key: str = "task") -> type[TaskConfig]:
    return task_class(kind, key).config_class


def build_task(config: TrainConfig) -> TrainTask:
    """The task named by `config.task.kind`, built under `torch.manual_seed(config.seed)` so fresh weights
    are a function of the seed."""
    cls = task_class(config.task.kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        task = cls(config)
    if config.gradient_checkpointing:
        task.enable_gradient_checkpointing()
    if not task.named_trainable_parameters():
        raise InputError(f"task {config.task.kind!r} has nothing to train with train_mode={config.train_mode!r}")
    return task
