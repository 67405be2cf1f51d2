"""Identity stages: `identity_consistency` (within a clip), `face_pool` (per clip) and
`identity_clusters` (across clips).

* identity_consistency (LFA): SFace embeddings of the main face on up to `max_faces` detected keyframes.
  Faces turned further than `max_yaw` (60°) are not compared — face embedders are unreliable on
  profiles, where one person's frontal and profile faces can be less alike than two people's. (A
  tighter gate hurts: it drops the keyframes that bridge a turn, and misses switches between people
  seen at 45-55°.) Two tests on the compared faces, in time order; either rejects the clip as
  `identity_inconsistent`:
  1. *switch* (a change point): for every split of the faces into before / after (at least
     `min_segment` on each side), the best match across the split, max over i before, j after of
     cos(e_i, e_j). A person who turns or nods stays like their neighbouring keyframes, so some pair
     across every split is alike; after a switch no face after the split resembles any before it.
     The clip's `id_split_similarity` is the minimum over splits; below `min_split_similarity` (SFace's
     published same-person threshold, 0.363, by default) it is a switch at `id_split_frame`.
  2. *outliers*: the clip's *medoid* is the embedding with the highest summed cosine similarity to the
     others; a face is an outlier when its similarity to the medoid is below `min_similarity`; more
     than `max_outlier_fraction` outliers, and at least `min_outliers` (2: one odd crop among four
     compared faces is not another person), reject the clip (someone else in scattered keyframes).
  The mean embedding of the inliers (renormalised) becomes the clip's `id_embedding`.
* face_pool (CelebIPVid): up to `size` recognisable faces per clip — confident detection, similar to the
  medoid — spread over the yaw range; saved as loose square crops (PNG) plus aligned 112x112 crops and
  embeddings (`OUT/face_pool/<clip_id>.npz`), for drawing random references during training.
* identity_clusters (LFA): average-linkage clustering of the kept clips' `id_embedding`s under cosine
  distance, cut at `1 - min_similarity`; clusters are numbered by first appearance in manifest order.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.atomic import write_npz
from idvid.data.curate.faces import analyzer
from idvid.data.curate.frames import even_indices
from idvid.data.curate.params import param
from idvid.data.curate.pose import pose_from_nose_offset
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context, Reject


def medoid(embeddings: np.ndarray) -> int:
    """Index of the unit vector with the largest summed cosine similarity to all others."""
    sims = embeddings @ embeddings.T
    return int(np.argmax(sims.sum(axis=1)))


def split_similarity(embeddings: np.ndarray, min_segment: int) -> tuple[float | None, int | None]:
    """Change-point test on unit embeddings (N, D) in time order: the minimum over splits s (at least
    `min_segment` rows each side) of the best cosine similarity across the split, max_{i<s<=j} e_i.e_j,
    and the split where it occurs. (None, None) when N < 2 * min_segment."""
    n = len(embeddings)
    if n < 2 * min_segment:
        return None, None
    sims = embeddings @ embeddings.T
    best = [(float(sims[:s, s:].max()), s) for s in range(min_segment, n - min_segment + 1)]
    return min(best)


@dataclass(frozen=True)
class IdentityParams:
    max_faces: int = param(16, lo=2, hi=512, doc="keyframes embedded per clip (evenly spread)")
    max_yaw: float | None = param(60.0, lo=0.0, hi=90.0,
                                  doc="faces turned further are not compared (null: compare all)")
    min_split_similarity: float = param(0.363, lo=-1.0, hi=1.0,
                                        doc="switch when, across some split, no pair of faces is this alike")
    min_segment: int = param(3, lo=1, hi=64, doc="faces on each side of a split")
    min_similarity: float = param(0.3, lo=-1.0, hi=1.0, doc="SFace cosine to the medoid for an inlier")
    max_outlier_fraction: float = param(0.2, lo=0.0, hi=1.0, doc="identity_inconsistent above this")
    min_outliers: int = param(2, lo=1, hi=512, doc="... and at least this many (one odd crop is no one)")


def _yaw(ann: dict, k: int) -> float:
    """The main face's yaw on keyframe k: head_pose's estimate if it ran, else from the keypoints."""
    angles = ann.get("_kf_angles")
    if angles is not None and np.isfinite(angles[k, 0]):
        return float(angles[k, 0])
    return pose_from_nose_offset(ann["_main"][k].kps)[0]


@stage("identity_consistency", "clip", IdentityParams,
       {"id_sim_min": pa.float64(), "id_sim_median": pa.float64(), "id_outlier_fraction": pa.float64(),
        "id_split_similarity": pa.float64(), "id_split_frame": pa.int32(), "id_compared": pa.int32(),
        "id_embedding": pa.list_(pa.float32())},
       needs=("faces",), reasons=("identity_inconsistent", "no_face"))
def identity_consistency(clip: Clip, ann: dict, p: IdentityParams, ctx: Context) -> dict | Reject:
    """Reject identity switches (change-point test) and clips with scattered other faces (medoid test)."""
    fa = analyzer(ctx)
    # detected faces only: boxes carried by optical flow align less precisely
    with_face = [k for k, m in enumerate(ann["_main"]) if m is not None and not ann["_tracked"][k]]
    if not with_face:
        return Reject("no_face", "no face to embed")
    chosen = [with_face[j] for j in even_indices(len(with_face), p.max_faces)]
    kf = ann["_kf"]
    emb = np.stack([fa.embed_faces(clip.frames[kf[k]], [ann["_main"][k]])[0] for k in chosen]).astype(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    yaw = np.array([_yaw(ann, k) for k in chosen])
    compared = np.ones(len(chosen), bool) if p.max_yaw is None else np.abs(yaw) <= p.max_yaw
    if compared.sum() < 2:  # all in profile: compare them all rather than nothing
        compared[:] = True
    cmp = emb[compared]
    sims = emb @ cmp[medoid(cmp)]  # every chosen face (face_pool picks from them), to the compared medoid
    inliers = sims[compared] >= p.min_similarity
    mean = cmp[inliers].mean(axis=0) if inliers.any() else cmp.mean(axis=0)
    split_sim, split = split_similarity(cmp, p.min_segment)
    first_after = None if split is None else np.asarray(chosen)[compared][split]  # first face after it
    out = {
        "_id_keyframes": chosen, "_id_embeddings": emb, "_id_sims": sims,
        "id_sim_min": float(sims[compared].min()), "id_sim_median": float(np.median(sims[compared])),
        "id_outlier_fraction": float(1.0 - inliers.mean()),
        "id_split_similarity": split_sim,
        "id_split_frame": None if split is None else clip.start_frame + kf[first_after],
        "id_compared": int(compared.sum()),
        "id_embedding": (mean / np.linalg.norm(mean)).astype(np.float32).round(6).tolist(),
    }
    if split_sim is not None and split_sim < p.min_split_similarity:
        return Reject("identity_inconsistent",
                      f"switch at frame {out['id_split_frame']}: no face after it resembles one before "
                      f"(best {split_sim:.2f} < {p.min_split_similarity})", out)
    if out["id_outlier_fraction"] > p.max_outlier_fraction and (~inliers).sum() >= p.min_outliers:
        return Reject("identity_inconsistent",
                      f"{out['id_outlier_fraction']:.0%} of faces below {p.min_similarity} similarity", out)
    return out


@dataclass(frozen=True)
class FacePoolParams:
    size: int = param(5, lo=1, hi=64, doc="faces kept per clip")
    crop_size: int = param(256, lo=32, doc="side of the saved square face crops")
    margin: float = param(0.4, lo=0.0, hi=3.0, doc="context around the face box, as a fraction of its side")
    min_score: float = param(0.7, lo=0.0, hi=1.0, doc="detection confidence for a pool face")
    min_similarity: float = param(0.4, lo=-1.0, hi=1.0, doc="cosine to the clip medoid for a pool face")


def square_crop(image: np.ndarray, box, margin: float, size: int) -> np.ndarray:
    """A square crop centred on `box`, side = box's longer side * (1 + 2 * margin), edge-padded."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


