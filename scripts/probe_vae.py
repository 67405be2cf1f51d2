"""What a VAE keeps of colour and motion, by colour axis and by motion intensity (validation people only).

    python scripts/probe_vae.py MODEL_OR_VAE_DIR [--threads 2] [--clips-per-bin 12] [--parts 1234]

1. Clothing colour per clip (12 people x 3 clips, rendered and round trip, idvid.evaluate.attributes): the named
   colour, the one found, and the misses counted by named colour.
2. A linear probe from the encoder's features to the clothing colour, at every stage of the encoder: per clip (120
   people x 2 clips, frame 0 alone), each stage's channels averaged over the clothing region predict the region's
   mean luminance, yellow-blue (R+G)/2 - B and green-magenta G - (R+B)/2 (ridge least squares on three quarters,
   R^2 on the rest). An axis the latent's probe cannot predict is an axis the decoder cannot restore; the stage
   where it fades is where the encoder drops it.
3. Flat colour frames (9 frames) through the round trip: what comes back of a green, teal, purple, pink, grey
   and yellow frame.
4. Mean optical flow (idvid.evaluate.motion) of rendered clips and of their round trips in four ground-truth
   intensity bins around the evaluation's requested intensities 0, 5, 10, 20: the flow a DiT could reach if its
   latents were true ones.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

FLAT_COLOURS = {"green": (45, 136, 49), "teal": (12, 131, 151), "purple": (196, 79, 250), "pink": (250, 129, 141),
                "grey": (128, 128, 128), "yellow": (200, 182, 38)}
FLOW_BINS = ((0.0, 0.5), (4.0, 6.0), (9.0, 11.5), (18.0, 20.01))


def colour_axes(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> (..., 3): luminance (mean), then the VAE task's chroma axes, yellow-blue (R+G)/2 - B and
    green-magenta G - (R+B)/2 (idvid.train.vae_task.opponent_chroma)."""
    from idvid.train.vae_task import opponent_chroma

    x = torch.from_numpy(np.asarray(rgb, np.float64)).movedim(-1, 0)[None]  # (1, 3, ...)
    chroma = opponent_chroma(x)[0].movedim(0, -1).numpy()
    return np.concatenate([x[0].mean(0)[..., None].numpy(), chroma], axis=-1)


