"""Run a preset's per-source and per-clip stages on one source file: the unit of work of a run.

`process_source` decodes and splits the source, then passes each segment through the clip stages in
order, stopping at the first rejection. It returns one JSON-ready row per segment (a single
`unreadable` row when the file cannot be decoded) and the seconds spent per stage. An unexpected
exception inside a stage is recorded as reject reason `error` with its message so one bad file cannot
stop a large run; an `IdvidError` (a missing model, a bad endpoint) is a configuration problem and
stops the run.
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import numpy as np

from idvid.data.curate import registry
from idvid.data.curate.decode import Unreadable, iter_segments
from idvid.data.curate.preset import Preset
from idvid.data.curate.sources import Source
from idvid.data.curate.types import Clip, Context, Reject
from idvid.errors import IdvidError

FLOAT_DIGITS = 6  # floats are rounded so tiny numeric noise cannot change a manifest


def clean(value: Any) -> Any:
    """Numpy scalars/arrays to plain Python, floats rounded, NaN to None (JSON- and Arrow-ready)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else round(v, FLOAT_DIGITS)
    return value


def _base_row(source: Source, clip: Clip | None) -> dict[str, Any]:
    row: dict[str, Any] = {"clip_id": f"{source.key}_s000", "source_path": source.path, "segment": 0,
                           "kept": False, "reject_reason": None, "reject_detail": None}
    if clip is not None:
        row.update(clip_id=clip.clip_id, segment=clip.segment, start_frame=clip.start_frame,
                   end_frame=clip.start_frame + clip.num_frames, num_frames=clip.num_frames,
                   fps=clip.fps, duration=clip.duration)
        row.update(clip.meta.get("_source_info", {}))
    return row


def process_clip(clip: Clip, preset: Preset, ctx: Context, timings: dict[str, float]) -> dict[str, Any]:
    """Run the clip stages on one segment; returns its manifest row (private `_` keys dropped)."""
    row = _base_row(Source(clip.source_path, "", {}), clip)
    split = preset.get("scene_split")
    if split is not None and clip.duration < split.min_scene_seconds:
        row.update(reject_reason="too_short", reject_detail=f"{clip.duration:.2f}s < {split.min_scene_seconds}s")
        return clean(row)
    ann: dict[str, Any] = {}
    for cfg in preset.of_kind("clip"):
        spec = registry.get(cfg.name)
        t0 = time.perf_counter()
        try:
            result = spec.run(clip, ann, cfg.params, ctx)
        except IdvidError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            row.update(reject_reason="error",
                       reject_detail=f"{cfg.name}: {type(exc).__name__}: {exc}"[:300])
            row["_traceback"] = traceback.format_exc()
            break
        finally:
            timings[cfg.name] = timings.get(cfg.name, 0.0) + time.perf_counter() - t0
        if isinstance(result, Reject):
            ann.update(result.annotations)
            row.update(reject_reason=result.reason, reject_detail=result.detail or None)
            break
        ann.update(result)
    else:
        row["kept"] = True
    row.update({k: v for k, v in ann.items() if not k.startswith("_")})
    tb = row.pop("_traceback", None)
    out = clean(row)
    if tb:
        out["_traceback"] = tb
    return out


def process_source(source: Source, preset: Preset, ctx: Context) -> tuple[list[dict], dict[str, float]]:
    """All segments of one source as manifest rows, plus seconds per stage (see the module docstring)."""
    timings: dict[str, float] = {}
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        segments = iter_segments(source, preset.get("decode"), preset.get("scene_split"))
        while True:
            t_dec = time.perf_counter()
            clip = next(segments, None)
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t_dec
            if clip is None:
                break
            rows.append(process_clip(clip, preset, ctx, timings))
    except Unreadable as exc:
        row = _base_row(source, None)
        row.update(reject_reason="unreadable", reject_detail=str(exc))
        rows = [clean(row)]
    timings["total"] = time.perf_counter() - t0
    return rows, timings
