#!/usr/bin/env bash
# Installs idvid and everything it needs on a fresh machine (CPU). `--dev` adds the test tools.
#   bash scripts/install.sh          # to use idvid
#   bash scripts/install.sh --dev    # to run the tests
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python3 -m pip install -q --disable-pip-version-check "$@"; }
# CPU torch first: a bare `torch` requirement would pull several GB of CUDA wheels. No torchvision.
pip_install torch==2.13.0
if [ "${1:-}" = "--dev" ]; then pip_install -e ".[dev]"; else pip_install -e .; fi
# Both ask for the GUI opencv-python, which would clobber opencv-python-headless's cv2: install them
# without dependencies (what else they need is in pyproject.toml).
pip_install --no-deps scenedetect==0.7.2 rapidocr-onnxruntime==1.4.4
