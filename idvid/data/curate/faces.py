"""Stages `faces`, `face_count` and `face_ratio`: who is in the clip, how many, how large.

`faces` detects faces (YuNet through `idvid.faces.FaceAnalyzer`) on keyframes only — `keyframe_fps` per
second, on frames shrunk to `detect_long_side` — links them into tracks by IoU and interpolates the main
track's box between keyframes (`idvid.data.curate.tracking`). The clip's *subject* on a keyframe is the
main track's face, or the largest face where that track is missing (a person who jumped or was
replaced: identity_consistency decides). Where the detector misses the subject on a keyframe (a profile
view, blur), its box and keypoints are carried over from the neighbouring keyframe by sparse optical
flow (`track_keyframes` hops at most), so a head turning past the detector's range stays one face.
Detecting a few frames per second instead of all 30 is what
lets curation run faster than real time on a CPU. Later stages reuse its keyframe
faces (`_kf`, `_kf_faces`, `_main`) so no other stage runs the detector again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.frames import resize_long_side
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.tracking import associate, fill_gaps, interpolate, iou, main_track, propagate
from idvid.data.curate.types import Clip, Context, Reject


def analyzer(ctx: Context, detector: str = "yunet", embedder: str = "sface"):
    """The process's FaceAnalyzer (models load once, single-threaded: the runner parallelises clips)."""
    from idvid.faces import FaceAnalyzer

    return ctx.cached(("faces", detector, embedder),
                      lambda: FaceAnalyzer(detector=detector, embedder=embedder, threads=ctx.threads))


def keyframe_indices(num_frames: int, fps: float, keyframe_fps: float) -> list[int]:
    """Every `fps / keyframe_fps`-th frame, plus the last frame."""
    step = max(1, round(fps / keyframe_fps))
    idx = list(range(0, num_frames, step))
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return idx


def _scaled(face, factor: float):
    if factor == 1.0:
        return face
    box = tuple(float(v) * factor for v in face.box)
    return dataclasses.replace(face, box=box, kps=(face.kps * factor).astype(np.float32), landmarks68=None)


def _track_misses(main: list, small: tuple, factor: tuple, max_steps: int) -> tuple[list, list[bool]]:
    """Carry the subject's box and keypoints over keyframes where detection missed it (a profile view,
    motion blur), by sparse optical flow between the keyframes' detection-size images."""
    grays = [cv2.cvtColor(s, cv2.COLOR_RGB2GRAY) for s in small]

    def step(face, a: int, b: int):
        fa, fb = factor[a], factor[b]
        moved = propagate(grays[a], grays[b], tuple(v / fa for v in face.box), face.kps / fa)
        if moved is None:
            return None
        box, kps = moved
        return dataclasses.replace(face, box=tuple(v * fb for v in box), kps=(kps * fb).astype(np.float32),
                                   score=0.0, detector="track", landmarks68=None)

    return fill_gaps(main, step, max_steps)


