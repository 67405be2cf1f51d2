"""Ground truth from geometry alone (no pixels): projected keypoints, the face box and the tracking points
behind the motion intensity. All image coordinates are in output pixels with pixel centres at integers
(OpenCV's convention), whatever the supersampling.
"""

from __future__ import annotations

import numpy as np

from idvid.synth import head as H
from idvid.synth.head import Expression, Layout

# face-region sample grid, in fractions of the face extents (built once)
_GX, _GY = np.meshgrid(np.linspace(-1, 1, 15), np.linspace(0, 1, 13))
_GX, _GY = _GX.ravel(), _GY.ravel()


def nose_tip(lay: Layout) -> np.ndarray:
    """Head-local position of the nose tip (the front of the tip ellipsoid)."""
    nl, npj = lay.nose_base / 0.4, lay.nose_proj
    return np.array([0.0, 0.34 * nl, -0.84 - 0.08 * (npj - 1) - 0.08 * npj])


def keypoints5(lay: Layout, expr: Expression) -> np.ndarray:
    """The 5 alignment points (3, 5) in head-local coordinates, in YuNet/ArcFace order: eye on the
    image's left, eye on the image's right, nose tip, mouth corner on the image's left, then right."""
    hw = H.mouth(lay, expr, np.zeros(1)).hw
    mc = H.mouth(lay, expr, np.array([-hw, hw]) * 0.98)
    xs = np.array([-lay.eye_x, lay.eye_x, 0.0, -hw, hw])
    ys = np.array([lay.eye_y, lay.eye_y, 0.0, mc.ym[0], mc.ym[1]])
    zs, _ = H.front_surface(lay, xs, ys, H.jaw_drop(lay, expr))
    pts = np.stack([xs, ys, zs])
    pts[:, 2] = nose_tip(lay)
    return pts


def face_points(lay: Layout, expr: Expression) -> tuple[np.ndarray, np.ndarray]:
    """Points (3, N) sampled over the face (brows to chin, cheek to cheek) plus the nose tip, with
    their outward normals (3, N), in head-local coordinates. The same N points for every expression:
    those below the mouth ride down with the jaw when it opens."""
    top = lay.brow_y - 0.22
    bottom = lay.chin_y - 0.01
    xs = _GX * 0.6 * lay.fw
    ys = top + _GY * (bottom - top)
    z0, _ = H.front_surface(lay, xs, ys)
    ok = np.isfinite(z0)
    xs, ys = xs[ok], ys[ok]
    drop = H.jaw_drop(lay, expr)
    if drop > 0:
        ys = ys + drop * np.clip((ys - lay.mouth_y) / 0.1, 0, 1)
    zs, ns = H.front_surface(lay, xs, ys, drop)
    bad = ~np.isfinite(zs)
    if bad.any():  # a point that slid off the outline: keep it on the neutral surface
        zn, nn = H.front_surface(lay, xs[bad], ys[bad] - drop)
        zs[bad], ns[:, bad] = zn, nn
    tip = nose_tip(lay)[:, None]
    pts = np.concatenate([np.stack([xs, ys, np.nan_to_num(zs, nan=-0.5)]), tip], axis=1)
    return pts, np.concatenate([ns, [[0.0], [0.0], [-1.0]]], axis=1)


def expression_points(ident, lay: Layout, expr: Expression) -> np.ndarray:
    """Points that move with the expression (3, N): eyelids, brows, lips, mouth corners, chin."""
    xs, ys = [], []
    for side in (-1.0, 1.0):
        dx = np.array([-0.5, 0.0, 0.5]) * lay.eye_w
        upper, lower, _ = H.eyelids(lay, expr, dx)
        ex = side * (lay.eye_x + dx)
        base = lay.eye_y - lay.eye_tilt * dx
        xs += [*ex, *ex]
        ys += [*(base + upper), *(base + lower)]
        inner, outer = H.brow_span(lay)
        t = np.array([0.1, 0.5, 0.9])
        xs += list(side * (inner + t * (outer - inner)))
        ys += list(H.brow_curve(ident, lay, expr, t))
    mx = np.array([-0.98, -0.5, 0.0, 0.5, 0.98])
    m = H.mouth(lay, expr, mx * H.mouth(lay, expr, np.zeros(1)).hw)
    for arr in (m.upper_out, m.upper_in, m.lower_in, m.lower_out):
        xs += list(mx * m.hw)
        ys += list(arr)
    xs.append(0.0)
    ys.append(lay.chin_y + H.jaw_drop(lay, expr) - 0.02)
    xs, ys = np.array(xs), np.array(ys)
    zs, _ = H.front_surface(lay, xs, ys, H.jaw_drop(lay, expr))
    return np.stack([xs, ys, np.nan_to_num(zs, nan=-0.5)])


def project(scene, pose, p_local: np.ndarray) -> np.ndarray:
    """Head-local points (3, N) -> output-pixel image points (2, N)."""
    cam = scene.head_to_camera(H.rotation(*pose), p_local)
    return cam[:2] / scene.ss - 0.5


def visible(pose, normals: np.ndarray) -> np.ndarray:
    """Surface points whose normal faces the camera (a convex-head visibility test)."""
    return (H.rotation(*pose) @ normals)[2] < -0.05


def face_box(scene, pose, expr: Expression) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the visible face surface (brows-0.2 to chin, cheek to cheek, nose tip)."""
    pts, nrm = face_points(scene.lay, expr)
    vis = visible(pose, nrm)
    xy = project(scene, pose, pts[:, vis])
    return (float(xy[0].min()), float(xy[1].min()), float(xy[0].max()), float(xy[1].max()))


def tracking_points(scene, pose, expr: Expression) -> tuple[np.ndarray, np.ndarray]:
    """Image positions (2, N) of the face and expression tracking points and their visibility (N,)."""
    pts, nrm = face_points(scene.lay, expr)
    ex = expression_points(scene.ident, scene.lay, expr)
    all_pts = np.concatenate([pts, ex], axis=1)
    vis = np.concatenate([visible(pose, nrm), np.ones(ex.shape[1], bool)])
    # expression points count only when the face is not turned away from them
    ex_n = np.zeros_like(ex)
    ex_n[2] = -1.0
    ex_n[0] = ex[0] / max(scene.lay.cranium_a[0], 1e-6) * 0.9
    vis[pts.shape[1]:] = visible(pose, ex_n / np.linalg.norm(ex_n, axis=0))
    return project(scene, pose, all_pts), vis
