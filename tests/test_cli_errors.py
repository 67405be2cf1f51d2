"""Bad input through the real command line: one line on stderr, exit code 2, never a traceback."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from idvid.io import write_mp4


def run_idvid(*args):
    return subprocess.run([sys.executable, "-m", "idvid", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "notes.png").write_text("this is not an image")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(d / "noface.png")
    Image.fromarray(np.full((96, 96), 90, np.uint8), mode="L").save(d / "gray.png")
    Image.fromarray(np.zeros((96, 96, 4), np.uint8), mode="RGBA").save(d / "rgba.png")
    Image.fromarray(np.full((96, 96), 40000, np.uint16)).save(d / "deep16.png")
    Image.new("L", (8000, 8000)).save(d / "huge.png")
    frames = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    write_mp4(d / "ok.mp4", frames)
    (d / "empty.mp4").write_bytes(b"")
    (d / "trunc.mp4").write_bytes((d / "ok.mp4").read_bytes()[:300])
    write_mp4(d / "one.mp4", frames[:1])
    return d


BAD_REFS = ["notes.png", "noface.png", "gray.png", "rgba.png", "deep16.png", "huge.png", "missing.png"]
BAD_VIDEOS = ["empty.mp4", "trunc.mp4", "one.mp4", "missing.mp4", "notes.png"]


def assert_one_line_error(proc, expect=None):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idvid: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    if expect:
        assert expect in lines[0], lines[0]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_evaluate_facesim_bad_reference(inputs, ref):
    proc = run_idvid("evaluate", "facesim", "--ref", inputs / ref, "--video", inputs / "ok.mp4")
    expect = {"missing.png": "no such file", "huge.png": "MP limit", "notes.png": "not an image"}.get(ref, "no face")
    assert_one_line_error(proc, expect)


@pytest.mark.parametrize("video", BAD_VIDEOS)
def test_evaluate_facesim_bad_video(inputs, video):
    proc = run_idvid("evaluate", "facesim", "--ref", inputs / "noface.png", "--video", inputs / video)
    assert_one_line_error(proc)


def test_unknown_option_is_one_line(inputs):
    assert_one_line_error(run_idvid("evaluate", "facesim", "--nope"), "--nope")
