"""Atomic file writes (temp file in the same folder + rename): a killed run never leaves half a file,
so anything that exists on disk is complete — the basis of resuming."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _tmp_for(path: Path, suffix: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix + ".tmp")
    os.close(fd)
    return tmp


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    p = Path(path)
    tmp = _tmp_for(p, p.suffix)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, json.dumps(obj, sort_keys=True, allow_nan=True).encode())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    p = Path(path)
    tmp = _tmp_for(p, ".npz")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