def probe_r2(features: np.ndarray, targets: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """R^2 on every fourth row of a least-squares fit (with intercept, features standardised on the fitting rows,
    `ridge` times the identity added to their normal equations) on the other rows, per target column."""
    test = np.arange(len(features)) % 4 == 0
    mean, std = features[~test].mean(0), features[~test].std(0) + 1e-8
    a = np.c_[(features - mean) / std, np.ones(len(features))]
    penalty = ridge * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(a[~test].T @ a[~test] + penalty, a[~test].T @ targets[~test])
    err = ((a[test] @ w - targets[test]) ** 2).sum(0)
    return 1 - err / ((targets[test] - targets[test].mean(0)) ** 2).sum(0)


def encoder_stages(vae) -> dict[str, torch.nn.Module]:
    """The CogVideoX encoder's stages in order, the last being the latent (conv_out: mean and log-variance)."""
    e = vae.encoder
    return {"conv_in": e.conv_in, **{f"down {i}": b for i, b in enumerate(e.down_blocks)}, "mid": e.mid_block,
            "norm_out": e.norm_out, "latent": e.conv_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clips-per-bin", type=int, default=12)
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 23 (default: all four)")
    args = parser.parse_args()
    if not args.parts or set(args.parts) - set("1234"):
        parser.error(f"--parts {args.parts!r}: give the digits of the parts to run, e.g. 23")
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKLCogVideoX

    from idvid.evaluate.attributes import check_clip_colours, clothing_region
    from idvid.evaluate.motion import mean_flow_magnitude
    from idvid.faces import get_default_analyzer
    from idvid.synth import clip_spec, render_clip
    from idvid.train.vae_task import _to_video

    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_default_model import score_frames
    from measure_vae import round_trip, vae_folder

    vae = AutoencoderKLCogVideoX.from_pretrained(vae_folder(args.model)).eval()
    fa = get_default_analyzer()

    if "1" in args.parts:
        print("1. clothing colour, 12 validation people x 3 clips (named: found in the rendered clip / the round trip)")
        missed, total = Counter(), Counter()
        for seed in range(1_000_000, 1_000_012):
            for k in range(3):
                spec = clip_spec(seed, k)
                clip = render_clip(spec, 128, num_frames=17)
                back = round_trip(vae, clip.frames)
                truth = check_clip_colours(clip.frames, spec, boxes=score_frames(clip.frames, fa).boxes)["clothing"]
                made = check_clip_colours(back, spec, boxes=score_frames(back, fa).boxes)["clothing"]
                total[truth.named] += 1
                missed[truth.named] += not made.rendered
                print(f"   {seed} clip {k}: {truth.named}: {truth.found} / {made.found}")
        print("   missed / clips by named colour: " + ", ".join(f"{c} {missed[c]}/{total[c]}" for c in sorted(total)))
    if "2" in args.parts:
        stages = encoder_stages(vae)
        outputs: dict[str, torch.Tensor] = {}
        hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(
            name, out[0] if isinstance(out, tuple) else out)) for name, m in stages.items()]
        features: dict[str, list[np.ndarray]] = {name: [] for name in stages}
        colours = []
        for seed in range(1_000_000, 1_000_120):
            for k in range(2):
                frame = render_clip(clip_spec(seed, k), 128, num_frames=1).frames
                region = torch.from_numpy(clothing_region(frame.shape[1:3], None)[None, None].astype(np.float32))
                with torch.no_grad():
                    vae.encode(_to_video(torch.from_numpy(frame)[None]))
                for name, out in outputs.items():
                    f = out[0, :, 0]  # (C, h, w) of frame 0
                    if name == "latent":
                        f = f[: f.shape[0] // 2]  # the posterior mean
                    small = torch.nn.functional.interpolate(region, size=tuple(f.shape[1:]), mode="area")[0, 0] > 0.5
                    features[name].append(f[:, small].mean(1).numpy())
                colours.append(frame[0][region[0, 0].bool().numpy()].mean(0))
        for h in hooks:
            h.remove()
        print("\n2. linear probe, encoder stage -> clothing colour (240 clips, ridge 1, R^2 on a held-out quarter)")
        targets = colour_axes(np.array(colours))
        for name, rows in features.items():
            r2 = probe_r2(np.array(rows), targets, ridge=1.0)
            print(f"   {name:8s} ({len(rows[0]):2d} channels): luminance {r2[0]:.3f}, yellow-blue {r2[1]:.3f}, "
                  f"green-magenta {r2[2]:.3f}")
    if "3" in args.parts:
        print("\n3. flat colour frames through the round trip")
        for name, rgb in FLAT_COLOURS.items():
            back = round_trip(vae, np.broadcast_to(np.array(rgb, np.uint8), (9, 128, 128, 3)).copy())
            print(f"   {name:7s} {rgb} -> {tuple(int(v) for v in back[4, 32:96, 32:96].reshape(-1, 3).mean(0).round())}")
    if "4" in args.parts:
        print(f"\n4. mean flow by ground-truth intensity ({args.clips_per_bin} validation clips per bin)")
        found: dict[tuple[float, float], list[tuple[float, float]]] = {b: [] for b in FLOW_BINS}
        seed = 1_000_000
        while any(len(v) < args.clips_per_bin for v in found.values()) and seed < 1_003_000:
            for k in range(8):
                spec = clip_spec(seed, k)
                intensity = render_clip(spec, 128, num_frames=17, pixels=False).motion_intensity
                for lo, hi in FLOW_BINS:
                    if lo <= intensity < hi and len(found[(lo, hi)]) < args.clips_per_bin:
                        frames = render_clip(spec, 128, num_frames=17).frames
                        found[(lo, hi)].append((mean_flow_magnitude(frames), mean_flow_magnitude(round_trip(vae, frames))))
            seed += 1
        for (lo, hi), rows in found.items():
            a = np.array(rows)
            print(f"   intensity [{lo:g}, {hi:g}): {len(a)} clips, flow rendered {a[:, 0].mean():.3f} px, "
                  f"round trip {a[:, 1].mean():.3f} px")


if __name__ == "__main__":
    main()
