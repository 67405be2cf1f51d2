"""The values that flow through a curation run: a clip segment, a rejection, the per-process context.

A stage is a pure function of a `Clip` and the annotations gathered so far; it returns new
annotations (a dict) or a `Reject`. Annotation keys starting with `_` are intermediate results (face
tracks, embeddings) handed to later stages and never written to the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Every reason a clip can be rejected for; the manifest's `reject_reason` is one of these or null.
REJECT_REASONS: dict[str, str] = {
    "unreadable": "the file could not be opened or decoded (corrupt, truncated to nothing, not a video)",
    "too_short": "the scene segment is shorter than the preset's minimum duration",
    "low_resolution": "the frame's short side is below the preset's minimum",
    "low_quality": "blurred (low variance of Laplacian, wide edge blur), too dark/bright or with too many clipped pixels",
    "text_overlay": "burned-in text (subtitles, captions, watermarks) found by OCR",
    "no_face": "too few keyframes contain a face",
    "multiple_faces": "too many keyframes contain more than one sizeable face",
    "small_face": "the face covers too little of the frame",
    "static_angle": "the head barely turns (yaw, and pitch / roll where the preset asks, vary less than its minimum)",
    "identity_inconsistent": "the face changes identity within the clip (a switch, or faces unlike the clip's medoid)",
    "resampled_out": "dropped by motion-intensity resampling (subsample mode) to flatten the histogram",
    "error": "a stage raised an unexpected exception (reject_detail holds it); the run went on",
}


@dataclass
class Clip:
    """One scene segment of one source video, decoded into memory.

    `frames` are RGB uint8 (T, H, W, 3) at the decode resolution; `scale` maps them back to the source
    (source pixels = decode pixels * scale). `meta` carries per-source fields from a list input
    (e.g. `prompt`, `action`) for captioners that use them.
    """

    clip_id: str
    source_path: str
    segment: int
    start_frame: int
    frames: np.ndarray
    fps: float
    source_size: tuple[int, int]  # (width, height) of the source video
    scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded frames."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


@dataclass
class Reject:
    """A stage's verdict that a clip does not belong in the set, with the values that decided it."""

    reason: str
    detail: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}")


class Context:
    """What a stage may use besides its clip: the output folder for artifacts and lazily built models.

    One context lives per worker process; models are built on first use and reused for every clip.
    """

    def __init__(self, out_dir: str | Path, threads: int = 1):
        self.out_dir = Path(out_dir)
        self.threads = threads
        self._cache: dict[Any, Any] = {}

    def cached(self, key: Any, build):
        """Return the object stored under `key`, building it with `build()` the first time."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def artifact(self, kind: str, clip_id: str, suffix: str) -> Path:
        """Path of a per-clip artifact, `OUT/<kind>/<clip_id><suffix>` (folder created)."""
        folder = self.out_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{clip_id}{suffix}"
