#!/usr/bin/env python
"""Turn an exported identity model into the bundled default pipeline (idvid/assets/default_model).

    python scripts/package_default_model.py --model models/laptop-moca --out idvid/assets/default_model \
        --steps 20 --guidance 5 --motion-intensity 4

Reads the folder `idvid train --export` wrote (model_config.yaml, transformer/, vae/, adapter.safetensors,
scheduler/ with the training noise schedule), builds `IDVideoPipeline` (DPM-Solver++ on that schedule)
with the given generation defaults, and writes it with `save_pretrained`. The model card is written
separately (it needs the evaluation's figures): see idvid/assets/default_model/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="exported identity model folder")
    ap.add_argument("--out", required=True, type=Path, help="pipeline folder to write (replaced)")
    ap.add_argument("--vae", type=Path, default=None,
                    help="a VAE folder whose decoder replaces the model's (e.g. decoder-only fine-tuned: "
                         "train_mode=adapter); its encoder must equal the model's, so latents keep their meaning")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--guidance-rescale", type=float, default=0.0)
    ap.add_argument("--identity-guidance", type=float, default=None,
                    help="a separate guidance scale for the identity (default: guided together with the text)")
    ap.add_argument("--motion-intensity", type=float, default=4.0)
    ap.add_argument("--motion-guidance", type=float, default=0.0,
                    help="g_m: amplify the motion intensity's effect on the video pass (0: off)")
    ap.add_argument("--motion-guidance-min-t", type=int, default=0,
                    help="g_m only at timesteps >= this (0: every step of the video pass)")
    ap.add_argument("--first-frame-source", choices=["t2i", "t2v", "t2v-head"], default="t2i",
                    help="decoupled mode: the first frame from the T2I stage or from a T2V sample's first frame "
                         "(the reference's head pasted in after, t2v, or blended in at every step, t2v-head)")
    ap.add_argument("--first-frame-init", type=float, default=0.0,
                    help="decoupled mode: the fraction of the video pass's steps replaced by starting from the still first frame")
    ap.add_argument("--mode", choices=["t2v", "decoupled", "t2v-head"], default="t2v",
                    help="generation mode: one stage; a first frame animated by I2V (needs backbone.frame_condition); or "
                         "one stage made around the reference's head held in its first frame")
    args = ap.parse_args()

    from idvid.pipelines import IDVideoPipeline

    pipe = IDVideoPipeline.from_pretrained(args.model)
    if args.vae is not None:
        import torch
        from diffusers import AutoencoderKLCogVideoX

        vae = AutoencoderKLCogVideoX.from_pretrained(args.vae, local_files_only=True)
        old = pipe.model.vae
        same = all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in old.encoder.state_dict().items())
        if not same or abs(vae.config.scaling_factor - old.config.scaling_factor) > 1e-6 * old.config.scaling_factor:
            raise SystemExit(f"{args.vae}: its encoder or latent scale differs from the model's VAE; "
                             "only a decoder fine-tuned with train_mode=adapter can be swapped in")
        pipe.model.vae = vae.requires_grad_(False).eval()
    d = pipe.defaults
    d.num_inference_steps, d.guidance_scale, d.motion_intensity = args.steps, args.guidance, args.motion_intensity
    d.guidance_rescale, d.identity_guidance_scale = args.guidance_rescale, args.identity_guidance
    d.motion_guidance_scale = args.motion_guidance
    d.motion_guidance_min_t = args.motion_guidance_min_t
    if args.mode == "decoupled" and not pipe.model.config.backbone.frame_condition:
        raise SystemExit(f"{args.model}: --mode decoupled needs a model trained with backbone.frame_condition")
    d.mode = args.mode
    d.first_frame_source = args.first_frame_source
    d.first_frame_init = args.first_frame_init
    card = args.out / "MODEL_CARD.md"
    keep = card.read_text() if card.is_file() else None
    if args.out.exists():
        shutil.rmtree(args.out)
    pipe.save_pretrained(args.out)
    if keep is not None:
        card.write_text(keep)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 1e6:.1f} MB; defaults {d}")


if __name__ == "__main__":
    main()
