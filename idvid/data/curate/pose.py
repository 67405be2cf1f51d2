"""Stages `head_pose` and `angle_variation` (MoFE's LFA: per-frame face angles, reject static ones).

`head_pose` estimates (yaw, pitch, roll) in degrees of the main face on keyframes and interpolates them
to every frame. Convention of `idvid.faces.pose`: yaw > 0 nose to the image's right, pitch > 0 nose up,
roll > 0 clockwise. Methods (`method`):

* `nose-offset` (default): closed form from the detector's 5 keypoints, after Gee & Cipolla (1994,
  "Determining the gaze of faces in images"): roll is the angle of the eye line; with the eyes
  levelled, the nose tip's offset from the eye midpoint, in units of the inter-ocular distance, is the
  weak-perspective projection of the generic 3D face of `idvid.faces.pose` (eye centres 58 mm apart,
  35.5 mm behind and 33 mm above the nose tip) — its sideways part gives yaw, its downward part pitch.
  A few Newton steps then solve the exact rotation (which matters when roll and pitch combine). No
  mouth points: they move with expressions.
* `pnp5`: `cv2.solvePnP` of the same 5 keypoints against the generic face (`FaceAnalyzer` "kps5").
  The 5-point problem is ill-conditioned: mouth-corner noise leaks into yaw and roll.
* `pnp68`: dlib's 68 landmarks + solvePnP (slower; the usual choice on camera photos).

Measured on `idvid.synth` renders (120 clips, YuNet keypoints, keyframes at 4 fps): median yaw error
3.8° for `nose-offset` against 4.4° for `pnp5`; the measured yaw spread is at most 9.6° on heads that
do not turn and at least 17.3° on heads that do (`pnp5`: 9.7° and 10.8°). Pitch is weak from either:
the detector's nose keypoint hardly moves when a rendered head nods (slope 0.13 against the true
pitch) — which is why `angle_variation` keys on yaw by default.

`angle_variation` measures how much the head turns: the spread (95th minus 5th percentile) over
keyframes of the yaw, after a running median over `smooth` keyframes (one keyframe's detector glitch
is not a turn). A clip whose yaw spread stays below `min_yaw_span` (12°) is `static_angle`. Pitch and
roll spreads are measured and reported (`pitch_span`, `roll_span`); setting `min_pitch_span` /
`min_roll_span` makes a clip that nods / tilts that much count as moving too. `min_peak_yaw` can also
demand a large angle somewhere, which is what the LFA set is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.tracking import interpolate
from idvid.data.curate.types import Clip, Context, Reject
from idvid.faces.pose import MODEL_POINTS_5, rotation_from_angles

# the generic face of idvid.faces.pose, seen from the nose tip: eye centres (mm)
_EYE_HALF = float(MODEL_POINTS_5[1, 0] - MODEL_POINTS_5[0, 0]) / 2  # 29: half the inter-ocular distance
_NOSE_DY = float(MODEL_POINTS_5[2, 1] - MODEL_POINTS_5[:2, 1].mean())  # 33: nose tip below the eye line
_NOSE_DZ = float(MODEL_POINTS_5[2, 2] - MODEL_POINTS_5[:2, 2].mean())  # -35.5: nose tip in front of the eyes
_R = float(np.hypot(_NOSE_DY, _NOSE_DZ))
_PSI = float(np.arctan2(-_NOSE_DZ, _NOSE_DY))
_EYE_VEC = np.array([2 * _EYE_HALF, 0.0, 0.0])  # image-left eye to image-right eye
_NOSE_VEC = np.array([0.0, _NOSE_DY, _NOSE_DZ])  # eye midpoint to nose tip


def _closed_form(qx: float, qy: float) -> tuple[float, float]:
    """(a, b) = (-yaw, -pitch) in radians for a levelled face (roll 0): with R_y(a) R_x(b) the
    nose-from-eye-midpoint vector (0, dy, dz) projects, per inter-ocular distance 2h cos a, to
    qx = tan a (dy sin b + dz cos b) / 2h and qy = (dy cos b - dz sin b) / (2h cos a); a few
    fixed-point steps solve it (b from qy given a, then a from qx given b)."""
    a = b = 0.0
    for _ in range(5):
        b = _PSI - np.arccos(np.clip(qy * 2 * _EYE_HALF * np.cos(a) / _R, -1.0, 1.0))
        z = _NOSE_DY * np.sin(b) + _NOSE_DZ * np.cos(b)
        a = np.arctan(2 * _EYE_HALF * qx / z) if z < 0 else np.copysign(np.pi / 2, -qx)
    return float(a), float(b)


def _project(angles: np.ndarray) -> np.ndarray:
    """Weak-perspective image of the eye vector and the nose-from-eye-midpoint vector, per unit scale:
    (ex, ey, nx, ny) for (yaw, pitch, roll) in degrees."""
    rot = rotation_from_angles(*angles)
    return np.concatenate([(rot @ _EYE_VEC)[:2], (rot @ _NOSE_VEC)[:2]])


def pose_from_nose_offset(kps: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 5 keypoints (eye image-left, eye image-right, nose tip, mouth
    corners; the mouth is not used): the rotation and scale under which the generic face's eye vector
    and nose-from-eye-midpoint vector project onto the observed ones (4 equations, 4 unknowns).

    Started from the closed form for a levelled face (roll = the eye line's angle) and refined by a few
    Newton steps, which matter only when roll and pitch combine.
    """
    k = np.asarray(kps, np.float64)
    eye = k[1] - k[0]
    iod = float(np.hypot(*eye))
    if not iod > 0:
        return (np.nan, np.nan, np.nan)
    nose = k[2] - (k[0] + k[1]) / 2
    obs = np.concatenate([eye, nose]) / iod
    u = eye / iod  # along the eye line
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    a, b = _closed_form(float(nose @ u) / iod, float(nose @ v) / iod)
    x = np.array([-np.degrees(a), -np.degrees(b), np.degrees(np.arctan2(eye[1], eye[0])), 0.0])
    x[3] = np.log(1.0 / np.hypot(*_project(x[:3])[:2]))  # log scale: the eye vector's length
    for _ in range(4):
        f = np.exp(x[3]) * _project(x[:3]) - obs
        jac = np.empty((4, 4))
        for j in range(4):
            dx = np.zeros(4)
            dx[j] = 1e-4 if j == 3 else 1e-2
            y = x + dx
            jac[:, j] = (np.exp(y[3]) * _project(y[:3]) - obs - f) / dx[j]
        step = np.linalg.lstsq(jac, -f, rcond=None)[0]
        if not np.all(np.isfinite(step)):
            break
        x = x + np.clip(step, -10.0, 10.0)
    return float(x[0]), float(x[1]), float(x[2])


