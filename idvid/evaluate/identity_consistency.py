"""Identity temporal consistency (in the style of VBench-2.0's human-identity dimension).

For a video: embed the largest face of every frame (up to `max_frames`, sampled at linspace), take the
first frame with a face as the anchor, and compare every later face frame with it:
  * `score`: mean of `max(0, cos(e_t, e_anchor))` over later face frames (1.0 = the same face throughout);
  * `consistent_fraction`: fraction of those frames whose cosine is >= `threshold`;
  * `min_similarity`: the worst frame, which flags an identity switch that a mean would hide.

`IDENTITY_CONSISTENCY_THRESHOLD` is the SFace cosine at the equal-error point between same-identity and
different-identity frame pairs of the synthetic world's held-out identities (all yaws), measured with
`python scripts/calibrate_identity_threshold.py` (see docs/evaluation.md for the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idvid.evaluate.facesim import cosine_clamped, sample_frame_indices

# SFace cosine at the equal-error point of same- vs different-identity frame pairs on held-out synthetic
# identities; see the module docstring for the command that measures it.
IDENTITY_CONSISTENCY_THRESHOLD = 0.51


@dataclass
class IdentityConsistency:
    score: float | None  # None when fewer than two frames have a face
    consistent_fraction: float | None
    min_similarity: float | None
    face_frames: float
    threshold: float


def consistency_from_embeddings(embeddings: np.ndarray, threshold: float = IDENTITY_CONSISTENCY_THRESHOLD
                                ) -> IdentityConsistency:
    """Aggregate per-frame embeddings (rows of NaN = no face) into the consistency figures."""
    emb = np.asarray(embeddings, np.float64)
    has_face = ~np.isnan(emb).any(axis=1)
    faces = emb[has_face]
    if len(faces) < 2:
        return IdentityConsistency(None, None, None, float(has_face.mean()), threshold)
    sims = cosine_clamped(faces[1:], faces[:1])
    return IdentityConsistency(
        score=float(sims.mean()),
        consistent_fraction=float((sims >= threshold).mean()),
        min_similarity=float(sims.min()),
        face_frames=float(has_face.mean()),
        threshold=threshold,
    )


def identity_consistency(frames: np.ndarray, analyzer=None, model: str = "sface", max_frames: int = 64,
                         threshold: float = IDENTITY_CONSISTENCY_THRESHOLD) -> IdentityConsistency:
    """Identity consistency of a video's frames (T, H, W, 3) against its first face frame."""
    from idvid.faces import get_default_analyzer

    fa = analyzer or get_default_analyzer()
    frames = np.asarray(frames)
    idx = sample_frame_indices(len(frames), min(max_frames, len(frames)))
    emb = fa.embed_frames(frames[idx], model=model)
    return consistency_from_embeddings(emb, threshold)
