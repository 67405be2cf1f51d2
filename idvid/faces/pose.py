"""Head pose (yaw, pitch, roll in degrees) from 2D landmarks with `cv2.solvePnP` against a generic
3D face.

Convention (shared with `idvid.synth`, which renders its ground truth with `rotation_from_angles`):

* Camera frame: x to the image right, y down, z forward (away from the camera). The head model uses
  the same axes when the face looks straight into the camera, so its nose points along -z.
* yaw > 0: the nose points towards the image's right (the person turns to their own left).
* pitch > 0: the nose points up (the person looks up).
* roll > 0: the face rotates clockwise in the image (the eye on the image's right goes down).
* The head rotation is ``R = R_y(-yaw) @ R_x(-pitch) @ R_z(roll)`` with ``R_a(t)`` the right-handed
  rotation by t about camera axis a, i.e. intrinsic yaw, then pitch about the turned ear-to-ear axis,
  then roll about the nose axis. A model point X maps to the camera as ``R @ X + t``.
* Angles in degrees, each in (-180, 180]; pitch is in [-90, 90] by construction.

The camera is a pinhole with focal length = image width and the principal point at the image centre
(no calibration is known for arbitrary photos; the angles are insensitive to a moderate focal error).
The 3D model is a generic adult face in millimetres built from anthropometric averages, its frontal
view scaled to match the ArcFace 5-point template (the mean of real aligned faces), so a face whose
keypoints sit on the template reads as pitch 0; we use the
68-point landmarks that are stable under expression and visible under yaw (brows, eye corners, nose,
mouth corners, chin; not the jaw contour, whose image points slide along the cheek as the head turns).
"""

from __future__ import annotations

import cv2
import numpy as np

# iBUG-68 index -> (x, y, z) mm, nose tip at the origin, axes as the camera's for a frontal face
MODEL_68: dict[int, tuple[float, float, float]] = {
    8: (0.0, 85.0, 30.0),  # chin
    17: (-52.0, -52.0, 42.0),  # brow, image-left outer end
    21: (-11.0, -56.0, 26.0),  # brow, image-left inner end
    22: (11.0, -56.0, 26.0),
    26: (52.0, -52.0, 42.0),
    27: (0.0, -43.0, 24.0),  # nasion
    30: (0.0, 0.0, 0.0),  # nose tip
    31: (-14.0, 7.0, 19.0),  # nose base, image left
    33: (0.0, 10.0, 14.0),  # subnasale
    35: (14.0, 7.0, 19.0),
    36: (-44.0, -33.0, 40.0),  # eye corners: image-left outer, inner; image-right inner, outer
    39: (-14.0, -33.0, 31.0),
    42: (14.0, -33.0, 31.0),
    45: (44.0, -33.0, 40.0),
    48: (-24.0, 34.0, 29.0),  # mouth corners
    54: (24.0, 34.0, 29.0),
    51: (0.0, 26.0, 16.0),  # upper lip top
    57: (0.0, 45.0, 20.0),  # lower lip bottom
}
LANDMARK_IDS = np.array(sorted(MODEL_68), dtype=int)
MODEL_POINTS_68 = np.array([MODEL_68[i] for i in LANDMARK_IDS], np.float64)  # (18, 3)

# the 5 ArcFace/YuNet points: eye centres, nose tip, mouth corners (same model, eye centres averaged)
MODEL_POINTS_5 = np.array(
    [
        [(MODEL_68[36][k] + MODEL_68[39][k]) / 2 for k in range(3)],
        [(MODEL_68[42][k] + MODEL_68[45][k]) / 2 for k in range(3)],
        MODEL_68[30],
        MODEL_68[48],
        MODEL_68[54],
    ],
    np.float64,
)


def _rx(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) head rotation for angles in degrees, in the module's convention."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    return _ry(-y) @ _rx(-p) @ _rz(r)


def _wrap(deg: float) -> float:
    """Map an angle to (-180, 180]."""
    out = -((-deg + 180.0) % 360.0 - 180.0)
    return 180.0 if out == -180.0 else float(out)


def angles_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `rotation_from_angles`: (yaw, pitch, roll) in degrees.

    With a = -yaw, b = -pitch, c = roll, R = R_y(a) R_x(b) R_z(c) has R[1,2] = -sin b,
    R[0,2] / R[2,2] = tan a and R[1,0] / R[1,1] = tan c (away from |pitch| = 90°, where yaw and roll
    are not separable and roll is reported as 0).
    """
    rot = np.asarray(rot, np.float64)
    b = np.arcsin(np.clip(-rot[1, 2], -1.0, 1.0))
    if abs(np.cos(b)) > 1e-6:
        a = np.arctan2(rot[0, 2], rot[2, 2])
        c = np.arctan2(rot[1, 0], rot[1, 1])
    else:  # gimbal lock: put everything in yaw
        a = np.arctan2(-rot[2, 0], rot[0, 0])
        c = 0.0
    yaw, pitch, roll = np.rad2deg([-a, -b, c])
    return _wrap(yaw), _wrap(pitch), _wrap(roll)


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """(3, 3) pinhole intrinsics: focal length `focal` (default: the image width), centred principal point."""
    f = float(width if focal is None else focal)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def project_points(points3d: np.ndarray, rot: np.ndarray, tvec: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Pinhole projection of model points (N, 3) placed by rotation/translation: (N, 2) pixels."""
    x = points3d @ np.asarray(rot).T + np.asarray(tvec).reshape(1, 3)  # (N, 3) camera coordinates
    uvw = x @ cam.T
    return uvw[:, :2] / uvw[:, 2:3]


def solve_pose(
    image_points: np.ndarray, model_points: np.ndarray, image_size: tuple[int, int], focal: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) of the model seen at `image_points` (N, 2).

    SQPnP gives the global minimum of the reprojection error for N >= 3 points (no initial guess needed,
    no DLT that needs 6); Levenberg–Marquardt then polishes it.
    """
    h, w = image_size
    cam = camera_matrix(w, h, focal)
    obj = np.ascontiguousarray(model_points, np.float64).reshape(-1, 1, 3)
    img = np.ascontiguousarray(image_points, np.float64).reshape(-1, 1, 2)
    ok, rvec, tvec = cv2.solvePnP(obj, img, cam, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP found no pose for these landmarks")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, cam, None, rvec, tvec)
    rot, _ = cv2.Rodrigues(rvec)
    return rot, tvec.reshape(3)


def head_pose_from_landmarks68(
    landmarks: np.ndarray, image_size: tuple[int, int], focal: float | None = None
) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from iBUG-68 landmarks (68, 2) in an image of size (H, W)."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {landmarks.shape}")
    rot, _ = solve_pose(landmarks[LANDMARK_IDS], MODEL_POINTS_68, image_size, focal)
    return angles_from_rotation(rot)


def head_pose_from_kps5(
    kps: np.ndarray, image_size: tuple[int, int], focal: float | None = None
) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from the 5 ArcFace-order points (5, 2): coarser than 68 landmarks
    (pitch especially: only the nose tip sits off the eye-mouth plane)."""
    kps = np.asarray(kps, np.float64)
    if kps.shape != (5, 2):
        raise ValueError(f"expected (5, 2) keypoints, got {kps.shape}")
    rot, _ = solve_pose(kps, MODEL_POINTS_5, image_size, focal)
    return angles_from_rotation(rot)
