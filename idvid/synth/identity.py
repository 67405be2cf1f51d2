"""Identities of the synthetic world: who a generated person *is*, as a pure function of one seed.

An identity is everything that stays the same across a person's clips and that a face recogniser should
key on: head and face proportions, skin, eyes, brows, nose, mouth, ears, hair, facial hair, glasses,
marks. Appearance that a prompt may change (clothes, hat, background, light) lives in `appearance.py`.

Seeds are split by range so that no trained model ever sees validation or held-out people:
`[0, 1e6)` train, `[1e6, 2e6)` validation, `[2e6, ...)` held-out. `identity(seed, index)` uses the
identity seed `s = seed + index`, so `identity(5, 1) == identity(6, 0)`: the seed *is* the person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from idvid.errors import InputError

TRAIN_END = 1_000_000
VALIDATION_END = 2_000_000
SPLITS = {"train": (0, TRAIN_END), "validation": (TRAIN_END, VALIDATION_END), "heldout": (VALIDATION_END, None)}

# A salt per random stream so identity, appearance and motion draws never share numbers.
_IDENTITY_STREAM = 0x1D

RGB = tuple[float, float, float]

# Named colours: prompts use the name, the renderer the value (linear-ish 0..1 RGB).
HAIR_COLOURS: dict[str, RGB] = {
    "black": (0.05, 0.045, 0.04),
    "dark brown": (0.16, 0.09, 0.05),
    "brown": (0.33, 0.2, 0.1),
    "light brown": (0.52, 0.36, 0.2),
    "blonde": (0.86, 0.7, 0.42),
    "auburn": (0.5, 0.17, 0.07),
    "red": (0.72, 0.26, 0.08),
    "grey": (0.56, 0.55, 0.54),
    "white": (0.88, 0.87, 0.85),
}
EYE_COLOURS: dict[str, RGB] = {
    "brown": (0.3, 0.16, 0.06),
    "dark brown": (0.14, 0.07, 0.03),
    "hazel": (0.45, 0.35, 0.15),
    "green": (0.25, 0.42, 0.24),
    "blue": (0.27, 0.45, 0.7),
    "grey": (0.45, 0.5, 0.55),
}
# Skin tones from very light to very dark (Fitzpatrick-like), interpolated continuously.
_SKIN_TONES = np.array([
    (0.98, 0.84, 0.74), (0.93, 0.75, 0.62), (0.85, 0.64, 0.5), (0.72, 0.5, 0.36),
    (0.55, 0.36, 0.24), (0.38, 0.24, 0.16), (0.26, 0.16, 0.11),
])
HAIRLINES = ("rounded", "straight", "widow", "receding")
FRINGES = ("none", "straight", "swept", "curtain")
HAIR_STYLES = ("bald", "buzz", "short", "side_part", "curly", "bob", "long", "ponytail")
FACIAL_HAIR = ("none", "stubble", "moustache", "goatee", "beard")
GLASSES = ("none", "round", "rectangular")
EYE_SHAPES = ("almond", "round", "narrow", "hooded")
BROW_SHAPES = ("straight", "arched", "angled", "soft")


def split_of(seed: int) -> str:
    """The split an identity seed belongs to: "train", "validation" or "heldout"."""
    if seed < 0:
        raise InputError(f"identity seed {seed} is negative; seeds are >= 0")
    if seed < TRAIN_END:
        return "train"
    if seed < VALIDATION_END:
        return "validation"
    return "heldout"


def check_seed_range(seed: int, count: int) -> str:
    """The one split that seeds `seed .. seed+count-1` lie in; `InputError` if they straddle a boundary."""
    if count < 1:
        raise InputError(f"need at least one identity, got {count}")
    first, last = split_of(seed), split_of(seed + count - 1)
    if first != last:
        boundary = TRAIN_END if first == "train" else VALIDATION_END
        raise InputError(
            f"identity seeds {seed}..{seed + count - 1} straddle the {first}/{last} boundary at {boundary}; "
            f"render each split separately (train < {TRAIN_END} <= validation < {VALIDATION_END} <= heldout)"
        )
    return first


@dataclass(frozen=True)
class Identity:
    """The fixed traits of one generated person. Lengths are in head units (1 = eye line to chin-ish,
    about 11 cm); scale factors are relative to an average face (1.0)."""

    seed: int
    identity_id: str
    split: str
    gender: str  # "man" | "woman"
    age: str  # "young" | "middle-aged" | "older"
    skin: RGB
    face_width: float  # scales the whole head sideways
    face_length: float  # scales the lower face vertically
    jaw_width: float
    chin_length: float
    jaw_square: float  # 0 = rounded jaw .. 1 = square jaw angles
    forehead: float  # hairline height
    eye_shape: str
    eye_size: float
    eye_spacing: float
    eye_height: float  # vertical offset of the eye line
    eye_tilt: float  # canthal tilt, + = outer corners up
    eye_colour: str
    brow_shape: str
    brow_thickness: float
    brow_height: float
    brow_colour: RGB
    nose_length: float
    nose_width: float
    nose_projection: float
    mouth_width: float
    lip_fullness: float
    lip_colour: RGB
    ear_size: float
    hair_style: str
    hair_colour: str
    hairline: str  # "rounded" | "straight" | "widow" | "receding"
    fringe: str  # "none" | "straight" | "swept" | "curtain"
    fringe_length: float  # 0 = high on the forehead .. 1 = down to the brows
    facial_hair: str
    glasses: str
    glasses_colour: RGB
    blush: float
    marks: tuple[tuple[float, float, float], ...]  # moles: (x, y, radius) in head units
    freckles: float  # 0 = none .. 1 = dense freckles over nose and cheeks
    lash: float  # darkness/thickness of lashes and eyeliner, 0.5 .. 1.6
    eyeshadow: tuple[float, float, float, float]  # (r, g, b, strength); strength 0 = none
    skin_phase: tuple[float, ...]  # phases of the low-frequency skin-tone variation

    @property
    def hair_rgb(self) -> RGB:
        return HAIR_COLOURS[self.hair_colour]

    @property
    def eye_rgb(self) -> RGB:
        return EYE_COLOURS[self.eye_colour]

    @property
    def pronoun(self) -> str:
        return "his" if self.gender == "man" else "her"

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(rng: np.random.Generator, options, p=None):
    p = None if p is None else np.asarray(p, float) / np.sum(p)
    return options[int(rng.choice(len(options), p=p))]


def identity_rng(s: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(s), _IDENTITY_STREAM]))


def identity(seed: int, index: int = 0) -> Identity:
    """The identity with identity seed `s = seed + index`; a pure function of `s`."""
    s = int(seed) + int(index)
    split = split_of(s)
    rng = identity_rng(s)
    u = rng.uniform  # every draw below happens in a fixed order: never reorder, append only

    gender = _choice(rng, ("man", "woman"))
    age = _choice(rng, ("young", "middle-aged", "older"), (0.45, 0.38, 0.17))
    man = gender == "man"

    tone = u(0, len(_SKIN_TONES) - 1)
    lo = int(tone)
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    skin = (1 - (tone - lo)) * _SKIN_TONES[lo] + (tone - lo) * _SKIN_TONES[hi]
    skin = np.clip(skin * u(0.9, 1.1, 3), 0, 1)

    if age == "older" and u() < 0.7:
        hair_colour = _choice(rng, ("grey", "white"))
    else:
        dark_bias = tone / (len(_SKIN_TONES) - 1)  # darker skin: darker hair more likely
        hair_colour = _choice(
            rng,
            ("black", "dark brown", "brown", "light brown", "blonde", "auburn", "red"),
            (0.2 + 0.6 * dark_bias, 0.22, 0.18, 0.12 * (1 - dark_bias), 0.14 * (1 - dark_bias),
             0.08 * (1 - dark_bias), 0.05 * (1 - dark_bias)),
        )
    if man:
        hair_style = _choice(rng, HAIR_STYLES, (0.12 if age != "young" else 0.04, 0.16, 0.3, 0.2, 0.1, 0.02, 0.04, 0.02))
        facial_hair = _choice(rng, FACIAL_HAIR, (0.45, 0.16, 0.1, 0.11, 0.18))
    else:
        hair_style = _choice(rng, HAIR_STYLES, (0.0, 0.02, 0.08, 0.1, 0.15, 0.22, 0.28, 0.15))
        facial_hair = "none"
    eye_dark_bias = tone / (len(_SKIN_TONES) - 1)
    eye_colour = _choice(rng, tuple(EYE_COLOURS),
                         (0.3, 0.2 + 0.5 * eye_dark_bias, 0.12, 0.1 * (1 - eye_dark_bias),
                          0.2 * (1 - eye_dark_bias), 0.08 * (1 - eye_dark_bias)))
    glasses = _choice(rng, GLASSES, (0.62, 0.19, 0.19))
    glasses_colour = tuple(float(c) for c in _choice(
        rng, ((0.05, 0.05, 0.05), (0.35, 0.2, 0.1), (0.6, 0.6, 0.62), (0.55, 0.1, 0.1), (0.1, 0.15, 0.4))))

    hair_rgb = np.array(HAIR_COLOURS[hair_colour])
    brow = hair_rgb if hair_colour not in ("white", "grey") else hair_rgb * 0.7
    if hair_colour in ("blonde", "light brown") and u() < 0.5:
        brow = brow * 0.7
    else:
        u()
    brow = np.clip(brow * 0.85 * u(0.6, 1.15), 0, 1)

    lip_base = np.array(skin) * np.array([0.92, 0.68, 0.68]) + np.array([0.04, 0.0, 0.02])
    if not man and u() < 0.5:  # lipstick
        lip_base = np.array(_choice(rng, ((0.7, 0.12, 0.18), (0.55, 0.2, 0.25), (0.8, 0.35, 0.4), (0.45, 0.1, 0.12))))
    else:
        u()

    n_marks = int(rng.choice(5, p=(0.35, 0.3, 0.17, 0.1, 0.08)))
    marks = tuple(
        (float(u(-0.45, 0.45)), float(u(-0.35, 0.8)), float(u(0.012, 0.024))) for _ in range(n_marks)
    )

    return Identity(
        seed=s,
        identity_id=f"id{s:07d}",
        split=split,
        gender=gender,
        age=age,
        skin=tuple(float(c) for c in skin),
        face_width=float(u(0.82, 1.15) * (1.03 if man else 0.98)),
        face_length=float(u(0.85, 1.2)),
        jaw_width=float(u(0.7, 1.3) * (1.06 if man else 0.95)),
        chin_length=float(u(0.8, 1.25)),
        jaw_square=float(u(0.0, 1.0)),
        forehead=float(u(0.8, 1.25)),
        eye_shape=_choice(rng, EYE_SHAPES),
        eye_size=float(u(0.75, 1.3)),
        eye_spacing=float(u(0.85, 1.18)),
        eye_height=float(u(-0.08, 0.08)),
        eye_tilt=float(u(-0.8, 1.0)),
        eye_colour=eye_colour,
        brow_shape=_choice(rng, BROW_SHAPES),
        brow_thickness=float(u(0.5, 1.8) * (1.15 if man else 0.85)),
        brow_height=float(u(0.7, 1.35)),
        brow_colour=tuple(float(c) for c in brow),
        nose_length=float(u(0.8, 1.3)),
        nose_width=float(u(0.7, 1.5)),
        nose_projection=float(u(0.75, 1.3)),
        mouth_width=float(u(0.78, 1.25)),
        lip_fullness=float(u(0.5, 1.6) * (0.9 if man else 1.1)),
        lip_colour=tuple(float(c) for c in np.clip(lip_base, 0, 1)),
        ear_size=float(u(0.8, 1.25)),
        hair_style=hair_style,
        hair_colour=hair_colour,
        facial_hair=facial_hair,
        glasses=glasses,
        glasses_colour=glasses_colour,
        blush=float(u(0.0, 1.0) * (0.6 if man else 1.0)),
        marks=marks,
        hairline=_choice(rng, HAIRLINES, (0.4, 0.25, 0.15, 0.2 if man and age != "young" else 0.03)),
        fringe=("none" if hair_style in ("bald", "buzz") or u() < 0.55
                else _choice(rng, FRINGES[1:], (0.4, 0.4, 0.2))),
        fringe_length=float(u(0.0, 1.0)),
        freckles=float(u(0.3, 1.0)) if (u() < 0.35 * (1 - tone / (len(_SKIN_TONES) - 1))) else 0.0,
        lash=float(u(0.5, 1.2) if man else u(0.8, 1.6)),
        eyeshadow=(tuple(float(c) for c in _choice(rng, ((0.45, 0.3, 0.5), (0.35, 0.25, 0.2), (0.3, 0.4, 0.55),
                                                        (0.55, 0.4, 0.3), (0.2, 0.2, 0.22))))
                   + (float(u(0.3, 0.7)) if (not man and u() < 0.4) else 0.0,)),
        skin_phase=tuple(float(x) for x in u(0, 2 * np.pi, 6)),
    )


def identities(seed: int, count: int) -> list[Identity]:
    """`count` consecutive identities starting at identity seed `seed`, all in one split."""
    check_seed_range(seed, count)
    return [identity(seed, i) for i in range(count)]
