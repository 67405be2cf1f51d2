"""Evaluation metrics. Each function documents exactly what it computes; metrics computed with a
substitute model carry the substitute's name in brackets (`facesim_arc[sface]`) and are not comparable
to published numbers made with the original model."""

from idvid.evaluate.facesim import (
    FACESIM_KEYS,
    FaceSimResult,
    cosine_clamped,
    facesim,
    facesim_report,
    sample_frame_indices,
)
from idvid.evaluate.fid import frechet_distance, per_frame_face_fid
from idvid.evaluate.identity_consistency import IDENTITY_CONSISTENCY_THRESHOLD, identity_consistency

__all__ = [
    "FACESIM_KEYS",
    "FaceSimResult",
    "cosine_clamped",
    "facesim",
    "facesim_report",
    "sample_frame_indices",
    "frechet_distance",
    "per_frame_face_fid",
    "IDENTITY_CONSISTENCY_THRESHOLD",
    "identity_consistency",
]
