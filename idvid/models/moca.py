"""MoCA: Mixture of Cross-Attention (seed 000, §3.2.2, Eqs. 2–4).

    Q = Z_v W_q                                         computed once, on the unpooled video tokens
    Z'_v = Attn(Q, K_id, V_id) + Σ_{i=1..C} λ_i · B_i(Attn(H_i(Q), K_id^i, V_id^i))          (Eq. 3)
    (λ_1 .. λ_C) = softmax(Router(Z_v))                                                         (Eq. 4)
    output = Z'_v W_o                                   W_o zero-initialised

`H_i` is Hierarchical Temporal Pooling: average pooling of Q over the frame axis with pool size s_i
(default [2, 4, 8], C = 3); `B_i` broadcasts each pooled result back to every frame its window covers.
The shared CA and every TACA expert have their own K/V projections of the ID tokens `f_id`; Q and the
output projection are shared, so C experts cost C small attentions over progressively fewer queries
(N/2 + N/4 + N/8 for the defaults) and nothing else of size N·D².

HTP windows, decided here (the paper does not say):
* windows are contiguous, non-overlapping and start at frame 0;
* when the frame count is not divisible by the pool size, the last window is shorter and averages only
  the frames it has (13 latent frames with s = 4 -> windows of 4, 4, 4, 1);
* a pool size larger than the frame count is one window over all frames (a global temporal average).

The router reads the token-mean of the (normalised) video tokens and gives one weight per expert and
sample; its projection starts at zero, i.e. uniform weights 1/C.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from idvid.models.attention import KeyValue, attend, merge_heads
from idvid.models.inject import BlockInputs, Injection, InjectionLayer


def temporal_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average over non-overlapping windows of `size` frames: (..., F, S, d) -> (..., ceil(F/size), S, d).

    The frame axis is third from last. See the module docstring for short and oversized windows.
    """
    if size < 1:
        raise ValueError(f"pool size must be >= 1, got {size}")
    frames = x.shape[-3]
    size = min(size, frames)
    windows = math.ceil(frames / size)
    pad = windows * size - frames
    if pad:
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad))  # zeros after the last frame
    sums = rearrange(x, "... (n s) hw d -> ... n s hw d", s=size).sum(dim=-3)  # (..., n, S, d)
    counts = torch.full((windows,), float(size), dtype=x.dtype, device=x.device)
    counts[-1] = frames - (windows - 1) * size
    return sums / counts[:, None, None]


def temporal_broadcast(x: torch.Tensor, size: int, frames: int) -> torch.Tensor:
    """Inverse layout of `temporal_pool`: (..., n, S, d) -> (..., frames, S, d), each window's value on
    every frame it covers."""
    size = min(size, frames)
    return x.repeat_interleave(size, dim=-3)[..., :frames, :, :]


@dataclass
class MoCAConfig:
    """MoCA layer in every `every`-th block. Paper defaults: C = 3 experts, pool sizes [2, 4, 8]."""

    pool_sizes: list[int] = field(default_factory=lambda: [2, 4, 8])
    heads: int | None = None  # default: the backbone's heads
    head_dim: int | None = None  # default: the backbone's head dim
    every: int = 1

    def __post_init__(self) -> None:
        self.pool_sizes = [int(s) for s in self.pool_sizes]
        if any(s < 1 for s in self.pool_sizes):
            raise ValueError(f"MoCA pool sizes must be >= 1, got {self.pool_sizes}")
        if self.every < 1:
            raise ValueError(f"MoCA `every` must be >= 1, got {self.every}")


class MoCALayer(InjectionLayer):
    """One block's MoCA: shared CA + C temporal-aware CA experts + router (Eqs. 2–4)."""

    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int, pool_sizes: list[int]):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.pool_sizes = list(pool_sizes)
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)  # W_q, shared: Q computed once (Eq. 3 pools Q)
        self.shared = KeyValue(context_dim, heads, head_dim)  # K_id, V_id
        self.experts = nn.ModuleList([KeyValue(context_dim, heads, head_dim) for _ in pool_sizes])  # K_id^i, V_id^i
        self.router = nn.Linear(dim, len(pool_sizes)) if pool_sizes else None
        self.to_out = nn.Linear(inner, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        if self.router is not None:  # uniform λ at the start
            nn.init.zeros_(self.router.weight)
            nn.init.zeros_(self.router.bias)

    def route(self, normed: torch.Tensor) -> torch.Tensor:
        """λ (B, C) from the normalised video tokens (B, N, D); rows sum to 1."""
        return torch.softmax(self.router(normed.mean(dim=1)), dim=-1)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        frames, height, width = inputs.grid
        ids = inputs.cond["id_tokens"]  # f_id (B, M, Dc)
        normed = self.norm(hidden_states)  # Z_v (B, N, D)
        q = self.to_q(normed)  # (B, N, H*d)
        q = rearrange(q, "b (f s) (h d) -> b h f s d", f=frames, s=height * width, h=self.heads)

        k, v = self.shared(ids)  # (B, H, M, d)
        out = attend(rearrange(q, "b h f s d -> b h (f s) d"), k, v)  # (B, H, N, d)
        if self.pool_sizes:
            lam = self.route(normed)  # (B, C)
            for i, (size, expert) in enumerate(zip(self.pool_sizes, self.experts, strict=True)):
                pooled = temporal_pool(q, size)  # H_i(Q): (B, H, n_i, S, d)
                k_i, v_i = expert(ids)
                o = attend(rearrange(pooled, "b h n s d -> b h (n s) d"), k_i, v_i)
                o = lam[:, i, None, None, None] * o  # weight at pooled size: autograd keeps the small tensor
                o = rearrange(o, "b h (n s) d -> b h n s d", s=height * width)
                o = temporal_broadcast(o, size, frames)  # (B, H, F, S, d)
                out = out + rearrange(o, "b h f s d -> b h (f s) d")
        return self.to_out(merge_heads(out))  # (B, N, D)

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        frames, height, width = grid
        n, m = frames * height * width, context_tokens["id_tokens"]
        dim, inner = self.to_q.in_features, self.heads * self.head_dim
        context_dim = self.shared.to_kv.in_features
        pooled_tokens = sum(math.ceil(frames / min(s, frames)) * height * width for s in self.pool_sizes)
        return (
            2 * batch * n * dim * inner  # Q once
            + (1 + len(self.pool_sizes)) * 2 * batch * m * context_dim * 2 * inner  # K, V per CA
            + 4 * batch * (n + pooled_tokens) * m * inner  # shared CA + experts on pooled queries
            + (2 * batch * dim * len(self.pool_sizes) if self.pool_sizes else 0)  # router
            + 2 * batch * n * inner * dim  # W_o
        )


class MoCA(Injection):
    """MoCA layers in every (every-th) block, reading the Q-Former ID tokens `f_id`."""

    config_class = MoCAConfig
    kind = "moca"
    requires = frozenset({"id_tokens"})

    def make_layer(self) -> MoCALayer:
        cfg: MoCAConfig = self.config
        w = self.wiring
        return MoCALayer(w.dim, w.features["id_tokens"][1], cfg.heads or w.heads, cfg.head_dim or w.head_dim, cfg.pool_sizes)

    def prepare(self, features, motion=None):
        return None if features is None or features.id_tokens is None else {"id_tokens": features.id_tokens}

    def context_tokens(self) -> dict[str, int]:
        return {"id_tokens": self.wiring.features["id_tokens"][0]}
