"""How well model folders denoise, per noise level, side by side: the x̂0 error on held-out clips.

For each held-out identity (seeds from 2,000,000) its clip 0 is rendered and VAE-encoded to z0, noised at
each timestep t with the same noise for every model, and the model's x̂0 = √ᾱ z_t − √(1−ᾱ) v̂ (full
conditioning: prompt, reference, action phrase, intensity) is compared with z0: mean squared error in
latent space. A model whose error at small t is far above zero cannot pass the noisy input's fine detail
through (see idvid.models.refiner); at t near 1000 every model can only predict a blurred mean.

    python scripts/measure_denoiser.py MODEL_DIR [MODEL_DIR ...] [--identities 4] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

TIMESTEPS = (50, 200, 400, 600, 800, 950)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model or pipeline folders (idvid train --export, save_pretrained)")
    ap.add_argument("--identities", type=int, default=4, help="held-out identities (seeds 2,000,000 + i)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)


    from idvid.pipelines.ipt2v import load_pipeline
    from idvid.synth import clip_spec, identity, render_clip, render_reference

    print(f"x0 MSE (latent space) on {args.identities} held-out clips; columns: timestep")
    print(f"{'model':40s} " + " ".join(f"{t:>7d}" for t in TIMESTEPS))
    for folder in args.models:
        pipe = load_pipeline(folder)
        model = pipe.model.eval()
        alphas = pipe.scheduler.alphas_cumprod  # the training schedule (IDVideoPipeline.scheduler_from_training)
        errors = {t: [] for t in TIMESTEPS}
        for seed in range(2_000_000, 2_000_000 + args.identities):
            clip = render_clip(clip_spec(seed, 0), 128, num_frames=17)
            frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
            ref = pipe.prepare_reference(render_reference(identity(seed), 128)[0])
            with torch.no_grad():
                z0 = model.encode_video(frames)
                text = model.encode_text([clip.prompt])
                ids = pipe.identity_inputs(ref)
                motion = model.motion_inputs([clip.action_phrase], [float(clip.motion_intensity)]) \
                    if "motion" in model.injections else None
                noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
                for t in TIMESTEPS:
                    tt = torch.tensor([t])
                    a = alphas[t]
                    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
                    x0 = a.sqrt() * zt - (1 - a).sqrt() * model(zt, tt, text, ids, motion).float()
                    errors[t].append(float(((x0 - z0) ** 2).mean()))
        print(f"{folder[-40:]:40s} " + " ".join(f"{np.mean(errors[t]):7.4f}" for t in TIMESTEPS), flush=True)


if __name__ == "__main__":
    main()
