"""Presets: YAML files that list the stages of a curation run, in order, with their thresholds.

    name: lfa
    description: ...
    stages:
      - decode
      - scene_split: {min_scene_seconds: 1.0}
      - faces: {keyframe_every: 6}
      ...

A stage is a bare name (defaults) or a one-key mapping to its parameters. The built-in presets
(`celebipvid`, `human-motion`, `lfa`) ship in `idvid/data/presets/`; any other value is read as a path.
Every problem is reported as one `PresetError` line naming the file, the stage and the parameter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from idvid.data.curate import registry
from idvid.data.curate.params import PresetError, build_params

# Bump when a stage's computation changes: finished clips from an older version are redone.
CURATE_VERSION = 1


@dataclass(frozen=True)
class StageConfig:
    name: str
    params: Any


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    stages: tuple[StageConfig, ...]

    def of_kind(self, kind: str) -> list[StageConfig]:
        return [s for s in self.stages if registry.get(s.name).kind == kind]

    def get(self, name: str) -> Any | None:
        """Parameters of stage `name`, or None when the preset does not run it."""
        return next((s.params for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "stages": [{s.name: dataclasses.asdict(s.params)} for s in self.stages]}

    def fingerprint(self) -> str:
        """Hash of the stages and their parameters: finished clips are reused only under the same one."""
        blob = json.dumps({"v": CURATE_VERSION, "stages": self.to_dict()["stages"]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def builtin_presets() -> list[str]:
    folder = resources.files("idvid.data") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(spec: str) -> tuple[str, Any]:
    if spec in builtin_presets():
        text = (resources.files("idvid.data") / "presets" / f"{spec}.yaml").read_text()
        return spec, yaml.safe_load(text)
    path = Path(spec)
    if not path.exists():
        raise PresetError(f"preset {spec!r}: not a built-in preset ({', '.join(builtin_presets())}) nor a file")
    try:
        return str(path), yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise PresetError(f"preset {path}: not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"preset {path}: cannot read ({exc})") from None


def parse_preset(data: Any, origin: str = "<preset>") -> Preset:
    """Validate a preset's parsed YAML and build it (see the module docstring for the format)."""
    stages_by_name = registry.load_all()
    if not isinstance(data, dict):
        raise PresetError(f"preset {origin}: expected a mapping with a 'stages' list")
    unknown = sorted(set(data) - {"name", "description", "stages"})
    if unknown:
        raise PresetError(f"preset {origin}: unknown key {unknown[0]!r} (known: name, description, stages)")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise PresetError(f"preset {origin}: 'stages' must be a non-empty list")
    stages: list[StageConfig] = []
    for i, item in enumerate(raw_stages):
        if isinstance(item, str):
            name, raw = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, raw = next(iter(item.items()))
        else:
            raise PresetError(f"preset {origin}: stage #{i + 1} must be a name or a one-key mapping, got {item!r}")
        if name not in stages_by_name:
            raise PresetError(f"preset {origin}: unknown stage {name!r} (known: {', '.join(sorted(stages_by_name))})")
        if any(s.name == name for s in stages):
            raise PresetError(f"preset {origin}: stage {name!r} listed twice")
        spec = stages_by_name[name]
        params = build_params(spec.params, raw, f"preset {origin}: stage {name!r}")
        stages.append(StageConfig(name, params))
    _check_order(stages, origin)
    name = data.get("name") or Path(origin).stem
    return Preset(str(name), str(data.get("description") or ""), tuple(stages))


def _check_order(stages: list[StageConfig], origin: str) -> None:
    if stages[0].name != "decode":
        raise PresetError(f"preset {origin}: the first stage must be 'decode', got {stages[0].name!r}")
    seen: list[str] = []
    last_kind = 0
    for s in stages:
        spec = registry.get(s.name)
        kind = registry.KINDS.index(spec.kind)
        if kind < last_kind:
            raise PresetError(f"preset {origin}: {spec.kind} stage {s.name!r} must come before the "
                              f"{registry.KINDS[last_kind]} stages")
        last_kind = kind
        missing = [n for n in spec.needs if n not in seen]
        if missing:
            raise PresetError(f"preset {origin}: stage {s.name!r} needs {missing[0]!r} earlier in the list")
        seen.append(s.name)


def load_preset(spec: str | Path) -> Preset:
    """A built-in preset by name, or a preset YAML file by path."""
    origin, data = _read(str(spec))
    return parse_preset(data, origin)
