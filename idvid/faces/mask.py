"""Face masks (H, W) bool: where the face is, for region-aware and perceptual losses and for curation.

With 68 landmarks: the convex hull of the landmarks plus a forehead (the brow points raised by
`forehead` x the brow-to-chin distance; the iBUG points stop at the brows). Without: an ellipse inscribed
in the face box, tilted with the eye line of the 5 keypoints.
"""

from __future__ import annotations

import cv2
import numpy as np

from idvid.faces.types import Face


def mask_from_landmarks68(image_shape: tuple[int, ...], landmarks: np.ndarray, forehead: float = 0.25) -> np.ndarray:
    """Convex hull of 68 landmarks (68, 2), extended upwards over the forehead, rasterised to (H, W) bool."""
    lm = np.asarray(landmarks, np.float64)
    brows = lm[17:27]  # (10, 2)
    chin = lm[8]
    up = brows.mean(0) - chin  # brow-to-chin direction, pointing up the face (tilts with roll)
    pts = np.concatenate([lm, brows + forehead * up])
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    out = np.zeros(image_shape[:2], np.uint8)
    cv2.fillConvexPoly(out, hull, 1)
    return out.astype(bool)


def mask_from_box(image_shape: tuple[int, ...], face: Face) -> np.ndarray:
    """Ellipse inscribed in the face box, rotated by the eye line's angle, as (H, W) bool.

    A pixel is in the mask when its centre (integer coordinates, as the detectors use) is inside.
    """
    h, w = image_shape[:2]
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    a, b = max((x1 - x0) / 2.0, 0.5), max((y1 - y0) / 2.0, 0.5)
    dx, dy = (face.kps[1] - face.kps[0]).astype(np.float64)
    theta = float(np.arctan2(dy, dx)) if (dx or dy) else 0.0
    out = np.zeros((h, w), bool)
    r = max(a, b)  # only the ellipse's bounding square needs testing
    xs, xe = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, w)
    ys, ye = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, h)
    if xs >= xe or ys >= ye:
        return out
    yy, xx = np.mgrid[ys:ye, xs:xe].astype(np.float32)
    u, v = xx - cx, yy - cy
    c, s = np.cos(theta), np.sin(theta)
    out[ys:ye, xs:xe] = ((u * c + v * s) / a) ** 2 + ((-u * s + v * c) / b) ** 2 <= 1.0
    return out


def face_mask(image_shape: tuple[int, ...], face: Face, forehead: float = 0.25) -> np.ndarray:
    """(H, W) bool mask of `face`: landmark hull when the face carries 68 landmarks, else box ellipse."""
    if face.landmarks68 is not None:
        return mask_from_landmarks68(image_shape, face.landmarks68, forehead)
    return mask_from_box(image_shape, face)
