"""The stage registry: every curation stage by name, with its kind, parameters and manifest columns.

Kinds, in the order a preset must list them:
  * `source`  — turns a file into decoded scene segments (decode, scene_split); run by the segmenter;
  * `clip`    — a pure function `(clip, annotations, params, ctx) -> dict | Reject` per segment;
  * `dataset` — a function `(rows, params, ctx) -> rows` over all segments once they are done
                (identity clustering, motion-intensity resampling).
Declaring the columns (with Arrow types) keeps the manifest's schema fixed whatever the data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

KINDS = ("source", "clip", "dataset")


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str
    params: type
    run: Callable[..., Any] | None
    columns: dict[str, pa.DataType] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    doc: str = ""


STAGES: dict[str, StageSpec] = {}

# Modules that register stages when imported (kept light: models load lazily inside the stages).
_STAGE_MODULES = (
    "idvid.data.curate.decode",
    "idvid.data.curate.quality",
    "idvid.data.curate.text",
    "idvid.data.curate.faces",
    "idvid.data.curate.pose",
    "idvid.data.curate.identity",
    "idvid.data.curate.motion",
    "idvid.data.curate.crop",
    "idvid.data.curate.captions",
    "idvid.data.curate.resample",
)


def stage(name: str, kind: str, params: type, columns: dict[str, pa.DataType] | None = None,
          needs: tuple[str, ...] = (), reasons: tuple[str, ...] = ()):
    """Register the decorated function as stage `name` (its docstring's first line is its help)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}")

    def wrap(fn: Callable[..., Any] | None):
        doc = ((fn.__doc__ if fn is not None else params.__doc__) or "").strip().splitlines()
        STAGES[name] = StageSpec(name, kind, params, fn, dict(columns or {}), needs, reasons,
                                 doc[0] if doc else "")
        return fn

    return wrap


def load_all() -> dict[str, StageSpec]:
    """Import every stage module (idempotent) and return the registry."""
    for module in _STAGE_MODULES:
        importlib.import_module(module)
    return STAGES


def get(name: str) -> StageSpec:
    return load_all()[name]
