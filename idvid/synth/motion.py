"""Actions: head-pose trajectories and expressions over time, and their ground-truth motion intensity.

A `Motion` is an action plus its parameters (speed, start pose, direction, an optional secondary
expression); `trajectory` turns it into per-frame poses and expressions. Time is in seconds
(frame i at i / fps), so a clip rendered at a higher frame rate shows the same motion sampled more finely.
`speed` (0.5 .. 2) scales how fast and how far things move.

Motion intensity (ground truth, 0..20)
--------------------------------------
Following MotionCharacter's optical-flow definition, but on exact point tracks instead of estimated
flow: for each pair of consecutive frames take the image displacement of ~200 tracked face points
(a grid over the face surface plus eyelid, brow, lip and chin points that move with the expression),
keeping points visible in both frames; measured in pixels of a 128-pixel frame whatever the output size.
Keep the displacements at or above their mean (the moving part), average them; average over pairs;
multiply by `INTENSITY_SCALE`; cap at 20. A clip with no motion scores exactly 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from idvid.synth.head import Expression

ACTIONS = (
    "static",
    "talking",
    "smiling",
    "laughing",
    "blinking",
    "nodding",
    "shaking_head",
    "turning_left",
    "turning_right",
    "looking_up",
    "looking_down",
    "tilting_head",
    "surprised",
)
HEAD_ACTIONS = ("nodding", "shaking_head", "turning_left", "turning_right", "looking_up", "looking_down",
                "tilting_head")
SECONDARY = ("", "smiling", "talking", "blinking")
MAX_YAW = 75.0
INTENSITY_SCALE = 2.0
INTENSITY_CAP = 20.0
_MOTION_STREAM = 0x30


@dataclass(frozen=True)
class Motion:
    action: str
    speed: float  # 0.5 .. 2: how fast and how far
    yaw0: float  # start pose, degrees
    pitch0: float
    roll0: float
    direction: float  # -1 / +1 where an action has a side (tilting), else +1
    phase: float  # 0 .. 2 pi, phase of oscillations
    secondary: str  # "" or an expression played on top of a head action
    idle_blinks: bool

    def to_dict(self) -> dict:
        return asdict(self)


def sample_motion(identity_seed: int, clip_index: int) -> Motion:
    """The motion of one clip: a pure function of (identity seed, clip index)."""
    rng = np.random.default_rng(np.random.SeedSequence([identity_seed, clip_index, _MOTION_STREAM]))
    action = ACTIONS[int(rng.integers(len(ACTIONS)))]
    speed = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    side = float(rng.choice([-1.0, 1.0]))
    if action == "static" and rng.uniform() < 0.35:
        yaw0 = side * rng.uniform(20, 60)  # still, but seen three-quarter
    elif action in ("turning_left", "turning_right"):
        yaw0 = rng.uniform(-10, 10)
    elif rng.uniform() < 0.25:
        yaw0 = side * rng.uniform(15, 40)
    else:
        yaw0 = rng.uniform(-15, 15)
    secondary = ""
    if action in HEAD_ACTIONS and rng.uniform() < 0.4:
        secondary = SECONDARY[1 + int(rng.integers(len(SECONDARY) - 1))]
    return Motion(
        action=action,
        speed=speed,
        yaw0=float(yaw0),
        pitch0=float(rng.uniform(-8, 8)),
        roll0=float(rng.uniform(-5, 5)),
        direction=side if action == "tilting_head" else 1.0,
        phase=float(rng.uniform(0, 2 * np.pi)),
        secondary=secondary,
        idle_blinks=bool(action != "static" and rng.uniform() < 0.5),
    )


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _blinks(t: np.ndarray, period: float, offset: float) -> np.ndarray:
    """Eyelid closure 0..1: a 0.25 s triangular blink every `period` seconds."""
    ph = (t + offset) % period
    return np.clip(1 - np.abs(ph - 0.125) / 0.125, 0, 1)


def trajectory(m: Motion, num_frames: int, fps: float) -> tuple[np.ndarray, list[Expression]]:
    """Per-frame poses (T, 3) = (yaw, pitch, roll) in degrees and expressions."""
    t = np.arange(num_frames) / float(fps)
    s = m.speed
    yaw = np.full_like(t, m.yaw0)
    pitch = np.full_like(t, m.pitch0)
    roll = np.full_like(t, m.roll0)
    z = np.zeros_like(t)
    ex = {k: z.copy() for k in ("mouth_open", "smile", "blink", "brow_raise", "eye_wide", "squint", "gaze_x", "gaze_y")}
    ramp = _smooth(t * s / 1.2)  # 0 -> 1 over 1.2 s at speed 1

    def expression(kind: str) -> None:
        if kind == "talking":
            ex["mouth_open"] += (0.2 + 0.12 * s) * (1 - np.cos(2 * np.pi * 2.2 * s * t + m.phase)) / 2 + 0.05
            pitch[:] += 1.5 * s * np.sin(2 * np.pi * 0.9 * t + m.phase)
        elif kind == "smiling":
            ex["smile"] += np.minimum(1.0, 0.55 + 0.3 * s) * ramp
        elif kind == "blinking":
            ex["blink"] = np.maximum(ex["blink"], _blinks(t, 0.9 / s, m.phase / 10))

    a = m.action
    if a in ("talking", "smiling", "blinking"):
        expression(a)
    elif a == "laughing":
        ex["smile"] += ramp
        ex["mouth_open"] += ramp * (0.45 + 0.2 * np.sin(2 * np.pi * 3.0 * s * t + m.phase) * min(s, 1.5))
        ex["squint"] += 0.6 * ramp
        pitch[:] += (3 + 3 * s) * ramp + 2.0 * s * np.abs(np.sin(2 * np.pi * 1.5 * s * t))
    elif a == "surprised":
        r = _smooth(t * s / 0.6)
        ex["brow_raise"] += r
        ex["eye_wide"] += r
        ex["mouth_open"] += 0.55 * r
        pitch[:] += 4 * s * r
    elif a == "nodding":
        pitch[:] += (6 + 6 * s) * np.sin(2 * np.pi * 0.6 * s * t)
    elif a == "shaking_head":
        yaw[:] += (10 + 12 * s) * np.sin(2 * np.pi * 0.6 * s * t)
    elif a in ("turning_left", "turning_right"):
        sign = 1.0 if a == "turning_left" else -1.0  # the person's left is the image's right: yaw > 0
        yaw[:] += sign * (25 + 25 * s) * _smooth(t * s / 1.6)
        ex["gaze_x"] += sign * 0.5 * ramp
    elif a in ("looking_up", "looking_down"):
        sign = 1.0 if a == "looking_up" else -1.0
        pitch[:] += sign * (8 + 8 * s) * ramp
        ex["gaze_y"] -= sign * 0.6 * ramp
        if a == "looking_up":
            ex["brow_raise"] += 0.3 * ramp
    elif a == "tilting_head":
        roll[:] += m.direction * (8 + 8 * s) * ramp
    if m.secondary:
        expression(m.secondary)
    if m.idle_blinks:
        ex["blink"] = np.maximum(ex["blink"], _blinks(t, 2.7, 1.0 + m.phase / 3))
    yaw = np.clip(yaw, -MAX_YAW, MAX_YAW)
    pitch = np.clip(pitch, -30, 30)
    for k in ("mouth_open", "smile", "blink", "brow_raise", "eye_wide", "squint"):
        ex[k] = np.clip(ex[k], -1 if k == "brow_raise" else 0, 1)
    exprs = [Expression(**{k: float(v[i]) for k, v in ex.items()}) for i in range(num_frames)]
    return np.stack([yaw, pitch, roll], axis=1), exprs


def intensity_from_tracks(points: np.ndarray, visible: np.ndarray, size: int) -> float:
    """Motion intensity from tracked image points (T, 2, N) and their visibility (T, N) in a frame of
    `size` pixels (see the module docstring)."""
    if points.shape[0] < 2:
        return 0.0
    disp = np.linalg.norm(np.diff(points, axis=0), axis=1) * (128.0 / size)  # (T-1, N)
    both = visible[1:] & visible[:-1]
    per_pair = []
    for d, v in zip(disp, both, strict=True):
        d = d[v]
        if d.size == 0:
            per_pair.append(0.0)
            continue
        per_pair.append(float(d[d >= d.mean()].mean()))
    return float(min(INTENSITY_CAP, INTENSITY_SCALE * np.mean(per_pair)))
