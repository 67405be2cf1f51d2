"""Metrics on constructed inputs whose answer is known by hand."""

import numpy as np
import pytest

from idvid.evaluate import cosine_clamped, frechet_distance, per_frame_face_fid, sample_frame_indices
from idvid.evaluate.facesim import facesim_from_embeddings
from idvid.evaluate.identity_consistency import consistency_from_embeddings


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def test_frame_sampler_matches_linspace_protocol():
    np.testing.assert_array_equal(sample_frame_indices(49, 16)[:4], [0, 3, 6, 9])
    assert sample_frame_indices(49, 16)[-1] == 48
    np.testing.assert_array_equal(sample_frame_indices(4, 6), [0, 0, 1, 1, 2, 3])


def test_facesim_clamps_negative_cosines_and_skips_faceless_frames():
    ref = _unit([1, 0, 0])
    frames = np.array([
        _unit([1, 0, 0]),                 # cos 1
        _unit([1, 1, 0]),                 # cos 1/sqrt(2)
        _unit([-1, 0, 0]),                # cos -1 -> clamped to 0
        [np.nan, np.nan, np.nan],         # no face: skipped
    ])
    res = facesim_from_embeddings(ref, frames)
    assert res.score == pytest.approx((1 + 2**-0.5 + 0) / 3)
    assert res.face_frames == pytest.approx(0.75)
    assert res.per_frame[3] is None and res.per_frame[2] == 0.0


def test_facesim_without_any_face_is_zero_with_zero_face_frames():
    res = facesim_from_embeddings(_unit([1, 0]), np.full((3, 2), np.nan))
    assert res.score == 0.0 and res.face_frames == 0.0


def test_cosine_clamped_is_scale_invariant():
    assert cosine_clamped(np.array([2.0, 0]), np.array([0.5, 0.5])) == pytest.approx(2**-0.5)


def test_identity_consistency_flags_an_identity_switch():
    a, b = _unit([1, 0, 0]), _unit([0, 1, 0])
    steady = consistency_from_embeddings(np.stack([a, a, _unit([1, 0.1, 0]), a]), threshold=0.5)
    assert steady.score == pytest.approx((1 + np.cos(np.arctan(0.1)) + 1) / 3)
    assert steady.consistent_fraction == 1.0
    switch = consistency_from_embeddings(np.stack([a, a, b, b]), threshold=0.5)
    assert switch.score == pytest.approx(1 / 3) and switch.consistent_fraction == pytest.approx(1 / 3)
    assert switch.min_similarity == 0.0
    lonely = consistency_from_embeddings(np.stack([a, [np.nan] * 3]), threshold=0.5)
    assert lonely.score is None and lonely.face_frames == 0.5


def test_per_frame_face_fid_is_squared_feature_distance():
    ref = np.array([1.0, 2.0])
    frames = np.array([[1.0, 2.0], [4.0, 6.0], [np.nan, np.nan]])
    assert per_frame_face_fid(ref, frames) == pytest.approx((0 + 25) / 2)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 2))
    # N(0, I) vs N(m, 4I): |m|^2 + tr(I + 4I - 2*2I) = |m|^2 + 2
    y = 2.0 * rng.standard_normal((20000, 2)) + np.array([3.0, 4.0])
    assert frechet_distance(x, y) == pytest.approx(25 + 2, rel=0.03)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(x[:1], y)
