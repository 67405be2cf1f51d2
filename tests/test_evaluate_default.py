"""The measurements behind scripts/evaluate_default_model.py on known inputs: the colour check on rendered
ground truth and on painted frames, the flow magnitude of a known shift, the identity gap by hand."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from idvid.evaluate.attributes import (
    CLOTHING_SHADING,
    alike_groups,
    check_background_colour,
    check_clip_colours,
    check_clothing_colour,
    clothing_region,
    rendered_palette,
    subject_light,
)
from idvid.evaluate.motion import mean_flow_magnitude
from idvid.synth.appearance import COLOURS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_default_model.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("evaluate_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def gt_clip():
    from idvid.synth import clip_spec, render_clip

    spec = clip_spec(2_000_004, 0)  # held-out; an orange sweater in front of a black wall
    return spec, render_clip(spec, size=128, num_frames=5, masks=False)


# ------------------------------------------------------------------------------------- colour check
def test_clothing_check_accepts_the_rendered_colour_and_rejects_another(gt_clip):
    spec, clip = gt_clip
    app = spec.appearance
    assert (app.clothing_colour, app.background, app.background_colour) == ("orange", "wall", "black")
    res = check_clip_colours(clip.frames, spec)
    assert res["clothing"].rendered and res["clothing"].face_frames == len(clip.frames)
    assert res["background"].rendered
    other = check_clothing_colour(clip.frames, "blue", subject_light(spec))
    assert not other.rendered and other.found == "orange" and other.share < 0.05
    assert not check_background_colour(clip.frames, "yellow", "wall").rendered


def _painted(colour_rgb, box=(40, 30, 88, 90), size=128, frames=3):
    """Frames of a grey background with the clothing region below `box` painted `colour_rgb` (0..1)."""
    img = np.full((size, size, 3), 128, np.uint8)
    img[clothing_region((size, size), box)] = np.round(np.asarray(colour_rgb) * 255).astype(np.uint8)
    return np.stack([img] * frames), [box] * frames


@pytest.mark.parametrize("name", ["red", "navy", "beige", "teal"])
def test_painted_clothing_is_classified_by_name(name):
    frames, boxes = _painted(np.asarray(COLOURS[name]) * CLOTHING_SHADING)
    res = check_clothing_colour(frames, name, boxes=boxes)
    assert res.rendered and res.found == name and res.share == 1.0
    assert not check_clothing_colour(frames, "green" if name != "green" else "red", boxes=boxes).rendered


def test_lit_palette_and_excluded_scarf():
    # a white shirt under a warm key light is drawn warm: the unlit palette would call it beige
    light = np.array([1.08, 0.96, 0.8])
    frames, boxes = _painted(np.clip(np.asarray(COLOURS["white"]) * light * CLOTHING_SHADING, 0, 1))
    assert check_clothing_colour(frames, "white", light, boxes=boxes).rendered
    # the scarf colour is no evidence against the named clothing colour when excluded
    frames, boxes = _painted(np.asarray(COLOURS["pink"]) * CLOTHING_SHADING)
    assert not check_clothing_colour(frames, "blue", boxes=boxes).rendered
    assert check_clothing_colour(frames, "blue", exclude=["pink"], boxes=boxes).found != "pink"


def test_colours_that_render_alike_count_as_one():
    names, palette = rendered_palette(light=(2.5, 2.5, 2.5), gain=CLOTHING_SHADING)
    group = alike_groups(palette)
    assert group[names.index("white")] == group[names.index("beige")] == group[names.index("pink")]
    assert group[names.index("white")] != group[names.index("navy")]
    frames, boxes = _painted((1.0, 1.0, 1.0))
    assert check_clothing_colour(frames, "beige", (2.5, 2.5, 2.5), boxes=boxes).rendered


def test_no_face_uses_the_default_region():
    frames, _ = _painted(np.asarray(COLOURS["green"]) * CLOTHING_SHADING, box=None)
    res = check_clothing_colour(frames, "green", boxes=[None] * len(frames))
    assert res.rendered and res.face_frames == 0


def test_unjudged_background_kind_and_bad_names():
    frames, boxes = _painted((0.5, 0.5, 0.5))
    assert check_background_colour(frames, "red", "bokeh", boxes=boxes) is None
    with pytest.raises(ValueError):
        check_clothing_colour(frames, "mauve", boxes=boxes)
    with pytest.raises(ValueError):
        check_background_colour(frames, "red", "beach", boxes=boxes)


# ------------------------------------------------------------------------------------- motion
@pytest.mark.parametrize("dx,dy", [(3, 0), (2, 2), (-4, 1)])
def test_mean_flow_magnitude_of_a_known_shift(dx, dy):
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (160, 160)).astype(np.float32), (0, 0), 2.0)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    # frame t shows the texture moved by t * (dx, dy): the crop window moves the other way
    frames = np.stack([np.repeat(tex[16 - t * dy:144 - t * dy, 16 - t * dx:144 - t * dx, None], 3, -1) for t in range(3)])
    assert mean_flow_magnitude(frames) == pytest.approx(np.hypot(dx, dy), rel=0.05)
    assert mean_flow_magnitude(frames[:1]) == 0.0
    assert mean_flow_magnitude(np.stack([frames[0]] * 3)) == pytest.approx(0.0, abs=1e-3)


def test_motion_prompts_leave_the_speed_to_the_intensity(script):
    """The motion check's prompts name an action but no speed: the requested intensity alone asks for it."""
    prompts = [script.motion_prompt(seed) for seed in range(2_000_000, 2_000_012)]
    for k, prompt, phrase in prompts:
        assert k >= 0 and phrase and phrase in prompt
        assert "slowly" not in prompt and "quickly" not in prompt
    from idvid.synth import clip_spec, render_clip

    raw = [render_clip(clip_spec(seed, k), pixels=False).prompt for seed, (k, _, _) in zip(range(2_000_000, 2_000_012), prompts, strict=True)]
    assert any(w in p for p in raw for w in ("slowly", "quickly"))  # the synthetic prompts had them


