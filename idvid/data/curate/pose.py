"""Stages `head_pose` and `angle_variation` (MoFE's LFA: per-frame face angles, reject static ones).

`head_pose` estimates (yaw, pitch, roll) in degrees on keyframes with `FaceAnalyzer.head_pose`
(68 dlib landmarks + solvePnP; convention of `idvid.faces.pose`: yaw > 0 nose to the image's right,
pitch > 0 nose up, roll > 0 clockwise) and interpolates them to every frame. `angle_variation` measures
how much the head turns — the spread (95th minus 5th percentile) of yaw, pitch and roll over
keyframes — and rejects clips where none reaches its minimum; it can also demand a large angle somewhere
(`min_peak_yaw`), which is what the LFA set is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from idvid.data.curate.faces import analyzer
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.tracking import interpolate
from idvid.data.curate.types import Clip, Context, Reject


@dataclass(frozen=True)
class HeadPoseParams:
    source: str = param("landmarks68", choices=("landmarks68", "kps5"),
                        doc="68 dlib landmarks (accurate) or the detector's 5 keypoints (fast, coarse)")


def _per_frame(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 2) for v in values]


@stage("head_pose", "clip", HeadPoseParams,
       {"yaw": pa.list_(pa.float32()), "pitch": pa.list_(pa.float32()), "roll": pa.list_(pa.float32()),
        "yaw_mean": pa.float64(), "pitch_mean": pa.float64(), "roll_mean": pa.float64()},
       needs=("faces",))
def head_pose(clip: Clip, ann: dict, p: HeadPoseParams, ctx: Context) -> dict:
    """Per-frame yaw/pitch/roll of the main face (estimated on keyframes, interpolated between)."""
    from idvid.faces import FaceAnalyzer

    fa = analyzer(ctx)
    if p.source == "kps5":
        fa = ctx.cached(("faces-kps5",), lambda: FaceAnalyzer(pose_from="kps5", threads=ctx.threads))
    kf = ann["_kf"]
    angles = np.full((len(kf), 3), np.nan)
    for k, (i, face) in enumerate(zip(kf, ann["_main"], strict=True)):
        if face is not None:
            angles[k] = fa.head_pose(clip.frames[i], face)
    step = kf[1] - kf[0] if len(kf) > 1 else 1
    per_frame = interpolate(kf, angles, clip.num_frames, max_hold=step, max_span=3 * step)
    means = np.nanmean(angles, axis=0) if np.isfinite(angles).any() else [None] * 3
    return {
        "_kf_angles": angles,
        "yaw": _per_frame(per_frame[:, 0]), "pitch": _per_frame(per_frame[:, 1]),
        "roll": _per_frame(per_frame[:, 2]),
        "yaw_mean": None if means[0] is None else float(means[0]),
        "pitch_mean": None if means[1] is None else float(means[1]),
        "roll_mean": None if means[2] is None else float(means[2]),
    }


@dataclass(frozen=True)
class AngleVariationParams:
    min_yaw_span: float = param(10.0, lo=0.0, hi=180.0, doc="degrees of yaw spread (p95 - p5) to count as moving")
    min_pitch_span: float = param(10.0, lo=0.0, hi=180.0, doc="degrees of pitch spread to count as moving")
    min_roll_span: float = param(10.0, lo=0.0, hi=180.0, doc="degrees of roll spread to count as moving")
    min_peak_yaw: float = param(0.0, lo=0.0, hi=90.0, doc="also require |yaw| to reach this somewhere")


def spread(values: np.ndarray) -> float:
    """95th minus 5th percentile, ignoring NaN (0 when fewer than two values)."""
    v = values[~np.isnan(values)]
    return float(np.percentile(v, 95) - np.percentile(v, 5)) if len(v) >= 2 else 0.0


@stage("angle_variation", "clip", AngleVariationParams,
       {"yaw_span": pa.float64(), "pitch_span": pa.float64(), "roll_span": pa.float64(), "yaw_peak": pa.float64()},
       needs=("head_pose",), reasons=("static_angle",))
def angle_variation(clip: Clip, ann: dict, p: AngleVariationParams, ctx: Context) -> dict | Reject:
    """Reject clips whose head angle barely changes (static faces)."""
    a = ann["_kf_angles"]
    yaw = a[:, 0]
    out = {"yaw_span": spread(yaw), "pitch_span": spread(a[:, 1]), "roll_span": spread(a[:, 2]),
           "yaw_peak": float(np.nanmax(np.abs(yaw))) if np.isfinite(yaw).any() else 0.0}
    if out["yaw_span"] < p.min_yaw_span and out["pitch_span"] < p.min_pitch_span and out["roll_span"] < p.min_roll_span:
        return Reject("static_angle", f"spread yaw {out['yaw_span']:.1f}, pitch {out['pitch_span']:.1f}, "
                                      f"roll {out['roll_span']:.1f} deg", out)
    if out["yaw_peak"] < p.min_peak_yaw:
        return Reject("static_angle", f"|yaw| never reaches {p.min_peak_yaw} deg", out)
    return out
