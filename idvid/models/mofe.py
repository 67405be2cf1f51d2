"""MoFE: Mixture of Facial Experts (seed 004).

Three experts, each a cross-attention from the video tokens to its own feature tokens:

* identity expert -> `face_tokens` (the face-recognition embedding: identity-sensitive, robust across pose);
* semantic expert -> `image_tokens` (high-level image features: CLIP or the conv encoder);
* detail expert   -> `detail_tokens` (pixel-level features from a shallow conv of the crop).

A gate conditioned on the visual tokens and the timestep mixes them per token:

    g = softmax(W_g LN(Z_v) + W_t SiLU(temb))           (B, N, 3)
    out = W_o Σ_e g_e · Attn(LN(Z_v) W_q, K_e, V_e)      W_o zero-initialised

The seed gives no equations beyond this structure. Decided here: the query projection and the output
projection are shared by the experts (each expert has its own key/value projection and token set), so the
three experts cost one N·D² projection pair plus three attentions over a few dozen tokens; the gate starts
at zero (uniform 1/3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from idvid.models.attention import KeyValue, attend, merge_heads, split_heads
from idvid.models.inject import BlockInputs, Injection, InjectionLayer

EXPERTS = {"identity": "face_tokens", "semantic": "image_tokens", "detail": "detail_tokens"}


@dataclass
class MoFEConfig:
    heads: int | None = None
    head_dim: int | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"MoFE `every` must be >= 1, got {self.every}")


class MoFELayer(InjectionLayer):
    def __init__(self, dim: int, temb_dim: int, context_dims: Mapping[str, int], heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.experts = nn.ModuleDict({e: KeyValue(context_dims[f], heads, head_dim) for e, f in EXPERTS.items()})
        self.gate = nn.Linear(dim, len(EXPERTS))
        self.gate_t = nn.Linear(temb_dim, len(EXPERTS), bias=False)
        self.to_out = nn.Linear(inner, dim)
        for layer in (self.gate, self.to_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.gate_t.weight)

    def gates(self, normed: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) expert weights per token; each row sums to 1."""
        logits = self.gate(normed) + self.gate_t(F.silu(temb.to(normed.dtype)))[:, None, :]
        return torch.softmax(logits, dim=-1)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        normed = self.norm(hidden_states)  # (B, N, D)
        q = split_heads(self.to_q(normed), self.heads)  # (B, H, N, d)
        g = rearrange(self.gates(normed, inputs.temb), "b n e -> e b 1 n 1")
        out = 0
        for i, (expert, feature) in enumerate(EXPERTS.items()):
            k, v = self.experts[expert](inputs.cond[feature])  # (B, H, M_e, d)
            out = out + g[i] * attend(q, k, v)
        return self.to_out(merge_heads(out))

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        n = grid[0] * grid[1] * grid[2]
        dim, inner = self.to_q.in_features, self.heads * self.head_dim
        total = 2 * batch * n * dim * inner * 2  # W_q, W_o
        total += 2 * batch * n * dim * len(EXPERTS) + 2 * batch * self.gate_t.in_features * len(EXPERTS)
        for expert, feature in EXPERTS.items():
            m = context_tokens[feature]
            total += 2 * batch * m * self.experts[expert].to_kv.in_features * 2 * inner + 4 * batch * n * m * inner
        return total


class MoFE(Injection):
    config_class = MoFEConfig
    kind = "mofe"
    requires = frozenset(EXPERTS.values())

    def make_layer(self) -> MoFELayer:
        cfg: MoFEConfig = self.config
        w = self.wiring
        dims = {f: w.features[f][1] for f in EXPERTS.values()}
        return MoFELayer(w.dim, w.temb_dim, dims, cfg.heads or w.heads, cfg.head_dim or w.head_dim)

    def prepare(self, features, motion=None):
        if features is None or any(getattr(features, f) is None for f in EXPERTS.values()):
            return None
        return {f: getattr(features, f) for f in EXPERTS.values()}

    def context_tokens(self) -> dict[str, int]:
        return {f: self.wiring.features[f][0] for f in EXPERTS.values()}
