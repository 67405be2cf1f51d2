"""The 3D head: pose convention, facial layout, expressions and the ellipsoid primitives of a head.

Coordinates
-----------
Camera: x right, y down, z forward (away from the camera), orthographic projection, pixel units.
Head-local ("head units", 1 unit ~ 11 cm): origin between the eyes at eye level, x toward the image right
when the face is frontal (the person's left), y down, z into the head; the face looks along -z.

Pose (degrees, shared with `idvid.faces`): yaw > 0 turns the nose toward image right, pitch > 0 lifts
the nose up, roll > 0 rotates the face clockwise in the image. The head rotation is
``R = R_yaw @ R_pitch @ R_roll`` (yaw about the camera's vertical axis, then pitch about the head's own
ear-to-ear axis, then roll about its own nose axis) and a head-local point p maps to
``pivot + R (p - pivot)``, the pivot sitting at the top of the neck.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from idvid.synth.identity import Identity

PIVOT = np.array([0.0, 0.75, 0.3])  # top of the neck, head units

# Part ids of the primitives (used for painting and for the face mask).
CRANIUM, JAW, NOSE, EAR, HAIR, HAIR_BACK, HAT, BRIM = range(1, 9)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation matrix (3, 3) for a pose in degrees, with the sign convention above."""
    y, p, r = np.radians([yaw, pitch, roll])
    # the face looks along -z; yaw>0 must send -z toward +x, pitch>0 must send -z toward -y
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@dataclass(frozen=True)
class Expression:
    """Facial state at one instant; all 0 = neutral. Ranges 0..1 unless noted."""

    mouth_open: float = 0.0
    smile: float = 0.0
    blink: float = 0.0  # 1 = eyes closed
    brow_raise: float = 0.0  # -1 (frown) .. 1 (raised)
    eye_wide: float = 0.0
    squint: float = 0.0
    gaze_x: float = 0.0  # -1 .. 1, + = toward image right
    gaze_y: float = 0.0  # -1 .. 1, + = down

    def lerp(self, other: Expression, w: float) -> Expression:
        return Expression(*[(1 - w) * a + w * b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)])

    def as_tuple(self) -> tuple[float, ...]:
        return (self.mouth_open, self.smile, self.blink, self.brow_raise, self.eye_wide, self.squint,
                self.gaze_x, self.gaze_y)


NEUTRAL = Expression()


@dataclass(frozen=True)
class Layout:
    """Feature positions of one identity in head units (derived from `Identity`, expression-free)."""

    fw: float  # sideways scale of the whole head
    cranium_c: np.ndarray
    cranium_a: np.ndarray
    jaw_c: np.ndarray
    jaw_a: np.ndarray
    chin_y: float
    hairline_y: float
    eye_x: float  # half the distance between eye centres
    eye_y: float
    eye_w: float  # half width of the eye opening
    eye_h: float  # half height of the (upper) opening
    eye_tilt: float
    brow_y: float
    brow_th: float
    nose_base: float
    nose_w: float
    nose_proj: float
    mouth_y: float
    mouth_w: float
    lip_upper: float
    lip_lower: float
    ear_size: float
    chin_w: float  # width factor of the chin
    iris_r: float = field(default=0.052)


def layout(ident: Identity) -> Layout:
    fw = ident.face_width
    chin_y = 0.98 * ident.face_length + 0.1 * (ident.chin_length - 1.0)
    cranium_c = np.array([0.0, -0.12, 0.08])
    cranium_a = np.array([0.66 * fw, 0.95, 0.9])
    jaw_top = 0.3 + 0.14 * ident.jaw_square  # a square jaw keeps its width lower down
    jaw_c = np.array([0.0, jaw_top, -0.06])
    jaw_a = np.array([0.55 * ident.jaw_width * fw, chin_y - jaw_top, 0.66])
    nose_base = 0.4 * ident.nose_length
    mouth_y = nose_base + (chin_y - nose_base) * 0.34
    shape_h = {"almond": 1.0, "round": 1.3, "narrow": 0.72, "hooded": 0.85}[ident.eye_shape]
    return Layout(
        fw=fw,
        cranium_c=cranium_c,
        cranium_a=cranium_a,
        jaw_c=jaw_c,
        jaw_a=jaw_a,
        chin_y=chin_y,
        hairline_y=-0.5 * ident.forehead - 0.08,
        eye_x=0.245 * ident.eye_spacing * fw,
        eye_y=ident.eye_height,
        eye_w=0.145 * ident.eye_size,
        eye_h=0.062 * ident.eye_size * shape_h,
        eye_tilt=0.12 * ident.eye_tilt,
        brow_y=ident.eye_height - 0.15 * ident.brow_height,
        brow_th=0.048 * ident.brow_thickness,
        nose_base=nose_base,
        nose_w=ident.nose_width,
        nose_proj=ident.nose_projection,
        mouth_y=mouth_y,
        mouth_w=0.22 * ident.mouth_width,
        lip_upper=0.036 * ident.lip_fullness,
        lip_lower=0.043 * ident.lip_fullness,
        ear_size=ident.ear_size,
        chin_w=0.7 + 0.5 * (ident.jaw_width - 0.78) / 0.42,
        iris_r=0.06 * np.sqrt(ident.eye_size),
    )


