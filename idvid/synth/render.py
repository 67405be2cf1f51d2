"""Rendering one frame: ray-cast the head's ellipsoids (orthographic, z-buffered), paint them, shade them,
draw glasses and earrings, composite over the clip's static layers and downsample (anti-aliasing).

Work happens on a canvas `supersample` times the output size; only the head's bounding box is ray-cast.
Everything is numpy/OpenCV on the CPU, deterministic to the bit for a given input.

Choices measured against the real face models (scripts/measure_synth.py), not taken for looks alone:
wrapped Lambert shading with no specular term and no silhouette darkening (highlights that slide with
pose made people less like themselves to SFace), a subject key light scaled to the skin tone (dark faces
stay detectable), and a slight lens softness after downsampling (a crisp ray-cast look is shared by every
rendered person and made different identities more alike to both SFace and dlib).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from idvid.synth import head as H
from idvid.synth import layers, paint
from idvid.synth.appearance import COLOURS, Appearance
from idvid.synth.head import Expression, Layout, Primitive, rotation
from idvid.synth.identity import Identity

HEAD_FRACTION = 0.34  # pixels per head unit / frame size: the head (crown to chin, ~2 units) is ~58% of the frame
HEAD_Y = 0.42  # eye line, fraction of the frame height
SUPERSAMPLE = 1.5  # canvas / output size; with the area downsampling and lens softness this anti-aliases
BLEND = 0.1  # head units over which touching skin primitives' shading blends (a soft union)
WRAP = 0.3  # wrapped Lambert: light reaches a little past the terminator, like skin
LENS_SIGMA = 0.65  # output pixels at 128 px (scaled with the size)
AMBIENT = 0.5
DIFFUSE = 0.6


@dataclass
class Scene:
    """Everything about a clip that does not change from frame to frame."""

    ident: Identity
    app: Appearance
    lay: Layout
    size: int  # output size in pixels (square)
    ss: float  # supersampling factor (canvas pixels per output pixel)
    s: float  # canvas pixels per head unit
    ox: float  # canvas position of the head origin at rest
    oy: float
    layer: np.ndarray  # (S, S, 3) float32: background + body
    key: float = 1.0  # subject light gain: darker skin is lit brighter, as a photographer exposes for the face

    @property
    def canvas(self) -> int:
        return int(round(self.size * self.ss))

    def head_to_camera(self, rot: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Head-local points (3, N) -> canvas coordinates (3, N) (x, y in canvas pixels, z depth)."""
        piv = H.PIVOT[:, None]
        q = piv + rot @ (p - piv)
        return np.array([[self.ox], [self.oy], [0.0]]) + self.s * q


def make_scene(ident: Identity, app: Appearance, size: int = 128, supersample: float = SUPERSAMPLE, bg_seed: int = 0,
               with_layers: bool = True) -> Scene:
    """Prepare a clip's framing and static layers (`with_layers=False`: framing only, for geometry).
    `bg_seed` only varies background details (book colours, bokeh, window position)."""
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    S = int(round(size * supersample))
    supersample = S / size
    s = HEAD_FRACTION * S * app.framing_scale
    ox = S * (0.5 + app.framing_dx)
    oy = S * (HEAD_Y + app.framing_dy)
    lum = float(np.dot(ident.skin, (0.3, 0.59, 0.11)))
    key = float(np.clip((0.55 / lum) ** 0.75, 1.0, 2.2))
    layer = np.zeros((0, 0, 3), np.float32)
    if with_layers:
        layer = layers.background(app, S, bg_seed)
        layers.body(layer, ident, app, ox, oy, s, key)
    return Scene(ident, app, H.layout(ident), size, supersample, s, ox, oy, layer, key)


@dataclass
class _Hits:
    """Per-pixel nearest-hit buffers over the head's bounding box (h, w)."""

    depth: np.ndarray
    prim: np.ndarray  # index into the primitive list, -1 = background
    u: np.ndarray  # (3, h, w) point on the primitive's unit sphere
    far: np.ndarray  # the hit is the inside of a clipped shell
    # soft union of the blending primitives' normals: sum_i w_i n_i with w_i = exp(-(t_i - base) / k)
    nsum: np.ndarray  # (3, h, w), camera frame


