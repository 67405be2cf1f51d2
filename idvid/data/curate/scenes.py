"""Shot-cut detectors over small frames, fed one frame at a time.

`content` is PySceneDetect's ContentDetector (mean change of hue, saturation and luma between
consecutive frames, default threshold 27 on a 0–255 scale). `histogram` is a dependency-free fallback:
the Bhattacharyya distance between consecutive frames' hue–saturation histograms (0 = same colours,
1 = disjoint), which catches the same hard cuts on the footage this library targets. Both return the
indices of frames that start a new shot.
"""

from __future__ import annotations

import cv2
import numpy as np


class HistogramCuts:
    """Cut where consecutive frames' HS histograms differ by more than `threshold` (Bhattacharyya)."""

    def __init__(self, threshold: float = 0.35, min_gap: int = 8):
        self.threshold = threshold
        self.min_gap = min_gap
        self._prev: np.ndarray | None = None
        self._last_cut = -(10**9)
        self.cuts: list[int] = []

    @staticmethod
    def histogram(frame_bgr: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [24, 16], [0, 180, 0, 256])
        return cv2.normalize(hist, None).astype(np.float32)

    def push(self, index: int, frame_bgr: np.ndarray) -> None:
        hist = self.histogram(frame_bgr)
        if self._prev is not None:
            d = cv2.compareHist(self._prev, hist, cv2.HISTCMP_BHATTACHARYYA)
            if d > self.threshold and index - self._last_cut >= self.min_gap:
                self.cuts.append(index)
                self._last_cut = index
        self._prev = hist

    def finish(self, num_frames: int) -> list[int]:
        return list(self.cuts)


class ContentCuts:
    """PySceneDetect's ContentDetector driven frame by frame (works with its 0.6 and 0.7 APIs)."""

    def __init__(self, threshold: float = 27.0, min_gap: int = 8, fps: float = 30.0):
        from scenedetect import ContentDetector

        self._det = ContentDetector(threshold=threshold, min_scene_len=min_gap)
        self._fps = fps
        self.cuts: list[int] = []
        try:
            from scenedetect import FrameTimecode

            self._tc = lambda i: FrameTimecode(i, fps=fps)
        except ImportError:  # pragma: no cover - old scenedetect took plain frame numbers
            self._tc = lambda i: i

    @staticmethod
    def _frame_number(t) -> int:
        if isinstance(t, int):
            return t
        return int(t.frame_num if hasattr(t, "frame_num") else t.get_frames())

    def push(self, index: int, frame_bgr: np.ndarray) -> None:
        for t in self._det.process_frame(self._tc(index), frame_bgr):
            self.cuts.append(self._frame_number(t))

    def finish(self, num_frames: int) -> list[int]:
        if num_frames > 0:
            for t in self._det.post_process(self._tc(num_frames - 1)):
                self.cuts.append(self._frame_number(t))
        return sorted({c for c in self.cuts if 0 < c < num_frames})


def scenedetect_available() -> bool:
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        return False
    return True


def make_detector(kind: str, fps: float, content_threshold: float, histogram_threshold: float,
                  min_gap: int):
    """`kind` is `content`, `histogram` or `auto` (content when PySceneDetect is installed)."""
    if kind == "auto":
        kind = "content" if scenedetect_available() else "histogram"
    if kind == "content":
        return ContentCuts(content_threshold, min_gap, fps)
    return HistogramCuts(histogram_threshold, min_gap)


def segment_bounds(num_frames: int, cuts: list[int], max_len: int | None) -> list[tuple[int, int]]:
    """[start, end) frame ranges between cuts, long scenes chunked into pieces of at most `max_len`."""
    edges = [0] + sorted(c for c in set(cuts) if 0 < c < num_frames) + [num_frames]
    bounds = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if max_len is None or b - a <= max_len:
            bounds.append((a, b))
            continue
        n = -(-(b - a) // max_len)  # equal chunks, none longer than max_len
        step = (b - a) / n
        for k in range(n):
            bounds.append((a + round(k * step), a + round((k + 1) * step)))
    return [(a, b) for a, b in bounds if b > a]
