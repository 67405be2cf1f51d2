"""Per-source result files: what makes a run resumable.

Each finished source is written atomically to `OUT/work/<source_key>.json` with the preset fingerprint,
its rows and its timings. A re-run (or a run after `kill -9`) loads every result whose fingerprint
matches and processes only the rest; at most the sources that were in flight are redone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from idvid.data.curate.atomic import write_json
from idvid.data.curate.sources import Source


class ResultStore:
    def __init__(self, out_dir: str | Path, fingerprint: str):
        self.dir = Path(out_dir) / "work"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint

    def path(self, source: Source) -> Path:
        return self.dir / f"{source.key}.json"

    def load(self, source: Source) -> dict[str, Any] | None:
        """The stored result for `source`, or None if absent, unreadable or from another preset."""
        p = self.path(source)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("fingerprint") != self.fingerprint or data.get("source") != source.path:
            return None
        return data

    def save(self, source: Source, rows: list[dict], timings: dict[str, float]) -> None:
        write_json(self.path(source), {"fingerprint": self.fingerprint, "source": source.path,
                                       "rows": rows, "timings": timings})
