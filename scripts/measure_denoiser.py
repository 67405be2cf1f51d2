"""How well model folders denoise, per noise level, side by side: the x̂0 error on held-out clips.

For each held-out identity (seeds from 2,000,000) its clip 0 is rendered and VAE-encoded to z0, noised at
each timestep t with the same noise for every model, and the model's x̂0 = √ᾱ z_t − √(1−ᾱ) v̂ (full
conditioning: prompt, reference, action phrase, intensity) is compared with z0: mean squared error in
latent space. A model whose error at small t is far above zero cannot pass the noisy input's fine detail
through (see idvid.models.refiner); at t near 1000 every model can only predict a blurred mean.

With --motion, also whether the motion intensity reaches the output: for each identity's first clip with
a moving action (ground-truth intensity > 3), noised at t = 800 and 950, the temporal energy of x̂0 (mean
squared difference of consecutive latent frames) with the intensity set to 0, 5, 10 and 20 — a model
that obeys the intensity predicts more change between frames at higher intensity.

With --per-frame, also the error of each latent frame at each t (frame 0 is the one latent frame the
decoder turns into a single image).

    python scripts/measure_denoiser.py MODEL_DIR [MODEL_DIR ...] [--identities 4] [--threads 1] [--motion] [--per-frame]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

TIMESTEPS = (50, 200, 400, 600, 800, 950)
MOTION_TIMESTEPS = (800, 950)
INTENSITIES = (0.0, 5.0, 10.0, 20.0)


def temporal_energy(z: torch.Tensor) -> float:
    """Mean squared difference of consecutive latent frames of (B, F, C, h, w)."""
    return float(((z[:, 1:] - z[:, :-1]) ** 2).mean())


def x0_prediction(model, alphas, z0, t, noise, text, ids, motion) -> torch.Tensor:
    """x̂0 = √ᾱ z_t − √(1−ᾱ) v̂ for z_t noised from z0 at timestep t."""
    a = alphas[t]
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
    return a.sqrt() * zt - (1 - a).sqrt() * model(zt, torch.tensor([t]), text, ids, motion).float()


def clip_inputs(pipe, seed: int, clip):
    """(z0, text, identity inputs, noise) of a rendered clip of identity `seed`."""
    from idvid.synth import identity, render_reference

    model = pipe.model
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
    ref = pipe.prepare_reference(render_reference(identity(seed), 128)[0])
    z0 = model.encode_video(frames)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    return z0, model.encode_text([clip.prompt]), pipe.identity_inputs(ref), noise


def motion_response(pipe, identities: int) -> dict[int, np.ndarray]:
    """{t: (len(INTENSITIES),) mean temporal energy of x̂0} over the identities' first moving clips."""
    from idvid.synth import clip_spec, render_clip

    model, alphas = pipe.model, pipe.scheduler.alphas_cumprod
    rows = {t: [] for t in MOTION_TIMESTEPS}
    for seed in range(2_000_000, 2_000_000 + identities):
        clip = next(c for c in (render_clip(clip_spec(seed, k), 128, num_frames=17) for k in range(64))
                    if c.motion_intensity > 3)
        z0, text, ids, noise = clip_inputs(pipe, seed, clip)
        for t in MOTION_TIMESTEPS:
            rows[t].append([temporal_energy(x0_prediction(model, alphas, z0, t, noise, text, ids,
                                                          model.motion_inputs([clip.action_phrase], [m])))
                            for m in INTENSITIES])
    return {t: np.mean(r, axis=0) for t, r in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model or pipeline folders (idvid train --export, save_pretrained)")
    ap.add_argument("--identities", type=int, default=4, help="held-out identities (seeds 2,000,000 + i)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--motion", action="store_true", help="also the x̂0 temporal energy per motion intensity")
    ap.add_argument("--per-frame", action="store_true", help="also the x̂0 error of each latent frame")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from idvid.pipelines.ipt2v import load_pipeline
    from idvid.synth import clip_spec, render_clip

    print(f"x0 MSE (latent space) on {args.identities} held-out clips; columns: timestep")
    print(f"{'model':40s} " + " ".join(f"{t:>7d}" for t in TIMESTEPS))
    for folder in args.models:
        pipe = load_pipeline(folder)
        model = pipe.model.eval()
        alphas = pipe.scheduler.alphas_cumprod  # the training schedule (IDVideoPipeline.scheduler_from_training)
        frame_errors = {t: [] for t in TIMESTEPS}  # (F,) per clip; frames are the same size, so their mean is the clip's
        for seed in range(2_000_000, 2_000_000 + args.identities):
            clip = render_clip(clip_spec(seed, 0), 128, num_frames=17)
            with torch.no_grad():
                z0, text, ids, noise = clip_inputs(pipe, seed, clip)
                motion = model.motion_inputs([clip.action_phrase], [float(clip.motion_intensity)]) \
                    if "motion" in model.injections else None
                for t in TIMESTEPS:
                    x0 = x0_prediction(model, alphas, z0, t, noise, text, ids, motion)
                    frame_errors[t].append(((x0 - z0) ** 2)[0].mean(dim=(1, 2, 3)).numpy())
        print(f"{folder[-40:]:40s} " + " ".join(f"{np.mean(frame_errors[t]):7.4f}" for t in TIMESTEPS), flush=True)
        if args.per_frame:
            for t in TIMESTEPS:
                print(f"  x0 MSE per latent frame at t={t}: "
                      + " ".join(f"{e:.4f}" for e in np.mean(frame_errors[t], axis=0)), flush=True)
        if args.motion and "motion" in model.injections:
            with torch.no_grad():
                response = motion_response(pipe, args.identities)
            for t, energy in response.items():
                print(f"  x0 temporal energy at t={t}, intensity " + " / ".join(f"{m:g}" for m in INTENSITIES)
                      + ": " + " / ".join(f"{e:.5f}" for e in energy), flush=True)


if __name__ == "__main__":
    main()
