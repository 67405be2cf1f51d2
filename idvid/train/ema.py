"""Exponential moving average of the trainable weights, kept in fp32 beside the model.

After optimizer update n (n = 1, 2, ...):

    d_n = min(decay, (1 + n) / (10 + n))   if warmup else decay
    ema <- d_n * ema + (1 - d_n) * w

The warmup keeps the average from being dominated by the random initial weights in short runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn


class EMA:
    def __init__(self, named_parameters: Iterable[tuple[str, nn.Parameter]], decay: float = 0.999, warmup: bool = True):
        self.decay, self.warmup = float(decay), bool(warmup)
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().to(torch.float32).clone() for name, p in named_parameters
        }
        self.num_updates = 0

    def decay_at(self, n: int) -> float:
        """The decay used by update number `n` (1-based)."""
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> None:
        self.num_updates += 1
        d = self.decay_at(self.num_updates)
        for name, p in named_parameters:
            # lerp: ema + (1 - d) (w - ema) = d ema + (1 - d) w
            self.shadow[name].lerp_(p.detach().to(self.shadow[name].device, torch.float32), 1.0 - d)

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        missing, unexpected = set(self.shadow) - set(tensors), set(tensors) - set(self.shadow)
        if missing or unexpected:
            raise KeyError(f"EMA weights do not match the model: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
        for name, value in tensors.items():
            self.shadow[name].copy_(value)
        self.num_updates = int(num_updates)

    @contextlib.contextmanager
    def swapped_in(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> Iterator[None]:
        """Temporarily load the EMA weights into the model (e.g. for validation), then restore."""
        params = list(named_parameters)
        backup = {name: p.detach().clone() for name, p in params}
        with torch.no_grad():
            for name, p in params:
                p.copy_(self.shadow[name].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in params:
                    p.copy_(backup[name])
