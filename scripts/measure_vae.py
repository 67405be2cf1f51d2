"""How much motion, face and colour survives the VAE: rendered clips against their VAE round trip.

The generated clips' flow can only be as large as what the VAE's decoder makes of latents; a VAE that
compresses 4 frames into one latent frame may lose the motion within them. For each validation identity
(seeds from 1,000,000; never trained on) and each of its first clips, the clip is rendered (17 frames,
128 px), encoded to its posterior mode, decoded, and the mean optical-flow magnitude (idvid.evaluate.motion,
the metric of the acceptance check) measured on both, with the clip's ground-truth motion intensity; so is
the fraction of frames in which YuNet finds a face (the detection check's metric), overall and by frame
index, and the SFace identity gap of the acceptance check (scripts/evaluate_default_model.py: each
identity's reference portrait against its own clips minus against the other identities' clips) — a DiT
whose latents decode like true ones cannot be expected to show more faces or more identity than that.
The same goes for the prompt's colours: the clothing and background checks of the acceptance
(idvid.evaluate.attributes) are run on both, with the PSNR of the round trip.

    python scripts/measure_vae.py MODEL_OR_VAE_DIR [--identities 12] [--clips 3] [--threads 1]

MODEL_OR_VAE_DIR: a pipeline folder (its model/vae), a model folder (its vae) or a diffusers VAE folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

BINS = ((0, 1), (1, 2), (2, 4), (4, 8), (8, 21))  # ground-truth intensity ranges of the summary


def vae_folder(path: Path) -> Path:
    for candidate in (path / "model" / "vae", path / "vae", path):
        if (candidate / "config.json").is_file():
            return candidate
    raise SystemExit(f"measure_vae: error: no VAE (config.json) under {path}")


def round_trip(vae, frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same through encode (posterior mode) and decode."""
    from idvid.train.vae_task import _to_video

    x = _to_video(torch.from_numpy(frames)[None])
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample
    return ((y[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--identities", type=int, default=12)
    parser.add_argument("--clips", type=int, default=3, help="clips per identity")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKLCogVideoX

    from idvid.evaluate.attributes import check_clip_colours
    from idvid.evaluate.motion import mean_flow_magnitude
    from idvid.faces import get_default_analyzer
    from idvid.synth import clip_spec, identity, render_clip, render_reference

    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_default_model import identity_gap, score_frames, similarity_matrix

    fa = get_default_analyzer()
    vae = AutoencoderKLCogVideoX.from_pretrained(vae_folder(args.model)).eval()
    rows, faces = [], {"rendered": [], "round trip": []}
    colours = {name: {"clothing": [], "background": []} for name in faces}  # per clip: rendered or not
    psnr = []
    refs, embeddings = [], {"rendered": [], "round trip": []}  # per identity: its clips' face embeddings
    for seed in range(1_000_000, 1_000_000 + args.identities):
        ref = render_reference(identity(seed), 256)[0]
        found = fa.detect(ref)
        refs.append(fa.embed(ref, found[0], model="sface") if found else np.full(128, np.nan))
        per_clip = {name: [] for name in embeddings}
        for k in range(args.clips):
            spec = clip_spec(seed, k)
            clip = render_clip(spec, 128, num_frames=17)
            back = round_trip(vae, clip.frames)
            rows.append((clip.motion_intensity, mean_flow_magnitude(clip.frames), mean_flow_magnitude(back)))
            psnr.append(10 * np.log10(255.0 ** 2 / np.mean((back.astype(np.float64) - clip.frames) ** 2)))
            for name, frames in (("rendered", clip.frames), ("round trip", back)):
                scored = score_frames(frames, fa)  # the evaluation's detection and SFace embedding
                faces[name].append([box is not None for box in scored.boxes])
                for region, check in check_clip_colours(frames, spec, boxes=scored.boxes).items():
                    if check is not None:  # None: a background kind whose colour is not checkable
                        colours[name][region].append(check.rendered)
                per_clip[name].append(scored.embeddings)
        for name in embeddings:
            embeddings[name].append(np.concatenate(per_clip[name]))
    rows.sort()
    print("intensity  flow rendered  flow VAE round trip  (px per frame pair)")
    for r in rows:
        print(f"{r[0]:9.1f}  {r[1]:13.3f}  {r[2]:19.3f}")
    a = np.array(rows)
    print("\nintensity bin  clips  mean flow rendered  mean flow round trip  kept")
    for lo, hi in BINS:
        sel = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
        if len(sel):
            kept = sel[:, 2].mean() / max(sel[:, 1].mean(), 1e-9)
            print(f"[{lo:2d}, {hi:2d})      {len(sel):5d}  {sel[:, 1].mean():18.3f}  {sel[:, 2].mean():20.3f}  {kept:4.2f}")
    print("\nframes with a detected face (YuNet): all frames, then by frame index")
    for name, hits in faces.items():
        h = np.array(hits, float)
        print(f"{name:<11} {h.mean():.3f}   " + " ".join(f"{v:.2f}" for v in h.mean(axis=0)))
    print(f"\nround-trip PSNR {np.mean(psnr):.2f} dB; the prompt's colour rendered (idvid.evaluate.attributes)")
    for name, c in colours.items():
        print(f"{name:<11} " + "  ".join(f"{region} {np.mean(v):.3f} of {len(v)}" for region, v in c.items()))
    keep = [i for i, r in enumerate(refs) if not np.isnan(r).any()]  # identities whose reference has a face
    ref = np.stack([refs[i] for i in keep])
    gaps = {name: identity_gap(similarity_matrix(ref, [e[i] for i in keep]))["gap"] for name, e in embeddings.items()}
    print(f"\nSFace identity gap (same - different identity), {len(keep)} identities")
    for name, gap in gaps.items():
        print(f"{name:<11} " + ("n/a" if gap is None else f"{gap:.3f}"))
    if gaps["rendered"] and gaps["round trip"] is not None:
        print(f"ratio       {gaps['round trip'] / gaps['rendered']:.3f}")


if __name__ == "__main__":
    main()
