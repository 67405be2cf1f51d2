"""The manifest of a rendered world: one parquet row per clip, written atomically.

Paths (`video_path`, `reference_path`) are relative to the manifest's folder; `read_manifest` can
resolve them. Per-frame columns are lists with one entry per frame: `yaw`, `pitch`, `roll` (degrees,
convention of `idvid.synth.head`), `face_box` ([x0, y0, x1, y1] output pixels), `kps` ([x, y] * 5:
eye on the image's left, eye on the image's right, nose tip, mouth corner left, mouth corner right).
`identity_json`, `appearance_json` and `motion_json` hold every generating parameter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from idvid.errors import InputError
from idvid.io.atomic import publish, temp_beside

_F = pa.float32()
MANIFEST_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("identity_id", pa.string()),
    ("identity_seed", pa.int64()),
    ("clip_index", pa.int32()),
    ("split", pa.string()),
    ("video_path", pa.string()),
    ("reference_path", pa.string()),
    ("prompt", pa.string()),
    ("action_phrase", pa.string()),
    ("person", pa.string()),
    ("action", pa.string()),
    ("secondary_action", pa.string()),
    ("speed", _F),
    ("motion_intensity", _F),
    ("num_frames", pa.int32()),
    ("fps", _F),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("yaw", pa.list_(_F)),
    ("pitch", pa.list_(_F)),
    ("roll", pa.list_(_F)),
    ("face_box", pa.list_(pa.list_(_F, 4))),
    ("kps", pa.list_(pa.list_(_F, 10))),
    ("gender", pa.string()),
    ("age", pa.string()),
    ("hair_style", pa.string()),
    ("hair_colour", pa.string()),
    ("facial_hair", pa.string()),
    ("glasses", pa.string()),
    ("eye_colour", pa.string()),
    ("clothing", pa.string()),
    ("clothing_colour", pa.string()),
    ("hat", pa.string()),
    ("hat_colour", pa.string()),
    ("scarf", pa.string()),
    ("earrings", pa.bool_()),
    ("necklace", pa.bool_()),
    ("background", pa.string()),
    ("background_colour", pa.string()),
    ("background_colour2", pa.string()),
    ("light_direction", pa.string()),
    ("light_temperature", pa.string()),
    ("light_intensity", _F),
    ("identity_json", pa.string()),
    ("appearance_json", pa.string()),
    ("motion_json", pa.string()),
])
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)


def write_manifest(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write rows (dicts with exactly the schema's columns) as parquet, atomically."""
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    p = Path(path)
    tmp = temp_beside(p, ".parquet")
    try:
        pq.write_table(table, tmp)
        publish(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: str | os.PathLike, absolute_paths: bool = True) -> list[dict]:
    """Rows of a manifest (a file, or a folder holding manifest.parquet), paths made absolute."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.parquet"
    if not p.exists():
        raise InputError(f"{p}: no such manifest")
    rows = pq.read_table(p).to_pylist()
    if absolute_paths:
        root = p.parent.resolve()
        for row in rows:
            row["video_path"] = str(root / row["video_path"])
            row["reference_path"] = str(root / row["reference_path"])
    return rows
