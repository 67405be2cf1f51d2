"""Expand `--input` (a folder, a glob, or a list file) into the ordered list of source videos.

A list file is `.txt` (one path per line, `#` comments), or `.csv` / `.parquet` with a `video_path`
(or `path`) column; relative paths are resolved against the list's folder. A list's `prompt`,
`action_phrase` / `action` and `identity_id` columns travel with the source as metadata (the template
captioner uses the first two; `idvid synth`'s manifest.parquet is such a list).
Sources are sorted by path and each gets a stable key, so clip ids do not depend on the file system's
listing order.
"""

from __future__ import annotations

import glob
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idvid.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")
META_COLUMNS = ("prompt", "action_phrase", "action", "identity_id")


@dataclass(frozen=True)
class Source:
    path: str
    key: str
    meta: dict[str, Any] = field(default_factory=dict)


def source_key(path: str) -> str:
    """A file-name-safe id: the file's stem plus a hash of its full path (two `a.mp4` stay apart)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:48] or "clip"
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


def _from_table(path: Path) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    except Exception as exc:  # arrow raises many types for a bad file
        raise InputError(f"{path}: cannot read list ({type(exc).__name__})") from None
    column = next((c for c in ("video_path", "path", "source_path") if c in table.column_names), None)
    if column is None:
        raise InputError(f"{path}: a list table needs a 'video_path' (or 'path') column")
    rows = table.to_pylist()
    metas = [{k: r[k] for k in META_COLUMNS if k in r and r[k] is not None} for r in rows]
    return [(str(r[column]), m) for r, m in zip(rows, metas, strict=True)]


def _from_text(path: Path) -> list[tuple[str, dict[str, Any]]]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [(ln, {}) for ln in lines if ln and not ln.startswith("#")]


def expand_inputs(spec: str | Path | list[str]) -> list[Source]:
    """All source videos named by `spec`, sorted by path. Raises `InputError` when there are none."""
    entries: list[tuple[str, dict[str, Any]]] = []
    if isinstance(spec, list):
        entries = [(str(p), {}) for p in spec]
    else:
        p = Path(spec)
        if p.is_dir():
            entries = [(str(f), {}) for f in sorted(p.rglob("*"))
                       if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
            entries = [(str((p.parent / e).resolve()) if not Path(e).is_absolute() else e, m)
                       for e, m in _from_text(p)]
        elif p.is_file() and p.suffix.lower() in (".csv", ".parquet"):
            entries = [(str((p.parent / e).resolve()) if not Path(e).is_absolute() else e, m)
                       for e, m in _from_table(p)]
        elif p.is_file():
            entries = [(str(p), {})]
        else:
            entries = [(f, {}) for f in sorted(glob.glob(str(spec), recursive=True)) if Path(f).is_file()]
    if not entries:
        raise InputError(f"{spec}: no input videos found (give a folder, a glob, or a .txt/.csv/.parquet list)")
    seen: dict[str, Source] = {}
    for path, meta in entries:
        if path not in seen:
            seen[path] = Source(path, source_key(path), meta)
    return [seen[k] for k in sorted(seen)]
