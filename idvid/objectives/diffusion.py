"""The diffusion loss, consistent with whatever diffusers scheduler the model is trained for.

The scheduler's `prediction_type` decides the regression target: `epsilon` -> the noise, `v_prediction`
-> `scheduler.get_velocity(x0, noise, t)` (CogVideoX), `sample` -> x0. Noising is the scheduler's own
`add_noise`. For v-prediction, ‖v̂ − v‖² = ‖x̂0 − x0‖² / (1 − ᾱ_t): the same objective as the x0-space
loss weighted by 1/(1 − ᾱ_t) that diffusers' CogVideoX training scripts write out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def alphas_cumprod(scheduler, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """ᾱ_t, broadcastable against `like` (B, ...)."""
    acp = scheduler.alphas_cumprod.to(device=like.device)[timesteps.to(like.device).long()]
    return _expand(acp, like)


def sample_timesteps(scheduler, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Uniform training timesteps in [0, num_train_timesteps)."""
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
    return t.to(device) if device is not None else t


def prediction_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the model should output for x_t = add_noise(latents, noise, t)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise ValueError(f"unsupported prediction type {kind!r}")


def predict_x0(scheduler, noisy: torch.Tensor, model_output: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """x̂0 from the model output (the DDIM "predicted original sample"), differentiable."""
    acp = alphas_cumprod(scheduler, timesteps, noisy)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (noisy - (1 - acp).sqrt() * model_output) / acp.sqrt()
    if kind == "v_prediction":
        return acp.sqrt() * noisy - (1 - acp).sqrt() * model_output
    if kind == "sample":
        return model_output
    raise ValueError(f"unsupported prediction type {kind!r}")


@dataclass
class NoisedBatch:
    noisy: torch.Tensor  # x_t
    noise: torch.Tensor  # ε
    timesteps: torch.Tensor  # (B,)
    target: torch.Tensor  # per the scheduler's prediction type


def noise_batch(
    scheduler, latents: torch.Tensor, timesteps: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> NoisedBatch:
    """Draw ε (and t, unless given) and noise `latents` with the scheduler's own `add_noise`."""
    if timesteps is None:
        timesteps = sample_timesteps(scheduler, latents.shape[0], generator, latents.device)
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    return NoisedBatch(noisy, noise, timesteps, prediction_target(scheduler, latents, noise, timesteps))


def diffusion_loss(model_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_diff = mean ‖target − output‖² (seed 000 Eq. 5 as everyone implements it: a mean, not a sum)."""
    return (model_output.float() - target.float()).square().mean()


def restart_from(scheduler, noised: NoisedBatch, latents: torch.Tensor, start: torch.Tensor, rows: torch.Tensor,
                 timesteps: torch.Tensor) -> NoisedBatch:
    """`noised` with the clips in `rows` (bool, (B,)) noised from `start` instead, at `timesteps`, with their ε —
    the way image-to-image sampling starts from a given latent (idvid's `first_frame_init` starts the video pass
    from the still first frame) — and the target that still leads to `latents`.

    x_t = √ᾱ_t start + √(1−ᾱ_t) ε is the clean `latents` noised with ε' = ε + √ᾱ_t (start − latents) / √(1−ᾱ_t),
    so the target is the scheduler's for (latents, ε') and the denoiser learns to reach the clip from that start
    (for v-prediction, x̂0 = √ᾱ_t x_t − √(1−ᾱ_t) v̂ is then `latents`)."""
    t = torch.where(rows.to(noised.timesteps.device), timesteps.to(noised.timesteps.device), noised.timesteps)
    acp = alphas_cumprod(scheduler, t, latents)
    shift = acp.sqrt() * (start - latents) / (1 - acp).sqrt()
    keep = _expand(rows.to(latents.device), latents).to(torch.bool)
    noise = torch.where(keep, noised.noise + shift, noised.noise)
    return NoisedBatch(scheduler.add_noise(latents, noise, t), noise, t, prediction_target(scheduler, latents, noise, t))
