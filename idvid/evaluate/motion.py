"""How much a generated video moves: mean optical-flow magnitude.

`mean_flow_magnitude(frames)`: for every consecutive frame pair (t, t+1), dense optical flow from frame t
to frame t+1 on grayscale frames at their own resolution (OpenCV DIS, medium preset, or Farneback — the
estimators of `idvid.data.curate.motion.flow_field`); the flow magnitude `|(dx, dy)|` averaged over all
pixels, then over pairs. The unit is pixels of the given frames per frame step: a 128-px video whose
content shifts 3 px right every frame scores ~3.

Unlike MotionCharacter's motion intensity (`idvid.data.curate.motion`, the curated training label:
frames sampled at 4 fps, only pixels above the mean magnitude, rescaled to a 512-px frame) this counts
every pixel at the video's own frame rate and size, so a still background lowers it — it compares
videos of the same size and frame rate made at different requested intensities, not with the label.
"""

from __future__ import annotations

import numpy as np


def pair_flow_magnitudes(frames: np.ndarray, method: str = "dis") -> np.ndarray:
    """(T-1,) mean flow magnitude, in pixels, of each consecutive pair of (T, H, W, 3) uint8 RGB frames."""
    from idvid.data.curate.frames import gray
    from idvid.data.curate.motion import flow_field

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    grays = [gray(np.ascontiguousarray(f, np.uint8)) for f in frames]
    return np.array([float(np.linalg.norm(flow_field(a, b, method), axis=-1).mean())
                     for a, b in zip(grays[:-1], grays[1:], strict=True)])


def mean_flow_magnitude(frames: np.ndarray, method: str = "dis") -> float:
    """Mean optical-flow magnitude (pixels of the frame, per frame step) over consecutive frame pairs;
    0.0 for fewer than two frames. See the module docstring."""
    if len(frames) < 2:
        return 0.0
    return float(pair_flow_magnitudes(frames, method).mean())


__all__ = ["mean_flow_magnitude", "pair_flow_magnitudes"]
