"""Stage `motion`: optical-flow motion intensity (MotionCharacter, seed 002, Eqs. 5–7) and the
foreground flow maps its region-aware loss (Eqs. 9–10) weights by.

For frames sampled at `sample_fps` (MotionCharacter samples 4 fps), per consecutive pair i:
  Eq. 5  f_i(x, y)  = |Θ(v_i, v_{i+1})(x, y)|           flow magnitude (OpenCV DIS or Farneback for Θ)
         τ_i        = mean_{x,y} f_i(x, y)               threshold at the pair's mean magnitude
         M_i(x, y)  = [f_i(x, y) > τ_i]                  foreground (moving) pixels
  Eq. 6  f_i,fg     = (1/S) Σ M_i f_i,  S = Σ M_i        mean foreground flow (0 when nothing moves)
  Eq. 7  M          = mean_i f_i,fg                      the clip's motion intensity, capped at 20.
Flow runs on frames shrunk to `flow_short_side` and magnitudes are rescaled to pixels of a frame whose
short side is `reference_side` (512, the Human-Motion training size), so the number does not depend on
the analysis size or the source resolution. RAFT (the paper's Θ) has no shipped weights; DIS is the
default classical substitute.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.atomic import write_npz
from idvid.data.curate.frames import gray, resize_short_side
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context

MOTION_CAP = 20.0


@dataclass(frozen=True)
class MotionParams:
    method: str = param("dis", choices=("dis", "farneback"), doc="OpenCV optical-flow estimator")
    sample_fps: float = param(4.0, lo=0.1, doc="frames are sampled at this rate before flow (paper: 4)")
    flow_short_side: int = param(192, lo=16, doc="flow is computed at this short side")
    reference_side: int = param(512, lo=16, doc="magnitudes are expressed in pixels at this short side")
    cap: float = param(MOTION_CAP, lo=0.0, doc="motion intensity is capped here (paper: 20)")
    save_flow_mask: bool = param(True, doc="write the foreground flow maps OUT/flow/<clip_id>.npz")
    mask_short_side: int = param(64, lo=8, doc="short side of the saved foreground flow maps")


def flow_field(prev_gray: np.ndarray, next_gray: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense optical flow (H, W, 2) in pixels from `prev_gray` to `next_gray` (uint8 grayscale)."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(prev_gray, next_gray, None)


def foreground_flow(magnitude: np.ndarray) -> tuple[np.ndarray, float]:
    """Eqs. 5–6 for one frame pair: (M_i * f_i map, f_i,fg). Pixels above the mean magnitude count."""
    tau = float(magnitude.mean())
    mask = magnitude > tau
    s = int(np.count_nonzero(mask))
    fg = np.where(mask, magnitude, 0.0).astype(np.float32)
    return fg, (float(fg.sum() / s) if s else 0.0)


def motion_intensity(magnitudes: list[np.ndarray] | np.ndarray, cap: float | None = MOTION_CAP
                     ) -> tuple[float, float, list[np.ndarray]]:
    """Eq. 7: (capped intensity, raw intensity, per-pair foreground maps) from per-pair flow magnitudes."""
    maps, values = [], []
    for mag in magnitudes:
        fg, v = foreground_flow(np.asarray(mag, np.float32))
        maps.append(fg)
        values.append(v)
    raw = float(np.mean(values)) if values else 0.0
    return (min(raw, cap) if cap is not None else raw), raw, maps


def sample_indices(num_frames: int, fps: float, sample_fps: float) -> list[int]:
    """Frame indices at `sample_fps` (every frame when the clip's own rate is lower)."""
    step = max(1, round(fps / sample_fps))
    return list(range(0, num_frames, step))


def clip_flow_magnitudes(frames: np.ndarray, idx: list[int], p: MotionParams) -> list[np.ndarray]:
    """Flow magnitudes between consecutive sampled frames, in reference-side pixels."""
    grays = [resize_short_side(gray(frames[i]), p.flow_short_side) for i in idx]
    unit = p.reference_side / min(grays[0].shape)  # analysis pixels -> reference pixels
    mags = []
    for a, b in zip(grays[:-1], grays[1:], strict=True):
        flow = flow_field(a, b, p.method)
        mags.append(np.linalg.norm(flow, axis=-1) * unit)
    return mags


@stage("motion", "clip", MotionParams,
       {"motion_intensity": pa.float64(), "motion_intensity_raw": pa.float64(),
        "motion_pairs": pa.int32(), "flow_mask_path": pa.string()})
def motion(clip: Clip, ann: dict, p: MotionParams, ctx: Context) -> dict:
    """Optical-flow motion intensity (seed 002 Eqs. 5-7, capped) and foreground flow maps."""
    idx = sample_indices(clip.num_frames, clip.fps, p.sample_fps)
    if len(idx) < 2:
        idx = list(range(min(2, clip.num_frames)))
    mags = clip_flow_magnitudes(clip.frames, idx, p) if len(idx) >= 2 else []
    value, raw, maps = motion_intensity(mags, p.cap)
    out = {"motion_intensity": value, "motion_intensity_raw": raw, "motion_pairs": len(mags),
           "flow_mask_path": None}
    if p.save_flow_mask and maps:
        small = np.stack([resize_short_side(m, p.mask_short_side) for m in maps]).astype(np.float16)
        path = ctx.artifact("flow", clip.clip_id, ".npz")
        write_npz(path, fg_flow=small, frame_index=np.asarray(idx[:-1], np.int32),
                        reference_side=np.int32(p.reference_side))
        out["flow_mask_path"] = str(path.relative_to(ctx.out_dir))
    return out

