"""How closely a face decodes from a window of the latent against the whole frame (the ID-consistency loss's
`task.id_loss_window`, idvid.train.identity_task.face_windows).

For validation identities (seeds from 1,000,000; never trained on), each clip is rendered (17 frames, 128 px),
encoded to its posterior mode and decoded twice: whole, and only the square window of W latent pixels that
`face_windows` cuts around the clip's faces. The VAE decoder is convolutional but normalises over what it is
given, so the two differ; the PSNR between them inside each frame's face box says how much. The decode-and-
backward time per clip is what the window buys.

    python scripts/measure_face_window.py MODEL_OR_VAE_DIR [--windows 16 20 24] [--identities 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a pipeline folder, a model folder or a diffusers VAE folder")
    parser.add_argument("--windows", type=int, nargs="+", default=[16, 20, 24], help="window sides in latent pixels")
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKLCogVideoX

    from idvid.synth import clip_spec, render_clip
    from idvid.train.identity_task import face_windows
    from idvid.train.vae_task import _to_video

    sys.path.insert(0, str(Path(__file__).parent))
    from measure_vae import vae_folder

    vae = AutoencoderKLCogVideoX.from_pretrained(vae_folder(args.model)).eval().requires_grad_(False)
    clips = [render_clip(clip_spec(seed, 0), 128, num_frames=17) for seed in range(1_000_000, 1_000_000 + args.identities)]
    with torch.no_grad():
        z = torch.cat([vae.encode(_to_video(torch.from_numpy(c.frames)[None])).latent_dist.mode() for c in clips])
    z = z.permute(0, 2, 1, 3, 4)  # (B, F', C, h, w), as the model's latents
    boxes = torch.from_numpy(np.stack([c.face_boxes for c in clips])).float()

    def decode(latents: torch.Tensor) -> torch.Tensor:
        return vae.decode(latents.permute(0, 2, 1, 3, 4)).sample.permute(0, 2, 1, 3, 4)  # (B, T, 3, H, W)

    def timed(latents: torch.Tensor) -> float:
        latents = latents.clone().requires_grad_(True)
        start = time.perf_counter()
        decode(latents).square().mean().backward()
        return (time.perf_counter() - start) / len(latents)

    with torch.no_grad():
        whole = decode(z)
    print(f"whole frames: decode + backward {timed(z):.2f} s per clip")
    for w in args.windows:
        win, moved = face_windows(z, boxes, w, 128)
        with torch.no_grad():
            part = decode(win)
        shift = (boxes - moved)[:, 0, :2].round().long()  # the window's (x, y) offset in pixels
        psnr = []
        for i in range(len(clips)):
            for t in range(part.shape[1]):
                x0, y0, x1, y1 = (int(round(float(v))) for v in moved[i, t])
                x0, y0 = max(x0, 0), max(y0, 0)
                x1, y1 = min(x1, part.shape[-1]), min(y1, part.shape[-2])
                if x1 <= x0 or y1 <= y0:
                    continue
                a = part[i, t, :, y0:y1, x0:x1]
                b = whole[i, t, :, y0 + int(shift[i, 1]):y1 + int(shift[i, 1]), x0 + int(shift[i, 0]):x1 + int(shift[i, 0])]
                mse = float(((a - b) / 2).square().mean())  # [-1, 1] -> [0, 1]
                psnr.append(10 * np.log10(1 / max(mse, 1e-12)))
        print(f"window {w:3d} ({w * 128 // z.shape[-1]} px): face-box PSNR against whole frames "
              f"mean {np.mean(psnr):.1f} dB, min {np.min(psnr):.1f} dB over {len(psnr)} frames; "
              f"decode + backward {timed(win):.2f} s per clip")


if __name__ == "__main__":
    main()
