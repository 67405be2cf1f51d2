"""A toy denoising task: the trainer's own smoke test, independent of the video models.

Data: vectors x0 (dim) that are a pure function of (seed, index), with a small per-(epoch, index) jitter
so that the data order *and* the per-epoch augmentation must both be reproduced after a resume.
Model: a small MLP "backbone" eps(x_t, t) with dropout, plus a zero-initialised residual "adapter" (so
`train_mode: adapter` — backbone frozen, adapter trained — can be exercised too).
Losses: epsilon-prediction MSE ("loss"), with its L1 logged beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from idvid.train.config import TaskConfig, TrainConfig, _check
from idvid.train.task import StepContext, TrainTask, ValidationContext


@dataclass
class ToyTaskConfig(TaskConfig):
    kind: str = "toy"
    dim: int = 8
    hidden: int = 32
    dropout: float = 0.1
    num_items: int = 64
    timesteps: int = 100

    def __post_init__(self) -> None:
        _check(self.dim >= 1, "task.dim", f"must be >= 1, got {self.dim}")
        _check(self.hidden >= 1, "task.hidden", f"must be >= 1, got {self.hidden}")
        _check(0 <= self.dropout < 1, "task.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.num_items >= 1, "task.num_items", f"must be >= 1, got {self.num_items}")
        _check(self.timesteps >= 2, "task.timesteps", f"must be >= 2, got {self.timesteps}")


class ToyDataset(Dataset):
    """Items addressed by (epoch, index): x0 = f(seed, index) + 0.05 * jitter(seed, epoch, index)."""

    def __init__(self, dim: int, num_items: int, seed: int):
        self.dim, self.num_items, self.seed = dim, num_items, seed

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        base = np.random.default_rng([self.seed, index]).standard_normal(self.dim)
        jitter = np.random.default_rng([self.seed, index, epoch, 1]).standard_normal(self.dim)
        x0 = np.tanh(base) + 0.05 * jitter
        return {"x0": torch.from_numpy(x0.astype(np.float32)), "index": torch.tensor(index)}


def _timestep_features(t: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (B,) -> (B, 2n), in fp32."""
    freqs = torch.exp(torch.arange(n, device=t.device, dtype=torch.float32) * (math.log(1000.0) / n))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ToyTask(TrainTask):
    config_class = ToyTaskConfig
    find_unused_parameters = False

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        c: ToyTaskConfig = config.task
        self.c = c
        self.backbone = nn.Sequential(
            nn.Linear(c.dim + 16, c.hidden), nn.SiLU(), nn.Dropout(c.dropout), nn.Linear(c.hidden, c.dim)
        )
        self.adapter = nn.Linear(c.dim + 16, c.dim)
        nn.init.zeros_(self.adapter.weight)
        nn.init.zeros_(self.adapter.bias)
        # cosine noise schedule: alpha_bar(t) for t = 0..T-1
        s = torch.linspace(0, 1, c.timesteps + 1)[1:]
        self.register_buffer("alpha_bar", torch.cos(s * math.pi / 2).clamp(min=1e-4) ** 2, persistent=False)
        if config.train_mode == "adapter":
            self.backbone.requires_grad_(False)

    def train_dataset(self) -> Dataset:
        return ToyDataset(self.c.dim, self.c.num_items, self.run_config.seed)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x_t, _timestep_features(t.float() / self.c.timesteps).to(x_t.dtype)], dim=-1)
        return self.backbone(h) + self.adapter(h)

    def compute_losses(self, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        x0 = batch["x0"]  # (B, dim)
        b = x0.shape[0]
        t = torch.randint(0, self.c.timesteps, (b,), generator=ctx.generator).to(ctx.device)
        noise = torch.randn(x0.shape, generator=ctx.generator, dtype=x0.dtype).to(ctx.device)
        a = self.alpha_bar[t][:, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = self.denoise(x_t, t).float()
        mse = F.mse_loss(pred, noise)
        return {"loss": mse, "mse": mse.detach(), "l1": F.l1_loss(pred.detach(), noise)}

    @torch.no_grad()
    def validate(self, ctx: ValidationContext) -> dict[str, float]:
        was_training = self.training
        self.eval()
        data = ToyDataset(self.c.dim, ctx.config.validation.num_samples, ctx.config.seed + 1)
        x0 = torch.stack([data[(0, i)]["x0"] for i in range(len(data))]).to(ctx.accelerator.device)
        g = ctx.generator()
        sc = StepContext(step=ctx.step, micro=0, generator=g, device=ctx.accelerator.device, training=False)
        losses = self.compute_losses({"x0": x0}, sc)
        self.train(was_training)
        return {"val_mse": float(losses["mse"])}
