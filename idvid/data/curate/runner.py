"""Run a curation: sources -> per-source results (local processes or Ray) -> dataset stages ->
manifest, face pool, report.

`curate()` is the library entry point behind `idvid curate`. Local runs use one process per worker,
each single-threaded (OpenCV, onnxruntime), so results do not depend on the worker count; each worker
writes its source's result file itself, which is what makes a killed run resumable.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idvid.data.curate import registry
from idvid.data.curate.atomic import write_json
from idvid.data.curate.manifest import write_manifest
from idvid.data.curate.preset import Preset, load_preset, parse_preset
from idvid.data.curate.process import process_source
from idvid.data.curate.sources import Source, expand_inputs
from idvid.data.curate.store import ResultStore
from idvid.data.curate.types import Context

log = logging.getLogger("idvid.curate")


@dataclass
class CurateResult:
    out_dir: Path
    manifest_path: Path
    rows: list[dict]
    processed: int  # sources processed in this run
    reused: int  # sources whose results were already on disk
    seconds: float
    video_seconds: float  # seconds of source video covered by the manifest

    @property
    def kept(self) -> int:
        return sum(1 for r in self.rows if r["kept"])


def set_single_thread() -> None:
    """One thread per worker for OpenCV (and BLAS through the environment)."""
    import cv2

    cv2.setNumThreads(1)


# -- worker side -------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(preset_dict: dict, origin: str, out_dir: str) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    set_single_thread()
    _WORKER["preset"] = parse_preset(preset_dict, origin)
    _WORKER["ctx"] = Context(out_dir, threads=1)
    _WORKER["store"] = ResultStore(out_dir, _WORKER["preset"].fingerprint())


def _work(source: Source) -> str:
    rows, timings = process_source(source, _WORKER["preset"], _WORKER["ctx"])
    _WORKER["store"].save(source, rows, timings)
    return source.key


# -- driver ------------------------------------------------------------------------------------------

def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="video", disable=None)
    except ImportError:  # pragma: no cover
        return None


def run_local(todo: list[Source], preset: Preset, out_dir: Path, workers: int) -> None:
    """Process `todo` with `workers` processes (in this process when workers == 1)."""
    bar = _progress(len(todo), "curate")
    args = (preset.to_dict(), preset.name, str(out_dir))
    try:
        if workers <= 1:
            _init_worker(*args)
            for s in todo:
                _work(s)
                if bar:
                    bar.update(1)
            return
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=args) as pool:
            pending = {pool.submit(_work, s) for s in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()  # re-raise a worker's configuration error here
                    if bar:
                        bar.update(1)
    finally:
        if bar:
            bar.close()


def run_dataset_stages(rows: list[dict], preset: Preset, ctx: Context) -> list[dict]:
    for cfg in preset.of_kind("dataset"):
        rows = registry.get(cfg.name).run(rows, cfg.params, ctx)
    return rows


def curate(inputs: str | Path | list[str], out_dir: str | Path, preset: str | Path | Preset = "lfa",
           workers: int = 1, ray_address: str | None = None, report: bool = True) -> CurateResult:
    """Curate `inputs` into `out_dir` with `preset`; resumes from finished sources found there."""
    t0 = time.perf_counter()
    preset = preset if isinstance(preset, Preset) else load_preset(preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = expand_inputs(inputs)
    store = ResultStore(out, preset.fingerprint())
    todo = [s for s in sources if store.load(s) is None]
    write_json(out / "curate.json", {"preset": preset.to_dict(), "fingerprint": preset.fingerprint(),
                                     "sources": len(sources)})
    if todo:
        if ray_address:
            from idvid.data.curate.ray_backend import run_ray

            run_ray(todo, preset, out, workers, ray_address)
        else:
            run_local(todo, preset, out, workers)
    rows: list[dict] = []
    for s in sources:
        data = store.load(s)
        if data is None:  # pragma: no cover - a worker died without raising
            raise RuntimeError(f"no result for {s.path}")
        rows.extend({k: v for k, v in r.items() if not k.startswith("_")} for r in data["rows"])
    ctx = Context(out, threads=1)
    rows = run_dataset_stages(rows, preset, ctx)
    manifest_path = out / "manifest.parquet"
    write_manifest(manifest_path, rows, preset)
    video_seconds = sum(r.get("duration") or 0.0 for r in rows)
    result = CurateResult(out, manifest_path, rows, len(todo), len(sources) - len(todo),
                          time.perf_counter() - t0, video_seconds)
    if report:
        from idvid.data.curate.report import write_report

        write_report(out, rows, preset, store, sources)
    return result
