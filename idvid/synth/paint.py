"""Surface colours ("albedo") of the head, painted as functions of head-local surface points.

Features are drawn on the 3D surface, not on the image: eyes, brows, lips, nostrils, facial hair and marks
move, foreshorten and disappear behind the head exactly as the surface does when the head turns.
Every function takes flat arrays of head-local coordinates (N,) and returns colours (N, 3) in 0..1 and,
for the face, a multiplicative shading term (ambient occlusion of sockets, under the nose and lips).
"""

from __future__ import annotations

import numpy as np

from idvid.synth.head import Expression, Layout, brow_curve, brow_span, eyelids, hair_limit, jaw_drop, mouth
from idvid.synth.identity import Identity


def _c(rgb) -> np.ndarray:
    """A colour / constant vector as float32 (keeps the per-pixel arithmetic in float32)."""
    return np.asarray(rgb, np.float32)


def _gauss(x, y, cx, cy, rx, ry):
    return np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def _mix(col: np.ndarray, target, alpha: np.ndarray) -> None:
    """In place: col = col * (1 - alpha) + target * alpha, alpha (N,), target (3,) or (N, 3)."""
    a = np.clip(alpha, 0.0, 1.0)[:, None]
    col *= 1 - a
    col += a * np.asarray(target, np.float32)


def _band(d: np.ndarray, half: float, soft: float) -> np.ndarray:
    """1 inside |d| < half, fading to 0 over `soft` outside (an anti-aliased stripe)."""
    return np.clip((half - np.abs(d)) / soft + 0.5, 0.0, 1.0)


def _step(v: np.ndarray, soft: float) -> np.ndarray:
    """A soft step: 0 for v << 0, 1 for v >> 0, linear over a width `soft` around 0."""
    return np.clip(v / soft + 0.5, 0.0, 1.0)


def _hash(x: np.ndarray, y: np.ndarray, k: float = 1.0) -> np.ndarray:
    """Deterministic pseudo-random 0..1 per surface position (stays glued to the surface as it moves)."""
    v = np.sin(x * 127.1 * k + y * 311.7 * k) * 43758.5453
    return v - np.floor(v)


def hair_colour(ident: Identity, x, y, z) -> np.ndarray:
    """Hair with strands (streaks running down the head) and a slight sheen band."""
    base = _c(ident.hair_rgb)
    streak = 0.82 + 0.18 * np.sin(x * 55 + 6 * np.sin(y * 9) + z * 31) * np.sin(x * 23 - z * 17)
    if ident.hair_style == "curly":
        streak = 0.75 + 0.25 * np.sin(x * 48) * np.sin(y * 44) * np.sin(z * 41)
    col = base[None, :] * streak[:, None]
    return col + 0.02


