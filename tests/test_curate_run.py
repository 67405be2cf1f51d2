"""Whole runs: manifest contents, unreadable inputs, resume after kill -9, Ray backend parity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from idvid.data.curate import curate, parse_preset
from idvid.data.curate.sources import expand_inputs
from idvid.data.curate.testing import blur, downscale, garbage_file, translating, truncate_file
from idvid.io.video import write_mp4

FAST_PRESET = {
    "name": "fast-test",
    "stages": [
        "decode",
        {"scene_split": {"min_scene_seconds": 0.5, "detector": "histogram"}},
        {"resolution": {"min_short_side": 100}},
        {"quality": {"min_sharpness": 20.0, "frames": 3}},
        {"motion": {"sample_fps": 8.0, "flow_short_side": 96}},
        "caption",
        {"motion_resample": {"bins": 4}},
    ],
}


def make_corpus(folder: Path, n: int = 4, size: tuple[int, int] = (120, 160), frames: int = 16) -> dict[str, str]:
    """n moving clips + blurred, low-res, cut, truncated and garbage files; returns name -> expected."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    expected = {}
    for i in range(n):
        write_mp4(folder / f"move{i}.mp4", translating(frames, h, w, i, 0, seed=i), fps=8)
        expected[f"move{i}"] = None
    write_mp4(folder / "blurry.mp4", blur(translating(frames, h, w, 1, 0, seed=10), 5.0), fps=8)
    expected["blurry"] = "low_quality"
    write_mp4(folder / "tiny.mp4", downscale(translating(frames, h, w, 1, 0, seed=11), 0.5), fps=8)
    expected["tiny"] = "low_resolution"
    a = translating(frames, h, w, 1, 0, seed=12)
    b = (translating(frames, h, w, 2, 0, seed=13) // 2 + np.array([120, 0, 60], np.uint8)).astype(np.uint8)
    write_mp4(folder / "cut.mp4", np.concatenate([a, b]), fps=8)
    expected["cut"] = "two kept segments"
    truncate_file(folder / "move0.mp4", folder / "truncated.mp4", 0.4)
    expected["truncated"] = "unreadable"
    garbage_file(folder / "garbage.mp4")
    expected["garbage"] = "unreadable"
    return expected


def rows_by_name(table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in table.to_pylist():
        out.setdefault(Path(r["source_path"]).stem, []).append(r)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curate_in")
    return folder, make_corpus(folder)


@pytest.fixture(scope="module")
def preset_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("preset") / "fast.yaml"
    p.write_text(yaml.safe_dump(FAST_PRESET))
    return p


@pytest.fixture(scope="module")
def reference_run(corpus, preset_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("curate_ref")
    result = curate(corpus[0], out, preset_file, workers=1)
    return result, pq.read_table(out / "manifest.parquet")


def test_manifest_records_every_decision(corpus, reference_run):
    _, expected = corpus
    result, table = reference_run
    rows = rows_by_name(table)
    assert set(rows) == set(expected)
    for name, want in expected.items():
        if want is None:
            assert [r["kept"] for r in rows[name]] == [True], name
            assert rows[name][0]["reject_reason"] is None
        elif want == "two kept segments":
            assert [(r["segment"], r["start_frame"], r["end_frame"], r["kept"]) for r in rows[name]] == [
                (0, 0, 16, True), (1, 16, 32, True)]
        else:
            assert [r["reject_reason"] for r in rows[name]] == [want], (name, rows[name])
    # annotations: motion intensity follows the per-frame shift (i px at 120 px short side, 8 fps sampled)
    mi = [rows[f"move{i}"][0]["motion_intensity"] for i in range(4)]
    assert mi == sorted(mi) and mi[0] < 0.5 and mi[3] == pytest.approx(3 * 512 / 120, rel=0.15)
    assert rows["move1"][0]["flow_mask_path"].startswith("flow/")
    fg = np.load(result.out_dir / rows["move1"][0]["flow_mask_path"])["fg_flow"]
    assert fg.ndim == 3 and fg.shape[0] == 15
    assert all(r["sample_weight"] > 0 for rs in rows.values() for r in rs if r["kept"])
    assert (result.out_dir / "report" / "summary.json").exists()
    assert (result.out_dir / "report" / "rejects_by_reason.png").exists()


def test_rerun_skips_finished_sources(corpus, preset_file, reference_run, tmp_path):
    result, table = reference_run
    again = curate(corpus[0], result.out_dir, preset_file, workers=1)
    assert again.processed == 0 and again.reused == len(expand_inputs(corpus[0]))
    assert pq.read_table(again.manifest_path).equals(table)


def test_resume_after_kill_9_gives_the_same_manifest(corpus, preset_file, reference_run, tmp_path):
    _, table = reference_run
    folder = tmp_path / "many"
    folder.mkdir()
    # more, larger sources so the kill lands mid-run
    for p in sorted(corpus[0].iterdir()):
        os.symlink(p, folder / p.name)
    for i in range(6):
        write_mp4(folder / f"extra{i}.mp4", translating(40, 240, 320, i % 3, 1, seed=50 + i), fps=8)
    out_ref = tmp_path / "ref"
    ref = curate(folder, out_ref, preset_file, workers=1, report=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "idvid", "curate", "--input", str(folder), "--out", str(out),
           "--preset", str(preset_file), "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    work = out / "work"
    deadline = time.time() + 90
    while time.time() < deadline and not (work.exists() and len(list(work.glob("*.json"))) >= 2):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(work.glob("*.json")))
    total = len(expand_inputs(folder))
    assert 0 < done < total, "the kill should land mid-run"
    assert not (out / "manifest.parquet").exists()
    resumed = curate(folder, out, preset_file, workers=1, report=False)
    assert resumed.reused == done and resumed.processed == total - done
    assert pq.read_table(resumed.manifest_path).equals(pq.read_table(ref.manifest_path))


def test_two_workers_give_the_same_manifest(corpus, preset_file, reference_run, tmp_path):
    _, table = reference_run
    result = curate(corpus[0], tmp_path / "w2", preset_file, workers=2, report=False)
    assert pq.read_table(result.manifest_path).equals(table)


def test_changed_preset_redoes_the_work(corpus, reference_run, tmp_path):
    result, _ = reference_run
    other = dict(FAST_PRESET, stages=FAST_PRESET["stages"][:4])
    again = curate(corpus[0], tmp_path / "other", parse_preset(other), workers=1, report=False)
    assert again.processed == len(expand_inputs(corpus[0]))
    assert "motion_intensity" not in pq.read_table(again.manifest_path).column_names


@pytest.mark.slow
def test_ray_backend_matches_local(corpus, preset_file, reference_run, tmp_path):
    pytest.importorskip("ray.data")
    _, table = reference_run
    result = curate(corpus[0], tmp_path / "ray", preset_file, workers=2, ray_address="local", report=False)
    assert result.processed == len(expand_inputs(corpus[0]))
    assert pq.read_table(result.manifest_path).equals(table)
