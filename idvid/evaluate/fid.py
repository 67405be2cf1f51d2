"""Face FID, two ways.

`per_frame_face_fid` reproduces what ConsisID's evaluation computes: for every frame it fits a
"distribution" to ONE reference feature vector and ONE frame feature vector (each duplicated so a
covariance can be formed). Both covariances are then zero, so the Fréchet distance reduces to the
squared Euclidean distance between the two feature vectors, averaged over frames. It is a feature
distance, not a distribution distance; we keep it only to match published protocol.

`frechet_distance` is the real set-level Fréchet distance between two sets of features
(`|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)`), e.g. aligned faces of all generated frames versus
all reference/ground-truth faces.

ConsisID uses InceptionV3 pool features, whose weights no pip package ships; idvid's default feature
is the SFace embedding of the aligned face (reported as `face_fid[sface]`).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def per_frame_face_fid(ref_feature: np.ndarray, frame_features: np.ndarray) -> float:
    """ConsisID's per-frame FID: mean over frames of `|f_ref - f_frame|^2` (rows of NaN skipped)."""
    frame_features = np.asarray(frame_features, np.float64)
    keep = ~np.isnan(frame_features).any(axis=1)
    if not keep.any():
        return float("nan")
    diff = frame_features[keep] - np.asarray(ref_feature, np.float64)[None]
    return float((diff**2).sum(axis=1).mean())


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D), N >= 2."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) feature arrays with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 samples to estimate a covariance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product: regularise, as the reference FID code does
        eps = np.eye(a.shape[1]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean))
