"""The synthetic identity-video world: identities, splits, pose convention, motion intensity, rendering."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from idvid.errors import InputError
from idvid.synth import geometry
from idvid.synth.head import NEUTRAL, Expression, rotation
from idvid.synth.identity import check_seed_range, identity, split_of
from idvid.synth.motion import ACTIONS, Motion, intensity_from_tracks, sample_motion
from idvid.synth.prompts import action_phrase, prompt, strip_speed_words
from idvid.synth.render import make_scene, render_frame
from idvid.synth.world import clip_spec, iter_identities, render_clip, render_reference


def test_identity_is_a_pure_function_of_seed_plus_index():
    assert identity(2_000_000, 3) == identity(2_000_003) == identity(2_000_001, 2)
    a, b = identity(17), identity(18)
    assert a.identity_id == "id0000017" and b.identity_id == "id0000018"
    diffs = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    assert len(diffs) >= 15, diffs  # nearly every attribute differs between two identities


def test_identities_vary_in_many_attributes():
    people = [identity(1_000_000, i) for i in range(60)]
    for attr in ("hair_style", "hair_colour", "facial_hair", "glasses", "eye_shape", "brow_shape", "gender"):
        assert len({getattr(p, attr) for p in people}) >= 2, attr
    for attr in ("face_width", "jaw_width", "eye_spacing", "nose_length", "mouth_width", "ear_size"):
        vals = [getattr(p, attr) for p in people]
        assert np.std(vals) > 0.03, attr
    skins = np.array([p.skin for p in people])
    assert np.ptp(skins.mean(axis=1)) > 0.35


def test_split_boundaries():
    assert split_of(0) == split_of(999_999) == "train"
    assert split_of(1_000_000) == split_of(1_999_999) == "validation"
    assert split_of(2_000_000) == split_of(10**9) == "heldout"
    assert check_seed_range(999_990, 10) == "train"
    with pytest.raises(InputError, match="straddle"):
        check_seed_range(999_990, 11)
    with pytest.raises(InputError, match="straddle"):
        check_seed_range(1_999_999, 2)
    with pytest.raises(InputError):
        split_of(-1)
    assert [p.seed for p in iter_identities("validation", 3, start=5)] == [1_000_005, 1_000_006, 1_000_007]
    assert all(p.split == "heldout" for p in iter_identities("heldout", 2))


def test_rotation_matches_the_face_toolkit_convention():
    from idvid.faces.pose import rotation_from_angles

    for pose in [(30, 0, 0), (0, 20, 0), (0, 0, 15), (40, -10, 7), (-70, 12, -5)]:
        np.testing.assert_allclose(rotation(*pose), rotation_from_angles(*pose), atol=1e-12)


@pytest.fixture(scope="module")
def scene():
    ident = identity(2_000_000, 7)
    spec = clip_spec(ident.seed, 0)
    return make_scene(ident, spec.appearance, 128)


@pytest.mark.parametrize("yaw", [-60, -30, 30, 60])
def test_yaw_sign_convention_projected_nose(scene, yaw):
    """yaw > 0: the nose points toward the image right, so the nose tip is right of the box centre."""
    box = geometry.face_box(scene, (yaw, 0, 0), NEUTRAL)
    nose = geometry.project(scene, (yaw, 0, 0), geometry.nose_tip(scene.lay)[:, None])[:, 0]
    centre = (box[0] + box[2]) / 2
    assert np.sign(nose[0] - centre) == np.sign(yaw)


def test_pitch_and_roll_sign_convention(scene):
    kps0 = geometry.project(scene, (0, 0, 0), geometry.keypoints5(scene.lay, NEUTRAL))
    up = geometry.project(scene, (0, 20, 0), geometry.keypoints5(scene.lay, NEUTRAL))
    # pitch > 0 (nose up): the nose tip rises relative to the eyes
    assert (up[1, 2] - up[1, :2].mean()) < (kps0[1, 2] - kps0[1, :2].mean())
    cw = geometry.project(scene, (0, 0, 20), geometry.keypoints5(scene.lay, NEUTRAL))
    # roll > 0 (clockwise in the image, y down): the eye on the image's right goes down
    assert cw[1, 1] > cw[1, 0]


def test_rendered_frame_mask_and_box(scene):
    img, mask = render_frame(scene, (0, 0, 0), NEUTRAL)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert mask.shape == (128, 128) and 0.03 < mask.mean() < 0.4
    x0, y0, x1, y1 = geometry.face_box(scene, (0, 0, 0), NEUTRAL)
    ys, xs = np.nonzero(mask)
    # the geometric face box and the rendered face mask agree to a few pixels
    assert abs(xs.mean() - (x0 + x1) / 2) < 4 and abs(ys.mean() - (y0 + y1) / 2) < 8
    assert x0 - 3 <= xs.min() and xs.max() <= x1 + 3
    # the face turned away: mask centre moves with the yaw
    _, mask_r = render_frame(scene, (50, 0, 0), NEUTRAL)
    assert np.nonzero(mask_r)[1].mean() > xs.mean() - 1


def test_render_is_deterministic():
    spec = clip_spec(123, 4)
    a = render_clip(spec, 128, 4, 8.0)
    b = render_clip(clip_spec(123, 4), 128, 4, 8.0)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert a.prompt == b.prompt and a.motion_intensity == b.motion_intensity
    c = render_clip(clip_spec(124, 4), 128, 4, 8.0)
    assert not np.array_equal(a.frames, c.frames)


def test_render_works_at_256_and_reference_is_frontal_neutral():
    ref, mask = render_reference(identity(2_000_050), 256)
    assert ref.shape == (256, 256, 3) and mask.any()
    corners = np.concatenate([ref[:10, :10].reshape(-1, 3), ref[:10, -10:].reshape(-1, 3)])
    assert corners.mean() > 150  # plain light background


def _motion(action: str, speed: float, **kw) -> Motion:
    base = dict(action=action, speed=speed, yaw0=0.0, pitch0=0.0, roll0=0.0, direction=1.0, phase=0.3,
                secondary="", idle_blinks=False)
    base.update(kw)
    return Motion(**base)


def _intensity(motion: Motion, frames: int = 16) -> float:
    spec = dataclasses.replace(clip_spec(2_000_001, 0), motion=motion)
    return render_clip(spec, 128, frames, 8.0, pixels=False).motion_intensity


def test_motion_intensity_zero_when_static_and_grows_with_speed():
    assert _intensity(_motion("static", 1.0)) == 0.0
    assert _intensity(_motion("static", 1.0, yaw0=60.0)) == 0.0
    for action in ("nodding", "shaking_head", "turning_left", "talking", "blinking", "tilting_head"):
        vals = [_intensity(_motion(action, s)) for s in (0.5, 1.0, 1.8)]
        assert 0 < vals[0] < vals[1] < vals[2] <= 20, (action, vals)


def test_intensity_definition_on_known_tracks():
    # 3 frames, 4 points: pair 1 moves two points by 2 px and two by 0 -> mean of those >= mean = 2
    pts = np.zeros((3, 2, 4))
    pts[1, 0, :2] = 2.0
    pts[2] = pts[1]
    pts[2, 1, :] += 1.0  # pair 2: all move by 1 -> 1
    vis = np.ones((3, 4), bool)
    from idvid.synth.motion import INTENSITY_SCALE

    assert intensity_from_tracks(pts, vis, 128) == pytest.approx(INTENSITY_SCALE * 1.5)
    assert intensity_from_tracks(pts, vis, 256) == pytest.approx(INTENSITY_SCALE * 0.75)


def test_turning_follows_the_action_and_stays_in_range():
    for action, sign in (("turning_left", 1), ("turning_right", -1)):
        clip = render_clip(dataclasses.replace(clip_spec(5, 0), motion=_motion(action, 2.0)), 128, 16, 8.0,
                           pixels=False)
        yaw = clip.poses[:, 0]
        assert sign * (yaw[-1] - yaw[0]) > 40
        assert np.abs(yaw).max() <= 75


def test_actions_prompts_and_phrases():
    assert len(ACTIONS) >= 8
    seen = {sample_motion(s, k).action for s in range(40) for k in range(3)}
    assert seen == set(ACTIONS)
    ident = identity(2_000_010)
    spec = clip_spec(ident.seed, 0)
    m = _motion("turning_left", 1.0, secondary="smiling")
    phrase = action_phrase(ident, m)
    assert phrase == f"smiles and turns to {ident.pronoun} left"
    text = prompt(ident, spec.appearance, m)
    assert phrase in text
    assert spec.appearance.clothing_colour in text and spec.appearance.background_colour in text
    if ident.hair_style != "bald":
        assert ident.hair_colour in text


def test_strip_speed_words_removes_only_the_adverbs():
    ident = identity(2_000_010)
    spec = clip_spec(ident.seed, 0)
    fast = _motion("shaking_head", 1.9, secondary="smiling")
    slow = _motion("shaking_head", 0.6)
    assert action_phrase(ident, fast) == f"smiles and quickly shakes {ident.pronoun} head"
    assert strip_speed_words(action_phrase(ident, fast)) == f"smiles and shakes {ident.pronoun} head"
    assert strip_speed_words(action_phrase(ident, slow)) == f"shakes {ident.pronoun} head"
    text = prompt(ident, spec.appearance, fast)
    assert strip_speed_words(text) == prompt(ident, spec.appearance, _motion("shaking_head", 1.0, secondary="smiling"))
    assert strip_speed_words("a quicklyish word stays") == "a quicklyish word stays"


def test_expression_changes_pixels_in_the_face_only(scene):
    a, mask = render_frame(scene, (0, 0, 0), NEUTRAL)
    b, _ = render_frame(scene, (0, 0, 0), Expression(mouth_open=0.8, smile=0.5))
    diff = np.abs(a.astype(int) - b.astype(int)).sum(-1) > 10
    assert diff.any()
    ys, _ = np.nonzero(diff)
    box = geometry.face_box(scene, (0, 0, 0), NEUTRAL)
    assert ys.min() > (box[1] + box[3]) / 2  # the mouth is in the lower half of the face
