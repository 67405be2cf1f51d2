#!/usr/bin/env python
"""Cut the identity path out of a trained identity model: the start of a no-identity baseline at its budget.

    python scripts/make_no_identity_baseline.py --model idvid/assets/default_model --out models/no-id-start

The result (`idvid.models.model.without_identity`) keeps the backbone, the Motion Control Module, the refiner and
the VAE with their trained weights and drops MoCA, the ID encoder and the reference-latent channels; it predicts
exactly as the identity model does with the identity withheld. Train it further without identity, then package it
in t2v mode (the decoupled modes start from the reference's head, which a baseline must not see):

    idvid train --config laptop-baseline task.model=models/no-id-start ... --export B
    python scripts/package_default_model.py --model B --out B-pkg --mode t2v ...
    python scripts/evaluate_default_model.py --baseline B-pkg ...

Its budget is then the identity model's steps plus the steps trained here, at least the identity model's.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="identity model folder, or a pipeline folder holding one in model/")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write")
    args = ap.parse_args()

    from idvid.models.model import CONFIG_FILE, IdentityVideoModel, without_identity

    src = args.model / "model" if (args.model / "model" / CONFIG_FILE).is_file() else args.model
    if not (src / CONFIG_FILE).is_file():
        ap.error(f"{args.model}: not an idvid model folder (no {CONFIG_FILE} in it or in its model/)")
    base = without_identity(IdentityVideoModel.from_pretrained(src))
    base.save_pretrained(args.out)
    if (src / "scheduler").is_dir():  # the training noise schedule, when the folder has it
        shutil.copytree(src / "scheduler", args.out / "scheduler", dirs_exist_ok=True)
    kept = ", ".join(base.injections) or "no injection"
    print(f"wrote {args.out}: {base.transformer.config.in_channels} input channels, {kept}, "
          f"{'a refiner' if base.refiner is not None else 'no refiner'}")


if __name__ == "__main__":
    main()
