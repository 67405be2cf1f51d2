"""Stages `resolution` and `quality`: classical, documented measures (no learned IQA model needed).

* resolution: the source's short side (pixels) against a minimum (Human-Motion removes videos below 512).
* sharpness: variance of the Laplacian of the grayscale frame (Pech-Pacheco et al. 2000), the median
  over sampled frames. Frames larger than `analysis_short_side` are first shrunk to it, so the number
  is comparable across resolutions (smaller ones are measured as they are: upscaling would fake blur).
  Heavy blur removes the high frequencies the Laplacian responds to.
* exposure: mean luma (0–255) within [min_brightness, max_brightness], and the fraction of clipped
  pixels (luma <= 2 or >= 253) at most `max_clipped_fraction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.frames import even_indices, gray, resize_short_side
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context, Reject


@dataclass(frozen=True)
class ResolutionParams:
    min_short_side: int = param(480, lo=1, doc="reject sources whose short side is below this (pixels)")
    min_long_side: int = param(0, lo=0, doc="reject sources whose long side is below this (pixels)")


@stage("resolution", "clip", ResolutionParams, {"short_side": pa.int32()}, reasons=("low_resolution",))
def resolution(clip: Clip, ann: dict, p: ResolutionParams, ctx: Context) -> dict | Reject:
    """Reject sources below the preset's minimum resolution."""
    w, h = clip.source_size
    out = {"short_side": min(w, h)}
    if min(w, h) < p.min_short_side or max(w, h) < p.min_long_side:
        return Reject("low_resolution", f"{w}x{h} below {p.min_short_side}px short side", out)
    return out


@dataclass(frozen=True)
class QualityParams:
    frames: int = param(8, lo=1, hi=256, doc="frames sampled evenly from the clip")
    analysis_short_side: int = param(360, lo=32, doc="larger frames are shrunk to this short side first")
    min_sharpness: float = param(30.0, lo=0.0, doc="minimum median variance of the Laplacian")
    min_brightness: float = param(30.0, lo=0.0, hi=255.0, doc="minimum mean luma")
    max_brightness: float = param(225.0, lo=0.0, hi=255.0, doc="maximum mean luma")
    max_clipped_fraction: float = param(0.25, lo=0.0, hi=1.0, doc="maximum fraction of clipped pixels")


def sharpness(gray_img: np.ndarray) -> float:
    """Variance of the Laplacian (3x3 aperture) of a grayscale uint8 image."""
    return float(cv2.Laplacian(gray_img, cv2.CV_64F, ksize=1).var())


def exposure(gray_img: np.ndarray) -> tuple[float, float]:
    """(mean luma, fraction of pixels at <= 2 or >= 253)."""
    g = gray_img
    clipped = np.count_nonzero((g <= 2) | (g >= 253)) / g.size
    return float(g.mean()), float(clipped)


@stage("quality", "clip", QualityParams,
       {"sharpness": pa.float64(), "brightness": pa.float64(), "clipped_fraction": pa.float64()},
       reasons=("low_quality",))
def quality(clip: Clip, ann: dict, p: QualityParams, ctx: Context) -> dict | Reject:
    """Reject blurred, under/over-exposed clips (variance of Laplacian, mean luma, clipped pixels)."""
    sharp, bright, clipped = [], [], []
    for i in even_indices(clip.num_frames, p.frames):
        g = gray(clip.frames[i])
        if min(g.shape) > p.analysis_short_side:  # shrink only: upscaling would fake blur
            g = resize_short_side(g, p.analysis_short_side)
        sharp.append(sharpness(g))
        b, c = exposure(g)
        bright.append(b)
        clipped.append(c)
    out = {"sharpness": float(np.median(sharp)), "brightness": float(np.mean(bright)),
           "clipped_fraction": float(np.mean(clipped))}
    if out["sharpness"] < p.min_sharpness:
        return Reject("low_quality", f"blurred: sharpness {out['sharpness']:.1f} < {p.min_sharpness}", out)
    if not p.min_brightness <= out["brightness"] <= p.max_brightness:
        return Reject("low_quality", f"exposure: mean luma {out['brightness']:.0f}", out)
    if out["clipped_fraction"] > p.max_clipped_fraction:
        return Reject("low_quality", f"exposure: {out['clipped_fraction']:.0%} clipped pixels", out)
    return out
