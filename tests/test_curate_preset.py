"""Presets: the built-ins load, user presets are validated with one-line errors, the CLI exits 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from idvid.data.curate import PresetError, builtin_presets, load_preset, parse_preset
from idvid.data.curate.crop import CropParams


def test_builtin_presets_load_with_their_sizes():
    assert {"celebipvid", "human-motion", "lfa"} <= set(builtin_presets())
    assert (load_preset("celebipvid").get("crop").width, load_preset("celebipvid").get("crop").height) == (720, 480)
    assert load_preset("human-motion").get("crop") == CropParams(width=512, height=512)
    lfa = load_preset("lfa")
    assert [s.name for s in lfa.stages][:2] == ["decode", "scene_split"]
    assert lfa.get("angle_variation") is not None and lfa.get("identity_clusters") is not None


def test_fingerprint_follows_parameters():
    a = parse_preset({"stages": ["decode", {"quality": {"min_sharpness": 10}}]})
    b = parse_preset({"stages": ["decode", {"quality": {"min_sharpness": 10.0}}]})
    c = parse_preset({"stages": ["decode", {"quality": {"min_sharpness": 11}}]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert parse_preset(a.to_dict()).fingerprint() == a.fingerprint()  # round trip


@pytest.mark.parametrize("data, message", [
    ({"stages": ["decode", "blur_filter"]}, "unknown stage 'blur_filter'"),
    ({"stages": ["decode", {"face_ratio": {"min_ratio": "big"}}]}, "min_ratio must be a number"),
    ({"stages": ["decode", {"face_ratio": {"min_ratio": 1.5}}]}, "min_ratio must be <= 1.0"),
    ({"stages": ["decode", {"faces": {"keyframe_fps": -1}}]}, "keyframe_fps must be >= 0.1"),
    ({"stages": ["decode", {"motion": {"method": "raft"}}]}, "method must be one of dis, farneback"),
    ({"stages": ["decode", {"quality": {"sharpnes": 3}}]}, "unknown parameter 'sharpnes'"),
    ({"stages": ["quality"]}, "first stage must be 'decode'"),
    ({"stages": ["decode", "face_count"]}, "needs 'faces' earlier"),
    ({"stages": ["decode", "faces", "faces"]}, "listed twice"),
    ({"stages": ["decode", "motion", "motion_resample", "quality"]}, "must come before"),
    ({"stages": ["decode", {"caption": {"backend": "openai"}}]}, "needs endpoint"),
    ({"stage": ["decode"]}, "unknown key 'stage'"),
    ({"stages": []}, "non-empty list"),
])
def test_bad_presets_raise_one_line_errors(data, message):
    with pytest.raises(PresetError) as exc:
        parse_preset(data, "mine.yaml")
    text = str(exc.value)
    assert message in text and "\n" not in text and text.startswith("preset mine.yaml")


def test_bad_preset_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - decode\n  - face_ratio: {min_ratio: lots}\n")
    (tmp_path / "in").mkdir()
    proc = subprocess.run([sys.executable, "-m", "idvid", "curate", "--input", str(tmp_path / "in"),
                           "--out", str(tmp_path / "out"), "--preset", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "min_ratio must be a number" in lines[0], proc.stderr
    missing = subprocess.run([sys.executable, "-m", "idvid", "curate", "--input", str(tmp_path / "in"),
                              "--out", str(tmp_path / "out"), "--preset", "nope"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not a built-in preset" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_invalid_yaml_is_one_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("stages: [decode\n")
    with pytest.raises(PresetError, match="not valid YAML"):
        load_preset(bad)
