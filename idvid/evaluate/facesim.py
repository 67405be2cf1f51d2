"""FaceSim, as ConsisID defines it (its `eval/get_facesim_fid.py`), with substitute face models.

For a reference image and a video:
  1. sample 16 frames at `linspace(0, T-1, 16)` (integer indices; a video shorter than 16 frames
     repeats indices, as ConsisID's sampler does);
  2. in each sampled frame take the *largest* detected face; frames without a face are skipped;
  3. score each kept frame as `max(0, cos(e_ref, e_frame))`, where `e` is the L2-normalised embedding
     of the aligned face from the recognition model;
  4. FaceSim = mean over kept frames; 0.0 when no sampled frame has a face (as ConsisID reports it).
Also returned: `face_frames`, the fraction of sampled frames in which a face was found, so that a
0.0 from "no face at all" is told apart from a 0.0 from "a different person".

ConsisID's FaceSim-Arc uses insightface's antelopev2 ArcFace and FaceSim-Cur a CurricularFace IR-101;
neither ships in a pip package, so idvid reports `facesim_arc[sface]` (OpenCV-Zoo SFace, an ArcFace-
trained 128-d model) and `facesim_cur[dlib]` (dlib's ResNet 128-d) — same protocol, other networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACESIM_KEYS = {"sface": "facesim_arc[sface]", "dlib": "facesim_cur[dlib]"}


def sample_frame_indices(num_frames: int, num_samples: int = 16) -> np.ndarray:
    """ConsisID's frame sampler: `linspace(0, T-1, n)` truncated to int."""
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    return np.linspace(0, num_frames - 1, num_samples).astype(int)


def cosine_clamped(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`max(0, cos(a, b))` along the last axis (inputs need not be normalised)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.maximum(0.0, num / np.maximum(den, 1e-12))


@dataclass
class FaceSimResult:
    score: float  # mean clamped cosine over frames with a face; 0.0 if none
    face_frames: float  # fraction of sampled frames with a detected face
    per_frame: list[float | None] = field(default_factory=list)  # None where no face was found


def facesim_from_embeddings(ref_embedding: np.ndarray, frame_embeddings: np.ndarray) -> FaceSimResult:
    """Aggregate per-frame embeddings (rows of NaN = no face in that frame) into FaceSim."""
    frame_embeddings = np.asarray(frame_embeddings, np.float64)
    has_face = ~np.isnan(frame_embeddings).any(axis=1)
    sims = cosine_clamped(ref_embedding[None], np.nan_to_num(frame_embeddings))
    per_frame = [float(s) if ok else None for s, ok in zip(sims, has_face, strict=True)]
    score = float(sims[has_face].mean()) if has_face.any() else 0.0
    return FaceSimResult(score=score, face_frames=float(has_face.mean()), per_frame=per_frame)


def facesim(ref_image: np.ndarray, frames: np.ndarray, analyzer=None, model: str = "sface",
            num_samples: int = 16) -> FaceSimResult:
    """FaceSim of one video against one reference image, with recognition model `model`.

    The reference must contain a face (`NoFaceFound` otherwise); its largest face is used.
    """
    return facesim_report(ref_image, frames, analyzer, models=(model,), num_samples=num_samples)[model]


def facesim_report(ref_image: np.ndarray, frames: np.ndarray, analyzer=None,
                   models: tuple[str, ...] = ("sface", "dlib"), num_samples: int = 16) -> dict[str, FaceSimResult]:
    """FaceSim for several recognition models, detecting faces once per sampled frame."""
    from idvid.faces import get_default_analyzer

    fa = analyzer or get_default_analyzer()
    ref_face = fa.largest(ref_image)  # raises NoFaceFound for a reference without a face
    ref_emb = {m: fa.embed(ref_image, ref_face, model=m) for m in models}
    sampled = np.asarray(frames)[sample_frame_indices(len(frames), num_samples)]
    frame_emb = {m: np.full((len(sampled), ref_emb[m].shape[-1]), np.nan) for m in models}
    for i, frame in enumerate(sampled):
        detected = fa.detect(frame)
        if not detected:
            continue
        for m in models:
            frame_emb[m][i] = fa.embed(frame, detected[0], model=m)
    return {m: facesim_from_embeddings(ref_emb[m], frame_emb[m]) for m in models}
