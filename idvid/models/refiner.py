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

Reference attention (`reference_dim > 0`): the reference latent sits in x at the same place as the video, but
the person in a clip is seldom where the portrait has them (turned, shifted by up to a quarter of the frame),
and the 3×3 convolutions see 2·layers + 3 latent pixels. So every cell of 2×2 latent pixels of every frame may
also attend over all cells of the reference latent (spatial attention to the reference, as ReferenceNet-style
I2V models do, here at latent resolution where the 4×4-patch DiT cannot resolve eyes or glasses); queries and
keys carry a 2-D sinusoidal position, so "the same place" is the easy default and content can move it. Its output
projection starts at zero: added to a trained refiner it changes nothing until trained (tested).
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
    reference_dim: int = 0  # query/key width of the attention to the reference latent (0 = none)
    reference_frequencies: int = 5  # sinusoidal frequencies per axis of its positions
    reference_patch: int = 2  # its queries and keys are cells of patch x patch latent pixels


def grid_positions(h: int, w: int, frequencies: int, device=None) -> torch.Tensor:
    """(h·w, 4·frequencies) sin/cos features of each pixel's row and column, scaled to the grid: pixel
    positions in [0, 1), frequencies 2^k·π for k < frequencies."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device) / h, torch.arange(w, device=device) / w, indexing="ij")
    freq = torch.pi * 2.0 ** torch.arange(frequencies, device=device)
    angles = torch.cat([ys.reshape(-1, 1) * freq, xs.reshape(-1, 1) * freq], dim=1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ReferenceAttention(nn.Module):
    """h + W_o·softmax(q kᵀ/√d) v: features h (B·F, ch, H, W) of every frame attend over the reference latent
    (B, C_ref, H, W); one head, W_o zero-initialised. Queries and keys are cells of `patch`×`patch` pixels and
    a value carries its cell's pixels, so a cell of the reference moves whole, with its detail, for 1/patch⁴ of
    the cost of pixel-to-pixel attention (measured on the laptop refiner, forward + backward: pixel attention about
    6× slower than without it, 2×2 cells 1.5×)."""

    def __init__(self, channels: int, reference_channels: int, dim: int, frequencies: int, patch: int):
        super().__init__()
        self.frequencies, self.patch = frequencies, patch
        cell = channels * patch * patch
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.ref_in = nn.Conv2d(reference_channels, channels, 3, padding=1)
        self.ref_norm = nn.GroupNorm(min(8, channels), channels)
        self.to_q = nn.Linear(cell, dim)
        self.to_k = nn.Linear(cell, dim)
        self.to_v = nn.Linear(cell, cell)
        self.pos_q = nn.Linear(4 * frequencies, dim, bias=False)
        self.pos_k = nn.Linear(4 * frequencies, dim, bias=False)
        self.to_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.to_out.weight)  # starts as "attend to nothing"
        nn.init.zeros_(self.to_out.bias)

    def cells(self, t: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, cells, C·p·p), padding H and W up to multiples of p."""
        p = self.patch
        t = nn.functional.pad(t, (0, -t.shape[3] % p, 0, -t.shape[2] % p))
        return rearrange(t, "n c (y p) (x q) -> n (y x) (c p q)", p=p, q=p)

    def forward(self, h: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        n, ch, height, width = h.shape
        frames = n // reference.shape[0]
        p = self.patch
        rows, cols = -(-height // p), -(-width // p)
        pos = grid_positions(rows, cols, self.frequencies, h.device).to(h.dtype)
        r = self.cells(nn.functional.silu(self.ref_norm(self.ref_in(reference.to(h.dtype)))))
        q = self.to_q(self.cells(self.norm(h))) + self.pos_q(pos)
        k = (self.to_k(r) + self.pos_k(pos)).repeat_interleave(frames, dim=0)  # shared by the frames
        v = self.to_v(r).repeat_interleave(frames, dim=0)
        a = nn.functional.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        a = rearrange(a, "n (y x) (c p q) -> n c (y p) (x q)", y=rows, p=p, q=p)[:, :, :height, :width]
        return h + self.to_out(a)

    def flops(self, images: int, pixels: int, references: int) -> int:
        """Forward FLOPs over `images` frames of `pixels` pixels with `references` reference latents: the
        projections and the two attention products (2 per multiply-add)."""
        cells = pixels / self.patch**2
        linear = lambda m, n: 2 * m.in_features * m.out_features * cells * n  # noqa: E731
        projections = linear(self.to_q, images) + linear(self.to_k, references) + linear(self.to_v, references)
        convs = 2 * 9 * self.ref_in.in_channels * self.ref_in.out_channels * pixels * references
        convs += 2 * self.to_out.in_channels * self.to_out.out_channels * pixels * images
        attention = 2 * images * cells * cells * (self.to_q.out_features + self.to_v.out_features)
        return int(projections + convs + attention)


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
        self.reference = None
        if config.reference_dim < 0 or config.reference_patch < 1:
            raise ValueError(f"refiner reference_dim must be >= 0 and reference_patch >= 1, got {config.reference_dim} "
                             f"and {config.reference_patch}")
        if config.reference_dim > 0:
            # x = [noisy latents ; reference latent in frame 0 ; ...] (IdentityVideoModel.condition_latents)
            if in_channels < 2 * out_channels:
                raise ValueError("refiner reference attention needs the reference latent in its input (backbone.reference_latent)")
            self.reference = ReferenceAttention(ch, out_channels, config.reference_dim, config.reference_frequencies,
                                                config.reference_patch)

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

    def flops(self, images: int, pixels: int, references: int = 1) -> int:
        """Forward FLOPs of the convolutions (2 per multiply-add) over `images` latent frames of `pixels`
        pixels, and of the reference attention with `references` reference latents (one per sample); the
        timestep MLP, positions, norms and activations are negligible and excluded."""
        convs = [self.conv_in, *self.hidden, self.conv_out]
        total = sum(2 * c.in_channels * c.out_channels * 9 * pixels * images for c in convs)
        if self.reference is not None:
            total += self.reference.flops(images, pixels, references)
        return total

    def forward(self, x: torch.Tensor, pred: torch.Tensor, timestep: torch.Tensor,
                reference: torch.Tensor | None = None) -> torch.Tensor:
        """The correction for input `x` and the DiT's prediction; `reference` (B, C, h, w), when given, is what
        the reference attention reads instead of x's reference slot (IdentityVideoModel passes an I2V first frame)."""
        b, f = x.shape[:2]
        h = self.conv_in(rearrange(torch.cat([x, pred.to(x.dtype)], dim=2), "b f c h w -> (b f) c h w"))
        if self.reference is not None:
            c = pred.shape[2]
            h = self.reference(h, x[:, 0, c:2 * c] if reference is None else reference)  # default: frame 0's reference slot
        temb = get_timestep_embedding(timestep.reshape(b).float(), self.time_dim)  # fp32 timestep features
        film = self.time(temb.to(h.dtype)).repeat_interleave(f, dim=0)  # (B·F, 2·ch·layers)
        for i, (conv, norm) in enumerate(zip(self.hidden, self.norms, strict=True)):
            scale, shift = film[:, 2 * i * h.shape[1]:(2 * i + 2) * h.shape[1], None, None].chunk(2, dim=1)
            h = h + conv(nn.functional.silu(norm(h) * (1 + scale) + shift))  # residual pre-norm block
        out = self.conv_out(nn.functional.silu(h))
        return rearrange(out, "(b f) c h w -> b f c h w", b=b)


def widen_refiner_latents(tensors: dict[str, torch.Tensor], old: int, new: int, blocks: int, mask: bool,
                          prefix: str = "refiner.") -> dict[str, torch.Tensor]:
    """A trained refiner's tensors for `new`-channel latents instead of `old` (see
    idvid.models.backbone.widen_latent_channels): the added input channels get zero weights and the added output
    channels zero rows, so the old channels' corrections are unchanged and the added ones start at zero."""
    from idvid.models.backbone import latent_channel_index

    t = dict(tensors)
    w = t[prefix + "conv_in.weight"]  # (ch, [x ; prediction], 3, 3) with x = blocks · old (+ mask)
    x_old, x_new = blocks * old + mask, blocks * new + mask
    wide = w.new_zeros(w.shape[0], x_new + new, *w.shape[2:])
    wide[:, latent_channel_index(old, new, blocks, mask)] = w[:, :x_old]
    wide[:, x_new : x_new + old] = w[:, x_old:]
    t[prefix + "conv_in.weight"] = wide
    for name in ("conv_out.weight", "conv_out.bias"):
        rows = t[prefix + name]
        t[prefix + name] = torch.cat([rows, rows.new_zeros(new - old, *rows.shape[1:])])
    if prefix + "reference.ref_in.weight" in t:
        cols = t[prefix + "reference.ref_in.weight"]
        t[prefix + "reference.ref_in.weight"] = torch.cat([cols, cols.new_zeros(cols.shape[0], new - old, *cols.shape[2:])], 1)
    return t