@dataclass(frozen=True)
class HeadPoseParams:
    method: str = param("nose-offset", choices=("nose-offset", "pnp5", "pnp68"),
                        doc="closed form from the 5 keypoints' nose offset (default), solvePnP of the 5 "
                            "keypoints, or dlib 68 landmarks + solvePnP (slow)")


def _per_frame(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 2) for v in values]


@stage("head_pose", "clip", HeadPoseParams,
       {"yaw": pa.list_(pa.float32()), "pitch": pa.list_(pa.float32()), "roll": pa.list_(pa.float32()),
        "yaw_mean": pa.float64(), "pitch_mean": pa.float64(), "roll_mean": pa.float64()},
       needs=("faces",))
def head_pose(clip: Clip, ann: dict, p: HeadPoseParams, ctx: Context) -> dict:
    """Per-frame yaw/pitch/roll of the main face (estimated on keyframes, interpolated between)."""
    if p.method == "nose-offset":
        def estimate(image, face):
            return pose_from_nose_offset(face.kps)
    else:
        from idvid.faces import FaceAnalyzer

        source = "kps5" if p.method == "pnp5" else "landmarks68"
        fa = ctx.cached(("faces-pose", source), lambda: FaceAnalyzer(pose_from=source, threads=ctx.threads))
        estimate = fa.head_pose
    kf = ann["_kf"]
    angles = np.full((len(kf), 3), np.nan)
    for k, (i, face) in enumerate(zip(kf, ann["_main"], strict=True)):
        if face is not None:
            angles[k] = estimate(clip.frames[i], face)
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
    min_yaw_span: float = param(12.0, lo=0.0, hi=180.0,
                                doc="degrees of yaw spread (p95 - p5) for the head to count as turning")
    min_pitch_span: float | None = param(None, lo=0.0, hi=180.0,
                                         doc="also count a pitch spread this large as moving (null: off)")
    min_roll_span: float | None = param(None, lo=0.0, hi=180.0,
                                        doc="also count a roll spread this large as moving (null: off)")
    min_peak_yaw: float = param(0.0, lo=0.0, hi=90.0, doc="also require |yaw| to reach this somewhere")
    smooth: int = param(3, lo=1, hi=15, doc="running median over this many keyframes first (1: off)")


def spread(values: np.ndarray) -> float:
    """95th minus 5th percentile, ignoring NaN (0 when fewer than two values)."""
    v = values[~np.isnan(values)]
    return float(np.percentile(v, 95) - np.percentile(v, 5)) if len(v) >= 2 else 0.0


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Median of each value and its neighbours (`width` values centred on it, fewer at the ends),
    ignoring NaN; NaN stays NaN."""
    v = np.asarray(values, np.float64)
    if width <= 1:
        return v.copy()
    half = width // 2
    out = np.full_like(v, np.nan)
    for i in np.flatnonzero(np.isfinite(v)):
        w = v[max(0, i - half): i + half + 1]
        out[i] = np.median(w[np.isfinite(w)])
    return out


@stage("angle_variation", "clip", AngleVariationParams,
       {"yaw_span": pa.float64(), "pitch_span": pa.float64(), "roll_span": pa.float64(), "yaw_peak": pa.float64()},
       needs=("head_pose",), reasons=("static_angle",))
def angle_variation(clip: Clip, ann: dict, p: AngleVariationParams, ctx: Context) -> dict | Reject:
    """Reject clips whose head barely turns (yaw spread below the minimum; optionally pitch and roll)."""
    a = np.stack([running_median(ann["_kf_angles"][:, j], p.smooth) for j in range(3)], axis=1)
    yaw = a[:, 0]
    out = {"yaw_span": spread(yaw), "pitch_span": spread(a[:, 1]), "roll_span": spread(a[:, 2]),
           "yaw_peak": float(np.nanmax(np.abs(yaw))) if np.isfinite(yaw).any() else 0.0}
    moving = out["yaw_span"] >= p.min_yaw_span
    moving |= p.min_pitch_span is not None and out["pitch_span"] >= p.min_pitch_span
    moving |= p.min_roll_span is not None and out["roll_span"] >= p.min_roll_span
    if not moving:
        return Reject("static_angle", f"yaw spread {out['yaw_span']:.1f} < {p.min_yaw_span} deg "
                                      f"(pitch {out['pitch_span']:.1f}, roll {out['roll_span']:.1f})", out)
    if out["yaw_peak"] < p.min_peak_yaw:
        return Reject("static_angle", f"|yaw| never reaches {p.min_peak_yaw} deg", out)
    return out
