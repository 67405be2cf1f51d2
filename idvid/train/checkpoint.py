"""Atomic, pickle-free training checkpoints.

A checkpoint is a folder `RUN/checkpoints/step-00001000/`:

    model.safetensors       trainable weights (the whole tiny model, or only the adapter of a frozen backbone)
    ema.safetensors         their exponential moving average (when EMA is on)
    optimizer.safetensors   every tensor of the optimizer state, flattened as "state.<param index>.<name>"
    optimizer.json          the rest of the optimizer state (param groups, non-tensor entries)
    trainer.json            step, data position (epoch, batches consumed), EMA update count, seed, versions
    config.yaml             the full run config (checkpoints carry their config)

Nothing is pickled and nothing is ever unpickled. The folder is written under a hidden temporary name
(`.tmp-step-...`), every file is fsynced, and only then renamed to `step-...` in one `os.replace`: a crash
mid-save leaves at most a `.tmp-*` folder, which the next run removes and never mistakes for a checkpoint.

RNG: the trainer derives every random stream from (seed, step, micro-batch, process) (see
`idvid.train.trainer.step_seed`), so a checkpoint needs no generator snapshot to continue exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from idvid.errors import InputError

CHECKPOINTS = "checkpoints"
PREFIX = "step-"
TMP_PREFIX = ".tmp-"
_STEP_RE = re.compile(r"^step-(\d+)$")
FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer.json", "config.yaml")


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]  # an optimizer.state_dict() again
    trainer: dict[str, Any]
    config_yaml: str

    @property
    def step(self) -> int:
        return int(self.trainer["step"])


# ---------------------------------------------------------------------------------------------- optimizer
def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`optimizer.state_dict()` -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[name] = value
    # JSON has no tuples: remember which param-group entries were tuples (AdamW's betas)
    tuples = sorted({k for g in state["param_groups"] for k, v in g.items() if isinstance(v, tuple)})
    meta = {"param_groups": state["param_groups"], "scalars": scalars, "indices": [int(i) for i in state["state"]],
            "tuple_keys": tuples}
    json.dumps(meta)  # fail here, not half-way through a save, if something is not JSON-able
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): {} for i in meta["indices"]}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state[int(index)][name] = value
    for index, entry in meta["scalars"].items():
        state[int(index)].update(entry)
    groups = [{k: tuple(v) if k in meta.get("tuple_keys", ()) else v for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------- listing
def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def step_of(path: Path) -> int | None:
    m = _STEP_RE.match(path.name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are never listed)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [(step_of(p), p) for p in root.iterdir() if p.is_dir() and step_of(p) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_partial(run_dir: str | Path) -> list[Path]:
    """Delete temporary folders left by a save that crashed; returns what was removed."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    partial = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)]
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return partial


# ---------------------------------------------------------------------------------------------- save / load
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on every platform / filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tensors(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous tensors that share no storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in d.items()}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer: dict[str, Any],
    trainer: dict[str, Any],
    config_yaml: str,
    keep_last: int,
) -> Path:
    """Write checkpoint `step` atomically, then delete all but the newest `keep_last`. Returns its folder."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f"{TMP_PREFIX}{PREFIX}{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    meta = {"format": "pt", "step": str(step)}
    save_file(_tensors(model), str(tmp / "model.safetensors"), metadata=meta)
    if ema is not None:
        save_file(_tensors(ema), str(tmp / "ema.safetensors"), metadata=meta)
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata=meta)
    (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
    (tmp / "trainer.json").write_text(json.dumps(trainer, indent=1, sort_keys=True))
    (tmp / "config.yaml").write_text(config_yaml)
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): swap the old one out first
        old = root / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder (or a run folder: its latest checkpoint)."""
    path = Path(path)
    if not (path / "trainer.json").is_file():
        latest = latest_checkpoint(path)
        if latest is None:
            raise InputError(f"{path}: not a checkpoint and no checkpoints/step-* inside")
        path = latest
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    ema_path = path / "ema.safetensors"
    return Checkpoint(
        path=path,
        model=load_file(str(path / "model.safetensors")),
        ema=load_file(str(ema_path)) if ema_path.is_file() else None,
        optimizer=unflatten_optimizer_state(
            load_file(str(path / "optimizer.safetensors")), json.loads((path / "optimizer.json").read_text())
        ),
        trainer=json.loads((path / "trainer.json").read_text()),
        config_yaml=(path / "config.yaml").read_text(),
    )
