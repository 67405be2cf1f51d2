"""Static layers of a clip, drawn once per clip: the background and the body (neck, shoulders, clothing,
scarf, necklace). The head moves in front of them; the body does not turn with the head.

All drawing happens on the supersampled float canvas (S, S, 3) in 0..1, in pixel units, given the head
origin (ox, oy) and the head scale `s` (pixels per head unit)."""

from __future__ import annotations

import cv2
import numpy as np

from idvid.synth.appearance import COLOURS, Appearance
from idvid.synth.identity import Identity


def _rgb(name: str) -> np.ndarray:
    return np.asarray(COLOURS[name], np.float32)


def background(app: Appearance, size: int, seed: int) -> np.ndarray:
    """The background image (size, size, 3) float32, softly blurred like a shallow depth of field."""
    rng = np.random.default_rng(seed)
    c1, c2 = _rgb(app.background_colour), _rgb(app.background_colour2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = app.background
    if kind == "wall":
        img = c1 * (0.92 + 0.1 * (1 - np.hypot(xx - 0.5, yy - 0.35)))[..., None]
    elif kind == "gradient":
        img = c1 * (1 - yy[..., None]) + c2 * yy[..., None]
    elif kind == "stripes":
        period = rng.uniform(0.08, 0.16)
        stripe = (np.sin(2 * np.pi * xx / period) > 0).astype(np.float32)[..., None]
        img = c1 * stripe + (0.55 * c1 + 0.45 * c2) * (1 - stripe)
    elif kind == "sky":
        sky = np.array([0.45, 0.65, 0.92], np.float32) * (1 - 0.4 * yy[..., None]) + 0.3 * yy[..., None]
        horizon = 0.62 + 0.05 * np.sin(xx * rng.uniform(4, 9) + rng.uniform(0, 6))
        ground = (yy > horizon)[..., None]
        img = np.where(ground, c1 * (0.8 + 0.3 * (yy[..., None] - 0.6)), sky)
    elif kind == "room":
        img = c1 * (0.85 + 0.15 * (1 - yy[..., None]))
        x0 = rng.uniform(0.05, 0.55)
        window = (xx > x0) & (xx < x0 + 0.35) & (yy > 0.1) & (yy < 0.55)
        img = np.where(window[..., None], np.array([0.86, 0.92, 0.98], np.float32), img)
        img = np.where((yy > 0.8)[..., None], c2 * 0.7, img)
    elif kind == "bokeh":
        img = (c2 * 0.25 + 0.05) * np.ones((size, size, 1), np.float32)
        for _ in range(14):
            cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.04, 0.1) * size
            cv2.circle(img, (int(cx), int(cy)), int(r), tuple(float(v) for v in c1 * rng.uniform(0.6, 1.0)), -1)
    else:  # bookshelf
        img = c1 * 0.45 * np.ones((size, size, 1), np.float32)
        shelf_h = size // 4
        for row in range(4):
            y0 = row * shelf_h
            cv2.rectangle(img, (0, y0 + shelf_h - max(2, size // 40)), (size, y0 + shelf_h), tuple(float(v) for v in c1), -1)
            x = 0
            while x < size:
                w = int(rng.uniform(0.02, 0.05) * size) + 1
                h = int(rng.uniform(0.6, 0.9) * shelf_h)
                col = _rgb(list(COLOURS)[int(rng.integers(len(COLOURS)))]) * 0.8
                cv2.rectangle(img, (x, y0 + shelf_h - h), (x + w - 1, y0 + shelf_h - 3), tuple(float(v) for v in col), -1)
                x += w + 1
    img = np.ascontiguousarray(img, np.float32)
    k = max(3, (size // 48) | 1)
    return cv2.GaussianBlur(img, (k, k), 0)


def body(canvas: np.ndarray, ident: Identity, app: Appearance, ox: float, oy: float, s: float,
         key: float = 1.0) -> None:
    """Draw neck, shoulders and clothing in place on the canvas, below a head at (ox, oy), scale s,
    lit by the scene light times the subject gain `key`."""
    S = canvas.shape[0]
    skin = np.asarray(ident.skin, np.float32)
    light_x = float(app.light_vector[0])
    lrgb = np.asarray(app.light_rgb, np.float32) * key
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    fw = ident.face_width
    neck_w = (0.4 if ident.gender == "man" else 0.35) * fw * ident.jaw_width**0.5 * s

    def shaded(mask: np.ndarray, colour: np.ndarray, cx: float, half_w: float, top: float, dark_top: float = 0.0):
        """Paint a cylinder-ish shaded region: lighter toward the light, darker at its sides and top."""
        u = np.clip((xx - cx) / max(half_w, 1.0), -1, 1)
        side = 0.72 + 0.28 * np.sqrt(np.clip(1 - u * u, 0, 1)) + 0.12 * u * light_x
        top_shadow = 1 - dark_top * np.clip(1 - (yy - top) / (0.35 * s), 0, 1)
        val = colour[None, None, :] * (side * top_shadow)[..., None] * lrgb * 0.95
        canvas[mask] = val[mask]

    # neck: from inside the head down into the collar
    neck_top, neck_bot = oy + 0.45 * s, oy + 1.75 * s
    neck = (np.abs(xx - ox) < neck_w) & (yy > neck_top) & (yy < neck_bot)
    shaded(neck, skin, ox, neck_w, oy + 0.7 * s, dark_top=0.45)

    # torso: shoulders as the top of a wide ellipse, a straight body below
    sh_y = oy + 1.55 * s
    half = 1.55 * s * (0.92 + 0.12 * fw)
    torso = (((xx - ox) / half) ** 2 + ((yy - (sh_y + 0.55 * s)) / (0.75 * s)) ** 2 < 1) | (
        (yy > sh_y + 0.55 * s) & (np.abs(xx - ox) < half))
    cloth = _rgb(app.clothing_colour)
    kind = app.clothing
    if kind == "turtleneck":
        torso |= (np.abs(xx - ox) < neck_w * 1.12) & (yy > oy + 1.05 * s)
    shaded(torso, cloth, ox, half, sh_y, dark_top=0.0)

    def poly(pts, colour, scale=1.0):
        p = np.round(np.array([[ox + a * s, oy + b * s] for a, b in pts])).astype(np.int32)
        cv2.fillPoly(canvas, [p], tuple(float(v) for v in np.asarray(colour) * lrgb * scale))

    def line(pts, colour, width):
        p = np.round(np.array([[ox + a * s, oy + b * s] for a, b in pts])).astype(np.int32)
        cv2.polylines(canvas, [p], False, tuple(float(v) for v in np.asarray(colour) * lrgb), max(1, int(width * s)))

    nw = neck_w / s
    if kind in ("t-shirt", "sweater"):  # round neckline showing skin
        poly([(-nw * 1.3, 1.58), (-nw * 0.8, 1.85), (0, 1.95), (nw * 0.8, 1.85), (nw * 1.3, 1.58)], skin, 0.85)
        if kind == "sweater":
            line([(-nw * 1.35, 1.58), (-nw * 0.85, 1.87), (0, 1.98), (nw * 0.85, 1.87), (nw * 1.35, 1.58)],
                 cloth * 0.7, 0.07)
    elif kind == "hoodie":
        poly([(-nw * 1.9, 1.5), (-nw * 1.2, 1.95), (nw * 1.2, 1.95), (nw * 1.9, 1.5), (nw * 1.2, 1.65),
              (-nw * 1.2, 1.65)], cloth, 0.72)
        line([(-0.16, 1.85), (-0.18, 2.4)], (0.9, 0.9, 0.88), 0.035)
        line([(0.16, 1.85), (0.18, 2.4)], (0.9, 0.9, 0.88), 0.035)
    elif kind in ("shirt", "suit"):
        poly([(-nw * 1.05, 1.55), (0, 2.05), (nw * 1.05, 1.55)], skin if kind == "shirt" else (0.93, 0.93, 0.92), 0.9)
        white = cloth * 1.1 if kind == "shirt" else np.array([0.93, 0.93, 0.92])
        poly([(-nw * 1.15, 1.5), (-0.05, 1.95), (-nw * 1.45, 1.85)], white, 1.05)
        poly([(nw * 1.15, 1.5), (0.05, 1.95), (nw * 1.45, 1.85)], white, 1.05)
        if kind == "suit":
            tie = _rgb(app.scarf if app.scarf != "none" else "red")
            poly([(-0.06, 1.85), (0.06, 1.85), (0.09, 2.6), (0, 2.7), (-0.09, 2.6)], tie, 0.9)
            poly([(-nw * 1.5, 1.6), (-0.12, 2.6), (-0.5, 2.2)], cloth, 0.75)
            poly([(nw * 1.5, 1.6), (0.12, 2.6), (0.5, 2.2)], cloth, 0.75)
    elif kind == "jacket":
        poly([(-nw * 1.1, 1.6), (0, 1.9), (nw * 1.1, 1.6)], skin, 0.85)
        poly([(-nw * 1.7, 1.45), (-nw * 1.05, 1.62), (-0.02, 1.92), (-nw * 1.6, 1.9)], cloth, 0.8)
        poly([(nw * 1.7, 1.45), (nw * 1.05, 1.62), (0.02, 1.92), (nw * 1.6, 1.9)], cloth, 0.8)
        line([(0, 1.92), (0, 2.7)], (0.75, 0.75, 0.72), 0.025)
    elif kind == "turtleneck":
        for k in range(4):
            line([(-nw * 1.05, 1.12 + 0.1 * k), (nw * 1.05, 1.12 + 0.1 * k)], cloth * 0.75, 0.02)

    if app.necklace and kind in ("t-shirt", "sweater", "jacket"):
        ts = np.linspace(-1, 1, 15)
        line([(nw * 0.9 * t, 1.62 + 0.2 * (1 - t * t)) for t in ts], (0.85, 0.7, 0.3), 0.02)
    if app.scarf != "none" and kind != "suit":
        sc = _rgb(app.scarf)
        poly([(-nw * 1.5, 1.3), (nw * 1.5, 1.3), (nw * 1.7, 1.75), (0, 1.85), (-nw * 1.7, 1.75)], sc, 0.95)
        poly([(0.05, 1.7), (0.3, 1.7), (0.34, 2.6), (0.1, 2.6)], sc, 0.8)
        for k in range(3):
            line([(-nw * 1.55, 1.4 + 0.12 * k), (nw * 1.55, 1.4 + 0.12 * k)], sc * 0.7, 0.015)