def _raycast(scene: Scene, prims: list[Primitive], rot: np.ndarray) -> tuple[tuple[int, int, int, int], _Hits]:
    S = scene.canvas
    boxes = []
    mats = []
    for pr in prims:
        M = rot @ pr.rot @ np.diag(pr.axes)  # unit sphere -> head-rotated offsets (head units)
        C = scene.head_to_camera(rot, pr.center[:, None])[:, 0]
        ext = scene.s * np.sqrt((M**2).sum(axis=1))
        boxes.append((C[0] - ext[0], C[1] - ext[1], C[0] + ext[0], C[1] + ext[1]))
        mats.append((M, C))
    bx = np.array(boxes)
    x0 = int(np.clip(np.floor(bx[:, 0].min()), 0, S))
    y0 = int(np.clip(np.floor(bx[:, 1].min()), 0, S))
    x1 = int(np.clip(np.ceil(bx[:, 2].max()) + 1, 0, S))
    y1 = int(np.clip(np.ceil(bx[:, 3].max()) + 1, 0, S))
    h, w = max(y1 - y0, 0), max(x1 - x0, 0)
    f32 = np.float32
    hits = _Hits(np.full((h, w), np.inf, f32), np.full((h, w), -1, np.int16), np.zeros((3, h, w), f32),
                 np.zeros((h, w), bool), np.zeros((3, h, w), f32))
    k_blend = BLEND * scene.s
    # blend weights exp(-(t - base) / k) against a plane in front of the whole head: no rescaling needed,
    # and the relative weights of the surfaces at a pixel are the same as against the nearest one
    base = scene.head_to_camera(rot, np.zeros((3, 1)))[2, 0] - 1.6 * scene.s
    for i, (pr, (M, C), b) in enumerate(zip(prims, mats, boxes, strict=True)):
        bx0, by0 = max(int(np.floor(b[0])), x0), max(int(np.floor(b[1])), y0)
        bx1, by1 = min(int(np.ceil(b[2])) + 1, x1), min(int(np.ceil(b[3])) + 1, y1)
        if bx1 <= bx0 or by1 <= by0:
            continue
        B = (np.linalg.inv(M) / scene.s).astype(f32)  # canvas offsets -> unit-sphere coordinates
        xs = (np.arange(bx0, bx1) + 0.5 - C[0]).astype(f32)
        ys = (np.arange(by0, by1) + 0.5 - C[1]).astype(f32)
        # ray through pixel (x, y, t): u = o + t d on the primitive's unit sphere
        o = B[:, 0, None, None] * xs[None, None, :] + B[:, 1, None, None] * ys[None, :, None] - (B[:, 2] * f32(C[2]))[:, None, None]
        d = B[:, 2]
        a = float(d @ d)
        bq = d[0] * o[0] + d[1] * o[1] + d[2] * o[2]
        c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - 1.0
        disc = bq * bq - a * c
        hit = disc > 0
        if not hit.any():
            continue
        sq = np.sqrt(np.maximum(disc, 0))
        t = (-bq - sq) / a
        u = o + t[None] * d[:, None, None]
        far = np.zeros_like(hit)
        if pr.clip:  # a shell cut open: where the near side is cut away, the inside of the far side shows
            keep = np.zeros_like(hit)
            keep[hit] = H.clip_keep(pr.clip, scene.lay, scene.ident, _to_local(pr, u[:, hit]))
            miss = hit & ~keep
            t2 = (-bq[miss] + sq[miss]) / a
            u2 = o[:, miss] + t2[None] * d[:, None]
            keep2 = H.clip_keep(pr.clip, scene.lay, scene.ident, _to_local(pr, u2))
            idx = np.flatnonzero(miss)[keep2]
            t.ravel()[idx] = t2[keep2]
            u.reshape(3, -1)[:, idx] = u2[:, keep2]
            far.ravel()[idx] = True
            hit &= keep
            hit.ravel()[idx] = True
        t_abs = t + f32(C[2])
        sub = (slice(by0 - y0, by1 - y0), slice(bx0 - x0, bx1 - x0))
        dsub = hits.depth[sub]
        closer = hit & (t_abs < dsub)
        dsub[closer] = t_abs[closer]
        hits.prim[sub][closer] = i
        hits.far[sub][closer] = far[closer]
        usub = hits.u[(slice(None), *sub)]
        usub[:, closer] = u[:, closer]
        if pr.blend:
            uh = u[:, hit]
            n = ((rot @ pr.rot) / pr.axes[None, :]).astype(f32) @ uh
            n /= np.sqrt((n * n).sum(axis=0, keepdims=True)).clip(1e-12)
            w_new = np.exp(-(t_abs[hit] - base) / k_blend)
            nsub = hits.nsum[(slice(None), *sub)]
            nsub[:, hit] += w_new[None] * n
    return (x0, y0, x1, y1), hits


def _to_local(pr: Primitive, u: np.ndarray) -> np.ndarray:
    """Unit-sphere points (3, ...) of a primitive -> head-local points (3, ...)."""
    shape = u.shape
    p = pr.rot @ (u.reshape(3, -1) * pr.axes[:, None]) + pr.center[:, None]
    return p.reshape(shape)


