"""A procedurally drawn frontal face for tests and smoke checks (no photo ships with idvid).

Not the synthetic world (`idvid.synth`): just one deterministic cartoon-portrait painter, shaded enough
that the real detectors (YuNet, dlib) find it, with a few appearance knobs so that identities differ.
"""

from __future__ import annotations

import cv2
import numpy as np


def draw_face(
    size: int = 256,
    seed: int = 0,
    background: tuple[int, int, int] | None = None,
    center: tuple[float, float] = (0.5, 0.52),
    scale: float = 1.0,
) -> np.ndarray:
    """An RGB uint8 (size, size, 3) portrait of a face; `seed` varies the person, `center`/`scale` the framing."""
    rng = np.random.default_rng(seed)
    s = size / 256.0 * scale
    cx, cy = center[0] * size, center[1] * size
    bg = background if background is not None else tuple(int(v) for v in rng.integers(90, 200, 3))
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    tone = rng.uniform(0.0, 1.0)  # light .. dark skin, plus a little hue jitter
    skin = (1 - tone) * np.array([236.0, 200.0, 172.0]) + tone * np.array([120.0, 78.0, 55.0])
    skin = np.clip(skin + rng.normal(0, 6, 3), 0, 255)
    hair_colours = [(25, 20, 18), (60, 40, 25), (110, 75, 40), (170, 130, 70), (120, 40, 20), (90, 90, 90)]
    hair = hair_colours[int(rng.integers(len(hair_colours)))]
    face_w = 62 * s * rng.uniform(0.9, 1.08)
    face_h = 84 * s * rng.uniform(0.92, 1.06)

    def pt(x: float, y: float) -> tuple[int, int]:  # face-relative units (scaled) -> int pixel
        return int(round(cx + x * s)), int(round(cy + y * s))

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(int(round(a * s)), 1), max(int(round(b * s)), 1)

    # neck and shoulders, hair behind the head
    cv2.rectangle(img, pt(-24, 50), pt(24, 140), tuple(int(v) for v in skin * 0.8), -1)
    cv2.ellipse(img, pt(0, 150), ax(110, 50), 0, 0, 360, tuple(int(v) for v in rng.integers(30, 220, 3)), -1)
    cv2.ellipse(img, pt(0, -12), (int(face_w * 1.12), int(face_h * 1.0)), 0, 0, 360, hair, -1)

    # face: shaded ellipse (lighter centre, darker rim) so it has the gradients of a real face
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt(((xx - cx) / face_w) ** 2 + ((yy - cy) / face_h) ** 2)
    inside = r <= 1.0
    shade = (1.05 - 0.35 * r**2)[..., None]
    img[inside] = np.clip(skin * shade, 0, 255)[inside].astype(np.uint8)
    fringe_y = -60 + rng.uniform(-12, 8)
    cv2.ellipse(img, pt(0, fringe_y), (int(face_w * 1.05), int(face_h * 0.45)), 0, 180, 360, hair, -1)
    if rng.random() < 0.4:  # beard: a darker band along the jaw
        beard = np.clip(skin * 0.35 + np.array(hair) * 0.5, 0, 255)
        jaw = inside & (yy > cy + 0.45 * face_h) & (r > 0.55)
        img[jaw] = (0.5 * img[jaw] + 0.5 * beard).astype(np.uint8)

    # ears
    for side in (-1, 1):
        cv2.ellipse(img, pt(side * face_w / s * 0.98, 2), ax(9, 16), 0, 0, 360, tuple(int(v) for v in skin * 0.85), -1)

    # eyes: socket shadow, sclera, iris, pupil, highlight; brows above
    iris = tuple(int(v) for v in rng.integers(20, 120, 3))
    eye_dx, eye_y = 24 * rng.uniform(0.9, 1.1), -8.0 + rng.uniform(-4, 4)
    eye_w, eye_h = 11 * rng.uniform(0.85, 1.15), 5.5 * rng.uniform(0.75, 1.2)
    brow_tilt, brow_w = rng.uniform(-12, 8), rng.uniform(2.0, 5.0)
    for side in (-1, 1):
        ex = side * eye_dx
        cv2.ellipse(img, pt(ex, eye_y - 1), ax(eye_w + 4, eye_h + 3.5), 0, 0, 360, tuple(int(v) for v in skin * 0.72), -1)
        cv2.ellipse(img, pt(ex, eye_y), ax(eye_w, eye_h), 0, 0, 360, (240, 240, 235), -1)
        cv2.circle(img, pt(ex, eye_y), max(int(min(5, eye_h) * s), 1), iris, -1)
        cv2.circle(img, pt(ex, eye_y), max(int(2.4 * s), 1), (10, 10, 10), -1)
        cv2.circle(img, pt(ex + 1.5, eye_y - 1.5), max(int(1 * s), 1), (255, 255, 255), -1)
        cv2.ellipse(img, pt(ex, eye_y), ax(eye_w, eye_h), 0, 180, 360, (40, 30, 30), max(int(1.5 * s), 1))
        cv2.ellipse(img, pt(ex, eye_y - 13), ax(14, 4), side * brow_tilt, 180, 360, hair, max(int(brow_w * s), 1))
    if rng.random() < 0.3:  # glasses
        for side in (-1, 1):
            cv2.ellipse(img, pt(side * eye_dx, eye_y), ax(eye_w + 6, eye_h + 6), 0, 0, 360, (20, 20, 20), max(int(1.5 * s), 1))
        cv2.line(img, pt(-eye_dx + eye_w + 6, eye_y), pt(eye_dx - eye_w - 6, eye_y), (20, 20, 20), max(int(1.5 * s), 1))

    # nose: bridge shadow, tip highlight, nostrils
    nose_y, nose_w = 20 + rng.uniform(-4, 4), rng.uniform(0.8, 1.3)
    cv2.line(img, pt(-4, -2), pt(-6, nose_y - 2), tuple(int(v) for v in skin * 0.8), max(int(2 * s), 1))
    cv2.ellipse(img, pt(0, nose_y), ax(9 * nose_w, 6), 0, 0, 360, tuple(int(v) for v in np.minimum(skin * 1.08, 255)), -1)
    for side in (-1, 1):
        cv2.ellipse(img, pt(side * 5 * nose_w, nose_y + 3), ax(3, 2), 0, 0, 360, tuple(int(v) for v in skin * 0.45), -1)

    # mouth: lips with a dark line between
    lip = tuple(int(v) for v in (skin * np.array([0.85, 0.5, 0.5])))
    mw, my, mh = 18 * rng.uniform(0.8, 1.2), 42 + rng.uniform(-4, 5), 5 * rng.uniform(0.6, 1.4)
    cv2.ellipse(img, pt(0, my), ax(mw, mh), 0, 0, 360, lip, -1)
    cv2.line(img, pt(-mw, my), pt(mw, my), (60, 25, 25), max(int(1.5 * s), 1))

    img = cv2.GaussianBlur(img, (0, 0), max(0.6 * s, 0.5))
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
