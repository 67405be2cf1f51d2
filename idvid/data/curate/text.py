"""Stage `text_overlay`: burned-in subtitles, captions and watermarks found by OCR.

Uses RapidOCR's PP-OCRv4 detector + recogniser (ONNX models shipped inside `rapidocr-onnxruntime`,
nothing downloaded) on a few frames shrunk to `analysis_long_side`. A frame "has text" when OCR reads
a line with confidence >= `min_score` holding at least `min_chars` letters or digits — a stray
glyph-like blob on a face or a background texture rarely passes both. The clip is rejected when the
fraction of sampled frames with text reaches `max_text_frames` and the text covers at least
`min_area_fraction` of the frame (Human-Motion drops clips with "excessive subtitles or text"). Asking for
text on half the sampled frames ignores a number read once off a background texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from idvid.data.curate.frames import even_indices, resize_long_side
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context, Reject


@dataclass(frozen=True)
class TextParams:
    frames: int = param(4, lo=1, hi=64, doc="frames sampled evenly from the clip")
    analysis_long_side: int = param(480, lo=64, doc="frames are shrunk to this long side before OCR")
    min_score: float = param(0.6, lo=0.0, hi=1.0, doc="minimum recognition confidence of a text line")
    min_chars: int = param(3, lo=1, doc="minimum letters/digits in a text line")
    max_text_frames: float = param(0.5, lo=0.0, hi=1.0,
                                   doc="reject when at least this fraction of sampled frames has text")
    min_area_fraction: float = param(0.0, lo=0.0, hi=1.0,
                                     doc="... and text covers at least this fraction of the frame")


def ocr_engine(ctx: Context):
    """RapidOCR built once per process (single-threaded: the runner parallelises over clips)."""

    def build():
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from idvid.errors import ModelUnavailable

            raise ModelUnavailable("text_overlay needs `rapidocr-onnxruntime` (pip install it)") from exc
        return RapidOCR(intra_op_num_threads=ctx.threads, inter_op_num_threads=1)

    return ctx.cached("rapidocr", build)


def read_text(engine, image: np.ndarray, long_side: int) -> list[tuple[np.ndarray, str, float]]:
    """OCR lines of an RGB image: (box (4, 2) in the image's pixels, text, confidence)."""
    small, factor = resize_long_side(image, long_side)
    result, _ = engine(np.ascontiguousarray(small[..., ::-1]), use_cls=False)  # RapidOCR expects BGR
    return [(np.asarray(box, np.float64) * factor, str(text), float(score)) for box, text, score in result or []]


def text_lines(lines, min_score: float, min_chars: int) -> list[tuple[np.ndarray, str, float]]:
    """Keep lines that are confident and hold enough letters or digits."""
    return [ln for ln in lines if ln[2] >= min_score and sum(ch.isalnum() for ch in ln[1]) >= min_chars]


def _area(box: np.ndarray) -> float:
    x, y = box[:, 0], box[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@stage("text_overlay", "clip", TextParams,
       {"text_frames": pa.float64(), "text_area": pa.float64(), "text_found": pa.string()},
       reasons=("text_overlay",))
def text_overlay(clip: Clip, ann: dict, p: TextParams, ctx: Context) -> dict | Reject:
    """Reject clips with burned-in text (subtitles, captions, watermarks) read by PP-OCR."""
    engine = ocr_engine(ctx)
    h, w = clip.frames.shape[1:3]
    idx = even_indices(clip.num_frames, p.frames)
    with_text, areas, found = 0, [], []
    for i in idx:
        lines = text_lines(read_text(engine, clip.frames[i], p.analysis_long_side), p.min_score, p.min_chars)
        if lines:
            with_text += 1
            areas.append(min(1.0, sum(_area(b) for b, _, _ in lines) / (w * h)))
            found.extend(t for _, t, _ in lines)
    out = {"text_frames": with_text / len(idx), "text_area": float(max(areas, default=0.0)),
           "text_found": " | ".join(dict.fromkeys(found))[:200] or None}
    if with_text and out["text_frames"] >= p.max_text_frames and out["text_area"] >= p.min_area_fraction:
        return Reject("text_overlay", f"text in {with_text}/{len(idx)} frames: {out['text_found']!r}", out)
    return out