def jaw_drop(lay: Layout, expr: Expression) -> float:
    """How far the jaw (lower lip, chin) moves down for an open mouth, head units."""
    return 0.09 * expr.mouth_open


@dataclass(frozen=True)
class Mouth:
    """Lip curves at horizontal positions x (head units): y of the mouth line, of the inner (opening)
    and outer edges of both lips, and the half width. Shared by painting, landmarks and motion."""

    hw: float
    ym: np.ndarray
    upper_in: np.ndarray
    lower_in: np.ndarray
    upper_out: np.ndarray
    lower_out: np.ndarray


def mouth(lay: Layout, expr: Expression, x: np.ndarray) -> Mouth:
    drop = jaw_drop(lay, expr)
    hw = lay.mouth_w * (1 + 0.18 * expr.smile - 0.22 * expr.mouth_open * (1 - expr.smile))
    r = np.asarray(x) / hw
    inside = np.clip(1 - r * r, 0, 1)
    ym = lay.mouth_y - expr.smile * 0.045 * np.minimum(r * r, 1) + 0.01 * expr.smile
    gap = 0.11 * expr.mouth_open
    upper_in = ym - gap * 0.2 * np.sqrt(inside)
    lower_in = ym + (drop + gap * 0.05) * np.sqrt(inside)
    bow = 1 - 0.35 * np.exp(-((np.asarray(x) / 0.03) ** 2))
    upper_out = upper_in - lay.lip_upper * inside**0.6 * bow
    lower_out = lower_in + lay.lip_lower * inside**0.6 * (1 - 0.3 * expr.smile)
    return Mouth(hw, ym, upper_in, lower_in, upper_out, lower_out)


