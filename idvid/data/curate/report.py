"""The run's summary: `OUT/report/summary.json`, `summary.md` and histograms (matplotlib, Agg).

Plots: rejects by reason; yaw over every frame of the kept clips; face-area ratio; motion intensity
(raw, and re-weighted by `sample_weight` when motion resampling ran). Stage timings come from the
per-source result files (they vary between runs, so they are kept out of the manifest).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from idvid.data.curate.atomic import write_bytes, write_json
from idvid.data.curate.preset import Preset
from idvid.data.curate.sources import Source
from idvid.data.curate.store import ResultStore


def summarize(rows: list[dict], timings: list[dict[str, float]]) -> dict:
    kept = [r for r in rows if r["kept"]]
    reasons = Counter(r["reject_reason"] for r in rows if not r["kept"])
    stage_seconds: dict[str, float] = {}
    for t in timings:
        for k, v in t.items():
            stage_seconds[k] = stage_seconds.get(k, 0.0) + v
    video = sum(r.get("duration") or 0.0 for r in rows)
    out = {
        "segments": len(rows), "kept": len(kept), "rejected": len(rows) - len(kept),
        "rejects_by_reason": dict(sorted(reasons.items())),
        "video_seconds": round(video, 3),
        "kept_video_seconds": round(sum(r.get("duration") or 0.0 for r in kept), 3),
        "stage_seconds": {k: round(v, 3) for k, v in sorted(stage_seconds.items())},
    }
    if stage_seconds.get("total"):
        out["video_seconds_per_worker_second"] = round(video / stage_seconds["total"], 3)
    clusters = {r.get("identity_cluster") for r in kept if r.get("identity_cluster")}
    if clusters:
        out["identities"] = len(clusters)
    return out


def _values(rows: list[dict], key: str) -> np.ndarray:
    vals = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, list):
            vals.extend(x for x in v if x is not None)
        elif v is not None:
            vals.append(v)
    return np.asarray(vals, np.float64)


def _plots(folder: Path, rows: list[dict], summary: dict) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    import io

    kept = [r for r in rows if r["kept"]]
    made = []

    def save(fig, name: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        write_bytes(folder / name, buf.getvalue())
        made.append(name)

    reasons = summary["rejects_by_reason"]
    fig, ax = plt.subplots(figsize=(6, 3))
    names = ["kept"] + list(reasons)
    ax.barh(names, [summary["kept"]] + list(reasons.values()), color=["tab:green"] + ["tab:red"] * len(reasons))
    ax.set_xlabel("clip segments")
    ax.set_title("kept and rejected, by reason")
    save(fig, "rejects_by_reason.png")
    for key, title, xlabel, bins in (
        ("yaw", "yaw of every frame (kept clips)", "yaw (degrees, > 0: nose to image right)", np.arange(-90, 91, 5)),
        ("face_ratio", "face-area ratio (kept clips)", "face box area / frame area", 30),
    ):
        vals = _values(kept, key)
        if len(vals):
            fig, ax = plt.subplots(figsize=(6, 3))
            ax.hist(vals, bins=bins, color="tab:blue")
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            save(fig, f"{key}_hist.png")
    mi = [(r["motion_intensity"], r.get("sample_weight")) for r in kept if r.get("motion_intensity") is not None]
    if mi:
        v = np.array([m for m, _ in mi])
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(v, bins=np.linspace(0, 20, 21), alpha=0.6, label="clips")
        w = [x for _, x in mi]
        if all(x is not None for x in w):
            ax.hist(v, bins=np.linspace(0, 20, 21), weights=w, histtype="step", lw=2, label="resampled (weights)")
        ax.set_title("motion intensity (seed 002 Eqs. 5-7, capped at 20)")
        ax.set_xlabel("motion intensity")
        ax.legend()
        save(fig, "motion_intensity_hist.png")
    return made


def write_report(out_dir: Path, rows: list[dict], preset: Preset, store: ResultStore,
                 sources: list[Source]) -> dict:
    folder = Path(out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    timings = [d["timings"] for s in sources if (d := store.load(s)) is not None]
    summary = summarize(rows, timings)
    summary["preset"] = preset.name
    summary["plots"] = _plots(folder, rows, summary)
    write_json(folder / "summary.json", summary)
    lines = [f"# Curation report — preset `{preset.name}`", "",
             f"{summary['kept']} of {summary['segments']} clip segments kept "
             f"({summary['kept_video_seconds']:.1f} of {summary['video_seconds']:.1f} s of video).", "",
             "| reject reason | segments |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["rejects_by_reason"].items()] or ["| (none) | 0 |"]
    lines += ["", "Seconds per stage (summed over workers):", "",
              "```", json.dumps(summary["stage_seconds"], indent=1), "```", ""]
    lines += [f"![{p}]({p})" for p in summary["plots"]]
    write_bytes(folder / "summary.md", ("\n".join(lines) + "\n").encode())
    return summary
