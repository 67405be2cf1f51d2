"""MotionCharacter's ID-preserving adapter (seed 002 §3.2, Eqs. 2–3).

Fusion, once per call (Eq. 2), with E_arc the face-recognition embedding and E_clip the image embedding,
each projected to K tokens:

    E = E_clip + E_arc
    C_id = Proj(Attn(E_arc W'_q, E W'_k, E W'_v))

Injection, in every (every-th) block (Eq. 3):

    z' = Attn(Q, K^t, V^t) + λ · Attn(Q, K^i, V^i),   K^i = C_id W^i_k,  V^i = C_id W^i_v

On CogVideoX the text term Attn(Q, K^t, V^t) is the block's own joint [text; video] attention, so the
adapter adds `λ · W_o Attn(LN(z) W_q, K^i, V^i)` to the block's video output (W_o zero-initialised).
Training drops E_clip for a sample with probability `image_dropout` (0.5 in the seed, §4.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from idvid.models.attention import CrossAttention, KeyValue, attend, merge_heads, split_heads
from idvid.models.inject import BlockInputs, Injection, InjectionLayer


@dataclass
class IdAdapterConfig:
    num_tokens: int = 4  # K: tokens of E_arc, E_clip and C_id
    fusion_dim: int = 64  # channels of E and C_id
    fusion_heads: int = 4
    scale: float = 1.0  # λ of Eq. 3
    image_dropout: float = 0.5  # P(drop E_clip) while training
    heads: int | None = None
    head_dim: int | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if self.fusion_dim % self.fusion_heads:
            raise ValueError(f"fusion_dim {self.fusion_dim} is not divisible by fusion_heads {self.fusion_heads}")
        if not 0.0 <= self.image_dropout <= 1.0:
            raise ValueError(f"image_dropout must be in [0, 1], got {self.image_dropout}")
        if self.every < 1:
            raise ValueError(f"`every` must be >= 1, got {self.every}")


class IdFusion(nn.Module):
    """Eq. 2: C_id = Proj(Attn(E_arc W'_q, E W'_k, E W'_v)), E = E_clip + E_arc."""

    def __init__(self, face_dim: int, image_dim: int, dim: int, num_tokens: int, heads: int, image_dropout: float):
        super().__init__()
        self.num_tokens, self.heads, self.image_dropout = num_tokens, heads, image_dropout
        self.arc_proj = nn.Linear(face_dim, num_tokens * dim)
        self.clip_proj = nn.Linear(image_dim, num_tokens * dim)
        self.arc_norm, self.clip_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)  # W'_q
        self.kv = KeyValue(dim, heads, dim // heads, norm=False)  # W'_k, W'_v
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))  # Proj

    def forward(self, face_embedding: torch.Tensor, image_pooled: torch.Tensor) -> torch.Tensor:
        k = self.num_tokens
        e_arc = self.arc_norm(rearrange(self.arc_proj(face_embedding), "b (k d) -> b k d", k=k))  # (B, K, d)
        e_clip = self.clip_norm(rearrange(self.clip_proj(image_pooled), "b (k d) -> b k d", k=k))
        if self.training and self.image_dropout > 0:
            keep = torch.rand(e_clip.shape[0], 1, 1, device=e_clip.device) >= self.image_dropout
            e_clip = e_clip * keep
        e = e_clip + e_arc  # E
        q = split_heads(self.to_q(e_arc), self.heads)
        key, value = self.kv(e)
        return self.proj(merge_heads(attend(q, key, value)))  # C_id (B, K, d)


class IdAdapterLayer(InjectionLayer):
    """λ · Attn(Q, K^i, V^i) on the video tokens (Eq. 3's identity term)."""

    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int, scale: float):
        super().__init__()
        self.scale = scale
        self.attn = CrossAttention(dim, context_dim, heads, head_dim, zero_init=True)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        return self.scale * self.attn(hidden_states, inputs.cond["c_id"])

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        return self.attn.flops(batch, grid[0] * grid[1] * grid[2], context_tokens["c_id"])


class IdAdapter(Injection):
    config_class = IdAdapterConfig
    kind = "id_adapter"
    requires = frozenset({"face_embedding", "image_pooled"})

    def __init__(self, config: IdAdapterConfig, wiring):
        super().__init__(config, wiring)
        self.fusion = IdFusion(
            wiring.features["face_embedding"][1],
            wiring.features["image_pooled"][1],
            config.fusion_dim,
            config.num_tokens,
            config.fusion_heads,
            config.image_dropout,
        )

    def make_layer(self) -> IdAdapterLayer:
        cfg: IdAdapterConfig = self.config
        w = self.wiring
        return IdAdapterLayer(w.dim, cfg.fusion_dim, cfg.heads or w.heads, cfg.head_dim or w.head_dim, cfg.scale)

    def set_scale(self, scale: float) -> None:
        """λ at inference (the balance between text guidance and identity)."""
        self.config.scale = scale
        for layer in self.layers:
            layer.scale = scale

    def prepare(self, features, motion=None):
        if features is None or features.face_embedding is None or features.image_pooled is None:
            return None
        return {"c_id": self.fusion(features.face_embedding, features.image_pooled)}

    def context_tokens(self) -> dict[str, int]:
        return {"c_id": self.config.num_tokens}
