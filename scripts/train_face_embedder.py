"""Train the differentiable face embedder used by the ID-consistency loss (seed 002 Eq. 4).

Aligned crops of synthetic *training* identities (seeds 0..N-1), ArcFace-margin classification plus
distillation from SFace; verification AUC on held-out identities (seeds >= 2,000,000) is reported and
written into the model card. This is the command that produced idvid/assets/face_embedder/:

    python scripts/train_face_embedder.py --train-identities 240 --heldout-identities 60 --epochs 10 \
        --out idvid/assets/face_embedder/face_embedder.safetensors
"""

from __future__ import annotations

import argparse
import json
import time

from idvid.faces.sface import SFaceEmbedder
from idvid.models.face_embedder import (
    FaceEmbedderConfig,
    save_face_embedder,
    train_face_embedder,
    verification_auc,
)
from idvid.models.face_embedder_data import synthetic_face_set

HELD_OUT_SEED = 2_000_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-identities", type=int, default=240)
    ap.add_argument("--heldout-identities", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--out", default="idvid/assets/face_embedder/face_embedder.safetensors")
    args = ap.parse_args()

    t0 = time.time()
    tr_x, tr_y = synthetic_face_set(range(0, args.train_identities), clips_per_identity=3, frames_per_clip=4)
    te_x, te_y = synthetic_face_set(range(HELD_OUT_SEED, HELD_OUT_SEED + args.heldout_identities),
                                    clips_per_identity=2, frames_per_clip=4)
    sface = SFaceEmbedder(threads=1)
    teacher = sface.embed_crops(tr_x)
    model = train_face_embedder(tr_x, tr_y, teacher=teacher, config=FaceEmbedderConfig(width=args.width),
                                epochs=args.epochs, batch_size=64, lr=2e-3)
    save_face_embedder(model, args.out)
    figures = {
        "heldout_auc": round(verification_auc(model.embed(te_x), te_y), 4),
        "sface_heldout_auc_same_crops": round(verification_auc(sface.embed_crops(te_x), te_y), 4),
        "train_crops": int(len(tr_x)), "heldout_crops": int(len(te_x)),
        "wall_s": round(time.time() - t0, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