def render_head(scene: Scene, pose: tuple[float, float, float], expr: Expression) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame at canvas resolution: (image (S, S, 3) float32, face mask (S, S) bool)."""
    ident, lay, app = scene.ident, scene.lay, scene.app
    rot = rotation(*pose)
    prims = H.primitives(ident, lay, expr, app.hat)
    (x0, y0, x1, y1), hits = _raycast(scene, prims, rot)
    img = scene.layer.copy()
    mask = np.zeros(img.shape[:2], bool)
    sel = hits.prim >= 0
    if not sel.any():
        return img, mask
    f32 = np.float32
    pid = hits.prim[sel]
    u = hits.u[:, sel]
    far = hits.far[sel]
    n_px = pid.shape[0]
    albedo = np.zeros((n_px, 3), f32)
    shade = np.ones(n_px, f32)
    face = np.zeros(n_px, bool)
    p_loc = np.zeros((3, n_px), f32)
    n_cam = np.zeros((3, n_px), f32)
    n_loc = np.zeros((3, n_px), f32)
    for i, pr in enumerate(prims):
        m = pid == i
        if not m.any():
            continue
        ui = u[:, m]
        p_loc[:, m] = (pr.rot * pr.axes[None, :]).astype(f32) @ ui + pr.center[:, None].astype(f32)
        if not pr.blend or pr.part == H.NOSE:
            nl = (pr.rot / pr.axes[None, :]).astype(f32) @ ui
            nl /= np.sqrt((nl * nl).sum(axis=0, keepdims=True))
            n_loc[:, m] = nl
            n_cam[:, m] = rot.astype(f32) @ nl
    blended = np.array([pr.blend for pr in prims])[pid]
    nb = hits.nsum[:, sel][:, blended]
    n_cam[:, blended] = nb / np.sqrt((nb * nb).sum(axis=0, keepdims=True)).clip(1e-12)
    parts = np.array([pr.part for pr in prims])[pid]
    for part in np.unique(parts):
        m = parts == part
        x, y, z = p_loc[:, m]
        if part in (H.CRANIUM, H.JAW):
            col, sh, fr = paint.face_colour(ident, lay, expr, x, y, z)
            albedo[m], shade[m], face[m] = col, sh, fr
        elif part == H.NOSE:
            albedo[m] = paint.nose_colour(ident, lay, x, y, z, n_loc[:, m])
            face[m] = True
        elif part == H.EAR:
            albedo[m] = paint.ear_colour(ident, u[:, m])
        elif part in (H.HAIR, H.HAIR_BACK):
            albedo[m] = paint.hair_colour(ident, x, y, z)
        else:  # hat, brim
            albedo[m] = paint.hat_colour(COLOURS[app.hat_colour], app.hat, x, y, z)
    # inside of a clipped shell (seen through the opening): facing away, in shadow
    if far.any():
        shade[far] *= 0.45
        n_cam[:, far] *= -1
    L = app.light_vector.astype(f32)
    ndl = L @ n_cam
    diffuse = np.clip((ndl + WRAP) / (1 + WRAP), 0, 1)  # wrapped Lambert: soft, skin-like terminator
    lrgb = (app.light_rgb * scene.key).astype(f32)
    # no specular term: highlights that slide with pose and light made real face models find rendered
    # people *less* like themselves (measured: SFace AUC +0.01 without them)
    colour = albedo * ((AMBIENT + DIFFUSE * diffuse) * shade)[:, None] * lrgb[None, :]
    region = img[y0:y1, x0:x1]
    region[sel] = colour
    mask[y0:y1, x0:x1][sel] = face
    depth = np.full(img.shape[:2], np.inf, np.float32)
    depth[y0:y1, x0:x1] = hits.depth
    _accessories(scene, rot, expr, img, depth)
    return img, mask


def _accessories(scene: Scene, rot: np.ndarray, expr: Expression, img: np.ndarray, depth: np.ndarray) -> None:
    """Glasses (identity) and earrings (appearance): 3D curves drawn where they are not hidden."""
    ident, lay = scene.ident, scene.lay
    lrgb = scene.app.light_rgb * scene.key
    eps = 0.05 * scene.s
    S = img.shape[0]

    def draw(p_local: np.ndarray, colour, width: float, closed: bool = False) -> None:
        cam = scene.head_to_camera(rot, p_local)
        xi = np.clip(np.round(cam[0] - 0.5).astype(int), 0, S - 1)
        yi = np.clip(np.round(cam[1] - 0.5).astype(int), 0, S - 1)
        vis = cam[2] <= depth[yi, xi] + eps
        pts = np.round(cam[:2].T * 4).astype(np.int32)  # 2 bits of sub-pixel precision
        col = tuple(float(c) for c in np.asarray(colour) * lrgb)
        thick = max(1, int(round(width * scene.s)))
        n = pts.shape[0]
        for k in range(n if closed else n - 1):
            j = (k + 1) % n
            if vis[k] and vis[j]:
                cv2.line(img, tuple(pts[k]), tuple(pts[j]), col, thick, cv2.LINE_8, 2)

    if ident.glasses != "none":
        gc = ident.glasses_colour
        th = np.linspace(0, 2 * np.pi, 33)[:-1]
        rx, ry = (0.175, 0.16) if ident.glasses == "round" else (0.19, 0.135)  # lenses wider than the eyes
        if ident.glasses == "rectangular":  # superellipse: squarer corners
            cx, cy = np.sign(np.cos(th)) * np.abs(np.cos(th)) ** 0.45, np.sign(np.sin(th)) * np.abs(np.sin(th)) ** 0.45
        else:
            cx, cy = np.cos(th), np.sin(th)
        eye_z, _ = H.front_surface(lay, np.array([lay.eye_x]), np.array([lay.eye_y]))
        lens_z = float(np.nan_to_num(eye_z[0], nan=-0.74)) - 0.13
        for side in (-1, 1):
            x = side * (lay.eye_x + 0.02) + rx * cx
            y = lay.eye_y + 0.025 + ry * cy
            # a near-planar lens frame in front of the eye, wrapping back slightly at its outer side: seen
            # from the side it narrows to a sliver instead of floating round in front of the face
            wrap = 0.08 * np.clip(side * cx, 0, 1) ** 2
            z = np.full_like(x, lens_z) + wrap
            draw(np.stack([x, y, z]), gc, 0.024, closed=True)
            # temple arm: from the outer rim back to above the ear
            t = np.linspace(0, 1, 8)
            ax = side * (lay.eye_x + 0.02 + rx) + side * t * (0.66 * lay.fw + 0.02 - lay.eye_x - 0.02 - rx)
            ay = np.full_like(t, lay.eye_y - 0.01)
            zs, _ = H.front_surface(lay, ax * 0.97, ay)
            az = np.minimum(np.nan_to_num(zs, nan=0.1) - 0.03, lens_z + 0.08 + t * 1.0)
            draw(np.stack([ax, ay, az]), gc, 0.022)
        bx = np.linspace(-lay.eye_x - 0.02 + rx, lay.eye_x + 0.02 - rx, 6)
        by = lay.eye_y - 0.02 - 0.015 * np.cos(bx / max(abs(bx[0]), 1e-3) * np.pi / 2)
        draw(np.stack([bx, by, np.full_like(bx, min(lens_z, -0.9 - 0.05 * (lay.nose_proj - 1)))]), gc, 0.022)
    if scene.app.earrings:
        for side in (-1, 1):
            p = np.array([[side * (0.625 * lay.fw + 0.02)], [0.13 + 0.19 * lay.ear_size + 0.03], [0.06]])
            cam = scene.head_to_camera(rot, p)[:, 0]
            xi, yi = int(np.clip(cam[0], 0, S - 1)), int(np.clip(cam[1], 0, S - 1))
            if cam[2] <= depth[yi, xi] + 2 * eps:
                col = tuple(float(c) for c in np.array([0.9, 0.75, 0.3]) * lrgb)
                cv2.circle(img, (int(cam[0]), int(cam[1])), max(1, int(0.035 * scene.s)), col, -1)


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Canvas float image -> uint8 (size, size, 3): area averaging (the anti-aliasing step), then a slight
    lens softness. Real photos are never as crisp as a ray-cast image; without it real face models find
    every rendered face more alike (the shared crisp-edge look) and identities separate less."""
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) if img.shape[0] != size else img
    small = cv2.GaussianBlur(small, (0, 0), LENS_SIGMA * size / 128)
    return np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)


def downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Boolean canvas mask -> boolean (size, size): pixels at least half covered."""
    if mask.shape[0] == size:
        return mask
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) >= 0.5


def render_frame(scene: Scene, pose: tuple[float, float, float], expr: Expression = H.NEUTRAL) -> tuple[np.ndarray, np.ndarray]:
    """One output frame: (RGB uint8 (size, size, 3), face mask bool (size, size))."""
    img, mask = render_head(scene, pose, expr)
    return downsample(img, scene.size), downsample_mask(mask, scene.size)
