"""`idvid generate`: reference photo + prompt -> OUT.mp4, OUT.gif and a contact sheet OUT.png."""

from __future__ import annotations

import time
from pathlib import Path

import click

from idvid.errors import InputError

EPILOG = """\b
Examples:
  idvid generate --ref sample --prompt "a woman smiles and turns to her left, wearing a red hoodie" --out smile.mp4
  idvid generate --ref me.jpg --prompt "he nods in front of a blue wall" --motion-intensity 8 --seed 3 --out nod.mp4
  idvid generate --ref me.jpg --prompt "..." --model runs/moca/export --out clip.mp4
  idvid generate --ref me.jpg --prompt "she laughs" --first-frame start.png --out laugh.mp4

\b
--ref sample uses the bundled sample reference (a synthetic person the default model never trained on).
The default model is a laptop-scale model trained on the synthetic identity-video world: see
idvid/assets/default_model/MODEL_CARD.md for what it can render.
"""


@click.command("generate", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--ref", "ref", required=True, metavar="IMAGE|sample",
              help="Reference photo of the person (one clearly visible face), or 'sample'.")
@click.option("--prompt", required=True, help="What the video shows: the person, clothes, action and scene.")
@click.option("--action", default=None, help="Action phrase for motion control (default: taken from the prompt).")
@click.option("--motion-intensity", "motion_intensity", type=float, default=None,
              help="How much motion, 0 (still) .. 20 (fast, large); default: the model's (see its card).")
@click.option("--frames", type=int, default=None, help="Number of frames (default and maximum: the model's).")
@click.option("--steps", type=int, default=None, help="DPM-Solver steps (default: the model's).")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (default: the model's).")
@click.option("--guidance-rescale", "guidance_rescale", type=float, default=None,
              help="0..1: rescale guided predictions toward the conditional one's spread (default: the model's).")
@click.option("--identity-guidance", "identity_guidance", type=float, default=None,
              help="Guide the identity apart from the text with this scale (3 model calls a step; default: "
                   "the model's, usually the same as --guidance, i.e. guided together).")
@click.option("--motion-guidance", "motion_guidance", type=float, default=None,
              help="Amplify the motion intensity's effect by this scale (one more model call a step on the video "
                   "pass; 0: off; default: the model's).")
@click.option("--motion-guidance-min-t", "motion_guidance_min_t", type=int, default=None,
              help="Apply --motion-guidance only at timesteps >= this (0..999; the noisy steps lay out the motion; "
                   "default: the model's).")
@click.option("--mode", type=click.Choice(["t2v", "decoupled", "t2v-head"]), default=None,
              help="t2v: one stage; decoupled: a first frame of the person, then animated (I2V); t2v-head: one "
                   "stage made around the reference's head held in its first frame; default: the model's.")
@click.option("--first-frame-source", "first_frame_source", type=click.Choice(["t2i", "t2v", "t2v-head"]),
              default=None,
              help="Decoupled mode: make the first frame by T2I; or from a T2V sample's first frame with the "
                   "reference's head pasted in (t2v), or made around that head at every step (t2v-head); the T2V "
                   "pass is one more sampling loop; default: the model's.")
@click.option("--first-frame-init", "first_frame_init", type=float, default=None,
              help="Decoupled mode, 0..1: start the video pass from the first frame held still, skipping this "
                   "fraction of its steps (0: from pure noise; default: the model's).")
@click.option("--first-frame", "first_frame", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Animate this image instead of making a first frame (decoupled models only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed gives the same video.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output video OUT.mp4 (OUT.gif and the contact sheet OUT.png are written beside it).")
@click.option("--model", "model", default=None, type=click.Path(path_type=Path),
              help="A pipeline folder (IDVideoPipeline.save_pretrained) or an exported model; default: bundled.")
@click.option("--fps", type=float, default=8.0, show_default=True, help="Frame rate of the written video.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def generate(ref: str, prompt: str, action: str | None, motion_intensity: float | None, frames: int | None,
             steps: int | None, guidance: float | None, guidance_rescale: float | None,
             identity_guidance: float | None, motion_guidance: float | None, motion_guidance_min_t: int | None,
             mode: str | None, first_frame_source: str | None, first_frame_init: float | None, first_frame: Path | None, seed: int,
             out: Path, model: Path | None, fps: float, threads: int | None, quiet: bool) -> None:
    """Generate a video of the person in --ref doing what --prompt says."""
    start = time.perf_counter()
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must name an .mp4 file, got {out}")
    if not prompt.strip():
        raise InputError("--prompt is empty; describe the video, e.g. --prompt \"she smiles and turns to her left\"")
    if fps <= 0:
        raise InputError(f"--fps must be > 0, got {fps}")
    if ref == "sample":
        from idvid.pipelines.ipt2v import sample_reference_path

        ref_path = sample_reference_path()
    else:
        ref_path = Path(ref)
        if not ref_path.is_file():
            raise InputError(f"--ref {ref}: no such file")
    from idvid.io import load_image

    image = load_image(ref_path)  # (a bad image fails here, before the model loads)
    first = None
    if first_frame is not None:
        if not first_frame.is_file():
            raise InputError(f"--first-frame {first_frame}: no such file")
        first = load_image(first_frame)

    from idvid.io import write_video_outputs
    from idvid.pipelines import load_pipeline

    pipe = load_pipeline(model, threads=threads)
    pipe.set_progress_bar_config(disable=quiet, desc="denoising", leave=False)
    result = pipe(image, prompt, action=action, motion_intensity=motion_intensity, num_frames=frames,
                  num_inference_steps=steps, guidance_scale=guidance, guidance_rescale=guidance_rescale,
                  identity_guidance_scale=identity_guidance, motion_guidance_scale=motion_guidance,
                  motion_guidance_min_t=motion_guidance_min_t, generator=seed,
                  mode=mode, first_frame=first, first_frame_source=first_frame_source, first_frame_init=first_frame_init)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = write_video_outputs(out, result.frames, fps)
    if first is None and "first_frame" in result.info:  # the made first frame, for the user to see or reuse
        from idvid.io import save_image

        save_image(out.with_name(out.stem + "_first.png"), result.info["first_frame"])
    t, h, w = result.frames.shape[:3]
    click.echo(f"{paths['mp4']}: {t} frames of {w}x{h} ({paths['gif'].name}, {paths['png'].name}); "
               f"action {result.action_phrase!r}, motion intensity {result.motion_intensity:g}, seed {seed}, "
               f"{time.perf_counter() - start:.1f} s", err=True)
