"""The same per-source work on Ray Data (`idvid curate --ray ADDRESS`, or `--ray local`).

Each source becomes one row of a Ray dataset; `map` runs it through a pool of actors (`workers` of
them, one CPU each), and every actor builds the preset and its models once, then calls the very
`process_source` the local runner uses and writes the same result files. The driver then assembles the
manifest exactly as a local run does, so both backends give the same manifest. On a multi-node
cluster `OUT` must be on a filesystem every node can write (results and artifacts are written there).
"""

from __future__ import annotations

import json
from pathlib import Path

from idvid.data.curate.preset import Preset
from idvid.data.curate.sources import Source
from idvid.errors import InputError


class _SourceWorker:
    """A Ray actor: builds the preset, context and models once, then processes one source per row."""

    def __init__(self, preset_dict: dict, origin: str, out_dir: str):
        from idvid.data.curate import runner

        runner._init_worker(preset_dict, origin, out_dir)
        self._work = runner._work

    def __call__(self, row: dict) -> dict:
        source = Source(row["path"], row["key"], json.loads(row["meta"]))
        return {"key": self._work(source)}


def _connect(address: str, workers: int):
    import ray

    if ray.is_initialized():
        return ray, False
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    if address == "local":
        ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env=env)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env=env)
    return ray, True


def run_ray(todo: list[Source], preset: Preset, out_dir: Path, workers: int, address: str) -> None:
    """Process `todo` on Ray Data with `workers` actors (starts a local Ray when address is 'local')."""
    try:
        import ray  # noqa: F401
        import ray.data
    except ImportError:
        raise InputError("--ray needs Ray Data: pip install 'ray[data]'") from None
    ray, started = _connect(address, workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = [{"path": s.path, "key": s.key, "meta": json.dumps(s.meta)} for s in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map(_SourceWorker, fn_constructor_args=(preset.to_dict(), preset.name, str(out_dir)),
                    concurrency=max(1, workers), num_cpus=1)
        done = {r["key"] for r in ds.take_all()}
        missing = [s.path for s in todo if s.key not in done]
        if missing:
            raise RuntimeError(f"Ray finished without results for {len(missing)} sources, e.g. {missing[0]}")
    finally:
        if started:
            ray.shutdown()
