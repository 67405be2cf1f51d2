"""Training-run configuration: dataclasses validated in `__post_init__`, YAML presets, `key=value` overrides.

    config = load_config("tiny-synth-moca", ["optim.lr=3e-4", "max_steps=200"])   # a preset name or a path
    config.to_yaml(run_dir / "config.yaml")                                        # checkpoints carry it

Every mistake a user can make here (unknown key, wrong type, value out of range, missing file, identity
seeds outside the training range) is an `InputError` with one line naming the dotted key, so `idvid train`
prints it and exits with code 2.

The task (what is trained: the identity video model, a VAE, the toy denoiser of the tests) has its own
config class, picked by `task.kind` from `TASKS` (see `idvid.train.task`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from idvid.errors import InputError

TRAIN_SEED_END = 1_000_000  # identity seeds below this are the training split (idvid.synth.identity)
VALIDATION_SEED_END = 2_000_000


# ---------------------------------------------------------------------------------------------- sections
@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine (or constant) decay, gradient accumulation and clipping."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to min_lr_ratio * lr at max_steps) | "constant"
    warmup_steps: int = 0
    # the step the cosine reaches min_lr_ratio at (0: max_steps); larger than max_steps stops a run part-way
    # along its planned schedule, reproducibly (instead of interrupting it)
    schedule_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping
    accumulation: int = 1  # micro-batches per optimizer step

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas",
               f"must be two numbers in [0, 1), got {self.betas}")
        _check(self.eps > 0, "optim.eps", f"must be > 0, got {self.eps}")
        _check(self.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(self.schedule in ("cosine", "constant"), "optim.schedule",
               f"must be 'cosine' or 'constant', got {self.schedule!r}")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        _check(self.schedule_steps >= 0, "optim.schedule_steps",
               f"must be >= 0 (0 = max_steps), got {self.schedule_steps}")
        _check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        _check(self.grad_clip >= 0, "optim.grad_clip", f"must be >= 0 (0 = off), got {self.grad_clip}")
        _check(self.accumulation >= 1, "optim.accumulation", f"must be >= 1, got {self.accumulation}")


@dataclass
class EMAConfig:
    """Exponential moving average of the trainable weights: ema <- d * ema + (1 - d) * w after every step,
    with d = min(decay, (1 + n) / (10 + n)) at update n when `warmup` is on (n = 1, 2, ...)."""

    enabled: bool = True
    decay: float = 0.999
    warmup: bool = True

    def __post_init__(self) -> None:
        _check(0 <= self.decay < 1, "ema.decay", f"must be in [0, 1), got {self.decay}")


@dataclass
class CheckpointConfig:
    every: int = 500  # optimizer steps between checkpoints (and one at the last step)
    keep_last: int = 3  # older checkpoints are deleted

    def __post_init__(self) -> None:
        _check(self.every >= 1, "checkpoint.every", f"must be >= 1, got {self.every}")
        _check(self.keep_last >= 1, "checkpoint.keep_last", f"must be >= 1, got {self.keep_last}")


@dataclass
class LogConfig:
    every: int = 10  # steps between records in log.jsonl (losses averaged over the interval)
    progress: bool = True  # tqdm bar on the main process

    def __post_init__(self) -> None:
        _check(self.every >= 1, "log.every", f"must be >= 1, got {self.every}")


@dataclass
class ValidationConfig:
    every: int = 0  # steps between validations (0 = never; also skipped when no hook is registered)
    num_samples: int = 4  # validation items (clips) per validation
    use_ema: bool = True  # validate with the EMA weights (when EMA is on)
    hooks: list[str] = field(default_factory=list)  # extra "module:function" hooks (see idvid.train.hooks)

    def __post_init__(self) -> None:
        _check(self.every >= 0, "validation.every", f"must be >= 0, got {self.every}")
        _check(self.num_samples >= 1, "validation.num_samples", f"must be >= 1, got {self.num_samples}")
        for hook in self.hooks:
            _check(isinstance(hook, str) and hook.count(":") == 1, "validation.hooks",
                   f"entries are 'module:function', got {hook!r}")


@dataclass
class DataConfig:
    """Where training clips come from (see idvid.train.dataset).

    source "synth": rendered on the fly from identity seeds [seed_start, seed_start + num_identities);
    source "folder": pre-rendered clips listed by an `idvid synth` output folder's manifest (`path`).
    Validation always renders identities [validation_seed, validation_seed + validation.num_samples).
    """

    source: str = "synth"  # "synth" | "folder" | "none" (the task brings its own data, e.g. the toy task)
    path: str | None = None  # source "folder": the synth output folder (with its manifest)
    seed_start: int = 0  # first training identity seed
    num_identities: int = 1000
    clips_per_identity: int = 8
    frames: int = 17  # frames per clip: 4k + 1 with k even (1, 9, 17, ..., 49) decode back to as many frames
    size: int = 64  # pixels (square)
    image_ratio: float = 0.0  # fraction of items that are static images (0-intensity one-frame videos)
    new_clips_each_epoch: bool = False  # source "synth": every epoch renders new clip indices of the identities
    intensity_candidates: int = 1  # source "synth": > 1 picks each identity's clips among this many times as
    #   many candidates so the motion-intensity histogram is flat (MotionCharacter's resampling, seed 002 §3.4)
    flow_maps: bool = False  # compute foreground optical-flow maps per clip (region-aware loss)
    validation_seed: int = TRAIN_SEED_END  # first validation identity seed (in [1e6, 2e6))
    cache_dir: str | None = None  # face-embedding / VAE-latent caches (safetensors shards); None: run_dir/cache
    cache_latents: bool = False  # encode clips with the frozen VAE once and train on the cached latents
    num_workers: int = 0  # DataLoader worker processes rendering clips
    epoch_size: int | None = None  # items per epoch (default: identities x clips)

    def __post_init__(self) -> None:
        _check(self.source in ("synth", "folder", "none"), "data.source",
               f"must be 'synth', 'folder' or 'none', got {self.source!r}")
        if self.source == "folder":
            _check(self.path is not None, "data.path", "is required with data.source=folder")
            _check(Path(self.path).is_dir(), "data.path", f"{self.path}: no such folder")
        _check(self.seed_start >= 0, "data.seed_start", f"must be >= 0, got {self.seed_start}")
        _check(self.num_identities >= 1, "data.num_identities", f"must be >= 1, got {self.num_identities}")
        last = self.seed_start + self.num_identities - 1
        _check(last < TRAIN_SEED_END, "data.seed_start",
               f"training identities {self.seed_start}..{last} reach beyond the training range "
               f"[0, {TRAIN_SEED_END}); seeds >= {TRAIN_SEED_END} are validation/held-out people and are never trained on")
        _check(TRAIN_SEED_END <= self.validation_seed < VALIDATION_SEED_END, "data.validation_seed",
               f"must be in the validation range [{TRAIN_SEED_END}, {VALIDATION_SEED_END}), got {self.validation_seed}")
        _check(self.clips_per_identity >= 1, "data.clips_per_identity", f"must be >= 1, got {self.clips_per_identity}")
        _check(self.frames >= 1, "data.frames", f"must be >= 1, got {self.frames}")
        _check(self.intensity_candidates >= 1, "data.intensity_candidates", f"must be >= 1, got {self.intensity_candidates}")
        if self.intensity_candidates > 1:
            _check(self.source == "synth" and not self.new_clips_each_epoch, "data.intensity_candidates",
                   "resampling picks a fixed clip pool: it needs data.source=synth and new_clips_each_epoch=false")
        _check(self.size >= 32 and self.size % 8 == 0, "data.size", f"must be a multiple of 8 and >= 32, got {self.size}")
        _check(0.0 <= self.image_ratio <= 1.0, "data.image_ratio", f"must be in [0, 1], got {self.image_ratio}")
        _check(not (self.cache_latents and self.new_clips_each_epoch), "data.cache_latents",
               "cannot be combined with data.new_clips_each_epoch (every epoch would need new latents)")
        _check(self.num_workers >= 0, "data.num_workers", f"must be >= 0, got {self.num_workers}")
        _check(self.epoch_size is None or self.epoch_size >= 1, "data.epoch_size", f"must be >= 1, got {self.epoch_size}")


# ---------------------------------------------------------------------------------------------- task
@dataclass
class TaskConfig:
    """Base of every task's config; `kind` picks the task from `idvid.train.task.TASKS`."""

    kind: str = "identity"


