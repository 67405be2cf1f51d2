"""Dataset stage `motion_resample`: flatten the motion-intensity histogram (seed 002, App. A.5).

The kept clips are binned by their (capped) motion intensity over [0, cap]. `weight` mode gives each
clip `sample_weight = N / (B · n_b)` (N kept clips, B non-empty bins, n_b clips in its bin): sampling
with these weights draws every non-empty bin equally often and the weights still sum to N.
`subsample` mode instead keeps at most `max_per_bin` clips per bin (default: the smallest non-empty
bin's count), chosen by a hash of the clip id so the choice is deterministic, and rejects the rest
as `resampled_out`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from idvid.data.curate.motion import MOTION_CAP
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Context


@dataclass(frozen=True)
class ResampleParams:
    bins: int = param(10, lo=1, hi=1000, doc="number of equal-width intensity bins over [0, cap]")
    cap: float = param(MOTION_CAP, lo=0.0, doc="upper end of the histogram (intensities are capped here)")
    mode: str = param("weight", choices=("weight", "subsample"), doc="add sample weights, or drop clips")
    max_per_bin: int | None = param(None, lo=1, doc="subsample: clips kept per bin (null: smallest bin)")


def intensity_bins(values: np.ndarray, bins: int, cap: float) -> np.ndarray:
    """Bin index in [0, bins) of each intensity (values at or above `cap` go to the last bin)."""
    v = np.clip(np.asarray(values, np.float64), 0.0, cap)
    return np.minimum((v / cap * bins).astype(np.int64), bins - 1) if cap > 0 else np.zeros(len(v), np.int64)


def flatten_weights(bin_index: np.ndarray) -> np.ndarray:
    """Per-item weights N / (B · n_b): every non-empty bin gets the same total weight N / B."""
    n = len(bin_index)
    if n == 0:
        return np.zeros(0)
    uniq, counts = np.unique(bin_index, return_counts=True)
    per_bin = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    return np.array([n / (len(uniq) * per_bin[b]) for b in bin_index.tolist()])


def _order_key(clip_id: str) -> str:
    return hashlib.sha1(clip_id.encode()).hexdigest()


@stage("motion_resample", "dataset", ResampleParams,
       {"motion_bin": pa.int32(), "sample_weight": pa.float64()}, needs=("motion",),
       reasons=("resampled_out",))
def motion_resample(rows: list[dict], p: ResampleParams, ctx: Context) -> list[dict]:
    """Flatten the motion-intensity histogram: sample weights or a per-bin subsample."""
    live = [r for r in rows if r["kept"] and r.get("motion_intensity") is not None]
    if not live:
        return rows
    bins = intensity_bins(np.array([r["motion_intensity"] for r in live]), p.bins, p.cap)
    weights = flatten_weights(bins)
    for r, b, w in zip(live, bins.tolist(), weights.tolist(), strict=True):
        r["motion_bin"], r["sample_weight"] = int(b), float(w)
    if p.mode == "subsample":
        counts = np.bincount(bins, minlength=p.bins)
        target = p.max_per_bin or int(counts[counts > 0].min())
        by_bin: dict[int, list[dict]] = {}
        for r, b in zip(live, bins.tolist(), strict=True):
            by_bin.setdefault(b, []).append(r)
        for members in by_bin.values():
            members.sort(key=lambda r: _order_key(r["clip_id"]))
            for r in members[:target]:
                r["sample_weight"] = 1.0
            for r in members[target:]:
                r.update(kept=False, reject_reason="resampled_out", sample_weight=0.0,
                         reject_detail=f"bin {r['motion_bin']} holds more than {target} clips")
    return rows
