"""Declared, validated stage parameters.

Each stage declares its thresholds as a frozen dataclass whose fields carry their range; `build_params`
turns a preset's YAML mapping into that dataclass or raises a one-line `PresetError` naming the stage,
the parameter and what was expected.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from idvid.errors import InputError


class PresetError(InputError):
    """A preset that cannot be used: unknown stage, unknown parameter, bad threshold, bad order."""


def param(default: Any, *, lo: float | None = None, hi: float | None = None,
          choices: tuple[Any, ...] | None = None, doc: str = "") -> Any:
    """A dataclass field with a documented default and an allowed range or set of values."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the field type `tp` (int, float, bool, str, optional, list of those)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise PresetError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, where) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PresetError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PresetError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise PresetError(f"{where} must be a string, got {value!r}")
        return value
    return value


def build_params(cls: type, raw: dict[str, Any] | None, where: str) -> Any:
    """Build the parameter dataclass `cls` from a preset mapping, validating names, types and ranges."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise PresetError(f"{where}: parameters must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise PresetError(f"{where}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(fields)) or 'none'})")
    values = {}
    for name, value in raw.items():
        f = fields[name]
        label = f"{where}: {name}"
        v = _coerce(value, hints[name], label)
        lo, hi, choices = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices")
        items = v if isinstance(v, list) else [v]
        for x in items:
            if x is None:
                continue
            if choices is not None and x not in choices:
                raise PresetError(f"{label} must be one of {', '.join(map(str, choices))}, got {x!r}")
            if lo is not None and isinstance(x, (int, float)) and x < lo:
                raise PresetError(f"{label} must be >= {lo}, got {x!r}")
            if hi is not None and isinstance(x, (int, float)) and x > hi:
                raise PresetError(f"{label} must be <= {hi}, got {x!r}")
        values[name] = v
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise PresetError(f"{where}: {exc}") from None


def describe_params(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, doc) of every parameter, for docs and `--help`."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, default, f.metadata.get("doc", "")))
    return out
