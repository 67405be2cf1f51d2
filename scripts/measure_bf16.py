#!/usr/bin/env python
"""bf16 autocast against fp32 for the laptop-scale model on this CPU, measured side by side in one run.

    python scripts/measure_bf16.py [--model DIR] [--repeats 5]

Times (alternating, best of --repeats) a training step (forward + backward, batch 8, 17 frames of 128x128
= 5x32x32 latents) and a sampling forward (batch 1), and reports how far bf16 outputs stray from fp32 on
the same inputs: relative L2 error of the model's prediction and, with --model, PSNR between videos
sampled with the same seed in each precision.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a pipeline folder (default: a randomly initialised laptop model)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from idvid.models import IdentityInputs, MotionControlConfig, build_model, laptop_config

    if args.model:
        from idvid.pipelines import load_pipeline

        pipe = load_pipeline(args.model)
        model = pipe.model
    else:
        cfg = laptop_config("moca")
        cfg.injections.append(MotionControlConfig(context_dim=64, action_tokens=8))
        model = build_model(cfg)
    model.train()
    for p in model.transformer.parameters():
        p.requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    b = 8
    c, h = model.latent_channels, model.transformer.config.sample_height
    z = torch.randn(b, 5, c, h, h, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    text = model.encode_text(["a woman with red hair, wearing a blue hoodie, smiles"] * b).detach()
    ids = IdentityInputs(face_embedding=torch.randn(b, 128, generator=g), face_crop=torch.rand(b, 3, 112, 112, generator=g) * 2 - 1,
                         reference_latent=torch.randn(b, c, h, h, generator=g))
    motion = model.motion_inputs(["smiles"] * b, torch.full((b,), 5.0))
    params = [p for p in model.parameters() if p.requires_grad]

    def train_step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(z, t, text, ids, motion)
        out.float().square().mean().backward()
        for p in params:
            p.grad = None
        return time.perf_counter() - start

    def infer(bf16: bool) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            one = IdentityInputs(face_embedding=ids.face_embedding[:1], face_crop=ids.face_crop[:1],
                                 reference_latent=ids.reference_latent[:1])
            m1 = model.motion_inputs(["smiles"], [5.0])
            out = model(z[:1], t[:1], text[:1], one, m1).float()
        return time.perf_counter() - start, out

    train_step(False), train_step(True)  # warm-up
    times = {"train_fp32": [], "train_bf16": [], "infer_fp32": [], "infer_bf16": []}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            times[f"train_{'bf16' if bf16 else 'fp32'}"].append(train_step(bf16))
        for bf16 in (False, True):
            times[f"infer_{'bf16' if bf16 else 'fp32'}"].append(infer(bf16)[0])
    model.eval()
    ref, low = infer(False)[1], infer(True)[1]
    rel = float((low - ref).norm() / ref.norm())
    best = {k: min(v) for k, v in times.items()}
    print(f"train step (batch {b}): fp32 {best['train_fp32']:.3f} s, bf16 {best['train_bf16']:.3f} s, "
          f"fp32/bf16 = {best['train_fp32'] / best['train_bf16']:.2f}")
    print(f"sampling forward (batch 1): fp32 {best['infer_fp32'] * 1000:.0f} ms, bf16 {best['infer_bf16'] * 1000:.0f} ms, "
          f"fp32/bf16 = {best['infer_fp32'] / best['infer_bf16']:.2f}")
    print(f"prediction relative L2 error bf16 vs fp32: {rel:.4f}")
    if args.model:
        import numpy as np

        from idvid.io import load_image
        from idvid.pipelines.ipt2v import sample_reference_path

        pipe.set_progress_bar_config(disable=True)
        image = load_image(sample_reference_path())
        prompt = "a woman with brown hair, wearing a red hoodie, smiles in front of a blue wall"
        a = pipe(image, prompt, generator=0).frames.astype(np.float64)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bb = pipe(image, prompt, generator=0).frames.astype(np.float64)
        mse = np.mean((a - bb) ** 2)
        print(f"sampled video PSNR bf16 vs fp32 (same seed): {10 * np.log10(255 ** 2 / max(mse, 1e-12)):.1f} dB")


if __name__ == "__main__":
    main()
