"""MotionCharacter's Motion Control Module (seed 002 §3.3, Eq. 8).

    Z'' = Attn(Q', K^a, V^a) + α · Attn(Q', K^m, V^m),    Q' = Z' W'_q

Z' is the output of the ID-preserving adapter (attach this injection after `id_adapter` so it runs on
the adapter's output), K^a/V^a come from the action-phrase embedding E_A (the text encoder's token
embeddings of e.g. "talking"), K^m/V^m from the motion embedding E_M = MLP(motion intensity). The
intensity scalar is expanded to sinusoidal features first (as diffusion timesteps are) so the MLP can
resolve small differences; the seed caps intensity at 20. As everywhere, W_o starts at zero.

With one motion token, Attn(Q', K^m, V^m) is the same vector at every position: Eq. 8 alone can only add
a per-video bias to the hidden states, and the laptop model learned to ignore it (docs/models.md).
`time_embedding=True` adds a second, multiplicative route, as Stable Video Diffusion conditions on its
motion bucket: an MLP of the intensity features is added to the timestep embedding every block's adaptive
LayerNorm scales and shifts with. Its last layer starts at zero, so adding it to a trained model changes
nothing until it trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from idvid.models.attention import KeyValue, attend, merge_heads, split_heads
from idvid.models.inject import TEMB_KEY, BlockInputs, Injection, InjectionLayer


@dataclass
class MotionInputs:
    """Motion conditions of one batch."""

    action_embedding: torch.Tensor  # (B, L, Dt) text-encoder tokens of the action phrase
    intensity: torch.Tensor  # (B,) motion intensity (mean foreground flow, seed 002 Eqs. 5–7)
    action_mask: torch.Tensor | None = None  # (B, L) True on real tokens


@dataclass
class MotionControlConfig:
    alpha: float = 1.0  # α of Eq. 8
    context_dim: int = 64  # channels of E_A and E_M
    motion_tokens: int = 1
    max_intensity: float = 20.0
    frequencies: int = 32  # sinusoidal features of the intensity
    action_tokens: int = 16  # action phrases are padded/truncated to this many text tokens
    heads: int | None = None
    head_dim: int | None = None
    every: int = 1
    time_embedding: bool = False  # also add an intensity embedding to the blocks' timestep embedding (AdaLN)

    def __post_init__(self) -> None:
        if self.max_intensity <= 0:
            raise ValueError(f"max_intensity must be > 0, got {self.max_intensity}")
        if self.every < 1:
            raise ValueError(f"`every` must be >= 1, got {self.every}")


class MotionEmbedding(nn.Module):
    """E_M = MLP(intensity): (B,) -> (B, motion_tokens, dim)."""

    def __init__(self, dim: int, tokens: int, frequencies: int, max_intensity: float):
        super().__init__()
        self.tokens, self.max_intensity = tokens, max_intensity
        freqs = torch.exp(-math.log(1000.0) * torch.arange(frequencies) / frequencies)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies, dim), nn.SiLU(), nn.Linear(dim, tokens * dim))
        self.norm = nn.LayerNorm(dim)

    def features(self, intensity: torch.Tensor) -> torch.Tensor:
        """Sinusoidal features of the intensity: (B,) -> (B, 2f)."""
        m = intensity.float().clamp(0, self.max_intensity) / self.max_intensity * 1000.0  # [0, 1000]
        args = m[:, None] * self.freqs[None]  # (B, f)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).to(self.mlp[0].weight.dtype)

    def forward(self, intensity: torch.Tensor) -> torch.Tensor:
        return self.norm(rearrange(self.mlp(self.features(intensity)), "b (n d) -> b n d", n=self.tokens))


class MotionControlLayer(InjectionLayer):
    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int, alpha: float):
        super().__init__()
        self.heads, self.head_dim, self.alpha = heads, head_dim, alpha
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)  # W'_q
        self.action = KeyValue(context_dim, heads, head_dim)  # K^a, V^a
        self.motion = KeyValue(context_dim, heads, head_dim)  # K^m, V^m
        self.to_out = nn.Linear(inner, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        q = split_heads(self.to_q(self.norm(hidden_states)), self.heads)  # Q' (B, H, N, d)
        k_a, v_a = self.action(inputs.cond["action"])
        k_m, v_m = self.motion(inputs.cond["motion"])
        out = attend(q, k_a, v_a, inputs.cond.get("action_mask")) + self.alpha * attend(q, k_m, v_m)
        return self.to_out(merge_heads(out))

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        n = grid[0] * grid[1] * grid[2]
        dim, inner, c = self.to_q.in_features, self.heads * self.head_dim, self.action.to_kv.in_features
        m = context_tokens["action"] + context_tokens["motion"]
        return 4 * batch * n * dim * inner + 2 * batch * m * c * 2 * inner + 4 * batch * n * m * inner


class MotionControl(Injection):
    config_class = MotionControlConfig
    kind = "motion"

    def __init__(self, config: MotionControlConfig, wiring):
        super().__init__(config, wiring)
        if wiring.text_dim <= 0:
            raise ValueError("the Motion Control Module needs the text encoder's width (wiring.text_dim)")
        self.action_proj = nn.Sequential(nn.Linear(wiring.text_dim, config.context_dim), nn.LayerNorm(config.context_dim))
        self.motion_embed = MotionEmbedding(
            config.context_dim, config.motion_tokens, config.frequencies, config.max_intensity
        )
        self.temb_proj = None
        if config.time_embedding:  # intensity features -> an addition to the timestep embedding, zero at first
            self.temb_proj = nn.Sequential(
                nn.Linear(2 * config.frequencies, wiring.temb_dim), nn.SiLU(), nn.Linear(wiring.temb_dim, wiring.temb_dim)
            )
            nn.init.zeros_(self.temb_proj[2].weight)
            nn.init.zeros_(self.temb_proj[2].bias)

    def make_layer(self) -> MotionControlLayer:
        cfg: MotionControlConfig = self.config
        w = self.wiring
        return MotionControlLayer(w.dim, cfg.context_dim, cfg.heads or w.heads, cfg.head_dim or w.head_dim, cfg.alpha)

    def set_alpha(self, alpha: float) -> None:
        self.config.alpha = alpha
        for layer in self.layers:
            layer.alpha = alpha

    def prepare(self, features, motion: MotionInputs | None = None):
        if motion is None:
            return None
        dtype = self.action_proj[0].weight.dtype
        cond = {
            "action": self.action_proj(motion.action_embedding.to(dtype)),  # E_A (B, L, c)
            "motion": self.motion_embed(motion.intensity),  # E_M (B, n, c)
        }
        if motion.action_mask is not None:
            cond["action_mask"] = motion.action_mask.to(torch.bool)
        if self.temb_proj is not None:  # (B, Te), added to every block's timestep embedding (inject.py)
            cond[TEMB_KEY] = self.temb_proj(self.motion_embed.features(motion.intensity))
        return cond

    def context_tokens(self) -> dict[str, int]:
        return {"action": self.config.action_tokens, "motion": self.config.motion_tokens}
