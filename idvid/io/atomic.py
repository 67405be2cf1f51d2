"""Atomic file writes: write to a temporary file beside the target, then rename over it.

`tempfile.mkstemp` creates files readable by their owner only; `publish` gives the finished file the
permissions an ordinary `open(path, "w")` would (0666 minus the umask) before renaming it into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(path: str | os.PathLike, suffix: str | None = None) -> str:
    """A new empty temporary file in `path`'s folder (created if needed), named after `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix if suffix is None else suffix)
    os.close(fd)
    return tmp


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give `tmp` default permissions and rename it to `path` (atomic on one filesystem)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
