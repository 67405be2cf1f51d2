"""MotionCharacter's region-aware loss (seed 002 §3.3, Eqs. 9–10).

    M_norm = clip(f_fg / 255 + 0.5, 1.0, 1.5)                                  (9)
    L_R    = 1/(N H' W') Σ_i Σ_x Σ_y M_norm · [ε − ε̂]²                          (10)

f_fg is the foreground optical-flow magnitude of Eq. 6 (flow where it exceeds its frame's mean, else 0),
in the units Eq. 9 divides by 255 for: pixels whose foreground flow is at least 127.5 get weights above 1,
up to 1.5 at 255. The weights are computed at flow resolution, then area-averaged to the latent grid
(`latent_mask`). The squared error is averaged over channels too, so with M_norm ≡ 1 the loss is exactly
`diffusion_loss`; the target is the scheduler's (ε for epsilon models, v for CogVideoX).
"""

from __future__ import annotations

import torch

from idvid.objectives.perceptual import latent_mask


def region_weights(flow_fg: torch.Tensor) -> torch.Tensor:
    """Eq. 9, elementwise."""
    return (flow_fg.float() / 255.0 + 0.5).clamp(1.0, 1.5)


def latent_region_weights(
    flow_fg: torch.Tensor, latent_size: tuple[int, int, int], temporal_compression: int = 4
) -> torch.Tensor:
    """Foreground flow maps (B, F, H, W) -> M_norm at latent size (B, F', 1, h, w)."""
    return latent_mask(region_weights(flow_fg), latent_size, temporal_compression)


def region_aware_loss(model_output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 10: mean of M_norm · (target − output)², weights broadcast over (B, F, C, h, w)."""
    return (weights.float() * (model_output.float() - target.float()).square()).mean()
