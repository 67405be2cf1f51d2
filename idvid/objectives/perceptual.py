"""Latent Video Perceptual Loss (seed 000 §3.2.3, Eqs. 6–12).

    w(t)   = cos(t/T · π/2)                                        (7)
    L_face = w(t) ‖M ⊙ (f(Ẑ0) − f(Z̃0))‖                          (8)  f = the VAE decoder's first convolution
    L_back = w(t) ‖(1 − M) ⊙ (Ẑ0 − Z̃0)‖²                         (10)
    L_p    = α L_face + β L_back,  α = 2, β = 0.5                 (11)
    L      = L_diff + L_p                                          (12)

M is the face mask interpolated to latent size; Ẑ0 the model's clean-latent estimate, Z̃0 the clean
latent. The face term is an unsquared norm, the back term a squared one, as in the paper. With
`reduction="mean"` (default) both are normalised by the element count — the face term becomes an RMS
(√ of the mean square) and the back term a mean square — so they sit on the scale of L_diff, which is
itself a mean; `reduction="sum"` gives the literal unnormalised norms. Both are per sample, weighted by
that sample's w(t), then averaged over the batch. f sees the latents divided by the VAE scaling factor,
as the decoder does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def cosine_weight(timesteps: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """w(t) = cos(t/T · π/2): 1 at t = 0, 1/√2 at T/2, 0 at T."""
    return torch.cos(timesteps.float() / num_train_timesteps * (math.pi / 2))


def latent_mask(mask: torch.Tensor, latent_size: tuple[int, int, int], temporal_compression: int = 4) -> torch.Tensor:
    """A pixel-space mask (B, F, H, W) in [0, 1] -> (B, F', 1, h, w) at latent size (area averages).

    Frames follow CogVideoX's causal VAE when F = (F'-1)·r + 1: latent frame 0 is pixel frame 0 and latent
    frame k the mean of pixel frames (k-1)r+1 .. kr. F = F' is taken as is; anything else is resampled
    by adaptive average pooling.
    """
    frames, h, w = latent_size
    m = mask.float()
    if m.ndim != 4:
        raise ValueError(f"mask must be (B, F, H, W), got {tuple(m.shape)}")
    m = F.adaptive_avg_pool2d(m, (h, w))  # (B, F, h, w)
    r = temporal_compression
    if m.shape[1] == (frames - 1) * r + 1 and m.shape[1] != frames:
        rest = m[:, 1:].reshape(m.shape[0], frames - 1, r, h, w).mean(dim=2)
        m = torch.cat([m[:, :1], rest], dim=1)
    elif m.shape[1] != frames:
        m = F.adaptive_avg_pool3d(m[:, None], (frames, h, w))[:, 0]
    return m[:, :, None]  # (B, F', 1, h, w)


def _first_conv_features(conv: nn.Module, z: torch.Tensor) -> torch.Tensor:
    out = conv(z)
    return out[0] if isinstance(out, tuple) else out  # CogVideoXCausalConv3d returns (features, cache)


@dataclass
class PerceptualTerms:
    face: torch.Tensor  # α-free L_face (batch mean)
    back: torch.Tensor  # β-free L_back
    total: torch.Tensor  # L_p = α L_face + β L_back


class LatentVideoPerceptualLoss(nn.Module):
    """L_p of Eq. 11 over latents (B, F, C, h, w), with `first_conv` = `vae.decoder.conv_in` (frozen)."""

    def __init__(
        self,
        first_conv: nn.Module,
        scaling_factor: float = 1.0,
        alpha: float = 2.0,
        beta: float = 0.5,
        num_train_timesteps: int = 1000,
        reduction: str = "mean",
    ):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.first_conv = first_conv
        self.first_conv.requires_grad_(False)
        self.scaling_factor, self.alpha, self.beta = scaling_factor, alpha, beta
        self.num_train_timesteps, self.reduction = num_train_timesteps, reduction

    @classmethod
    def from_vae(cls, vae: nn.Module, **kwargs) -> LatentVideoPerceptualLoss:
        return cls(vae.decoder.conv_in, scaling_factor=vae.config.scaling_factor, **kwargs)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """f(Z): (B, F, C, h, w) scaled latents -> (B, C', F, h, w)."""
        x = (z / self.scaling_factor).permute(0, 2, 1, 3, 4)
        x = x.to(next(self.first_conv.parameters()).dtype)
        return _first_conv_features(self.first_conv, x).float()

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:  # per-sample sum or mean of squares
        sq = x.square().flatten(1)
        return sq.mean(dim=1) if self.reduction == "mean" else sq.sum(dim=1)

    def forward(
        self, pred_x0: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor, timesteps: torch.Tensor
    ) -> PerceptualTerms:
        """`mask`: latent-size face mask (B, F, 1, h, w) (see `latent_mask`)."""
        w = cosine_weight(timesteps.to(pred_x0.device), self.num_train_timesteps)  # (B,)
        m = mask.float()
        feat_m = m.permute(0, 2, 1, 3, 4)  # (B, 1, F, h, w) over f's channels
        # clamp: the norm's gradient is undefined at exactly 0 (a face region already perfect)
        face = w * self._reduce(feat_m * (self.features(pred_x0) - self.features(x0))).clamp_min(1e-12).sqrt()
        back = w * self._reduce((1 - m) * (pred_x0.float() - x0.float()))
        face, back = face.mean(), back.mean()
        return PerceptualTerms(face=face, back=back, total=self.alpha * face + self.beta * back)