def eyelids(lay: Layout, expr: Expression, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eyelid curves at `dx` (distance from the eye centre toward the outer corner): offsets from the
    eye line of the upper lid, the lower lid and the upper lid were the eye fully open."""
    r = np.asarray(dx) / lay.eye_w
    body = np.clip(1 - r * r, 0, 1)
    openness = (1 + 0.35 * expr.eye_wide) * (1 - 0.4 * expr.squint)
    full_upper = -lay.eye_h * body**0.85 * (1 - 0.18 * r) * openness
    lower = lay.eye_h * 0.6 * body * (1 - 0.4 * expr.squint)
    upper = full_upper * (1 - expr.blink) + lower * 0.85 * expr.blink
    return upper, lower, full_upper


def brow_curve(ident: Identity, lay: Layout, expr: Expression, t: np.ndarray) -> np.ndarray:
    """y of a brow's centre line at t in [0, 1] from its inner to its outer end."""
    tc = np.clip(t, 0, 1)
    arch = {
        "straight": 0.012 * tc,
        "arched": 0.045 * np.sin(np.pi * tc * 0.85),
        "angled": 0.05 * np.where(tc < 0.65, tc / 0.65, 1 - (tc - 0.65) / 0.35 * 0.7),
        "soft": 0.028 * np.sin(np.pi * tc),
    }[ident.brow_shape]
    raise_ = expr.brow_raise * 0.05 * (1.0 - 0.3 * tc) - 0.015 * expr.squint
    return lay.brow_y - arch - raise_ + 0.02 * (1 - tc) * min(expr.brow_raise, 0)


def brow_span(lay: Layout) -> tuple[float, float]:
    """|x| of a brow's inner and outer ends."""
    return lay.eye_x - 1.05 * lay.eye_w, lay.eye_x + 1.3 * lay.eye_w


@dataclass(frozen=True)
class Primitive:
    """An ellipsoid in head-local coordinates: points ``center + rot @ (axes * u)`` for unit u."""

    part: int
    center: np.ndarray
    axes: np.ndarray
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    clip: str = ""  # name of the region rule that keeps only part of the surface ("" = whole)
    side: float = 0.0  # -1 / +1 for left/right ears
    blend: bool = False  # shading normals blend smoothly with the other blending primitives (the skin)


HAIR_VOLUME = {"bald": 0.0, "buzz": 0.0, "short": 1.07, "side_part": 1.08, "curly": 1.12, "bob": 1.1,
               "long": 1.09, "ponytail": 1.06}


def primitives(ident: Identity, lay: Layout, expr: Expression, hat: str = "none") -> list[Primitive]:
    """The head's ellipsoids for one expression (the jaw drops with an open mouth)."""
    drop = jaw_drop(lay, expr)
    nl, nw, npj = lay.nose_base / 0.4, lay.nose_w, lay.nose_proj
    prims = [
        Primitive(CRANIUM, lay.cranium_c, lay.cranium_a, blend=True),
        Primitive(JAW, lay.jaw_c + [0, drop * 0.5, 0], lay.jaw_a + [0, drop * 0.5, 0], blend=True),
        # nose: a bridge tilted forward at the bottom, a rounded tip, two alae
        Primitive(NOSE, np.array([0.0, 0.17 * nl, -0.79 - 0.02 * npj]),
                  np.array([0.07 * nw, 0.26 * nl, 0.08 * npj]), _rot_x(-0.3), blend=True),
        Primitive(NOSE, np.array([0.0, 0.34 * nl, -0.84 - 0.08 * (npj - 1)]),
                  np.array([0.08 * nw, 0.068, 0.08 * npj]), blend=True),
        Primitive(NOSE, np.array([-0.08 * nw, 0.37 * nl, -0.76]), np.array([0.055 * nw, 0.05, 0.065]), blend=True),
        Primitive(NOSE, np.array([0.08 * nw, 0.37 * nl, -0.76]), np.array([0.055 * nw, 0.05, 0.065]), blend=True),
    ]
    es = lay.ear_size
    for side in (-1.0, 1.0):
        prims.append(Primitive(EAR, np.array([side * 0.625 * lay.fw, 0.13, 0.12]), np.array([0.06, 0.19 * es, 0.12 * es]),
                               _rot_y(-side * 0.45), side=side))
    vol = HAIR_VOLUME[ident.hair_style]
    if vol > 0 and hat != "beanie":
        prims.append(Primitive(HAIR, lay.cranium_c + [0, -0.04 * (vol - 1) * 4, 0.02], lay.cranium_a * [vol * 1.1, vol * 0.99, vol],
                               clip="hair"))
    if ident.hair_style in ("bob", "long"):
        length = 0.55 if ident.hair_style == "bob" else 1.25
        prims.append(Primitive(HAIR_BACK, np.array([0.0, 0.1 + length * 0.35, 0.22]),
                               np.array([0.76 * lay.fw, 0.62 + length * 0.45, 0.72]), clip="hair_back"))
    if ident.hair_style == "ponytail":
        prims.append(Primitive(HAIR_BACK, np.array([0.0, 0.1, 1.02]), np.array([0.17, 0.42, 0.17]), _rot_x(0.5)))
    if hat == "beanie":
        prims.append(Primitive(HAT, lay.cranium_c + [0, -0.06, 0.0], lay.cranium_a * [1.1, 1.08, 1.09], clip="beanie"))
    elif hat == "cap":
        prims.append(Primitive(HAT, lay.cranium_c + [0, -0.05, 0.0], lay.cranium_a * [1.08, 1.06, 1.08], clip="cap"))
        prims.append(Primitive(BRIM, np.array([0.0, -0.64, -0.86]), np.array([0.5 * lay.fw, 0.025, 0.42]),
                               _rot_x(-0.12), clip="brim"))
    return prims


def clip_keep(rule: str, lay: Layout, ident: Identity, p: np.ndarray) -> np.ndarray:
    """Which head-local points (3, N) a clipped primitive keeps."""
    x, y, z = p
    if rule == "hair":
        return y < hair_limit(lay, ident, x, y, z)
    if rule == "hair_back":  # falls behind the face and down the back, never in front of the cheeks
        return z > -0.06 + 0.1 * np.clip(y, 0, 1) ** 2
    if rule == "beanie":
        return y < lay.hairline_y + 0.08 - 0.15 * np.clip(z, 0, 1)
    if rule == "cap":
        return y < lay.hairline_y + 0.02 - 0.05 * np.clip(z, 0, 1)
    if rule == "brim":
        return z < -0.5
    return np.ones(x.shape, bool)


def hair_limit(lay: Layout, ident: Identity, x, y, z) -> np.ndarray:
    """The lowest y that scalp hair reaches at a head-surface point, by azimuth around the head.

    In front it is the hairline (curving down at the temples), at the sides it stops above the ears
    (sideburns), at the back it reaches the nape. Long styles hang lower at the sides and back."""
    az = np.abs(np.arctan2(x, -(z - 0.08)))  # 0 = front, pi = back
    style = ident.hair_style
    xr = x / lay.cranium_a[0]
    front = lay.hairline_y + 0.55 * xr**2
    if ident.hairline == "straight":
        front = lay.hairline_y + 0.05 + 0.5 * xr**4
    elif ident.hairline == "widow":
        front = front + 0.1 * np.exp(-((x / 0.07) ** 2))
    elif ident.hairline == "receding":
        front = front - 0.2 * np.exp(-(((np.abs(x) - 0.3) / 0.13) ** 2))
    if style == "side_part":
        front = front - 0.06 * np.tanh(x * 6)
    if ident.fringe != "none":  # hair falling over the forehead, ending above the brows
        edge = lay.brow_y - 0.04 - 0.2 * (1 - ident.fringe_length)
        if ident.fringe == "swept":
            side = 1.0 if ident.skin_phase[0] > np.pi else -1.0
            edge = edge - 0.25 * np.clip((side * xr + 1) / 2, 0, 1)
        elif ident.fringe == "curtain":
            edge = edge - 0.3 * np.exp(-((x / 0.14) ** 2))
        front = np.maximum(front, edge + 0.25 * np.clip(np.abs(xr) - 0.75, 0, 1))
    side = {"bob": 0.35, "long": 0.35, "ponytail": -0.02, "curly": 0.05}.get(style, 0.02)
    back = 0.55 if style in ("bob", "long", "curly") else 0.42
    # weights of the front / side / back limits by azimuth: front up to 1.0 rad, side from 1.3 to 1.6, then
    # blending into the back, which it reaches at pi
    w_front = np.clip((1.3 - az) / 0.3, 0, 1)
    w_back = np.clip((az - 1.6) / (np.pi - 1.6), 0, 1)
    limit = w_front * front + (1 - w_front - w_back) * side + w_back * back
    if style == "curly":
        limit = limit + 0.03 * np.sin(x * 40) * np.sin(z * 37)
    return limit


def front_surface(lay: Layout, x: np.ndarray, y: np.ndarray, drop: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The face surface seen from the front at head-local (x, y): z (nearest to the camera) and the
    outward unit normal (3, N). NaN where (x, y) misses both the cranium and the jaw."""
    best_z = np.full(x.shape, np.nan)
    best_n = np.zeros((3, *x.shape))
    jaw_c = lay.jaw_c + [0, drop * 0.5, 0]
    jaw_a = lay.jaw_a + [0, drop * 0.5, 0]
    for c, a in ((lay.cranium_c, lay.cranium_a), (jaw_c, jaw_a)):
        r2 = ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2
        inside = r2 < 1
        z = np.where(inside, c[2] - a[2] * np.sqrt(np.clip(1 - r2, 0, 1)), np.nan)
        better = inside & ~(z >= best_z)  # NaN-safe "z < best_z or best is NaN"
        n = np.stack([(x - c[0]) / a[0] ** 2, (y - c[1]) / a[1] ** 2, (z - c[2]) / a[2] ** 2])
        n = n / np.linalg.norm(n, axis=0, keepdims=True).clip(1e-9)
        best_z = np.where(better, z, best_z)
        best_n = np.where(better, n, best_n)
    return best_z, best_n

