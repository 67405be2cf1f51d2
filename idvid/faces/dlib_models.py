"""dlib face models from the `face_recognition_models` package: HOG and CNN (MMOD) detectors, 5- and
68-point shape predictors, and the ResNet 128-d face descriptor.

`face_recognition_models/__init__.py` imports `pkg_resources`, which recent setuptools no longer ships,
so we never import it: the weight files are found next to its spec origin. All models load lazily and
once per process (dlib objects are not picklable; each worker process loads its own).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from idvid.errors import ModelUnavailable
from idvid.faces.types import Face
from idvid.faces.weights import packaged_model_file

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD = "mmod_human_face_detector.dat"

# iBUG 68-point indices used to derive the 5 ArcFace points (subject's right eye is on the image's left)
_RIGHT_EYE = slice(36, 42)
_LEFT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_RIGHT, _MOUTH_LEFT = 48, 54


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelUnavailable("dlib is not installed; pip install dlib-bin") from exc
    return dlib


def model_path(filename: str) -> Path:
    """Path of a weight file inside the installed `face_recognition_models` package (not imported)."""
    return packaged_model_file("face_recognition_models", filename, "face-recognition-models")


@functools.cache
def shape_predictor(filename: str = SHAPE_68):
    return _dlib().shape_predictor(str(model_path(filename)))


@functools.cache
def hog_detector():
    return _dlib().get_frontal_face_detector()


@functools.cache
def cnn_detector():
    return _dlib().cnn_face_detection_model_v1(str(model_path(MMOD)))


@functools.cache
def resnet_embedder():
    return _dlib().face_recognition_model_v1(str(model_path(RESNET)))


def _rect(box: tuple[float, float, float, float]):
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return _dlib().rectangle(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def dlib_box(face: Face) -> tuple[float, float, float, float]:
    """The face box in dlib's convention. dlib's detectors (and so its shape predictors' training boxes)
    frame the face from the brows to the chin; YuNet's box reaches higher, to the forehead. We shrink a
    YuNet box from the top by 12% of its height so the predictors see what they were trained on."""
    x0, y0, x1, y1 = face.box
    if face.detector == "yunet":
        y0 = y0 + 0.12 * (y1 - y0)
    return x0, y0, x1, y1


def landmarks68(image: np.ndarray, face: Face) -> np.ndarray:
    """68 iBUG landmarks (68, 2) float32 x/y for `face` in RGB uint8 `image`."""
    shape = shape_predictor(SHAPE_68)(np.ascontiguousarray(image), _rect(dlib_box(face)))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def five_from_68(lm: np.ndarray) -> np.ndarray:
    """The 5 ArcFace-order points (5, 2) from 68 landmarks: eye centres, nose tip, mouth corners."""
    return np.stack(
        [lm[_RIGHT_EYE].mean(0), lm[_LEFT_EYE].mean(0), lm[_NOSE_TIP], lm[_MOUTH_RIGHT], lm[_MOUTH_LEFT]]
    ).astype(np.float32)


class DlibDetector:
    """dlib HOG (`kind="hog"`) or CNN MMOD (`kind="cnn"`) detector; keypoints from the 68-point predictor.

    `upsample` doubles the image that many times before detecting (dlib finds faces down to ~80 px
    without it, ~40 px with one); None picks 1 for images whose long side is <= `small_side` (default
    400 px for HOG, 200 px for the CNN, which costs ~10x more per pixel), else 0.
    """

    def __init__(
        self, kind: str = "hog", upsample: int | None = None, threshold: float = 0.0, small_side: int | None = None
    ):
        if kind not in ("hog", "cnn"):
            raise ValueError(f"kind must be 'hog' or 'cnn', got {kind!r}")
        self.kind = kind
        self.upsample = upsample
        self.threshold = threshold
        self.small_side = small_side if small_side is not None else (400 if kind == "hog" else 200)

    def detect(self, image: np.ndarray) -> list[Face]:
        image = np.ascontiguousarray(image)
        up = self.upsample if self.upsample is not None else int(max(image.shape[:2]) <= self.small_side)
        if self.kind == "hog":
            rects, scores, _ = hog_detector().run(image, up, self.threshold)
            found = list(zip(rects, scores, strict=True))
        else:
            found = [(d.rect, d.confidence) for d in cnn_detector()(image, up) if d.confidence >= self.threshold]
        h, w = image.shape[:2]
        faces = []
        for rect, score in found:
            box = (
                float(max(rect.left(), 0)),
                float(max(rect.top(), 0)),
                float(min(rect.right() + 1, w)),
                float(min(rect.bottom() + 1, h)),
            )
            face = Face(box=box, score=float(score), kps=np.zeros((5, 2), np.float32), detector=f"dlib-{self.kind}")
            lm = landmarks68(image, face)
            faces.append(Face(box=box, score=float(score), kps=five_from_68(lm), landmarks68=lm, detector=face.detector))
        return sorted(faces, key=lambda f: -f.area)


class DlibEmbedder:
    """dlib ResNet 128-d descriptor (L2-normalised here; dlib's own are near unit norm, compared by
    Euclidean distance 0.6). The face shape comes from the 5-point predictor on the face's box."""

    name = "dlib"
    dim = 128

    def __init__(self, num_jitters: int = 0, padding: float = 0.25):
        self.num_jitters = num_jitters
        self.padding = padding

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(N, 128) float32 for `faces` in one RGB image."""
        if not faces:
            return np.zeros((0, 128), np.float32)
        image = np.ascontiguousarray(image)
        sp = shape_predictor(SHAPE_5)
        shapes = _dlib().full_object_detections()
        for face in faces:
            shapes.append(sp(image, _rect(dlib_box(face))))
        desc = resnet_embedder().compute_face_descriptor(image, shapes, self.num_jitters, self.padding)
        out = np.array([np.asarray(d) for d in desc], np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
