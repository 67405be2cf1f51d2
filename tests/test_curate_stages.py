"""Curation stages on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from idvid.data.curate.captions import parse_reply, template_action
from idvid.data.curate.crop import crop_window
from idvid.data.curate.frames import even_indices
from idvid.data.curate.identity import (
    IdentityParams,
    cluster_embeddings,
    identity_consistency,
    medoid,
    split_similarity,
    square_crop,
)
from idvid.data.curate.motion import MotionParams, clip_flow_magnitudes, foreground_flow, motion_intensity
from idvid.data.curate.pose import AngleVariationParams, angle_variation, pose_from_nose_offset
from idvid.data.curate.quality import QualityParams, edge_blur, exposure, quality, sharpness
from idvid.data.curate.resample import ResampleParams, flatten_weights, intensity_bins, motion_resample
from idvid.data.curate.scenes import ContentCuts, HistogramCuts, segment_bounds
from idvid.data.curate.testing import blur, burn_text, moving_square, texture, translating
from idvid.data.curate.tracking import associate, fill_gaps, interpolate, iou, main_track, propagate
from idvid.data.curate.types import Clip, Context, Reject
from idvid.faces.pose import MODEL_POINTS_5, camera_matrix, project_points, rotation_from_angles
from idvid.faces.types import Face

# -- motion intensity (seed 002, Eqs. 5-7) --------------------------------------------------------


def test_eq5_7_on_hand_made_flow_magnitudes():
    # pair 1: a 2x2 block moving 4 px in a field of 1 px jitter; mean = (4*4 + 12*1)/16 = 1.75
    f1 = np.ones((4, 4))
    f1[:2, :2] = 4.0
    # pair 2: everything still -> no foreground, f_fg = 0 by definition
    f2 = np.zeros((4, 4))
    # pair 3: two magnitudes 10 and 2 on halves: mean 6, foreground = the 10s
    f3 = np.full((4, 4), 2.0)
    f3[:, 2:] = 10.0
    fg, v = foreground_flow(f1)
    assert v == pytest.approx(4.0)
    assert np.array_equal(fg > 0, f1 > 1.75)
    assert foreground_flow(f2)[1] == 0.0
    capped, raw, maps = motion_intensity([f1, f2, f3])
    assert raw == pytest.approx((4.0 + 0.0 + 10.0) / 3)  # Eq. 7: mean over the N-1 pairs
    assert capped == raw and len(maps) == 3
    # the cap at 20
    capped, raw, _ = motion_intensity([np.pad(np.full((2, 2), 50.0), 1)])
    assert raw == pytest.approx(50.0) and capped == 20.0


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_translating_pattern_has_known_intensity(method):
    p = MotionParams(method=method)
    for d in (0, 2, 4):
        frames = translating(5, 256, 256, d, 0, seed=1)
        _, raw, _ = motion_intensity(clip_flow_magnitudes(frames, list(range(5)), p), cap=None)
        # d px per frame at a 256-px short side is 2*d px at the 512-px reference
        assert raw == pytest.approx(2 * d, abs=0.35), (method, d, raw)


def test_intensity_does_not_depend_on_resolution():
    p = MotionParams()
    small = translating(4, 128, 128, 2, 0, seed=3)  # 2 px at 128 px = 8 px at 512
    large = translating(4, 512, 512, 8, 0, seed=3)  # 8 px at 512 px = 8 px at 512
    a = motion_intensity(clip_flow_magnitudes(small, [0, 1, 2, 3], p))[1]
    b = motion_intensity(clip_flow_magnitudes(large, [0, 1, 2, 3], p))[1]
    assert a == pytest.approx(8.0, abs=0.8) and b == pytest.approx(8.0, abs=0.8)


def test_foreground_mask_marks_the_moving_object():
    frames = moving_square(4, 192, 256, side=48, speed=3, seed=2)
    _, _, maps = motion_intensity(clip_flow_magnitudes(frames, [0, 1, 2, 3], MotionParams()))
    fg = maps[0] > 0
    h, w = fg.shape
    inside = fg[h * 80 // 192: h * 112 // 192, w * 14 // 256: w * 46 // 256].mean()  # the square's interior band
    outside = fg[: h // 4].mean()  # static background rows
    assert inside > 0.5 and outside < 0.05


# -- motion resampling --------------------------------------------------------------------------------


def test_resampling_flattens_a_skewed_histogram(tmp_path):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 2, 300), rng.uniform(2, 10, 60), rng.uniform(10, 20, 12)])
    bins = intensity_bins(values, 10, 20.0)
    w = flatten_weights(bins)
    weighted = np.bincount(bins, weights=w, minlength=10)
    occupied = weighted[np.bincount(bins, minlength=10) > 0]
    assert np.allclose(occupied, occupied[0]) and w.sum() == pytest.approx(len(values))
    raw = np.bincount(bins, minlength=10)
    assert raw.max() / raw[raw > 0].min() > 20  # it really was skewed

    rows = [{"clip_id": f"c{i}", "kept": True, "motion_intensity": float(v)} for i, v in enumerate(values)]
    out = motion_resample(rows, ResampleParams(mode="subsample"), Context(tmp_path))
    kept = [r["motion_bin"] for r in out if r["kept"]]
    counts = np.bincount(kept, minlength=10)
    assert counts[counts > 0].min() == counts.max()  # every occupied bin equally represented
    assert all(r["reject_reason"] == "resampled_out" for r in out if not r["kept"])
    again = motion_resample([dict(r, kept=True) for r in rows], ResampleParams(mode="subsample"), Context(tmp_path))
    assert [r["kept"] for r in again] == [r["kept"] for r in out]  # deterministic choice


def test_intensity_bins_put_capped_values_in_the_last_bin():
    assert intensity_bins(np.array([0.0, 1.99, 2.0, 19.9, 20.0, 35.0]), 10, 20.0).tolist() == [0, 0, 1, 9, 9, 9]


# -- quality ------------------------------------------------------------------------------------------


def test_sharpness_and_exposure_measures():
    img = texture(240, 320, seed=4, smooth=1.0)
    g = img.mean(axis=2).astype(np.uint8)
    blurred = blur(img[None], 4.0)[0].mean(axis=2).astype(np.uint8)
    assert sharpness(g) > 10 * sharpness(blurred)
    flat = np.full((10, 10), 128, np.uint8)
    assert sharpness(flat) == 0.0
    assert exposure(flat) == (128.0, 0.0)
    dark = np.zeros((10, 10), np.uint8)
    dark[:5] = 255
    mean, clipped = exposure(dark)
    assert mean == pytest.approx(127.5) and clipped == 1.0


def _rectangles(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Flat rectangles of random grey levels: every edge a sharp step."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    for _ in range(30):
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        bw, bh = rng.integers(10, 80, 2)
        img[y:y + bh, x:x + bw] = rng.integers(0, 256)
    return img


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0, 4.0])
def test_edge_blur_measures_the_gaussian_width_of_blurred_steps(sigma):
    import cv2

    img = _rectangles()
    assert edge_blur(img) < 1.0  # sharp steps: about a pixel
    measured = edge_blur(cv2.GaussianBlur(img, (0, 0), sigma))
    assert measured == pytest.approx(sigma, abs=0.3)  # in pixels, whatever the edges' contrast
    darker = edge_blur((cv2.GaussianBlur(img, (0, 0), sigma) // 3).astype(np.uint8))
    assert darker == pytest.approx(measured, abs=0.3)
    assert np.isnan(edge_blur(np.full((32, 32), 90, np.uint8)))  # no edge, no measure


def test_quality_rejects_a_gaussian_blurred_render_that_the_laplacian_cannot_tell():
    import cv2

    world = pytest.importorskip("idvid.synth.world")
    clip = world.render_clip(world.clip_spec(1000, 0), size=256, num_frames=4, fps=8.0, masks=False)
    sharp = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_CUBIC) for f in clip.frames])
    blurred = blur(sharp, 6.0)
    ctx = Context(".")
    # a smooth render's variance of Laplacian is below the camera-footage minimum (30) even when sharp
    assert sharpness(cv2.cvtColor(sharp[0], cv2.COLOR_RGB2GRAY)) < 30
    p = QualityParams(min_sharpness=0.0)  # the edge blur alone, at its default maximum (3 px)
    kept = quality(Clip("s", "s.mp4", 0, 0, sharp, 8.0, (512, 512)), {}, p, ctx)
    rejected = quality(Clip("b", "b.mp4", 0, 0, blurred, 8.0, (512, 512)), {}, p, ctx)
    assert isinstance(kept, dict) and kept["edge_blur"] < p.max_edge_blur
    assert isinstance(rejected, Reject) and rejected.reason == "low_quality"
    assert "edge blur" in rejected.detail and rejected.annotations["edge_blur"] > p.max_edge_blur


# -- scene cuts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["histogram", "content"])
def test_cut_detectors_find_a_hard_cut_and_nothing_else(kind):
    if kind == "content":
        pytest.importorskip("scenedetect")
    detector = HistogramCuts() if kind == "histogram" else ContentCuts(fps=10.0)
    a = translating(20, 90, 160, 1, 0, seed=5)
    b = (translating(20, 90, 160, 1, 0, seed=6).astype(np.int16) // 2 + np.array([120, 0, 60])).clip(0, 255)
    frames = np.concatenate([a, b.astype(np.uint8)])
    for i, f in enumerate(frames):
        detector.push(i, f[..., ::-1].copy())
    assert detector.finish(len(frames)) == [20]


def test_segment_bounds_split_at_cuts_and_chunk_long_scenes():
    assert segment_bounds(100, [], None) == [(0, 100)]
    assert segment_bounds(100, [40, 0, 100, 40], None) == [(0, 40), (40, 100)]
    assert segment_bounds(100, [40], 30) == [(0, 20), (20, 40), (40, 70), (70, 100)]


# -- text overlay (PP-OCR through rapidocr) -----------------------------------------------------------


def test_text_overlay_detected_on_rendered_subtitles_only(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    from idvid.data.curate.text import TextParams, text_overlay
    from idvid.data.curate.types import Clip, Reject

    ctx = Context(tmp_path)
    frames = translating(4, 240, 360, 1, 0, seed=7)
    clean = Clip("c", "c.mp4", 0, 0, frames, 4.0, (360, 240))
    texted = Clip("t", "t.mp4", 0, 0, burn_text(frames, "Hello from the subtitles"), 4.0, (360, 240))
    p = TextParams(frames=2)
    ok = text_overlay(clean, {}, p, ctx)
    bad = text_overlay(texted, {}, p, ctx)
    assert isinstance(ok, dict) and ok["text_frames"] == 0.0
    assert isinstance(bad, Reject) and bad.reason == "text_overlay"
    assert "subtitles" in bad.annotations["text_found"].lower()


# -- tracking, crops, identity --------------------------------------------------------------------------


def test_iou_association_and_interpolation():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    boxes = [[(0, 0, 10, 10), (50, 50, 54, 54)], [(1, 0, 11, 10)], [(2, 0, 12, 10), (51, 50, 55, 54)]]
    tracks = associate(boxes)
    assert len(tracks) == 2
    main = main_track(tracks, boxes)
    assert main.members == {0: 0, 1: 0, 2: 0}
    vals = np.array([[0.0], [np.nan], [10.0]])
    per_frame = interpolate([0, 5, 10], vals, 12, max_hold=2, max_span=10)
    assert per_frame[:11, 0].tolist() == pytest.approx(list(range(11)))
    assert per_frame[11, 0] == pytest.approx(10.0)  # held one frame past the last keyframe
    gap = interpolate([0, 5, 10], vals, 11, max_hold=1, max_span=5)
    assert np.isnan(gap[3, 0]) and gap[1, 0] == pytest.approx(1.0)


def test_flow_tracking_carries_a_box_and_fills_gaps():
    frames = moving_square(3, 160, 240, side=48, speed=6, seed=8)
    gray = frames.mean(axis=3).astype(np.uint8)
    y = (160 - 48) // 2
    box = (4.0, float(y), 52.0, float(y + 48))
    moved = propagate(gray[0], gray[1], box, np.array([[28.0, y + 24.0]]))
    assert moved is not None
    (x0, y0, x1, y1), pts = moved
    assert (x0, y0, x1, y1) == pytest.approx((10.0, y, 58.0, y + 48), abs=1.0)
    assert pts[0] == pytest.approx([34.0, y + 24.0], abs=1.0)
    blank = np.full((160, 240), 128, np.uint8)
    assert propagate(blank, blank, box) is None  # nothing to track

    def step(item, a, b):
        return item + (b - a) * 0.5

    filled, carried = fill_gaps([None, 1.0, None, None, None, 5.0, None], step, max_steps=1)
    assert filled == [0.5, 1.0, 1.5, None, 4.5, 5.0, 5.5]
    assert carried == [True, False, True, False, True, False, True]


def test_crop_window_keeps_aspect_and_follows_the_face():
    assert crop_window(1280, 720, 720, 480, None) == (100, 0, 1180, 720)
    x0, y0, x1, y1 = crop_window(1280, 720, 512, 512, (1200, 300))
    assert (x1 - x0, y1 - y0) == (720, 720) and x1 == 1280  # clamped to the right edge
    x0, y0, x1, y1 = crop_window(640, 480, 720, 480, (320, 240), zoom=0.5)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(1.5, abs=0.01)


def test_square_crop_centres_the_box():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255
    crop = square_crop(img, (40, 40, 60, 60), margin=0.5, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[20, 20].tolist() == [255, 255, 255] and crop[2, 2].tolist() == [0, 0, 0]


def test_medoid_and_identity_clusters():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 128))
    emb = np.concatenate([c + 0.3 * rng.normal(size=(4, 128)) for c in centres])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = cluster_embeddings(emb, min_similarity=0.5)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    outlier = np.concatenate([emb[:5], emb[8:9]])
    assert medoid(outlier) != 5


def test_even_indices():
    assert even_indices(10, 3) == [0, 4, 9] or even_indices(10, 3) == [0, 5, 9]
    assert even_indices(3, 8) == [0, 1, 2]
    assert even_indices(0, 3) == []


# -- head pose, angle variation ---------------------------------------------------------------------


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (35, 0, 0), (-50, 10, 5), (10, -20, -8), (0, 25, 12),
                                             (-70, -15, 15)])
def test_nose_offset_pose_recovers_rotations_of_the_generic_face(yaw, pitch, roll):
    rot = rotation_from_angles(yaw, pitch, roll)
    kps = project_points(MODEL_POINTS_5, rot, np.array([3.0, -2.0, 3000.0]), camera_matrix(640, 480, 6000.0))
    assert pose_from_nose_offset(kps) == pytest.approx((yaw, pitch, roll), abs=1.5)
    mirrored = kps.copy()
    mirrored[:, 0] = 640 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the image-left eye is the first point
    assert pose_from_nose_offset(mirrored)[0] == pytest.approx(-yaw, abs=1.5)


def _angles(yaw, pitch=None, roll=None) -> dict:
    n = len(yaw)
    z = np.zeros(n)
    return {"_kf_angles": np.stack([np.asarray(yaw, float), z if pitch is None else np.asarray(pitch, float),
                                    z if roll is None else np.asarray(roll, float)], axis=1)}


def test_angle_variation_keys_on_yaw_and_ignores_one_glitch():
    ctx = Context(".")
    clip = Clip("c", "c.mp4", 0, 0, np.zeros((1, 4, 4, 3), np.uint8), 4.0, (4, 4))
    p = AngleVariationParams()
    turning = angle_variation(clip, _angles(np.linspace(0, 40, 12)), p, ctx)
    assert isinstance(turning, dict) and turning["yaw_span"] > 30
    still = 5 + np.array([0, 1, -1, 0, 1, 0, -1, 0, 1, 0, 0, -1], float)
    out = angle_variation(clip, _angles(still), p, ctx)
    assert isinstance(out, Reject) and out.reason == "static_angle"
    glitch = still.copy()
    glitch[6] = 30.0  # one keyframe's keypoints jumped: not a turn
    assert isinstance(angle_variation(clip, _angles(glitch), p, ctx), Reject)
    assert isinstance(angle_variation(clip, _angles(glitch), AngleVariationParams(smooth=1), ctx), dict)
    nod = _angles(still, pitch=15 * np.sin(np.linspace(0, 2 * np.pi, 12)))
    assert isinstance(angle_variation(clip, nod, p, ctx), Reject)  # the default keys on yaw only
    nodding = angle_variation(clip, nod, AngleVariationParams(min_pitch_span=10.0), ctx)
    assert isinstance(nodding, dict) and nodding["pitch_span"] > 20


# -- identity consistency (hand-made embeddings in place of SFace) ------------------------------------------


class _TableEmbedder:
    """Stands in for the face embedder: keyframe i's face embeds to `table[i]` (i is written in the
    frame's first pixel)."""

    def __init__(self, table: np.ndarray):
        self.table = table

    def embed_faces(self, image, faces):
        return self.table[int(image[0, 0, 0])][None]


