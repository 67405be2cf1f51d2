"""Stage `crop`: cut the clip to the preset's frame (720x480 for CelebIPVid, 512x512 for Human-Motion)
around the person and write it as H.264 `OUT/clips/<clip_id>.mp4`.

One window for the whole clip (a moving crop would add camera motion that is not in the source): the
largest window of the target aspect ratio that fits the frame, times `zoom`, centred on the main face's
median position (from the `faces` stage when it ran) and clamped to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context


@dataclass(frozen=True)
class CropParams:
    width: int = param(720, lo=16, hi=8192, doc="output width (pixels)")
    height: int = param(480, lo=16, hi=8192, doc="output height (pixels)")
    zoom: float = param(1.0, lo=0.05, hi=1.0, doc="window size relative to the largest that fits")
    crf: int = param(18, lo=0, hi=51, doc="H.264 quality of the written clip (lower is better)")


def crop_window(frame_w: int, frame_h: int, out_w: int, out_h: int, center: tuple[float, float] | None,
                zoom: float = 1.0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the largest `out_w:out_h` window in the frame, scaled by `zoom`, centred on
    `center` (frame centre when None) and shifted to stay inside the frame."""
    aspect = out_w / out_h
    if frame_w / frame_h > aspect:
        wh = frame_h
        ww = frame_h * aspect
    else:
        ww = frame_w
        wh = frame_w / aspect
    ww, wh = max(1, round(ww * zoom)), max(1, round(wh * zoom))
    cx, cy = center if center is not None else (frame_w / 2, frame_h / 2)
    x0 = int(round(min(max(cx - ww / 2, 0), frame_w - ww)))
    y0 = int(round(min(max(cy - wh / 2, 0), frame_h - wh)))
    return x0, y0, x0 + ww, y0 + wh


@stage("crop", "clip", CropParams,
       {"clip_path": pa.string(), "crop_box": pa.list_(pa.int32()), "out_width": pa.int32(),
        "out_height": pa.int32()})
def crop(clip: Clip, ann: dict, p: CropParams, ctx: Context) -> dict:
    """Crop around the face to the preset's aspect, resize to its size, write the clip."""
    from idvid.io.video import write_mp4

    h, w = clip.frames.shape[1:3]
    center = None
    boxes = ann.get("_main_boxes")
    if boxes is not None and np.isfinite(boxes).any():
        b = np.nanmedian(boxes, axis=0)
        center = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    x0, y0, x1, y1 = crop_window(w, h, p.width, p.height, center, p.zoom)
    interp = cv2.INTER_AREA if (x1 - x0) > p.width else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(f[y0:y1, x0:x1], (p.width, p.height), interpolation=interp) for f in clip.frames])
    path = ctx.artifact("clips", clip.clip_id, ".mp4")
    write_mp4(path, out, fps=clip.fps, crf=p.crf)
    s = clip.scale
    return {"clip_path": str(path.relative_to(ctx.out_dir)),
            "crop_box": [round(x0 * s), round(y0 * s), round(x1 * s), round(y1 * s)],
            "out_width": p.width, "out_height": p.height}
