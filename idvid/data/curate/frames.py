"""Small helpers shared by stages: evenly spaced frame indices, grayscale at a fixed analysis size."""

from __future__ import annotations

import cv2
import numpy as np


def even_indices(n: int, k: int) -> list[int]:
    """`k` frame indices spread evenly over `n` frames (all of them when n <= k), first and last included."""
    if n <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n // 2]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so the short side is `short` px (area interpolation when shrinking, linear otherwise)."""
    h, w = img.shape[:2]
    s = short / min(h, w)
    if abs(s - 1.0) < 1e-6:
        return img
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def resize_long_side(img: np.ndarray, long: int) -> tuple[np.ndarray, float]:
    """Shrink so the long side is at most `long` px; returns (image, factor original/returned)."""
    h, w = img.shape[:2]
    if max(h, w) <= long:
        return img, 1.0
    s = long / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, w / small.shape[1]


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