def _frontal_face(yaw_offset: float = 0.0) -> Face:
    # eyes 40 px apart, nose 23 px below them; yaw_offset moves the nose sideways (in inter-ocular units)
    kps = np.array([[80, 100], [120, 100], [100 + 40 * yaw_offset, 123], [86, 140], [114, 140]], np.float32)
    return Face((60.0, 70.0, 140.0, 170.0), 0.9, kps)


def _run_identity(tmp_path, table, faces=None, params=IdentityParams()):
    n = len(table)
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    clip = Clip("c", "c.mp4", 0, 0, frames, 4.0, (8, 8))
    ctx = Context(tmp_path)
    ctx.cached(("faces", "yunet", "sface"), lambda: _TableEmbedder(table))
    ann = {"_kf": list(range(n)), "_main": faces or [_frontal_face()] * n, "_tracked": [False] * n}
    return identity_consistency(clip, ann, params, ctx)


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _person(direction, n, rng, noise=0.005):
    return _unit(direction + noise * rng.normal(size=(n, len(direction))))


def test_half_half_identity_switch_is_rejected_and_a_turning_head_kept(tmp_path):
    rng = np.random.default_rng(0)
    a, c = np.eye(64)[0], np.eye(64)[1]
    b = _unit(0.33 * a + np.sqrt(1 - 0.33**2) * c)  # another person: cos(a, b) = 0.33
    switch = np.concatenate([_person(a, 6, rng), _person(b, 6, rng)])
    out = _run_identity(tmp_path, switch)
    assert isinstance(out, Reject) and out.reason == "identity_inconsistent"
    assert out.annotations["id_split_similarity"] < 0.363 and out.annotations["id_split_frame"] == 6
    # the medoid test alone misses it: every face is above min_similarity (0.3) to the medoid
    assert out.annotations["id_outlier_fraction"] == 0.0
    # one person turning: neighbouring keyframes alike, first and last far apart (cos 0.17)
    angle = np.linspace(0, np.radians(80), 12)[:, None]
    turn = _unit(np.cos(angle) * a + np.sin(angle) * c + 0.02 * rng.normal(size=(12, 64)))
    kept = _run_identity(tmp_path, turn)
    assert isinstance(kept, dict) and kept["id_split_similarity"] > 0.9
    assert turn[0] @ turn[-1] < 0.363  # ... which a first-vs-last comparison would have called a switch
    # one odd keyframe is neither a switch (3 faces a side) nor enough outliers (1 of 12 <= 20 %)
    glitch = _person(a, 12, rng)
    glitch[5] = c
    kept = _run_identity(tmp_path, glitch)
    assert isinstance(kept, dict) and kept["id_outlier_fraction"] == pytest.approx(1 / 12)
    few = _person(a, 4, rng)
    few[2] = c  # 25 % of four faces, but one face: not another person
    assert isinstance(_run_identity(tmp_path, few), dict)
    scattered = _person(a, 10, rng)
    scattered[[2, 5, 8]] = c  # someone else on three scattered keyframes: no split isolates them
    out = _run_identity(tmp_path, scattered)
    assert isinstance(out, Reject) and out.annotations["id_outlier_fraction"] == pytest.approx(0.3)
    assert out.annotations["id_split_similarity"] > 0.9
    last = _person(a, 12, rng)
    last[-1] = c  # an odd last keyframe is a "switch" only to a test that allows one-face segments
    assert split_similarity(last, 1) == (pytest.approx(0.0, abs=0.05), 11)
    assert split_similarity(last, 3)[0] > 0.9


