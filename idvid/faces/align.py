"""Alignment of a face to the 112x112 ArcFace 5-point template.

Recognition models (SFace, ArcFace) were trained on crops where the eyes, nose tip and mouth corners
sit at fixed positions. We fit the similarity transform (rotation, uniform scale, translation; no shear)
that maps the detected 5 points onto the template in the least-squares sense (Umeyama 1991, closed form)
and warp the image with it.
"""

from __future__ import annotations

import cv2
import numpy as np

# (5, 2) x/y in a 112x112 crop: right eye (image left), left eye, nose tip, right / left mouth corner
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
CROP_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3 matrix M, dst ~ M @ [src; 1]) mapping points `src` (N,2) to `dst` (N,2).

    Umeyama's closed form: centre both sets, SVD of the cross-covariance gives the rotation (with a
    reflection guard), the scale is trace(D S) / var(src).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are all the same point; no transform is defined")
    cov = xd.T @ xs / len(src)  # (2, 2)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # best fit would be a reflection: flip the weakest axis
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (d * sign).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(
    image: np.ndarray, kps: np.ndarray, size: int = CROP_SIZE, template: np.ndarray = ARCFACE_TEMPLATE
) -> np.ndarray:
    """Warp `image` (H, W, C) so the 5 keypoints `kps` (5, 2) land on `template` (scaled to `size`).

    Returns a (size, size, C) crop of the same dtype; pixels outside the image are replicated from its
    edge (a face near the border keeps plausible surroundings rather than black bars).
    """
    kps = np.asarray(kps, np.float64).reshape(-1, 2)
    if kps.shape != (5, 2):
        raise ValueError(f"need 5 keypoints, got shape {kps.shape}")
    dst = np.asarray(template, np.float64) * (size / CROP_SIZE)
    m = similarity_transform(kps, dst)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
