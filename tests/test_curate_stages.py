"""Curation stages on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from idvid.data.curate.captions import parse_reply, template_action
from idvid.data.curate.crop import crop_window
from idvid.data.curate.frames import even_indices
from idvid.data.curate.identity import cluster_embeddings, medoid, square_crop
from idvid.data.curate.motion import MotionParams, clip_flow_magnitudes, foreground_flow, motion_intensity
from idvid.data.curate.quality import exposure, sharpness
from idvid.data.curate.resample import ResampleParams, flatten_weights, intensity_bins, motion_resample
from idvid.data.curate.scenes import ContentCuts, HistogramCuts, segment_bounds
from idvid.data.curate.testing import blur, burn_text, moving_square, texture, translating
from idvid.data.curate.tracking import associate, fill_gaps, interpolate, iou, main_track, propagate
from idvid.data.curate.types import Context

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


# -- captions ----------------------------------------------------------------------------------------


def test_caption_reply_parsing_and_template_actions():
    assert parse_reply('```json\n{"description": "A man talks.", "action": "talking"}\n```') == ("A man talks.", "talking")
    assert parse_reply("Just prose.") == ("Just prose.", "")
    assert template_action({"yaw": [0, 10, 30, 40]}) == "turning head to the image right"
    assert template_action({"yaw": [0, 2, 1], "pitch": [0, 15, -2]}) == "nodding"
    assert template_action({"yaw": [0, 1], "motion_intensity": 0.1}) == "holding still"