@dataclass
class TrainConfig:
    run_dir: str = "runs/train"  # log.jsonl, config.yaml, checkpoints/, samples/
    seed: int = 0  # model init, data order, noise and timestep draws all derive from it
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 1  # per process and micro-batch
    precision: str = "no"  # autocast: "no" (fp32) | "bf16"
    train_mode: str = "full"  # "full": every model weight (tiny models) | "adapter": frozen backbone
    gradient_checkpointing: bool = False
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids spin contention on a busy machine
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if isinstance(self.task, dict) or type(self.task) is TaskConfig:  # -> the task's own config class
            data = self.task if isinstance(self.task, dict) else {"kind": self.task.kind}
            self.task = from_dict(_task_class(data.get("kind", TaskConfig.kind), "task"), data, prefix="task")
        _check(bool(self.run_dir), "run_dir", "must not be empty")
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check(self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        _check(self.threads >= 0, "threads", f"must be >= 0 (0 = torch's default), got {self.threads}")
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.precision in ("no", "bf16"), "precision", f"must be 'no' or 'bf16', got {self.precision!r}")
        _check(self.train_mode in ("full", "adapter"), "train_mode",
               f"must be 'full' or 'adapter', got {self.train_mode!r}")

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data)


# ---------------------------------------------------------------------------------------------- parsing
def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise InputError(f"config {key}: {message}")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` (from YAML) as type `tp`, or an `InputError` naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if len(errors) == 1 else f"config {key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"config {key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise InputError(f"config {key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise InputError(f"config {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"config {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"config {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise InputError(f"config {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise InputError(f"config {key}: expected a string, got {value!r}")
    raise TypeError(f"config {key}: unsupported field type {tp!r}")


def _task_class(kind: Any, key: str) -> type:
    from idvid.train.task import task_config_class

    if not isinstance(kind, str):
        raise InputError(f"config {key}.kind: expected a task name, got {kind!r}")
    return task_config_class(kind, key)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a (YAML) mapping, checking every key and type."""
    if not isinstance(data, dict):
        raise InputError(f"config {prefix or 'file'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise InputError(
            f"config: unknown key {where}{unknown[0]!s} (known in {prefix or 'the top level'}: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if tp is TaskConfig:
            value = value if isinstance(value, dict) else {}
            task_cls = _task_class(value.get("kind", TaskConfig.kind), key)
            kwargs[name] = from_dict(task_cls, value, prefix=key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    try:
        return cls(**kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:  # a nested config's own validation (e.g. the models' configs)
        raise InputError(f"config {prefix or 'file'}: {exc}") from exc


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """["optim.lr=3e-4", "data.image_ratio=0.2", ...] -> nested dict; values are YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"override {item!r} is not key=value (e.g. optim.lr=3e-4)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise InputError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise InputError(f"override {key}: cannot parse value {text!r} ({exc.__class__.__name__})") from exc
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"override {key}: {part} was already given a value")
            node = child
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins (a mapping value merges into a mapping, anything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------- presets
def preset_dirs() -> list[Path]:
    """Where preset names are looked up: the package's `idvid/configs/train/` (shipped as package data)."""
    pkg = Path(__file__).resolve().parent.parent
    return [pkg / "configs" / "train"]


def list_presets() -> list[str]:
    names = set()
    for folder in preset_dirs():
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.yaml")}
    return sorted(names)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or a preset name (with or without `.yaml`) from `preset_dirs()`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if path.parent == Path("."):
        for folder in preset_dirs():
            candidate = folder / f"{stem}.yaml"
            if candidate.is_file():
                return candidate
    known = ", ".join(list_presets()) or "none found"
    raise InputError(f"config {name_or_path}: no such file or preset (presets: {known})")


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"config {path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    except OSError as exc:
        raise InputError(f"config {path}: cannot read ({exc.strerror})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config {path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(name_or_path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                extra: dict[str, Any] | None = None) -> TrainConfig:
    """A `TrainConfig` from a preset name or YAML path (None: the defaults), then `extra` (a nested dict),
    then the dotted `key=value` overrides."""
    data = read_yaml(resolve_config_path(name_or_path)) if name_or_path is not None else {}
    if extra:
        data = merge(data, extra)
    data = merge(data, parse_overrides(overrides))
    return TrainConfig.from_dict(data)
