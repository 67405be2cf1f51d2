"""Stages `resolution` and `quality`: classical, documented measures (no learned IQA model needed).

* resolution: the source's short side (pixels) against a minimum (Human-Motion removes videos below 512).
* sharpness: variance of the Laplacian of the grayscale frame (Pech-Pacheco et al. 2000), the median
  over sampled frames. Frames larger than `analysis_short_side` are first shrunk to it, so the number
  is comparable across resolutions (smaller ones are measured as they are: upscaling would fake blur).
  Heavy blur removes the high frequencies the Laplacian responds to — but so does smooth content, so
  on its own it cannot tell a blurred frame from a plain one.
* edge blur: a no-reference measure relative to the frame itself. Following the re-blur idea of Crete
  et al. 2007 ("The blur effect: perception and estimation with a new no-reference perceptual blur
  metric"), the frame is blurred again — Gaussian, sigma_r = `reblur_sigma` px — and we measure how
  much its gradients drop: a sharp edge loses a lot, an already blurred one little. As in Zhuo & Sim
  2011 ("Defocus map estimation from a single image"), the ratio R = |grad I| / |grad I_reblurred| at
  an edge of Gaussian blur sigma is sqrt(sigma^2 + sigma_r^2) / sigma, so sigma = sigma_r / sqrt(R^2 - 1)
  — a width in pixels that does not depend on the edge's contrast. Edges are the `edge_fraction`
  (5 %) of pixels with the strongest Sobel gradient; the frame's edge blur is the median sigma over
  them (clipped at 50 px), the clip's the median over sampled frames, in pixels at the analysis size.
  Measured: sharp camera photos ~0.5 px, the same photos Gaussian-blurred by 1 / 2 / 3 / 4 px (at the
  analysis size) 1.0 / 1.9 / 2.8 / 3.6 px; blurred step edges within 0.3 px of their sigma. The
  default `max_edge_blur` (3 px at 360 px, ~6 px on 720p footage) rejects heavy blur only; on textured
  camera footage `min_sharpness` is the stricter test (the same photos fall below 30 from sigma ~1.5),
  on smooth content only the edge blur separates the two (`idvid.synth` heads rendered at 256 px and
  scaled to 512: variance of Laplacian 4-17 sharp, 1-5 blurred by sigma 6; edge blur 1.9-2.7 px sharp,
  4.3-5.2 px blurred).
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
    max_edge_blur: float = param(3.0, lo=0.0,
                                 doc="maximum median edge blur (Gaussian sigma, px at the analysis size)")
    reblur_sigma: float = param(2.0, lo=0.3, hi=10.0, doc="sigma of the re-blur the edge blur is measured against")
    edge_fraction: float = param(0.05, lo=0.001, hi=0.5,
                                 doc="fraction of pixels, strongest gradients first, counted as edges")
    min_brightness: float = param(30.0, lo=0.0, hi=255.0, doc="minimum mean luma")
    max_brightness: float = param(225.0, lo=0.0, hi=255.0, doc="maximum mean luma")
    max_clipped_fraction: float = param(0.25, lo=0.0, hi=1.0, doc="maximum fraction of clipped pixels")


def sharpness(gray_img: np.ndarray) -> float:
    """Variance of the Laplacian (3x3 aperture) of a grayscale uint8 image."""
    return float(cv2.Laplacian(gray_img, cv2.CV_64F, ksize=1).var())


def _gradient(img: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(img, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(img, cv2.CV_64F, 0, 1, ksize=3))


def edge_blur(gray_img: np.ndarray, reblur_sigma: float = 2.0, edge_fraction: float = 0.05) -> float:
    """Median Gaussian blur width (px) of the strongest edges of a grayscale image, from how much their
    gradient drops when the image is blurred again (see the module docstring); NaN on a flat image."""
    f = gray_img.astype(np.float64)
    g = _gradient(f)
    cut = np.quantile(g, 1.0 - edge_fraction)
    edges = g >= max(cut, 1e-6)
    if not edges.any():
        return float("nan")
    ratio = g[edges] / np.maximum(_gradient(cv2.GaussianBlur(f, (0, 0), reblur_sigma))[edges], 1e-9)
    sigma = reblur_sigma / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-6))
    return float(np.median(np.minimum(sigma, 50.0)))


def exposure(gray_img: np.ndarray) -> tuple[float, float]:
    """(mean luma, fraction of pixels at <= 2 or >= 253)."""
    g = gray_img
    clipped = np.count_nonzero((g <= 2) | (g >= 253)) / g.size
    return float(g.mean()), float(clipped)


@stage("quality", "clip", QualityParams,
       {"sharpness": pa.float64(), "edge_blur": pa.float64(), "brightness": pa.float64(),
        "clipped_fraction": pa.float64()},
       reasons=("low_quality",))
def quality(clip: Clip, ann: dict, p: QualityParams, ctx: Context) -> dict | Reject:
    """Reject blurred (variance of Laplacian, edge blur) and under/over-exposed clips (mean luma,
    clipped pixels)."""
    sharp, blur_px, bright, clipped = [], [], [], []
    for i in even_indices(clip.num_frames, p.frames):
        g = gray(clip.frames[i])
        if min(g.shape) > p.analysis_short_side:  # shrink only: upscaling would fake blur
            g = resize_short_side(g, p.analysis_short_side)
        sharp.append(sharpness(g))
        blur_px.append(edge_blur(g, p.reblur_sigma, p.edge_fraction))
        b, c = exposure(g)
        bright.append(b)
        clipped.append(c)
    blur_px = [b for b in blur_px if np.isfinite(b)]
    out = {"sharpness": float(np.median(sharp)), "edge_blur": float(np.median(blur_px)) if blur_px else None,
           "brightness": float(np.mean(bright)), "clipped_fraction": float(np.mean(clipped))}
    if out["sharpness"] < p.min_sharpness:
        return Reject("low_quality", f"blurred: sharpness {out['sharpness']:.1f} < {p.min_sharpness}", out)
    if out["edge_blur"] is not None and out["edge_blur"] > p.max_edge_blur:
        return Reject("low_quality", f"blurred: edge blur {out['edge_blur']:.2f} px > {p.max_edge_blur}", out)
    if not p.min_brightness <= out["brightness"] <= p.max_brightness:
        return Reject("low_quality", f"exposure: mean luma {out['brightness']:.0f}", out)
    if out["clipped_fraction"] > p.max_clipped_fraction:
        return Reject("low_quality", f"exposure: {out['clipped_fraction']:.0%} clipped pixels", out)
    return out
