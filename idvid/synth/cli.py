"""`idvid synth`: render a slice of the synthetic identity-video world to mp4 clips, reference portraits
and a parquet manifest. Parallel over processes, deterministic whatever the worker count, resumable."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from idvid.errors import InputError

SETTINGS_FILE = "synth.json"


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; OpenCV threads would only contend


def _reference_task(task: tuple) -> None:
    seed, size, out = task
    from idvid.io.images import save_image
    from idvid.synth.identity import identity
    from idvid.synth.world import render_reference

    ident = identity(seed)
    path = Path(out) / "refs" / f"{ident.identity_id}.png"
    if not path.exists():
        save_image(path, render_reference(ident, size)[0])


def _clip_task(task: tuple) -> tuple[dict, bool]:
    """Render one clip (or, if its mp4 exists, only its ground truth); returns (manifest row, rendered)."""
    seed, k, size, frames, fps, out, save_masks = task
    import numpy as np

    from idvid.io.video import write_mp4
    from idvid.synth.world import clip_spec, manifest_row, render_clip

    spec = clip_spec(seed, k)
    video = Path("clips") / f"{spec.clip_id}.mp4"
    ref = Path("refs") / f"{spec.identity.identity_id}.png"
    mask_path = Path(out) / "masks" / f"{spec.clip_id}.npz"
    need = not (Path(out) / video).exists() or (save_masks and not mask_path.exists())
    clip = render_clip(spec, size, frames, fps, pixels=need, masks=save_masks)
    if need:
        write_mp4(Path(out) / video, clip.frames, fps)
        if save_masks:
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = mask_path.with_name(f".{mask_path.stem}.tmp.npz")
            np.savez_compressed(tmp, masks=np.packbits(clip.masks, axis=-1), shape=np.array(clip.masks.shape))
            os.replace(tmp, mask_path)
    return manifest_row(clip, video.as_posix(), ref.as_posix()), need


def _check_settings(out: Path, settings: dict) -> None:
    """A folder is resumed only with the same size / frames / fps it was rendered with."""
    path = out / SETTINGS_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        diff = [k for k in ("size", "frames", "fps") if k in old and old[k] != settings[k]]
        if diff:
            was = ", ".join(f"--{k} {old[k]}" for k in diff)
            raise InputError(f"{out} was rendered with {was}; use the same settings to resume or another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1))


@click.command("synth", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: clips/<clip_id>.mp4, refs/<identity_id>.png, manifest.parquet.")
@click.option("--identities", "-n", default=4, show_default=True, type=click.IntRange(min=1),
              help="Number of identities (identity seeds SEED .. SEED+N-1).")
@click.option("--clips-per-identity", "-k", default=4, show_default=True, type=click.IntRange(min=1),
              help="Clips rendered per identity (each with its own appearance, action and prompt).")
@click.option("--seed", "-s", default=0, show_default=True, type=click.IntRange(min=0),
              help="First identity seed. Splits: < 1000000 train, 1000000-1999999 validation, "
                   ">= 2000000 held-out; the range may not straddle a split boundary.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(64, 1024),
              help="Frame width and height in pixels (clips and reference portraits).")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=1), help="Frames per clip.")
@click.option("--fps", default=8.0, show_default=True, type=click.FloatRange(min=0.5, max=120),
              help="Frame rate; motion is defined in seconds, so a higher rate samples it more finely.")
@click.option("--workers", "-w", default=None, type=click.IntRange(min=1),
              help="Worker processes (default: the number of CPUs). Output does not depend on it.")
@click.option("--save-masks", is_flag=True,
              help="Also write masks/<clip_id>.npz: per-frame face masks (np.packbits along width).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth(out: Path, identities: int, clips_per_identity: int, seed: int, size: int, frames: int, fps: float,
          workers: int | None, save_masks: bool, quiet: bool) -> None:
    """Render clips of the procedural identity-video world.

    Every clip is a pure function of (identity seed, clip index) and the size/frames/fps settings, so
    output is identical whatever --workers is. Re-running resumes: clips whose mp4 exists are not
    rendered again (their ground truth is recomputed for the manifest), and the manifest is written
    atomically at the end. The manifest holds one row per clip with its prompt, action phrase, action,
    motion intensity, per-frame yaw/pitch/roll, face box and 5 keypoints, and every generating parameter.
    """
    from tqdm import tqdm

    from idvid.synth.identity import check_seed_range
    from idvid.synth.manifest import write_manifest

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    split = check_seed_range(seed, identities)
    _check_settings(out, {"size": size, "frames": frames, "fps": fps})
    workers = workers or os.cpu_count() or 1
    ref_tasks = [(seed + i, size, str(out)) for i in range(identities)]
    clip_tasks = [(seed + i, k, size, frames, fps, str(out), save_masks)
                  for i in range(identities) for k in range(clips_per_identity)]
    t0 = time.perf_counter()
    rows, rendered = [], 0
    bar = tqdm(total=len(clip_tasks), unit="clip", desc=f"synth {split}", disable=quiet)
    if workers == 1:
        _init_worker()
        for t in ref_tasks:
            _reference_task(t)
        for t in clip_tasks:
            row, did = _clip_task(t)
            rows.append(row)
            rendered += did
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            refs = pool.map_async(_reference_task, ref_tasks, chunksize=8)
            for row, did in pool.imap_unordered(_clip_task, clip_tasks, chunksize=4):
                rows.append(row)
                rendered += did
                bar.update()
            refs.get()
    bar.close()
    rows.sort(key=lambda r: (r["identity_seed"], r["clip_index"]))
    write_manifest(out / "manifest.parquet", rows)
    dt = time.perf_counter() - t0
    click.echo(f"{len(rows)} clips ({rendered} rendered, {len(rows) - rendered} already present), "
               f"{identities} reference portraits, {split} split, in {dt:.1f} s -> {out / 'manifest.parquet'}")
