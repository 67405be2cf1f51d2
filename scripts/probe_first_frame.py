"""Where should the decoupled mode's first frame come from? A probe on validation people.

For each person (the evaluation's cases: scripts/evaluate_default_model.py, clip 0's prompt and action, seed 0)
a model with frame conditioning makes up to five videos (`--kinds`):
  decoupled       the pipeline's decoupled mode (T2I first frame holding the reference's head, then I2V);
  t2v-first       the decoupled mode with `first_frame_source="t2v"`: the T2V sample's latent frame 0 outside the head
                  ellipse and the reference's head latent inside it, animated by the I2V stage;
  t2v-head-first  the decoupled mode with `first_frame_source="t2v-head"`: a T2V pass made around the reference's
                  head (inpainted into latent frame 0 at every step), its frame 0 animated by the I2V stage;
  t2v             the plain T2V sample;
  t2v-head        `mode="t2v-head"`: that inpainted T2V pass as the video.
It prints, per video kind, in how many cases the prompt's clothing colour is rendered (idvid.evaluate.attributes,
the acceptance's check), the fraction of frames with a detected face and the identity gap (the evaluation's, over
all frames and over frames 1..). A lead for the pipeline, not an acceptance figure: use validation seeds
(>= 1,000,000), never the held-out ones the shipping rules are judged on.

    python scripts/probe_first_frame.py MODEL [--seed-start 1000000] [--identities 12] [--threads 2] [--kinds ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

KINDS = {  # kind: pipeline arguments
    "decoupled": dict(mode="decoupled", first_frame_source="t2i"),
    "t2v-first": dict(mode="decoupled", first_frame_source="t2v"),
    "t2v-head-first": dict(mode="decoupled", first_frame_source="t2v-head"),
    "t2v": dict(mode="t2v"),
    "t2v-head": dict(mode="t2v-head"),
}


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
    ap.add_argument("--kinds", nargs="+", choices=list(KINDS), default=["decoupled", "t2v-first", "t2v"])
    args = ap.parse_args(argv)
    if args.seed_start >= 2_000_000:
        raise SystemExit("probe_first_frame: error: --seed-start >= 2,000,000 is held-out (for acceptance figures); "
                         "probe on validation seeds 1,000,000-1,999,999")

    from idvid.evaluate.attributes import check_clip_colours
    from idvid.faces import FaceAnalyzer
    from idvid.pipelines.ipt2v import load_pipeline

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    if not pipe.model.config.backbone.frame_condition:
        raise SystemExit(f"probe_first_frame: error: {args.model} was trained without frame conditioning")
    ev, fa, d = evaluation_script(), FaceAnalyzer(), pipe.defaults
    cases, _ = ev.held_out_cases(args.seed_start, args.identities, fa, d.size, d.num_frames)
    clothing = {k: [] for k in args.kinds}
    embeddings = {k: [] for k in args.kinds}
    for case in cases:
        for kind in args.kinds:
            video = pipe(case.reference, case.prompt, action=case.action, generator=0, **KINDS[kind]).frames
            scored = ev.score_frames(video, fa)
            embeddings[kind].append(scored.embeddings)
            clothing[kind].append(check_clip_colours(video, case.spec, scored.boxes)["clothing"].rendered)
        print(case.seed, "  ".join(f"{k}: clothing {clothing[k][-1]!s:5} faces "
                                   f"{np.mean(~np.isnan(embeddings[k][-1][:, 0])):.2f}" for k in args.kinds), flush=True)
    refs = np.stack([c.ref_embedding for c in cases])
    for kind in args.kinds:
        gap = ev.identity_gap(ev.similarity_matrix(refs, embeddings[kind]))["gap"]
        later = ev.identity_gap(ev.similarity_matrix(refs, [e[1:] for e in embeddings[kind]]))["gap"]
        faces = np.mean([np.mean(~np.isnan(e[:, 0])) for e in embeddings[kind]])
        print(f"{kind:15s} clothing rendered {sum(clothing[kind])} of {len(cases)}, faces detected {faces:.3f}, "
              f"identity gap {ev.fmt(gap)} (frames 1.. {ev.fmt(later)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
