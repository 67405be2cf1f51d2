"""`idvid synth`: files, manifest schema, resume, worker-count independence, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from idvid.io.video import read_video
from idvid.synth.cli import synth
from idvid.synth.manifest import MANIFEST_COLUMNS, read_manifest

REQUIRED = ("clip_id", "identity_id", "video_path", "reference_path", "prompt", "action", "motion_intensity",
            "yaw", "pitch", "roll", "face_box")


def _run(out, *extra):
    args = ["--out", str(out), "-n", "2", "-k", "2", "--seed", "1000000", "--size", "64", "--frames", "4",
            "--workers", "1", "-q", *extra]
    result = CliRunner().invoke(synth, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_synth_writes_clips_refs_and_manifest(tmp_path):
    out = _run(tmp_path / "w", "--save-masks")
    assert "4 clips (4 rendered" in out
    table = pq.read_table(tmp_path / "w" / "manifest.parquet")
    assert set(REQUIRED) <= set(table.column_names) and tuple(table.column_names) == MANIFEST_COLUMNS
    rows = read_manifest(tmp_path / "w")
    assert [r["clip_id"] for r in rows] == ["id1000000_c000", "id1000000_c001", "id1000001_c000", "id1000001_c001"]
    for r in rows:
        assert r["split"] == "validation" and r["num_frames"] == 4
        for col in ("yaw", "pitch", "roll", "face_box", "kps"):
            assert len(r[col]) == 4, col
        assert all(len(b) == 4 for b in r["face_box"])
        frames, fps = read_video(r["video_path"])
        assert frames.shape == (4, 64, 64, 3) and fps == 8
        assert r["reference_path"].endswith(f"refs/{r['identity_id']}.png")
        masks = np.load(tmp_path / "w" / "masks" / f"{r['clip_id']}.npz")
        assert np.unpackbits(masks["masks"], axis=-1)[..., :64].shape == (4, 64, 64)
        assert r["action_phrase"] in r["prompt"]
    assert (tmp_path / "w" / "refs" / "id1000001.png").exists()

    # resuming renders nothing new and rebuilds the same manifest
    before = pq.read_table(tmp_path / "w" / "manifest.parquet")
    out2 = _run(tmp_path / "w")
    assert "0 rendered, 4 already present" in out2
    assert pq.read_table(tmp_path / "w" / "manifest.parquet").equals(before)


def test_output_does_not_depend_on_worker_count(tmp_path):
    _run(tmp_path / "a")
    result = CliRunner().invoke(synth, ["--out", str(tmp_path / "b"), "-n", "2", "-k", "2", "--seed", "1000000",
                                        "--size", "64", "--frames", "4", "--workers", "2", "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    a = pq.read_table(tmp_path / "a" / "manifest.parquet")
    b = pq.read_table(tmp_path / "b" / "manifest.parquet")
    assert a.equals(b)
    for clip_id in a.column("clip_id").to_pylist():
        fa, _ = read_video(tmp_path / "a" / "clips" / f"{clip_id}.mp4")
        fb, _ = read_video(tmp_path / "b" / "clips" / f"{clip_id}.mp4")
        assert np.array_equal(fa, fb)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "idvid", "synth", *args], capture_output=True, text=True, timeout=120)


def test_straddling_seed_range_is_refused_with_exit_code_2(tmp_path):
    res = _cli("--out", str(tmp_path / "x"), "--identities", "3", "--seed", "999999")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "straddle" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "x" / "manifest.parquet").exists()


def test_changed_settings_on_resume_are_refused(tmp_path):
    _run(tmp_path / "w")
    res = _cli("--out", str(tmp_path / "w"), "-n", "2", "-k", "2", "--seed", "1000000", "--size", "128",
               "--frames", "4", "--workers", "1", "-q")
    assert res.returncode == 2 and "--size 64" in res.stderr


def test_help_lists_every_option():
    res = CliRunner().invoke(synth, ["--help"])
    assert res.exit_code == 0
    for opt in ("--out", "--identities", "--clips-per-identity", "--seed", "--size", "--frames", "--fps", "--workers"):
        assert opt in res.output
