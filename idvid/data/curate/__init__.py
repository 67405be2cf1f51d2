"""Curation: raw videos -> a filtered, annotated identity-video training set.

    from idvid.data.curate import curate
    result = curate("raw/", "out/", preset="lfa", workers=2)

Presets (YAML, `idvid/data/presets/`) list stages in order; each stage is a pure function of a clip and
its annotations so far (see `types`, `registry`). Outputs: `OUT/manifest.parquet` (one row per clip
segment, `kept` / `reject_reason` and every annotation), `OUT/face_pool/`, `OUT/flow/`, `OUT/clips/`,
`OUT/report/`. Runs are resumable (`OUT/work/`) and run locally or on Ray Data.
"""

from idvid.data.curate.params import PresetError
from idvid.data.curate.preset import Preset, builtin_presets, load_preset, parse_preset
from idvid.data.curate.runner import CurateResult, curate
from idvid.data.curate.types import REJECT_REASONS, Clip, Context, Reject

__all__ = [
    "REJECT_REASONS",
    "Clip",
    "Context",
    "CurateResult",
    "Preset",
    "PresetError",
    "Reject",
    "builtin_presets",
    "curate",
    "load_preset",
    "parse_preset",
]
