"""The manifest: `OUT/manifest.parquet`, one row per clip segment, with a schema fixed by the preset.

Leading columns are the same for every preset (`clip_id`, `source_path`, `segment`, frame range,
`kept`, `reject_reason`, `reject_detail`); then every column each stage of the preset declares, in
stage order. Rows are ordered by source path, then segment, so two runs over the same inputs write
identical files whatever the order in which clips finished.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from idvid.data.curate import registry
from idvid.data.curate.atomic import write_bytes
from idvid.data.curate.preset import Preset

BASE_COLUMNS: dict[str, pa.DataType] = {
    "clip_id": pa.string(),
    "source_path": pa.string(),
    "segment": pa.int32(),
    "start_frame": pa.int32(),
    "end_frame": pa.int32(),
    "num_frames": pa.int32(),
    "fps": pa.float64(),
    "duration": pa.float64(),
    "kept": pa.bool_(),
    "reject_reason": pa.string(),
    "reject_detail": pa.string(),
}


def schema_for(preset: Preset) -> pa.Schema:
    fields = dict(BASE_COLUMNS)
    for cfg in preset.stages:
        for name, tp in registry.get(cfg.name).columns.items():
            fields.setdefault(name, tp)
    return pa.schema(list(fields.items()))


def to_table(rows: list[dict], preset: Preset) -> pa.Table:
    schema = schema_for(preset)
    names = schema.names
    return pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows], schema=schema)


def write_manifest(path: str | Path, rows: list[dict], preset: Preset) -> pa.Table:
    """Write the rows as parquet atomically; returns the table written."""
    table = to_table(rows, preset)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(path, buf.getvalue())
    return table


def read_manifest(path: str | Path) -> pa.Table:
    return pq.read_table(path)