def detect_in_tiles(fa, image: np.ndarray, zoom: float) -> list:
    """Faces too small for the detector at frame scale: search 3x3 overlapping half-size tiles, each enlarged
    `zoom` times, and map the hits back (overlapping hits of one face: the most confident is kept).
    Detectors such as YuNet miss faces of ~30 pixels that they find at twice the size."""
    h, w = image.shape[:2]
    th, tw = h // 2, w // 2
    hits = []
    for y0 in (0, h // 4, h - th):
        for x0 in (0, w // 4, w - tw):
            tile = cv2.resize(image[y0 : y0 + th, x0 : x0 + tw], (round(tw * zoom), round(th * zoom)),
                              interpolation=cv2.INTER_CUBIC)
            for d in fa.detect(tile):
                x1, y1, x2, y2 = d.box
                hits.append(dataclasses.replace(d, box=(x0 + x1 / zoom, y0 + y1 / zoom, x0 + x2 / zoom, y0 + y2 / zoom),
                                    kps=(d.kps / zoom + np.array([x0, y0], np.float32)).astype(np.float32),
                                    landmarks68=None))
    kept: list = []
    for d in sorted(hits, key=lambda d: -d.score):
        if all(iou(d.box, k.box) < 0.3 for k in kept):
            kept.append(d)
    return sorted(kept, key=lambda d: -d.area)


@dataclass(frozen=True)
class FacesParams:
    detector: str = param("yunet", choices=("yunet", "dlib-hog", "dlib-cnn"), doc="face detector")
    keyframe_fps: float = param(5.0, lo=0.1, doc="detections per second of video; tracked in between")
    detect_long_side: int = param(640, lo=64, doc="frames are shrunk to this long side for detection")
    min_score: float = param(0.0, lo=0.0, hi=1.0, doc="drop detections below this confidence")
    min_face_px: float = param(12.0, lo=0.0, doc="drop detections smaller than this (decode pixels)")
    track_keyframes: int = param(8, lo=0, doc="follow the face by optical flow for up to this many "
                                               "keyframes where the detector misses it (0: off)")
    tile_zoom: float = param(2.0, lo=1.0, doc="a clip with no face on any keyframe is searched again in 3x3 "
                                               "overlapping half-size tiles enlarged this much (1: off)")


@stage("faces", "clip", FacesParams,
       {"face_keyframes": pa.int32(), "face_present": pa.float64(), "face_tracked": pa.float64(),
        "face_score": pa.float64(),
        "face_box": pa.list_(pa.float32())})
def faces(clip: Clip, ann: dict, p: FacesParams, ctx: Context) -> dict:
    """Detect faces on keyframes and track the main face between them."""
    fa = analyzer(ctx, p.detector)
    kf = keyframe_indices(clip.num_frames, clip.fps, p.keyframe_fps)
    small, factor = zip(*(resize_long_side(clip.frames[i], p.detect_long_side) for i in kf), strict=True)
    detections = fa.detect_frames(np.stack(small))
    if p.tile_zoom > 1 and not any(detections):  # no face on any keyframe: maybe one too small for the detector
        detections = [detect_in_tiles(fa, img, p.tile_zoom) for img in small]
    kf_faces = []
    for dets, f in zip(detections, factor, strict=True):
        keep = [_scaled(d, f) for d in dets if d.score >= p.min_score]
        kf_faces.append([d for d in keep if min(d.width, d.height) >= p.min_face_px])
    boxes = [[d.box for d in fs] for fs in kf_faces]
    track = main_track(associate(boxes), boxes)
    # The subject: the main track's face; where that track is absent, the keyframe's largest face (the
    # person may have jumped or been replaced — identity_consistency tells which).
    main = [kf_faces[k][track.members[k]] if track and k in track.members else (kf_faces[k][0] if kf_faces[k] else None)
            for k in range(len(kf))]
    tracked = [False] * len(kf)
    if p.track_keyframes > 0 and any(m is not None for m in main):
        main, tracked = _track_misses(main, small, factor, p.track_keyframes)
    step = kf[1] - kf[0] if len(kf) > 1 else 1
    box_k = np.array([m.box if m is not None else (np.nan,) * 4 for m in main], np.float64)
    present = [m for m in main if m is not None]
    detected = [m for m, t in zip(main, tracked, strict=True) if m is not None and not t]
    out = {
        "_kf": kf, "_kf_faces": kf_faces, "_main": main,
        "_main_boxes": interpolate(kf, box_k, clip.num_frames, max_hold=step, max_span=3 * step),
        "_tracked": tracked,
        "face_keyframes": len(kf),
        "face_present": len(present) / len(kf),
        "face_tracked": sum(tracked) / len(kf),
        "face_score": float(np.median([m.score for m in detected])) if detected else None,
        "face_box": (np.nanmedian(box_k, axis=0) * clip.scale).round(1).tolist() if present else None,
    }
    return out


@dataclass(frozen=True)
class FaceCountParams:
    min_present: float = param(0.7, lo=0.0, hi=1.0, doc="no_face when fewer keyframes than this show the face")
    max_multi_fraction: float = param(0.2, lo=0.0, hi=1.0,
                                      doc="multiple_faces when more keyframes than this show 2+ faces")
    min_relative_area: float = param(0.15, lo=0.0, hi=1.0,
                                     doc="a second face counts if at least this fraction of the largest's area")


def count_faces(faces_in_frame, min_relative_area: float) -> int:
    """Faces whose box area is at least `min_relative_area` of the frame's largest face."""
    if not faces_in_frame:
        return 0
    largest = max(f.area for f in faces_in_frame)
    return sum(1 for f in faces_in_frame if f.area >= min_relative_area * largest)


@stage("face_count", "clip", FaceCountParams,
       {"faces_max": pa.int32(), "multi_face_fraction": pa.float64()}, needs=("faces",),
       reasons=("no_face", "multiple_faces"))
def face_count(clip: Clip, ann: dict, p: FaceCountParams, ctx: Context) -> dict | Reject:
    """Keep clips that show exactly one (sizeable) face on enough keyframes."""
    counts = [count_faces(fs, p.min_relative_area) for fs in ann["_kf_faces"]]
    multi = sum(c >= 2 for c in counts) / len(counts)
    out = {"faces_max": max(counts), "multi_face_fraction": multi}
    if multi > p.max_multi_fraction:
        return Reject("multiple_faces", f"{multi:.0%} of keyframes show 2+ faces", out)
    if ann["face_present"] < p.min_present:
        return Reject("no_face", f"face on {ann['face_present']:.0%} of keyframes", out)
    return out


@dataclass(frozen=True)
class FaceRatioParams:
    min_ratio: float = param(0.02, lo=0.0, hi=1.0, doc="small_face below this face-box / frame area")


@stage("face_ratio", "clip", FaceRatioParams, {"face_ratio": pa.float64()}, needs=("faces",),
       reasons=("small_face",))
def face_ratio(clip: Clip, ann: dict, p: FaceRatioParams, ctx: Context) -> dict | Reject:
    """Median main-face box area over frame area; reject faces that are too small."""
    h, w = clip.frames.shape[1:3]
    ratios = [m.area_ratio((h, w)) for m in ann["_main"] if m is not None]
    if not ratios:
        return Reject("no_face", "no main face to measure", {"face_ratio": None})
    r = float(np.median(ratios))
    out = {"face_ratio": r}
    if r < p.min_ratio:
        return Reject("small_face", f"face ratio {r:.4f} < {p.min_ratio}", out)
    return out
