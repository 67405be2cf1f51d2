"""The trainer: `setup(config) -> Run`, then `fit(run)` — one readable loop on `accelerate`.

    from idvid.train import load_config, setup, fit
    run = setup(load_config("tiny-synth-moca", ["max_steps=200"]))   # resumes when run_dir has checkpoints
    history = fit(run)

Exact resume. Every random draw of optimizer step s, micro-batch m, process r comes from streams seeded by
(seed, s, m, r): the task's noise/timestep generator (`StepContext.generator`) and the global torch / numpy /
random state (dropout and anything else), reseeded before each micro-batch. The data order is a permutation
per epoch drawn from (seed, epoch), and items are rendered as a pure function of (epoch, index), whichever
DataLoader worker renders them. So the state needed to continue a killed run exactly is: the trainable
weights, the EMA, the optimizer state, the step and the data position (epoch, batches consumed) — which is
what a checkpoint holds (`idvid.train.checkpoint`). A resumed run reproduces the uninterrupted run's losses
(tests/test_train.py checks this to 1e-6; on one CPU process it is bit-exact).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from idvid.errors import InputError
from idvid.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    load_checkpoint,
    remove_partial,
    save_checkpoint,
)
from idvid.train.config import OptimConfig, TrainConfig
from idvid.train.ema import EMA
from idvid.train.task import StepContext, TrainTask, ValidationContext, build_task

log = logging.getLogger("idvid.train")

LOG_FILE, CONFIG_FILE = "log.jsonl", "config.yaml"
# Salts of the per-step random streams.
_NOISE_STREAM, _GLOBAL_STREAM, _ORDER_STREAM = 0x6E6F, 0x676C, 0x6F72
# Config sections a resumed run may change without changing the loss trajectory.
_RESUME_FREE = {"run_dir", "max_steps", "log", "validation", "checkpoint"}
_RESUME_FREE_DATA = {"num_workers", "cache_dir"}

ValidationHook = Callable[[ValidationContext], "dict[str, float] | None"]


# ---------------------------------------------------------------------------------------------- randomness
def step_seed(seed: int, stream: int, step: int, micro: int = 0, rank: int = 0) -> int:
    """A 63-bit seed that is a pure function of its arguments (numpy's SeedSequence mixing)."""
    hi, lo = np.random.SeedSequence([seed, stream, step, micro, rank]).generate_state(2)
    return (int(hi) << 31) ^ int(lo)


def seed_step(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """Reseed the global RNGs for this micro-step; return the task's generator for noise/timesteps.

    The generator is a CPU one (draw, then move to the device): the draws are then the same on every
    device type, and `idvid.objectives` samples on the CPU too."""
    s = step_seed(seed, _GLOBAL_STREAM, step, micro, rank)
    torch.manual_seed(s)  # every device
    np.random.seed(s % 2**32)
    random.seed(s)
    generator = torch.Generator()
    generator.manual_seed(step_seed(seed, _NOISE_STREAM, step, micro, rank))
    return generator


# ---------------------------------------------------------------------------------------------- schedule
def lr_at(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then cosine to min_lr_ratio * lr at
    `optim.schedule_steps` (or `max_steps` when that is 0)."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    span = max((optim.schedule_steps or max_steps) - optim.warmup_steps, 1)
    progress = min((step - optim.warmup_steps) / span, 1.0)
    low = optim.lr * optim.min_lr_ratio
    return low + 0.5 * (optim.lr - low) * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------- data order
def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers leave SIGINT and SIGTERM to the main process, which finishes its step and
    checkpoints (`StopRequests`): Ctrl-C reaches every process of the terminal's group and `pkill -f` every
    process with the command line, and a worker killed by either made the run fail instead of stopping
    cleanly. Workers still exit when the main process does (PyTorch's worker watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass
class DataPosition:
    """Which items each step reads. Epoch e visits a permutation of the dataset drawn from (seed, e), cut
    into global batches of batch_size x processes (the tail is dropped); process r reads slice r of each.
    `position` counts the global batches of the current epoch already consumed."""

    num_items: int
    batch_size: int
    num_processes: int
    rank: int
    seed: int
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        if self.batches_per_epoch == 0:
            raise InputError(
                f"the dataset has {self.num_items} items, fewer than one global batch "
                f"({self.batch_size} x {self.num_processes} processes)"
            )

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.num_processes)

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """This process's batches of `epoch`, each a list of (epoch, index) item keys."""
        rng = np.random.default_rng([self.seed, _ORDER_STREAM, epoch])
        order = rng.permutation(self.num_items)
        g = self.batch_size * self.num_processes
        out = []
        for b in range(self.batches_per_epoch):
            chunk = order[b * g : (b + 1) * g][self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            out.append([(epoch, int(i)) for i in chunk])
        return out

    def stream(self, dataset: Dataset, collate: Callable, num_workers: int) -> Iterator[Any]:
        """Batches from the current position on, forever; `position`/`epoch` advance as batches are taken."""
        while True:
            batches = self.epoch_batches(self.epoch)[self.position :]
            if batches:
                loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers,
                                    worker_init_fn=ignore_stop_signals if num_workers > 0 else None)
                for batch in loader:
                    self.position += 1
                    yield batch
            self.epoch += 1
            self.position = 0

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "num_processes": self.num_processes,
                "batch_size": self.batch_size, "num_items": self.num_items}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        same = (state.get("num_processes"), state.get("batch_size"), state.get("num_items")) == (
            self.num_processes, self.batch_size, self.num_items)
        if not same:  # keep the number of items seen; the order is no longer the original one
            seen = self.position * state["batch_size"] * state["num_processes"]
            self.position = min(seen // (self.batch_size * self.num_processes), self.batches_per_epoch)
            log.warning("data layout changed since the checkpoint (batch size / processes / dataset size): "
                        "continuing at the same epoch, but the data order differs from an uninterrupted run")


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class Run:
    """Everything `fit` needs; built by `setup`."""

    config: TrainConfig
    accelerator: Any
    task: TrainTask  # unwrapped
    model: Any  # the task as prepared by accelerate (DDP-wrapped when distributed; autocast applied)
    optimizer: Any
    ema: EMA | None
    dataset: Dataset
    data: DataPosition
    run_dir: Path
    step: int = 0
    resumed_from: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per-step losses of this process
    hooks: list[ValidationHook] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # -- logging
    def log_record(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.run_dir / LOG_FILE, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")

    # -- checkpoints
    def trainer_state(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "step": self.step,
            "data": self.data.state(),
            "ema_updates": self.ema.num_updates if self.ema is not None else 0,
            "seed": self.config.seed,
            "rng": "derived from (seed, step, micro, process); see idvid.train.trainer.seed_step",
            "task": self.config.task.kind,
            "train_mode": self.config.train_mode,
            "versions": {name: version(name) for name in ("torch", "accelerate", "diffusers", "idvid")},
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        path = None
        if self.is_main:
            path = save_checkpoint(
                self.run_dir,
                self.step,
                model=self.task.trainable_state_dict(),
                ema=self.ema.state_dict() if self.ema is not None else None,
                optimizer=self.optimizer.state_dict(),
                trainer=self.trainer_state(),
                config_yaml=self.config.to_yaml(),
                keep_last=self.config.checkpoint.keep_last,
            )
            self.log_record({"kind": "checkpoint", "step": self.step, "path": str(path)})
        self.accelerator.wait_for_everyone()
        return path

    def restore(self, ckpt: Checkpoint) -> None:
        self.task.load_trainable_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        if self.ema is not None:
            if ckpt.ema is None:
                log.warning("checkpoint has no EMA weights; the EMA restarts from the current weights")
            else:
                self.ema.load_state_dict(ckpt.ema, ckpt.trainer.get("ema_updates", ckpt.step))
        self.data.restore(ckpt.trainer["data"])
        self.step = ckpt.step
        self.resumed_from = ckpt.path

    # -- validation
    def validate(self) -> dict[str, float]:
        cfg = self.config
        use_ema = cfg.validation.use_ema and self.ema is not None
        named = self.task.named_trainable_parameters()
        ctx = ValidationContext(
            accelerator=self.accelerator, config=cfg, task=self.task, step=self.step,
            out_dir=self.run_dir / "samples" / f"step-{self.step:08d}", ema=use_ema,
        )
        swap = self.ema.swapped_in(named) if use_ema else contextlib.nullcontext()
        metrics: dict[str, float] = {}
        was_training = self.task.training
        with swap, self.accelerator.autocast():
            for hook in [self.task.validate, *self.hooks]:
                result = hook(ctx) or {}
                metrics.update({k: float(v) for k, v in result.items() if isinstance(v, (int, float))})
        self.task.train(was_training)
        if metrics:
            self.log_record({"kind": "val", "step": self.step, "ema": use_ema, **metrics})
        return metrics


def load_hook(target: str) -> ValidationHook:
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"config validation.hooks: cannot import {target!r} ({exc})") from exc


def _accelerator(precision: str, find_unused_parameters: bool):
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, PartialState

    kwargs = dict(mixed_precision=precision,
                  kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)])
    try:
        return Accelerator(**kwargs)
    except ValueError:
        # one process that already made an Accelerator with another precision (tests, notebooks)
        if PartialState().num_processes != 1:
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(**kwargs)


def _config_drift(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose change alters the loss trajectory of a resumed run."""
    out = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                key = f"{prefix}.{k}" if prefix else k
                if not prefix and k in _RESUME_FREE or prefix == "data" and k in _RESUME_FREE_DATA:
                    continue
                walk(a.get(k), b.get(k), key)
        elif a != b:
            out.append(prefix)

    walk(old, new, "")
    return out


def setup(config: TrainConfig, resume: bool | None = None, resume_from: str | Path | None = None,
          hooks: Sequence[ValidationHook] = ()) -> Run:
    """Build the accelerator, task, optimizer, EMA and data order; resume when asked to (or, with
    `resume=None`, when the run folder already holds a checkpoint)."""
    run_dir = Path(config.run_dir)
    all_hooks = [*(load_hook(h) for h in config.validation.hooks), *hooks]
    ckpt_path = Path(resume_from) if resume_from is not None else latest_checkpoint(run_dir)
    if resume_from is None and resume is False and ckpt_path is not None:
        raise InputError(f"{run_dir} already holds checkpoints (latest {ckpt_path.name}); resume it "
                         "(--resume) or choose another run_dir")
    if resume is True and ckpt_path is None:
        raise InputError(f"nothing to resume: {run_dir} has no checkpoints/step-*")
    do_resume = ckpt_path is not None and resume is not False
    ckpt = load_checkpoint(ckpt_path) if do_resume else None

    if config.threads:
        torch.set_num_threads(config.threads)
    from idvid.train.task import task_class

    accelerator = _accelerator(config.precision, task_class(config.task.kind).find_unused_parameters)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        for p in remove_partial(run_dir):
            log.warning("removed %s left by an interrupted save", p)
    accelerator.wait_for_everyone()

    task = build_task(config)
    named = task.named_trainable_parameters()
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    o = config.optim
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o.lr, betas=tuple(o.betas), eps=o.eps,
    )
    model, optimizer = accelerator.prepare(task, optimizer)
    ema = EMA(task.named_trainable_parameters(), config.ema.decay, config.ema.warmup) if config.ema.enabled else None

    with accelerator.main_process_first():  # caches (references, latents) are built once, then read
        dataset = task.train_dataset()
    data = DataPosition(len(dataset), config.batch_size, accelerator.num_processes, accelerator.process_index,
                        config.seed)
    run = Run(config=config, accelerator=accelerator, task=task, model=model, optimizer=optimizer, ema=ema,
              dataset=dataset, data=data, run_dir=run_dir,
              hooks=all_hooks)
    if ckpt is not None:
        drift = _config_drift(yaml.safe_load(ckpt.config_yaml), config.to_dict())
        if drift:
            log.warning("resuming with a config that differs from the checkpoint's in %s: the run will not "
                        "follow the original loss trajectory", ", ".join(drift))
        run.restore(ckpt)
        if accelerator.is_main_process:
            _truncate_log(run_dir / LOG_FILE, run.step)
    if accelerator.is_main_process:
        tmp = run_dir / f".{CONFIG_FILE}.tmp"
        tmp.write_text(config.to_yaml())
        os.replace(tmp, run_dir / CONFIG_FILE)
    return run


def _truncate_log(path: Path, step: int) -> None:
    """Drop records of steps after `step` (written by the killed run after its last checkpoint)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if record.get("step", 0) <= step and not (record.get("kind") == "checkpoint" and record["step"] > step):
            keep.append(line)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- the loop
class TrainingStopped(Exception):
    """`fit` was asked to stop by SIGTERM/SIGINT: it finished the step in flight and checkpointed it."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")


class _StopRequests:
    """Turns the first SIGTERM/SIGINT during `fit` into a request honoured at the end of the step in flight
    (schedulers and `kill` send SIGTERM before SIGKILL; a step can take seconds). A second signal has its
    usual effect. A SIGINT the parent set to be ignored (`nohup cmd &`) stays ignored."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            for sig in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def requested(self, acc: Any) -> bool:
        """Whether any process was signalled (all processes agree, so they checkpoint together)."""
        if acc.num_processes == 1:
            return self.signum is not None
        flag = torch.tensor([0.0 if self.signum is None else float(self.signum)], device=acc.device)
        value = float(acc.reduce(flag, "sum"))
        if value and self.signum is None:
            self.signum = int(signal.SIGTERM)
        return value > 0


def fit(run: Run, on_step: Callable[[Run, dict[str, torch.Tensor]], None] | None = None) -> list[dict[str, float]]:
    """Train from `run.step` to `config.max_steps`; returns this call's per-step losses (as logged).

    `on_step(run, losses)` is called after every optimizer step with that step's loss tensors (after
    logging, validation and checkpointing); raising from it stops the run like a kill would.
    A SIGTERM or SIGINT stops the run after the step in flight, with a checkpoint of that step: `fit`
    then raises `TrainingStopped`, and the same command resumes it exactly.
    """
    cfg, acc, task, model, optimizer = run.config, run.accelerator, run.task, run.model, run.optimizer
    named = task.named_trainable_parameters()
    params = [p for _, p in named]
    accum, device = cfg.optim.accumulation, acc.device
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
    batches = run.data.stream(run.dataset, task.collate, cfg.data.num_workers)
    n_trainable = sum(p.numel() for p in params)
    run.log_record({
        "kind": "start", "step": run.step, "max_steps": cfg.max_steps,
        "resumed_from": str(run.resumed_from) if run.resumed_from else None,
        "trainable_params": n_trainable, "frozen_params": sum(p.numel() for p in task.parameters()) - n_trainable,
        "device": str(device), "num_processes": acc.num_processes, "precision": cfg.precision,
        "train_mode": cfg.train_mode,
    })

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=run.step, desc="train", dynamic_ncols=True,
               disable=not (run.is_main and cfg.log.progress))
    window: list[dict[str, torch.Tensor]] = []
    this_call: list[dict[str, float]] = []
    t_window = time.perf_counter()
    model.train()
    stops = _StopRequests().install()
    try:
        while run.step < cfg.max_steps:
            step = run.step
            lr = lr_at(step, cfg.optim, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. forward/backward over the micro-batches; gradients sync only on the last one
            totals: dict[str, torch.Tensor] = {}
            for micro in range(accum):
                batch = task.move_batch(next(batches), device)
                ctx = StepContext(step=step, micro=micro, device=device,
                                  generator=seed_step(cfg.seed, step, micro, acc.process_index))
                sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(model)
                with sync:
                    losses = model(batch, ctx)
                    if not torch.isfinite(losses["loss"]):
                        raise FloatingPointError(f"step {step}: loss is {losses['loss'].item()}")
                    acc.backward(losses["loss"] / accum)
                for k, v in losses.items():
                    totals[k] = totals.get(k, 0.0) + v.detach().float() / accum

            # 2. clip, update, EMA
            grad_norm = acc.clip_grad_norm_(params, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            run.step += 1
            if run.ema is not None:
                run.ema.update(named)
            window.append({**totals, "grad_norm": grad_norm.detach().float()})

            # 3. log (mean over the window and the processes), validate, checkpoint
            if run.step % cfg.log.every == 0 or run.step == cfg.max_steps:
                stacked = {k: torch.stack([w[k] for w in window]) for k in window[0]}
                per_step = [{"step": step + 1 - len(window) + i, **{k: float(v[i]) for k, v in stacked.items()}}
                            for i in range(len(window))]
                run.history.extend(per_step)
                this_call.extend(per_step)
                means = {k: float(acc.reduce(v.mean(), "mean")) for k, v in stacked.items()}
                dt = time.perf_counter() - t_window
                run.log_record({"kind": "train", "step": run.step, "epoch": run.data.epoch, **means, "lr": lr,
                                "sec_per_step": dt / len(window),
                                "items_per_sec": len(window) * accum * cfg.batch_size * acc.num_processes / dt})
                bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}")
                window, t_window = [], time.perf_counter()
            bar.update(1)
            if cfg.validation.every and run.step % cfg.validation.every == 0:
                run.validate()
            if run.step % cfg.checkpoint.every == 0 or run.step == cfg.max_steps:
                run.save()
            if on_step is not None:
                on_step(run, totals)
            if stops.requested(acc) and run.step < cfg.max_steps:
                saved = run.step % cfg.checkpoint.every == 0
                path = run.save() if not saved else latest_checkpoint(run.run_dir)
                run.log_record({"kind": "stopped", "step": run.step, "signal": signal.Signals(stops.signum).name})
                raise TrainingStopped(stops.signum, run.step, path)
    finally:
        stops.restore()
        bar.close()
    return this_call


def export_run(run: Run, folder: str | Path, use_ema: bool = True) -> Path | None:
    """Export the run's weights (the EMA when enabled and `use_ema`) with the task's `export`; main process only."""
    run.accelerator.wait_for_everyone()
    if not run.is_main:
        return None
    weights = run.ema.state_dict() if use_ema and run.ema is not None else None
    path = run.task.export(folder, weights)
    run.log_record({"kind": "export", "step": run.step, "path": str(path), "ema": weights is not None})
    return path


def train(config: TrainConfig, resume: bool | None = None, hooks: Sequence[ValidationHook] = ()) -> Run:
    """`setup` + `fit`; returns the finished run."""
    run = setup(config, resume=resume, hooks=hooks)
    fit(run)
    return run