@stage("face_pool", "clip", FacePoolParams, {"face_pool_path": pa.string(), "face_pool_size": pa.int32()},
       needs=("identity_consistency",))
def face_pool(clip: Clip, ann: dict, p: FacePoolParams, ctx: Context) -> dict:
    """Save recognisable face crops + embeddings of the clip, spread over its yaw range."""
    from idvid.faces import align_face

    kf, main = ann["_kf"], ann["_main"]
    cand = [(k, e) for k, e, s in zip(ann["_id_keyframes"], ann["_id_embeddings"], ann["_id_sims"], strict=True)
            if s >= p.min_similarity and main[k].score >= p.min_score]
    if not cand:
        return {"face_pool_path": None, "face_pool_size": 0}
    angles = ann.get("_kf_angles")
    yaw = [float(angles[k, 0]) if angles is not None and np.isfinite(angles[k, 0]) else 0.0 for k, _ in cand]
    order = np.argsort(yaw, kind="stable")
    pick = [cand[order[j]] for j in even_indices(len(cand), p.size)]
    crops, aligned, embs, frames, yaws = [], [], [], [], []
    for k, e in pick:
        img = clip.frames[kf[k]]
        crops.append(square_crop(img, main[k].box, p.margin, p.crop_size))
        aligned.append(align_face(img, main[k].kps))
        embs.append(e.astype(np.float32))
        frames.append(clip.start_frame + kf[k])
        yaws.append(float(angles[k, 0]) if angles is not None else np.nan)
    path = ctx.artifact("face_pool", clip.clip_id, ".npz")
    write_npz(path, crops=np.stack(crops), aligned=np.stack(aligned), embeddings=np.stack(embs),
              source_frame=np.asarray(frames, np.int32), yaw=np.asarray(yaws, np.float32))
    return {"face_pool_path": str(path.relative_to(ctx.out_dir)), "face_pool_size": len(pick)}


@dataclass(frozen=True)
class ClusterParams:
    min_similarity: float = param(0.45, lo=-1.0, hi=1.0,
                                  doc="average cosine similarity for two clips to share an identity")


def cluster_embeddings(emb: np.ndarray, min_similarity: float) -> np.ndarray:
    """Average-linkage clusters (cosine distance cut at 1 - min_similarity), labelled 0.. by first
    appearance."""
    n = len(emb)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    z = linkage(unit, method="average", metric="cosine")
    raw = fcluster(z, t=1.0 - min_similarity, criterion="distance")
    relabel: dict[int, int] = {}
    return np.array([relabel.setdefault(int(c), len(relabel)) for c in raw], np.int64)


@stage("identity_clusters", "dataset", ClusterParams,
       {"identity_cluster": pa.string(), "identity_cluster_size": pa.int32()},
       needs=("identity_consistency",))
def identity_clusters(rows: list[dict], p: ClusterParams, ctx: Context) -> list[dict]:
    """Group the kept clips by identity (average-linkage clustering of their SFace embeddings)."""
    live = [r for r in rows if r["kept"] and r.get("id_embedding") is not None]
    if not live:
        return rows
    labels = cluster_embeddings(np.array([r["id_embedding"] for r in live], np.float64), p.min_similarity)
    sizes = np.bincount(labels)
    for r, c in zip(live, labels.tolist(), strict=True):
        r["identity_cluster"] = f"id{c:05d}"
        r["identity_cluster_size"] = int(sizes[c])
    return rows