def test_profile_faces_are_not_compared(tmp_path):
    rng = np.random.default_rng(1)
    a, c = np.eye(64)[0], np.eye(64)[1]
    table = np.concatenate([_person(a, 8, rng), _person(c, 4, rng)])  # the last 4 unlike the rest ...
    faces = [_frontal_face()] * 8 + [_frontal_face(yaw_offset=2.0)] * 4  # ... because they are profiles
    kept = _run_identity(tmp_path, table, faces)
    assert isinstance(kept, dict) and kept["id_compared"] == 8
    out = _run_identity(tmp_path, table, faces, IdentityParams(max_yaw=None))
    assert isinstance(out, Reject) and out.reason == "identity_inconsistent"


# -- captions ----------------------------------------------------------------------------------------


def test_caption_reply_parsing_and_template_actions():
    assert parse_reply('```json\n{"description": "A man talks.", "action": "talking"}\n```') == ("A man talks.", "talking")
    assert parse_reply("Just prose.") == ("Just prose.", "")
    assert template_action({"yaw": [0, 10, 30, 40]}) == "turning head to the image right"
    assert template_action({"yaw": [0, 2, 1], "pitch": [0, 15, -2]}) == "nodding"
    assert template_action({"yaw": [0, 1], "motion_intensity": 0.1}) == "holding still"
