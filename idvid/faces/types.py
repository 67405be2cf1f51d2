"""Plain data types shared by the face toolkit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    `box` is clipped to the image (a face cut by the border keeps its visible part); `kps` are not.

    `kps` are the 5 alignment points in YuNet/ArcFace order: right eye (on the image's left), left eye,
    nose tip, right mouth corner, left mouth corner. `landmarks68` (iBUG 300-W order) is filled in only
    when a 68-point predictor has been run (see `FaceAnalyzer.landmarks`).
    """

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    kps: np.ndarray  # (5, 2) float32, x/y
    landmarks68: np.ndarray | None = field(default=None, repr=False)  # (68, 2) float32
    detector: str = "yunet"

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def area_ratio(self, image_shape: tuple[int, ...]) -> float:
        """Box area over image area (the box clipped to the image first), in [0, 1]."""
        h, w = image_shape[:2]
        x0, y0 = max(self.box[0], 0.0), max(self.box[1], 0.0)
        x1, y1 = min(self.box[2], float(w)), min(self.box[3], float(h))
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0) / float(h * w)

    def to_dict(self) -> dict:
        """JSON-friendly view (lists of floats)."""
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "kps": np.round(self.kps.astype(float), 2).tolist(),
            "detector": self.detector,
        }
        if self.landmarks68 is not None:
            out["landmarks68"] = np.round(self.landmarks68.astype(float), 2).tolist()
        return out