# ------------------------------------------------------------------------------------- identity gap
def test_identity_gap_by_hand(script):
    refs = np.eye(3, 4)  # three orthonormal identities in 4-d
    v0 = np.stack([refs[0], refs[0] * 2.0, [np.nan] * 4])  # ref 0 twice (scale is irrelevant), a faceless frame
    v1 = np.stack([refs[1], (refs[1] + refs[2]) / np.sqrt(2)])  # cos to ref1: 1, 1/sqrt2; to ref2: 0, 1/sqrt2
    v2 = np.stack([refs[2] * -1.0])  # the opposite of ref 2
    sim = script.similarity_matrix(refs, [v0, v1, v2])
    h = 1 / np.sqrt(2)
    expected = np.array([[1.0, 0.0, 0.0],
                         [0.0, (1 + h) / 2, 0.0],
                         [0.0, h / 2, -1.0]])  # S[j, i] = sim(ref_j, v_i)
    np.testing.assert_allclose(sim, expected, atol=1e-12)
    gap = script.identity_gap(sim)
    same = (1.0 + (1 + h) / 2 - 1.0) / 3
    different = (h / 2) / 6
    assert gap["same"] == pytest.approx(same) and gap["different"] == pytest.approx(different)
    assert gap["gap"] == pytest.approx(same - different) and gap["videos"] == 3


def test_identity_gap_leaves_out_faceless_videos(script):
    refs = np.eye(3, 4)
    sim = script.similarity_matrix(refs, [refs[:1], refs[1:2], np.full((2, 4), np.nan)])
    assert np.isnan(sim[:, 2]).all()
    gap = script.identity_gap(sim)
    assert gap == {"same": 1.0, "different": 0.0, "gap": 1.0, "videos": 2}
    with pytest.raises(ValueError):
        script.identity_gap(np.ones((2, 3)))


def test_training_identities_are_refused(script):
    with pytest.raises(SystemExit, match="training identities"):
        script.held_out_cases(999_999, 2, fa=None, size=64, num_frames=1)


def test_probe_vae_colour_axes_and_linear_probe():
    """scripts/probe_vae.py: the opponent axes of known colours, and a probe that finds a linear signal (R^2 1)
    but not noise (R^2 <= ~0)."""
    spec = importlib.util.spec_from_file_location("probe_vae", SCRIPT.parent / "probe_vae.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    axes = probe.colour_axes(np.array([[0, 255, 0], [255, 0, 255], [90, 90, 90], [255, 255, 0]]))
    np.testing.assert_allclose(axes, [[85, 127.5, 255], [170, -127.5, -255], [90, 0, 0], [170, 255, 127.5]])
    rng = np.random.default_rng(0)
    features = rng.normal(size=(80, 8))
    targets = np.c_[features @ rng.normal(size=8) + 3.0, rng.normal(size=80)]
    r2 = probe.probe_r2(features, targets)
    assert r2[0] == pytest.approx(1.0) and r2[1] < 0.3
    r2 = probe.probe_r2(features, targets, ridge=1.0)  # a little shrinkage keeps a strong signal
    assert r2[0] > 0.99 and r2[1] < 0.3
    assert probe.probe_r2(features, targets, ridge=1e4)[0] < 0.5  # and a lot of it removes it
