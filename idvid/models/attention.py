"""Multi-head attention primitives shared by every identity module.

Everything runs through `F.scaled_dot_product_attention` (flash / memory-efficient kernels where the
device has them). Heads are split and merged with einops so the axis names are on the page:
`b` batch, `n` query tokens, `m` context tokens, `h` heads, `d` channels per head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H*d) -> (B, H, N, d)."""
    return rearrange(x, "b n (h d) -> b h n d", h=heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) -> (B, N, H*d)."""
    return rearrange(x, "b h n d -> b n (h d)")


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q kᵀ / √d) v per head.

    q: (B, H, N, d); k, v: (B, H, M, d); mask: (B, M) bool, True where a context token may be attended.
    Returns (B, H, N, d).
    """
    attn_mask = None
    if mask is not None:
        # A row with no valid token would be softmax over nothing (NaN): let it see its first token instead.
        mask = mask.clone()
        mask[~mask.any(dim=1), 0] = True
        attn_mask = rearrange(mask.to(torch.bool), "b m -> b 1 1 m")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


class KeyValue(nn.Module):
    """Keys and values of a set of context tokens for one attention: (B, M, Dc) -> 2 x (B, H, M, d)."""

    def __init__(self, context_dim: int, heads: int, head_dim: int, norm: bool = True):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(context_dim) if norm else nn.Identity()
        self.to_kv = nn.Linear(context_dim, 2 * heads * head_dim, bias=False)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.to_kv(self.norm(context))  # (B, M, 2*H*d)
        k, v = rearrange(kv, "b m (two h d) -> two b h m d", two=2, h=self.heads)
        return k, v


class CrossAttention(nn.Module):
    """Cross-attention from tokens x (B, N, D) to context tokens (B, M, Dc), returning (B, N, D).

    Pre-norm on both sides. With `zero_init` the output projection starts at zero, so a residual
    `x + CrossAttention(x, c)` is the identity function until it is trained (DiT's zero-init habit).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        heads: int,
        head_dim: int,
        zero_init: bool = True,
        norm: bool = True,
    ):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.kv = KeyValue(context_dim, heads, head_dim, norm=norm)
        self.to_out = nn.Linear(inner, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = split_heads(self.to_q(self.norm(x)), self.heads)  # (B, H, N, d)
        k, v = self.kv(context)  # (B, H, M, d)
        return self.to_out(merge_heads(attend(q, k, v, mask)))  # (B, N, D)

    def flops(self, batch: int, tokens: int, context_tokens: int) -> int:
        """Multiply-add FLOPs (x2) of the matmuls and the attention, as `FlopCounterMode` counts them."""
        inner = self.heads * self.head_dim
        context_dim = self.kv.to_kv.in_features
        dim = self.to_q.in_features
        return (
            2 * batch * tokens * dim * inner  # q
            + 2 * batch * context_tokens * context_dim * 2 * inner  # k, v
            + 4 * batch * tokens * context_tokens * inner  # q kᵀ and (.) v
            + 2 * batch * tokens * inner * dim  # out
        )


class SelfAttention(nn.Module):
    """Plain pre-norm multi-head self-attention (used inside the Q-Former): (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.to_qkv(self.norm(x))
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return self.to_out(merge_heads(attend(q, k, v)))


class FeedForward(nn.Module):
    """Pre-norm GELU MLP: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
