"""`idvid evaluate ...`: score generated videos against a reference photo."""

from __future__ import annotations

import json

import click

from idvid.errors import InputError


def _load_pair(ref: str | None, video: str):
    from idvid.io import load_image, read_video

    frames, _ = read_video(video, min_frames=2)
    ref_image = load_image(ref) if ref is not None else None
    return ref_image, frames


@click.group()
def evaluate() -> None:
    """Score videos: identity similarity to a reference, identity consistency over time."""


@evaluate.command("facesim")
@click.option("--ref", required=True, type=click.Path(dir_okay=False), help="Reference photo of the person.")
@click.option("--video", required=True, type=click.Path(dir_okay=False), help="Video to score (mp4, gif, ...).")
@click.option("--samples", default=16, show_default=True, help="Frames sampled at linspace (ConsisID uses 16).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def facesim_command(ref: str, video: str, samples: int, as_json: bool) -> None:
    """FaceSim of VIDEO against REF (ConsisID protocol; SFace and dlib as the face models).

    Prints facesim_arc[sface], facesim_cur[dlib] (mean clamped cosine over sampled frames with a face)
    and face_frames (fraction of sampled frames where a face was found).
    """
    from idvid.errors import NoFaceFound
    from idvid.evaluate.facesim import FACESIM_KEYS, facesim_report

    if samples < 1:
        raise InputError("--samples must be at least 1")
    ref_image, frames = _load_pair(ref, video)
    try:
        results = facesim_report(ref_image, frames, num_samples=samples)
    except NoFaceFound:
        raise NoFaceFound(f"{ref}: no face found in the reference image; use a photo where the face is visible") from None
    out = {FACESIM_KEYS[m]: round(r.score, 6) for m, r in results.items()}
    out["face_frames"] = round(results["sface"].face_frames, 6)
    if as_json:
        click.echo(json.dumps(out))
    else:
        for key, value in out.items():
            click.echo(f"{key:<20} {value:.4f}")


@evaluate.command("consistency")
@click.option("--video", required=True, type=click.Path(dir_okay=False), help="Video to score.")
@click.option("--model", type=click.Choice(["sface", "dlib"]), default="sface", show_default=True,
              help="Face recognition model.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def consistency_command(video: str, model: str, as_json: bool) -> None:
    """Identity consistency of VIDEO over time: every face frame against the first face frame."""
    from idvid.evaluate.identity_consistency import identity_consistency

    _, frames = _load_pair(None, video)
    res = identity_consistency(frames, model=model)
    out = {
        f"identity_consistency[{model}]": res.score,
        "consistent_fraction": res.consistent_fraction,
        "min_similarity": res.min_similarity,
        "face_frames": res.face_frames,
        "threshold": res.threshold,
    }
    if as_json:
        click.echo(json.dumps(out))
    else:
        for key, value in out.items():
            click.echo(f"{key:<28} {'n/a (fewer than 2 face frames)' if value is None else f'{value:.4f}'}")