def face_colour(ident: Identity, lay: Layout, expr: Expression, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Albedo (N, 3), shading factor (N,) and face-region flag (N,) for points on the cranium / jaw."""
    n = x.shape[0]
    skin = _c(ident.skin)
    ph = ident.skin_phase
    # complexion: broad tone variation plus a blotchy mid-frequency pattern unique to the identity (real
    # models key on it like on any skin detail; it stays glued to the surface as the head turns)
    f1, f2, f3 = 9 + ph[3], 11 + ph[4], 13 + ph[5]
    tone = (1 + 0.035 * np.sin(3.1 * x + ph[0]) * np.sin(2.3 * y + ph[1]) + 0.02 * np.sin(5.3 * y + 4.1 * x + ph[2])
            + 0.08 * (np.sin(f1 * x + 2 * ph[0]) * np.sin(f2 * y + 3 * ph[1])
                      + np.sin(f3 * (x + y) + 2 * ph[2]) * np.sin(f1 * y - f2 * x)))
    col = skin[None, :] * tone[:, None]
    shade = np.ones(n, np.float32)
    ax = np.abs(x)
    az = np.abs(np.arctan2(x, -(z - 0.08)))

    # --- scalp hair (on the skin itself, under any hair shell) and the face region ---
    limit = hair_limit(lay, ident, x, y, z)
    style = ident.hair_style
    if style == "bald":
        scalp = np.zeros(n, bool)
        if ident.age != "young":  # a fringe around the sides and back
            scalp = (az > 1.25) & (y > -0.25) & (y < 0.42)
        scalp_alpha = scalp * 0.8
    else:
        scalp_alpha = np.clip((limit - y) / 0.03 + 0.5, 0, 1) * (0.75 if style == "buzz" else 1.0)
    face_region = (y > limit - 0.01) & (az < 1.3) & (y < lay.chin_y + jaw_drop(lay, expr) + 0.05)

    # --- cheeks, blush, under-eye, nose-side shading, marks, age ---
    cheek = _gauss(ax, y, 0.33, 0.28 - 0.04 * expr.smile, 0.14, 0.12)
    _mix(col, skin * _c([1.06, 0.78, 0.76]), cheek * (0.15 + 0.35 * ident.blush))
    shade *= 1 - 0.2 * _gauss(ax, y, lay.eye_x, lay.eye_y - 0.035, 0.14, 0.065)  # eye sockets
    shade *= 1 - 0.06 * _gauss(ax, y, 0.11, 0.22, 0.05, 0.14)  # sides of the nose
    shade *= 1 - 0.25 * _gauss(x, y, 0.0, lay.nose_base + 0.035, 0.09, 0.03)  # under the nose
    for mx, my, mr in ident.marks:
        _mix(col, skin * 0.45, _band(np.hypot(x - mx, y - my), mr, 0.006))
    if ident.freckles > 0:
        _mix(col, skin * _c([0.72, 0.55, 0.45]), _freckles(ident, x, y) * 0.75)
    if ident.age == "older":
        for k in range(3):
            line = _band(y - (lay.brow_y - 0.12 - 0.07 * k - 0.01 * np.cos(6 * x)), 0.005, 0.006) * (ax < 0.32)
            shade *= 1 - 0.18 * line
        _mix(col, skin * 0.8, _gauss(ax, y, lay.eye_x, lay.eye_y + 0.085, 0.08, 0.02) * 0.6)

    # --- mouth: lips, opening, teeth; smile raises the corners ---
    drop = jaw_drop(lay, expr)
    m = mouth(lay, expr, x)
    hw, ym, yu_in, yl_in, yu_out, yl_out = m.hw, m.ym, m.upper_in, m.lower_in, m.upper_out, m.lower_out
    gap = 0.11 * expr.mouth_open
    inside = np.clip(1 - (x / hw) ** 2, 0, 1)
    in_mouth_x = ax < hw
    lip_soft = 0.007
    upper_lip = np.clip(np.minimum(y - yu_out, yu_in - y) / lip_soft + 0.5, 0, 1) * in_mouth_x
    lower_lip = np.clip(np.minimum(y - yl_in, yl_out - y) / lip_soft + 0.5, 0, 1) * in_mouth_x
    opening = (y > yu_in) & (y < yl_in) & in_mouth_x

    # nasolabial folds and the chin crease
    fold_x = 0.1 + (hw + 0.03 - 0.1) * np.clip((y - lay.nose_base + 0.02) / (ym - lay.nose_base + 0.04), 0, 1)
    fold = _band(ax - fold_x, 0.006, 0.008) * (y > lay.nose_base - 0.03) * (y < ym + 0.03)
    shade *= 1 - fold * (0.08 + 0.22 * expr.smile + (0.1 if ident.age == "older" else 0.0))
    shade *= 1 - 0.14 * _gauss(x, y - yl_out, 0.0, 0.045, hw * 0.6, 0.025)  # under the lower lip

    # --- facial hair (before the lips so the lips stay visible) ---
    fh = ident.facial_hair
    if fh != "none":
        hc = _c(ident.hair_rgb) * (0.8 + 0.2 * _hash(x, y)[:, None])
        moustache = _step(y - lay.nose_base - 0.01, 0.012) * _step(yu_out + 0.006 - y, 0.01) * _step(hw * 1.15 - ax, 0.03)
        beard_top = lay.nose_base * 0.3 + 0.36 * (1 - np.clip(ax / 0.6, 0, 1)) ** 0.8
        chin_bottom = lay.chin_y + drop + 0.03
        beard = _step(y - beard_top, 0.05) * _step(chin_bottom - y, 0.02) * _step(1.35 - az, 0.1)
        goatee = _step(0.14 - ax, 0.04) * _step(y - yl_out - 0.008, 0.012) * _step(chin_bottom - y, 0.02)
        density = 0.8 + 0.2 * _hash(x, y, 2.3)
        if fh == "stubble":
            _mix(col, hc, np.maximum(beard, moustache) * (0.25 + 0.2 * _hash(x, y, 1.7)))
        elif fh == "moustache":
            _mix(col, hc, moustache * density)
        elif fh == "goatee":
            _mix(col, hc, np.maximum(moustache, goatee) * density)
        else:  # beard
            _mix(col, hc, np.maximum(beard, moustache) * density)

    lips = _c(ident.lip_colour)
    _mix(col, lips * 0.82, upper_lip)
    sheen = 1.0 + 0.12 * np.clip(1 - np.abs(y - (yl_in + yl_out) / 2) / 0.02, 0, 1)
    _mix(col, lips[None, :] * sheen[:, None], lower_lip)
    closed_line = _band(y - ym, 0.004 + 0.003 * inside, 0.005) * in_mouth_x * (gap < 0.01)
    shade *= 1 - 0.45 * closed_line
    shade *= 1 - 0.3 * _gauss(ax, y - ym, hw, 0.0, 0.018, 0.014)  # mouth corners
    if gap > 0:
        interior = np.where((y - yu_in < 0.03) & (ax < hw * 0.72) & (y - yu_in < 0.45 * (yl_in - yu_in)),
                            0, 1)
        teeth = _c([0.92, 0.9, 0.82])
        dark = _c([0.25, 0.05, 0.06])
        tgt = np.where(interior[:, None] == 0, teeth, dark)
        _mix(col, tgt, opening.astype(float))

    # --- eyes and brows ---
    _paint_eyes(ident, lay, expr, col, shade, x, y)
    _paint_brows(ident, lay, expr, col, x, y)

    # scalp hair last: it covers everything above the hairline
    hair = hair_colour(ident, x, y, z) if style != "bald" else _c(ident.hair_rgb)[None, :] * np.ones((n, 1), np.float32)
    _mix(col, hair, scalp_alpha)
    return col, shade, face_region & (scalp_alpha < 0.5)


def _freckles(ident: Identity, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Freckle coverage 0..1: one candidate dot per 0.035-unit cell over the nose and cheeks, kept with
    a probability set by the identity's density; positions are fixed on the face surface."""
    cell = 0.035
    cx, cy = np.floor(x / cell), np.floor(y / cell)
    ph = ident.skin_phase
    keep = _hash(cx + ph[0], cy + ph[1], 0.37) < 0.45 * ident.freckles
    jx, jy = _hash(cx + ph[2], cy, 0.51), _hash(cx, cy + ph[3], 0.53)
    d = np.hypot(x - (cx + 0.25 + 0.5 * jx) * cell, y - (cy + 0.25 + 0.5 * jy) * cell)
    region = _gauss(np.abs(x), y, 0.2, 0.2, 0.25, 0.14)
    return keep * _band(d, 0.0075, 0.004) * np.clip(region * 1.5, 0, 1)


def _paint_eyes(ident: Identity, lay: Layout, expr: Expression, col, shade, x, y) -> None:
    side = np.sign(x)
    dx = np.abs(x) - lay.eye_x  # + = toward the outer corner, for both eyes
    near = np.abs(dx) < lay.eye_w * 1.6
    if not near.any():
        return
    idx = np.nonzero(near & (np.abs(y - lay.eye_y) < 0.2))[0]
    if idx.size == 0:
        return
    dx, yy, sd = dx[idx], y[idx], side[idx]
    dy = yy - (lay.eye_y - lay.eye_tilt * dx)
    r = dx / lay.eye_w
    body = np.clip(1 - r * r, 0, 1)
    upper, lower, full_upper = eyelids(lay, expr, dx)
    inside = (dy > upper) & (dy < lower) & (np.abs(r) < 1)

    c = col[idx]
    s = shade[idx]
    # sclera: darker toward the corners and under the upper lid
    sclera = _c([0.86, 0.83, 0.8]) * (0.7 + 0.3 * body**0.5)[:, None]
    sclera = sclera * (1 - 0.3 * np.exp(-((dy - upper) / 0.012) ** 2))[:, None]
    gx = expr.gaze_x * 0.45 * lay.eye_w * sd
    gy = expr.gaze_y * 0.3 * lay.eye_h
    d = np.hypot(dx - gx, dy - gy - 0.004)
    ir = lay.iris_r
    iris = _c(ident.eye_rgb)[None, :] * (0.55 + 0.7 * (d / ir))[:, None]
    iris = np.where((d > 0.82 * ir)[:, None], iris * 0.45, iris)
    eye = np.where((d < ir)[:, None], iris, sclera)
    eye = np.where((d < 0.42 * ir)[:, None], 0.03, eye)
    hl = np.hypot(dx - gx + 0.3 * ir * sd, dy - gy + 0.35 * ir) < 0.2 * ir
    eye = np.where(hl[:, None], 0.95, eye)
    c = np.where(inside[:, None], eye, c)
    s = np.where(inside, 1.0, s)

    # lash line / eyeliner along the upper lid, a faint lower lid line, and the crease
    lash = 0.017 * ident.lash
    wing = 1.08 + (0.08 if ident.gender == "woman" else 0.0)
    upper_line = _band(dy - (upper - lash * 0.35), lash * 0.5, 0.006) * (np.abs(r) < wing)
    lower_line = _band(dy - lower - 0.003, 0.004, 0.005) * (np.abs(r) < 1.0)
    crease_y = full_upper * (0.55 if ident.eye_shape == "hooded" else 1.0) - 0.035
    crease = _band(dy - crease_y, 0.005, 0.008) * (np.abs(r) < 0.95) * (1 - expr.blink)
    a = np.clip(upper_line, 0, 1)[:, None]
    c = c * (1 - a) + 0.06 * a
    if ident.eyeshadow[3] > 0:  # over the upper lid, up to the crease
        lid = np.clip((dy - (crease_y - 0.01)) / 0.02, 0, 1) * (dy < upper) * (np.abs(r) < 1.15)
        c = c * (1 - (lid * ident.eyeshadow[3])[:, None]) + (lid * ident.eyeshadow[3])[:, None] * np.array(ident.eyeshadow[:3])
    c = c * (1 - 0.3 * lower_line)[:, None]
    s = s * (1 - 0.22 * crease)
    col[idx] = c
    shade[idx] = s


def _paint_brows(ident: Identity, lay: Layout, expr: Expression, col, x, y) -> None:
    inner, outer = brow_span(lay)
    t = (np.abs(x) - inner) / (outer - inner)
    idx = np.nonzero((t > -0.05) & (t < 1.05) & (np.abs(y - lay.brow_y) < 0.15))[0]
    if idx.size == 0:
        return
    t, yy, xx = t[idx], y[idx], x[idx]
    tc = np.clip(t, 0, 1)
    yc = brow_curve(ident, lay, expr, t)
    th = lay.brow_th * (1.25 - 0.65 * tc)
    alpha = _band(yy - yc, th / 2, 0.012) * np.clip(np.minimum(t, 1 - t) / 0.08 + 0.5, 0, 1)
    alpha = alpha * (0.88 + 0.12 * np.sin(xx * 160 + yy * 40))  # hairs
    c = col[idx]
    _mix(c, _c(ident.brow_colour), alpha * 0.95)
    col[idx] = c


def nose_colour(ident: Identity, lay: Layout, x, y, z, n_local: np.ndarray) -> np.ndarray:
    """Skin with a slightly redder tip and dark nostrils on the underside."""
    skin = _c(ident.skin)
    col = skin[None, :] * np.ones((x.shape[0], 1), np.float32)
    _mix(col, skin * _c([1.05, 0.85, 0.83]), 0.25 * _gauss(x, y, 0, lay.nose_base - 0.06, 0.07, 0.05))
    nostril = _gauss(np.abs(x), y, 0.045 * lay.nose_w, lay.nose_base - 0.01, 0.026, 0.014)
    nostril = nostril * np.clip(n_local[1] * 2.5, 0, 1)
    _mix(col, skin * 0.18, np.clip(nostril * 1.6, 0, 1))
    return col


def ear_colour(ident: Identity, u: np.ndarray) -> np.ndarray:
    """Ear skin, redder than the face, with a darker inner bowl; `u` is the point on the unit sphere."""
    skin = _c(ident.skin) * _c([1.03, 0.9, 0.88])
    col = skin[None, :] * np.ones((u.shape[1], 1), np.float32)
    bowl = np.clip(1 - (u[1] ** 2 / 0.35 + u[2] ** 2 / 0.3), 0, 1)
    _mix(col, skin * 0.55, bowl * 0.7)
    return col


def hat_colour(rgb, kind: str, x, y, z) -> np.ndarray:
    base = _c(rgb)
    if kind == "beanie":
        rib = 0.85 + 0.15 * np.sin(np.arctan2(x, -(z - 0.08)) * 40)
        return base[None, :] * rib[:, None]
    return base[None, :] * (0.95 + 0.05 * np.sin(y * 30))[:, None]
