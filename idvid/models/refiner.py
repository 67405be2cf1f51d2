"""A convolutional output head at latent resolution, for narrow DiTs (the laptop preset).

Why: a DiT token of patch p over C latent channels carries p·p·C numbers of the noisy latent (2·p·p·C with the
reference latent concatenated). The laptop preset embeds 4·4·(8+8) = 256 of them into a 128-wide token, so
the transformer cannot pass the per-pixel noise through to its output; the v-target at low and middle noise
levels is mostly that noise (v = √ᾱ ε − √(1−ᾱ) x0), and samples keep a blocky residual of it. Real DiTs are
wide enough (CogVideoX-5B: 2·2·16·2 numbers into 3072 channels) and leave this off.

    v = DiT(x, t, ...) + R(x, DiT(x, t, ...), t)

R sees each frame's input latents x (with the reference channels) and the DiT's prediction, 3×3 convolutions
with a timestep FiLM, and adds a correction; its last convolution starts at zero, so attaching it to a
trained model changes nothing until it is trained (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_timestep_embedding
from einops import rearrange
from torch import nn


@dataclass
class RefinerConfig:
    channels: int = 48  # hidden width of the convolutions
    layers: int = 2  # hidden 3x3 convolutions (receptive field 2·layers + 3 latent pixels)
    time_dim: int = 64  # sinusoidal timestep features


class LatentRefiner(nn.Module):
    """R(x, v̂, t) for inputs x (B, F, C_in, h, w) and the DiT's prediction v̂ (B, F, C_out, h, w)."""

    def __init__(self, config: RefinerConfig, in_channels: int, out_channels: int):
        super().__init__()
        if config.channels < 1 or config.layers < 1:
            raise ValueError(f"refiner channels and layers must be >= 1, got {config.channels} and {config.layers}")
        ch = config.channels
        self.config = config
        self.conv_in = nn.Conv2d(in_channels + out_channels, ch, 3, padding=1)
        self.time_dim = config.time_dim
        self.time = nn.Sequential(nn.Linear(config.time_dim, ch), nn.SiLU(), nn.Linear(ch, 2 * ch * config.layers))
        self.hidden = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in range(config.layers))
        self.norms = nn.ModuleList(nn.GroupNorm(min(8, ch), ch) for _ in range(config.layers))
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # starts as "no correction"
        nn.init.zeros_(self.conv_out.bias)

    def widen_conv_in(self, weight: torch.Tensor) -> torch.Tensor:
        """`conv_in.weight` of a refiner built with fewer input channels x, laid out for this one: the
        channels appended to x (e.g. backbone.reference_every_frame) get zero weights, so the output is the
        old refiner's. Returned unchanged when it already fits."""
        own = self.conv_in.weight
        added = own.shape[1] - weight.shape[1]
        if added == 0 or weight.shape[0] != own.shape[0] or weight.shape[2:] != own.shape[2:] or added < 0:
            return weight
        out_channels = self.conv_out.out_channels
        old_x = weight.shape[1] - out_channels  # layout: [x channels ; prediction channels]
        zeros = weight.new_zeros(weight.shape[0], added, *weight.shape[2:])
        return torch.cat([weight[:, :old_x], zeros, weight[:, old_x:]], dim=1)

    def flops(self, images: int, pixels: int) -> int:
        """Forward FLOPs of the convolutions (2 per multiply-add) over `images` latent frames of `pixels`
        pixels; the timestep MLP, norms and activations are negligible and excluded."""
        convs = [self.conv_in, *self.hidden, self.conv_out]
        return sum(2 * c.in_channels * c.out_channels * 9 * pixels * images for c in convs)

    def forward(self, x: torch.Tensor, pred: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[:2]
        h = self.conv_in(rearrange(torch.cat([x, pred.to(x.dtype)], dim=2), "b f c h w -> (b f) c h w"))
        temb = get_timestep_embedding(timestep.reshape(b).float(), self.time_dim)  # fp32 timestep features
        film = self.time(temb.to(h.dtype)).repeat_interleave(f, dim=0)  # (B·F, 2·ch·layers)
        for i, (conv, norm) in enumerate(zip(self.hidden, self.norms, strict=True)):
            scale, shift = film[:, 2 * i * h.shape[1]:(2 * i + 2) * h.shape[1], None, None].chunk(2, dim=1)
            h = h + conv(nn.functional.silu(norm(h) * (1 + scale) + shift))  # residual pre-norm block
        out = self.conv_out(nn.functional.silu(h))
        return rearrange(out, "(b f) c h w -> b f c h w", b=b)
