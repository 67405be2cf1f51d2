"""`FaceAnalyzer`: one facade over detection, alignment, embedding, landmarks, head pose and masks.

Everything takes RGB uint8 images (H, W, 3) (a path is accepted too and loaded with
`idvid.io.images.load_image`) or batches of frames (T, H, W, 3). Constructing an analyzer is free;
the models load on first use and are shared by all analyzers in the process.

Faces are returned largest first. Where exactly one face is needed, a *policy* decides what happens
when there are several: "largest" takes the largest, "error" raises `MultipleFacesFound` (and, for
frames, "skip" treats such a frame like one without a face).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace

import numpy as np

from idvid.errors import ImageError, InputError, MultipleFacesFound, NoFaceFound
from idvid.faces.align import align_face
from idvid.faces.mask import face_mask
from idvid.faces.pose import head_pose_from_kps5, head_pose_from_landmarks68
from idvid.faces.types import Face

DETECTORS = ("yunet", "dlib-hog", "dlib-cnn")
EMBEDDERS = ("sface", "dlib")
POLICIES = ("largest", "error")
FRAME_POLICIES = ("largest", "error", "skip")
POSE_SOURCES = ("auto", "landmarks68", "kps5")
MASK_SOURCES = ("auto", "landmarks68", "box")


@dataclass(frozen=True, eq=False)
class FaceAnalysis:
    """Everything about the chosen face of one image."""

    face: Face
    embedding: np.ndarray  # (128,) float32, unit norm
    pose: tuple[float, float, float]  # yaw, pitch, roll in degrees (see idvid.faces.pose)
    mask: np.ndarray | None  # (H, W) bool, None when not requested
    area_ratio: float  # face box area / image area
    num_faces: int  # faces detected in the image (the policy picked `face`)
    embedder: str

    def to_dict(self, with_embedding: bool = False) -> dict:
        """JSON-friendly summary (the mask is summarised by its pixel count)."""
        out = {
            **self.face.to_dict(),
            "yaw": round(self.pose[0], 2),
            "pitch": round(self.pose[1], 2),
            "roll": round(self.pose[2], 2),
            "area_ratio": round(self.area_ratio, 5),
            "num_faces": self.num_faces,
        }
        if self.mask is not None:
            out["mask_pixels"] = int(self.mask.sum())
        if with_embedding:
            out[f"embedding[{self.embedder}]"] = [round(float(v), 6) for v in self.embedding]
        return out


def as_rgb(image) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path or an array (gray (H, W) / (H, W, 1) replicated, RGBA's
    alpha dropped). Anything else is an `ImageError` with one line saying what was wrong."""
    if isinstance(image, (str, os.PathLike)):
        from idvid.io.images import load_image

        return load_image(image)
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an image array or a path, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got dtype {image.dtype} (scale to 0..255 and convert)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an image of shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ImageError(f"image is only {image.shape[1]}x{image.shape[0]} pixels")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def as_frames(frames) -> np.ndarray | list[np.ndarray]:
    """(T, H, W, 3) uint8 array, or a list of RGB images when the frames differ in size."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"expected uint8 RGB frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
        return frames
    frames = [as_rgb(f) for f in frames]
    if frames and all(f.shape == frames[0].shape for f in frames):
        return np.stack(frames)
    return frames


def _check_policy(policy: str, allowed: tuple[str, ...]) -> None:
    if policy not in allowed:
        raise InputError(f"unknown face policy {policy!r}; choose one of {', '.join(allowed)}")


class FaceAnalyzer:
    """Detect, align, embed and measure faces with real pretrained models (see `idvid.faces`).

    detector: "yunet" (default; fast, 5 keypoints), "dlib-hog" or "dlib-cnn" (slow; 68 landmarks).
    embedder: "sface" (default) or "dlib" (ResNet). score_threshold: detector confidence cut (None:
    the detector's default). threads: onnxruntime threads (None: 1, or $IDVID_ORT_THREADS).
    detector_options: extra keyword arguments for the detector (`YuNetDetector`: min_side, max_side,
    nms_threshold, top_k; `DlibDetector`: upsample, small_side).

    pose_from / mask_from: where head pose and face masks come from. "landmarks68" runs dlib's 68-point
    predictor on the face (pose from 18 stable landmarks, mask = landmark hull + forehead); "kps5" /
    "box" use only the detector's output (pose from the 5 keypoints, mask = ellipse in the box);
    "auto" (default) uses the 68 landmarks when the face already carries them (dlib detectors) and the
    detector's output otherwise. Why not always 68: on the synthetic world's renders (59 faces, yaw
    within ±60°) dlib's predictor stays near its frontal mean shape (yaw estimate slope 0.26 vs truth,
    mean error 23°) while YuNet's keypoints track the turn (slope 0.91, mean error 7°); pitch is weak
    from either (nose position only). On real photos "landmarks68" is the standard choice.
    """

    def __init__(
        self,
        detector: str = "yunet",
        embedder: str = "sface",
        score_threshold: float | None = None,
        pose_from: str = "auto",
        mask_from: str = "auto",
        threads: int | None = None,
        detector_options: dict | None = None,
    ) -> None:
        if detector not in DETECTORS:
            raise InputError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if embedder not in EMBEDDERS:
            raise InputError(f"unknown face embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
        if pose_from not in POSE_SOURCES:
            raise InputError(f"unknown pose source {pose_from!r}; choose one of {', '.join(POSE_SOURCES)}")
        if mask_from not in MASK_SOURCES:
            raise InputError(f"unknown mask source {mask_from!r}; choose one of {', '.join(MASK_SOURCES)}")
        self.detector_name = detector
        self.embedder_name = embedder
        self.score_threshold = score_threshold
        self.pose_from = pose_from
        self.mask_from = mask_from
        self.threads = threads
        self.detector_options = dict(detector_options or {})
        self._detector = None
        self._embedders: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"FaceAnalyzer(detector={self.detector_name!r}, embedder={self.embedder_name!r})"

    # -- models (lazy) -------------------------------------------------------------------------
    @property
    def detector(self):
        if self._detector is None:
            if self.detector_name == "yunet":
                from idvid.faces.yunet import YuNetDetector

                kw = {"threads": self.threads, **self.detector_options}
                if self.score_threshold is not None:
                    kw["score_threshold"] = self.score_threshold
                self._detector = YuNetDetector(**kw)
            else:
                from idvid.faces.dlib_models import DlibDetector

                kw = dict(self.detector_options)
                if self.score_threshold is not None:
                    kw["threshold"] = self.score_threshold
                self._detector = DlibDetector(self.detector_name.split("-", 1)[1], **kw)
        return self._detector

    def _embedder(self, model: str | None):
        name = self.embedder_name if model is None else model
        if name not in EMBEDDERS:
            raise InputError(f"unknown face embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
        if name not in self._embedders:
            if name == "sface":
                from idvid.faces.sface import SFaceEmbedder

                self._embedders[name] = SFaceEmbedder(threads=self.threads)
            else:
                from idvid.faces.dlib_models import DlibEmbedder

                self._embedders[name] = DlibEmbedder()
        return self._embedders[name]

    # -- detection -----------------------------------------------------------------------------
    def detect(self, image) -> list[Face]:
        """All faces in an RGB image, largest first (may be empty)."""
        return self.detector.detect(as_rgb(image))

    def detect_frames(self, frames) -> list[list[Face]]:
        """Faces per frame (largest first) for (T, H, W, 3) frames; YuNet runs them in batches."""
        frames = as_frames(frames)
        if isinstance(frames, np.ndarray) and hasattr(self.detector, "detect_batch"):
            return self.detector.detect_batch(frames)
        return [self.detector.detect(f) for f in frames]

    def largest(self, image) -> Face:
        """The largest face; `NoFaceFound` if there is none."""
        return self.one(image, policy="largest")

    def one(self, image, policy: str = "largest") -> Face:
        """The face of an image that should show one person: `NoFaceFound` if none; with several,
        policy "largest" takes the largest and "error" raises `MultipleFacesFound`."""
        _check_policy(policy, POLICIES)
        return self._choose(self.detect(image), policy)

    @staticmethod
    def _choose(faces: list[Face], policy: str, where: str = "the image") -> Face:
        if not faces:
            raise NoFaceFound(f"no face found in {where}")
        if len(faces) > 1 and policy != "largest":
            raise MultipleFacesFound(f"{len(faces)} faces found in {where}, expected exactly one")
        return faces[0]

    # -- per-face measurements -----------------------------------------------------------------
    def landmarks(self, image, face: Face) -> np.ndarray:
        """iBUG 68 landmarks (68, 2) float32 (dlib predictor; reused if the face already carries them)."""
        if face.landmarks68 is not None:
            return face.landmarks68
        from idvid.faces.dlib_models import landmarks68

        return landmarks68(as_rgb(image), face)

    def with_landmarks(self, image, face: Face) -> Face:
        """The same face with `landmarks68` filled in."""
        return face if face.landmarks68 is not None else replace(face, landmarks68=self.landmarks(image, face))

    def align(self, image, face: Face | None = None) -> np.ndarray:
        """(112, 112, 3) uint8 RGB crop aligned to the ArcFace template (face None: the largest)."""
        image = as_rgb(image)
        face = self.largest(image) if face is None else face
        return align_face(image, face.kps)

    def embed(self, image, face: Face | None = None, model: str | None = None) -> np.ndarray:
        """(128,) float32 unit-norm identity embedding of `face` (None: the largest; `NoFaceFound` if
        none) with `model` ("sface" | "dlib"; None: the analyzer's embedder)."""
        image = as_rgb(image)
        face = self.largest(image) if face is None else face
        return self.embed_faces(image, [face], model)[0]

    def embed_faces(self, image, faces: list[Face], model: str | None = None) -> np.ndarray:
        """(N, 128) float32 embeddings of several faces of one image."""
        image = as_rgb(image)
        emb = self._embedder(model)
        if emb.name == "sface":
            if not faces:
                return np.zeros((0, emb.dim), np.float32)
            return emb.embed_crops(np.stack([align_face(image, f.kps) for f in faces]))
        return emb.embed(image, faces)

    def head_pose(self, image, face: Face) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees, convention in `idvid.faces.pose`."""
        image = as_rgb(image)
        if self.pose_from == "landmarks68" or (self.pose_from == "auto" and face.landmarks68 is not None):
            return head_pose_from_landmarks68(self.landmarks(image, face), image.shape[:2])
        return head_pose_from_kps5(face.kps, image.shape[:2])

    def face_mask(self, image, face: Face) -> np.ndarray:
        """(H, W) bool face region: hull of the 68 landmarks + forehead, or an ellipse in the box
        (see `mask_from`)."""
        image = as_rgb(image)
        if self.mask_from == "landmarks68":
            face = self.with_landmarks(image, face)
        elif self.mask_from == "box":
            face = replace(face, landmarks68=None)
        return face_mask(image.shape, face)

    @staticmethod
    def area_ratio(image, face: Face) -> float:
        """Face box area / image area."""
        shape = image.shape if isinstance(image, np.ndarray) else as_rgb(image).shape
        return face.area_ratio(shape)

    def similarity(self, image_a, image_b, model: str | None = None) -> float:
        """Cosine similarity of the largest faces of two images."""
        return float(self.embed(image_a, model=model) @ self.embed(image_b, model=model))

    # -- whole-image analysis --------------------------------------------------------------------
    def analyze(self, image, policy: str = "largest", mask: bool = True, model: str | None = None) -> FaceAnalysis:
        """Detect, choose one face by `policy`, and measure it (`NoFaceFound` / `MultipleFacesFound`)."""
        _check_policy(policy, POLICIES)
        image = as_rgb(image)
        faces = self.detect(image)
        face = self._choose(faces, policy)
        return self._measure(image, face, len(faces), self.embed_faces(image, [face], model)[0], mask, model)

    def _measure(self, image, face, num_faces, embedding, mask, model) -> FaceAnalysis:
        if "landmarks68" in (self.pose_from, self.mask_from):  # run the predictor once for both
            face = self.with_landmarks(image, face)
        return FaceAnalysis(
            face=face,
            embedding=embedding,
            pose=self.head_pose(image, face),
            mask=self.face_mask(image, face) if mask else None,
            area_ratio=face.area_ratio(image.shape),
            num_faces=num_faces,
            embedder=self._embedder(model).name,
        )

    def analyze_frames(
        self, frames, policy: str = "largest", mask: bool = True, model: str | None = None
    ) -> list[FaceAnalysis | None]:
        """Per-frame `analyze` over (T, H, W, 3) frames; frames without a (chosen) face give None.

        policy: "largest", "skip" (frames with several faces give None) or "error"."""
        _check_policy(policy, FRAME_POLICIES)
        frames = as_frames(frames)
        all_faces = self.detect_frames(frames)
        chosen = self._chosen_faces(all_faces, policy)
        embeddings = self._embed_chosen(frames, chosen, model)
        return [
            None
            if face is None
            else self._measure(frames[t], face, len(all_faces[t]), embeddings[t], mask, model)
            for t, face in enumerate(chosen)
        ]

    def embed_frames(self, frames, model: str | None = None, policy: str = "largest") -> np.ndarray:
        """(T, 128) float32 embeddings of each frame's chosen face; NaN rows where there is none."""
        _check_policy(policy, FRAME_POLICIES)
        frames = as_frames(frames)
        chosen = self._chosen_faces(self.detect_frames(frames), policy)
        return self._embed_chosen(frames, chosen, model)

    def _chosen_faces(self, all_faces: list[list[Face]], policy: str) -> list[Face | None]:
        _check_policy(policy, FRAME_POLICIES)
        chosen: list[Face | None] = []
        for t, faces in enumerate(all_faces):
            if not faces or (len(faces) > 1 and policy == "skip"):
                chosen.append(None)
            else:
                chosen.append(self._choose(faces, policy, where=f"frame {t}"))
        return chosen

    def _embed_chosen(self, frames, chosen: list[Face | None], model: str | None) -> np.ndarray:
        emb = self._embedder(model)
        out = np.full((len(chosen), emb.dim), np.nan, np.float32)
        idx = [t for t, f in enumerate(chosen) if f is not None]
        if not idx:
            return out
        if emb.name == "sface":  # one batched network call for all frames
            crops = np.stack([align_face(frames[t], chosen[t].kps) for t in idx])
            out[idx] = emb.embed_crops(crops)
        else:
            for t in idx:
                out[t] = emb.embed(frames[t], [chosen[t]])[0]
        return out


@functools.cache
def get_analyzer(detector: str = "yunet", embedder: str = "sface") -> FaceAnalyzer:
    """A process-wide shared analyzer per (detector, embedder) — the models behind it load once."""
    return FaceAnalyzer(detector=detector, embedder=embedder)


def get_default_analyzer() -> FaceAnalyzer:
    """The shared YuNet + SFace analyzer."""
    return get_analyzer()


default_analyzer = get_default_analyzer
