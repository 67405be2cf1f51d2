"""`idvid bench curate`: curation throughput — seconds of video processed per wall-clock second — for
each preset, side by side on the same footage in one run.

The footage is generated here (no download): `--clips` clips of `--seconds` at `--fps` and
`--width`x`--height` (default 720x480 at 30 fps, CelebIPVid's format) of a synthetic person turning
their head (`idvid.synth`, rendered at `--render-size` and scaled up), written as H.264. Each preset then
curates it from scratch into its own folder with `--workers` processes; the wall time includes starting
the workers and loading models. The kept count is printed beside each figure: a clip rejected early
(e.g. by `quality` — rendered heads scaled up are soft) costs less than one that runs every stage.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click


def make_footage(folder: Path, clips: int, seconds: float, fps: float, width: int, height: int,
                 render_size: int = 240) -> bool:
    from idvid.data.curate.testing import person_footage
    from idvid.io.video import write_mp4

    folder.mkdir(parents=True, exist_ok=True)
    has_face = True
    for k in range(clips):
        path = folder / f"person{k}.mp4"
        if path.exists():
            continue
        frames, has_face = person_footage(round(seconds * fps), width, height, seed=100 + k, render_size=render_size)
        write_mp4(path, frames, fps=fps)
    return has_face


def bench_preset(inputs: Path, out: Path, preset: str, workers: int) -> dict:
    from idvid.data.curate import curate as run

    t0 = time.perf_counter()
    result = run(inputs, out, preset, workers=workers, report=False)
    wall = time.perf_counter() - t0
    return {"preset": preset, "video_seconds": round(result.video_seconds, 3), "wall_seconds": round(wall, 3),
            "realtime_factor": round(result.video_seconds / wall, 3), "kept": result.kept,
            "segments": len(result.rows)}


@click.command()
@click.option("--presets", default="lfa,celebipvid,human-motion", show_default=True,
              help="Comma-separated presets (names or YAML paths).")
@click.option("--clips", default=3, show_default=True, type=click.IntRange(1, 100), help="Clips of footage.")
@click.option("--seconds", default=6.0, show_default=True, type=click.FloatRange(0.5, 600), help="Seconds per clip.")
@click.option("--fps", default=30.0, show_default=True, type=click.FloatRange(1, 120), help="Frame rate.")
@click.option("--width", default=720, show_default=True, type=click.IntRange(64, 4096), help="Frame width.")
@click.option("--height", default=480, show_default=True, type=click.IntRange(64, 4096), help="Frame height.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Keep footage and outputs here (default: a temporary folder).")
@click.option("--render-size", default=240, show_default=True, type=click.IntRange(64, 1024),
              help="Pixels the synthetic head is rendered at before scaling to the frame (larger: sharper, slower).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write results here.")
def curate(presets, clips, seconds, fps, width, height, workers, work_dir, render_size, json_path) -> None:
    """Curation throughput per preset: seconds of video per wall second (> 1: faster than real time)."""
    from idvid.data.curate import load_preset

    names = [p.strip() for p in presets.split(",") if p.strip()]
    for name in names:
        load_preset(name)  # fail fast on a bad preset
    with tempfile.TemporaryDirectory(prefix="idvid-bench-curate-") as tmp:
        root = Path(work_dir) if work_dir else Path(tmp)
        footage = root / f"footage_{width}x{height}_{fps:g}fps_{seconds:g}s_r{render_size}"
        click.echo(f"footage: {clips} x {seconds:g}s at {width}x{height}, {fps:g} fps -> {footage}")
        if not make_footage(footage, clips, seconds, fps, width, height, render_size):
            click.echo("warning: idvid.synth is unavailable; the footage has no face, so face stages reject "
                       "early and the numbers below are optimistic", err=True)
        results = []
        for name in names:
            out = root / f"out_{Path(name).stem}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            results.append(bench_preset(footage, out, name, workers))
            r = results[-1]
            click.echo(f"{r['preset']:>14s}: {r['video_seconds']:7.1f}s of video in {r['wall_seconds']:6.1f}s "
                       f"= {r['realtime_factor']:.2f}x real time ({r['kept']}/{r['segments']} kept, {workers} workers)")
        base = results[0]["realtime_factor"]
        for r in results[1:]:
            click.echo(f"{r['preset']} / {results[0]['preset']} throughput: {r['realtime_factor'] / base:.2f}")
        if json_path:
            Path(json_path).write_text(json.dumps({"clips": clips, "seconds": seconds, "fps": fps, "width": width,
                                                   "height": height, "workers": workers, "results": results},
                                                  indent=2))
