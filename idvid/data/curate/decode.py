"""Stages `decode` and `scene_split`: a source file becomes scene segments of decoded RGB frames.

Decoding uses PyAV. The first pass streams the file once, feeding small copies of the frames to the
cut detector and keeping the full frames while they fit in `max_buffer_mb`; a longer file is decoded a
second time, one segment at a time, so memory stays bounded by the longest segment. A file that cannot
be opened or yields no frame raises `Unreadable`; one that breaks off mid-stream keeps the frames
before the break (`source_truncated` is set), as players do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.scenes import make_detector, segment_bounds
from idvid.data.curate.sources import Source
from idvid.data.curate.types import Clip


class Unreadable(Exception):
    """The source cannot be decoded at all; recorded as `unreadable` and the run goes on."""


@dataclass(frozen=True)
class DecodeParams:
    """Decode a source with PyAV (frames as RGB uint8)."""

    max_side: int | None = param(None, lo=64, doc="downscale so the long side is at most this (null: keep)")
    max_seconds: float | None = param(None, lo=0.1, doc="decode at most this much of each source")
    max_buffer_mb: int = param(1024, lo=16, doc="decode twice rather than hold more than this in memory")


@dataclass(frozen=True)
class SceneSplitParams:
    """Split a source at shot cuts; chunk long scenes; short pieces are rejected as `too_short`."""

    detector: str = param("auto", choices=("auto", "content", "histogram"),
                          doc="PySceneDetect ContentDetector, or the HS-histogram fallback")
    content_threshold: float = param(27.0, lo=1.0, hi=255.0, doc="ContentDetector threshold (0-255)")
    histogram_threshold: float = param(0.35, lo=0.01, hi=1.0, doc="Bhattacharyya distance for a cut")
    min_scene_seconds: float = param(1.0, lo=0.0, doc="segments shorter than this are rejected (too_short)")
    max_scene_seconds: float | None = param(None, lo=0.5, doc="chunk longer scenes into pieces this long")
    analysis_width: int = param(160, lo=32, hi=1024, doc="frames are shrunk to this width for cut detection")


SOURCE_COLUMNS = {
    "source_width": pa.int32(), "source_height": pa.int32(), "source_fps": pa.float64(),
    "source_frames": pa.int32(), "source_truncated": pa.bool_(),
}

stage("decode", "source", DecodeParams, SOURCE_COLUMNS, reasons=("unreadable",))(None)
stage("scene_split", "source", SceneSplitParams, {"num_segments": pa.int32()}, reasons=("too_short",))(None)


def _target_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(2, round(w * s / 2) * 2), max(2, round(h * s / 2) * 2)


def _frames(path: str, max_side: int | None, max_frames: int | None):
    """Yield (frame RGB at decode size, truncated_flag_so_far) and set stream info on first frame."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"cannot open ({type(exc).__name__})") from None
    with container:
        if not container.streams.video:
            raise Unreadable("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        n = 0
        try:
            for frame in container.decode(stream):
                w, h = _target_size(frame.width, frame.height, max_side)
                img = frame.to_ndarray(format="rgb24", width=w, height=h) if (w, h) != (frame.width, frame.height) \
                    else frame.to_ndarray(format="rgb24")
                yield img, (frame.width, frame.height), (fps if fps > 0 else 25.0)
                n += 1
                if max_frames is not None and n >= max_frames:
                    return
        except (av.error.FFmpegError, OSError, ValueError):
            yield None, None, None  # a break mid-stream: the caller marks the source truncated


def _analysis_frame(rgb: np.ndarray, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (width, max(2, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2BGR)


def iter_segments(source: Source, decode: DecodeParams, split: SceneSplitParams | None) -> Iterator[Clip]:
    """Decode `source` and yield its scene segments in order (see the module docstring)."""
    budget = decode.max_buffer_mb * 2**20
    kept: list[np.ndarray] | None = []
    detector = None
    num, truncated, size, fps = 0, False, None, 25.0
    max_frames = None
    for img, src_size, rate in _frames(source.path, decode.max_side, None):
        if img is None:
            truncated = True
            break
        if num == 0:
            size, fps = src_size, rate
            if decode.max_seconds is not None:
                max_frames = max(1, math.floor(decode.max_seconds * fps))
            if split is not None:
                min_gap = max(1, round(min(split.min_scene_seconds, 0.5) * fps))
                detector = make_detector(split.detector, fps, split.content_threshold,
                                         split.histogram_threshold, min_gap)
        if detector is not None:
            detector.push(num, _analysis_frame(img, split.analysis_width))
        if kept is not None:
            kept.append(img)
            if len(kept) * img.nbytes > budget:
                kept = None  # too long to hold: decode again segment by segment
        num += 1
        if max_frames is not None and num >= max_frames:
            break
    if num == 0:
        raise Unreadable("no decodable frames" + (" (truncated or corrupt)" if truncated else ""))
    cuts = detector.finish(num) if detector is not None else []
    max_len = None
    if split is not None and split.max_scene_seconds is not None:
        max_len = max(1, round(split.max_scene_seconds * fps))
    bounds = segment_bounds(num, cuts, max_len)
    scale = size[0] / (kept[0].shape[1] if kept else _target_size(*size, decode.max_side)[0])
    info = {"source_width": size[0], "source_height": size[1], "source_fps": fps,
            "source_frames": num, "source_truncated": truncated, "num_segments": len(bounds)}

    def make(k: int, a: int, frames: np.ndarray) -> Clip:
        clip = Clip(f"{source.key}_s{k:03d}", source.path, k, a, frames, fps, size, scale, dict(source.meta))
        clip.meta["_source_info"] = info
        return clip

    if kept is not None:
        for k, (a, b) in enumerate(bounds):
            frames = np.stack(kept[a:b])
            kept[a:b] = [None] * (b - a)  # hold each frame once: in the list or in its segment
            yield make(k, a, frames)
        return
    # Second pass: stream again, emitting each segment as soon as its last frame is decoded.
    k, buf = 0, []
    for i, (img, _, _) in enumerate(_frames(source.path, decode.max_side, num)):
        if img is None or k >= len(bounds):
            break
        buf.append(img)
        if i + 1 == bounds[k][1]:
            yield make(k, bounds[k][0], np.stack(buf))
            k, buf = k + 1, []
