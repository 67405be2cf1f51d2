"""Where should the decoupled mode's first frame get its clothing? A probe on validation people.

For each person (the evaluation's cases: scripts/evaluate_default_model.py, clip 0's prompt and action, seed 0)
a model with frame conditioning makes three videos:
  decoupled  the pipeline's decoupled mode (T2I first frame holding the reference's head, then I2V);
  t2v-first  the decoupled mode with `first_frame_source="t2v"`: the T2V sample's latent frame 0 outside the head
             ellipse and the reference's head latent inside it, animated by the I2V stage;
  t2v        the plain T2V sample.
It prints, per video kind, in how many cases the prompt's clothing colour is rendered (idvid.evaluate.attributes,
the acceptance's check) and the fraction of frames with a detected face. A lead for the pipeline, not an
acceptance figure: use validation seeds (>= 1,000,000), never the held-out ones the shipping rules are judged on.

    python scripts/probe_first_frame.py MODEL [--seed-start 1000000] [--identities 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

KINDS = ("decoupled", "t2v-first", "t2v")


def evaluation_script():
    """scripts/evaluate_default_model.py as a module (its case list and seed checks)."""
    path = Path(__file__).resolve().parent / "evaluate_default_model.py"
    spec = importlib.util.spec_from_file_location("evaluate_default_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="a pipeline folder whose model has frame conditioning")
    ap.add_argument("--seed-start", type=int, default=1_000_000, help="first validation identity (>= 1,000,000)")
    ap.add_argument("--identities", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.seed_start >= 2_000_000:
        raise SystemExit("probe_first_frame: error: --seed-start >= 2,000,000 is held-out (for acceptance figures); "
                         "probe on validation seeds 1,000,000-1,999,999")

    from idvid.evaluate.attributes import check_clip_colours, face_boxes
    from idvid.faces import FaceAnalyzer
    from idvid.pipelines.ipt2v import load_pipeline

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    if not pipe.model.config.backbone.frame_condition:
        raise SystemExit(f"probe_first_frame: error: {args.model} was trained without frame conditioning")
    d = pipe.defaults
    cases, _ = evaluation_script().held_out_cases(args.seed_start, args.identities, FaceAnalyzer(), d.size,
                                                  d.num_frames)
    clothing = {k: [] for k in KINDS}
    faces = {k: [] for k in KINDS}
    for case in cases:
        kw = dict(action=case.action, generator=0)
        t2v = pipe(case.reference, case.prompt, mode="t2v", output_type="latent", **kw)
        videos = {
            "decoupled": pipe(case.reference, case.prompt, mode="decoupled", **kw).frames,
            "t2v-first": pipe(case.reference, case.prompt, mode="decoupled", first_frame_source="t2v", **kw).frames,
            "t2v": pipe._to_uint8(pipe.model.decode(t2v.frames.to(pipe.model.dtype))[0, :d.num_frames]
                                  .float().clamp(-1, 1)),
        }
        for kind, video in videos.items():
            boxes = face_boxes(video)
            clothing[kind].append(check_clip_colours(video, case.spec, boxes)["clothing"].rendered)
            faces[kind].append(float(np.mean([b is not None for b in boxes])))
        print(case.seed, "  ".join(f"{k}: clothing {clothing[k][-1]!s:5} faces {faces[k][-1]:.2f}" for k in KINDS),
              flush=True)
    for kind in KINDS:
        print(f"{kind:10s} clothing rendered {sum(clothing[kind])} of {len(cases)}, "
              f"faces detected {np.mean(faces[kind]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
