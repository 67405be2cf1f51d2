"""Calibrate `IDENTITY_CONSISTENCY_THRESHOLD` on held-out identities of the synthetic world.

Identity consistency compares each face frame of a video with its first face frame. The threshold that
separates "same person" from "someone else" is the SFace cosine at the equal-error point between
  * same-identity pairs: frame t of a clip vs the first face frame of the same clip (all yaws), and
  * different-identity pairs: frame t of a clip vs the first face frame of a clip of another identity.

    python scripts/calibrate_identity_threshold.py --identities 40 --clips 2 --size 128 [--json OUT]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from tqdm import tqdm

from idvid.faces import get_default_analyzer
from idvid.synth import clip_spec, render_clip

HELD_OUT_SEED = 2_000_000


def equal_error(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(EER, threshold at the EER) for scores where higher means 'same'."""
    y = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    fpr, tpr, thr = roc_curve(y, np.r_[same, diff])
    i = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float((fpr[i] + 1 - tpr[i]) / 2), float(thr[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--clips", type=int, default=2, help="clips per identity")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args()

    fa = get_default_analyzer()
    clips = []  # (identity index, (T,128) embeddings with NaN rows)
    for i in tqdm(range(args.identities), desc="identities"):
        for c in range(args.clips):
            clip = render_clip(clip_spec(HELD_OUT_SEED + i, c), size=args.size, num_frames=args.frames)
            clips.append((i, fa.embed_frames(clip.frames, model="sface")))

    anchors, faces = [], []
    for ident, emb in clips:
        ok = ~np.isnan(emb).any(1)
        if ok.sum() >= 2:
            rows = emb[ok]
            anchors.append((ident, rows[0]))
            faces.append((ident, rows[1:]))
    same, diff = [], []
    for k, (ident, rows) in enumerate(faces):
        same.extend(rows @ anchors[k][1])
        for j, (other, anchor) in enumerate(anchors):
            if other != ident and j % 3 == k % 3:  # a third of the other anchors keeps the pair count modest
                diff.extend(rows @ anchor)
    same, diff = np.asarray(same), np.asarray(diff)
    eer, thr = equal_error(same, diff)
    auc = roc_auc_score(np.r_[np.ones(len(same)), np.zeros(len(diff))], np.r_[same, diff])
    out = {"threshold": round(thr, 4), "eer": round(eer, 4), "auc": round(float(auc), 4),
           "same_pairs": len(same), "different_pairs": len(diff), "size": args.size,
           "identities": args.identities, "clips_per_identity": args.clips}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
