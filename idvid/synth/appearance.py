"""Appearance: what a prompt may change about a clip without changing who is in it.

Clothing, accessories (hat, scarf, earrings, necklace), background and lighting, plus the camera framing
(not described in prompts). Every colour is a named colour so prompts can say it and evaluations can
check it. `reference_appearance` is the fixed "user photo" look: plain light background, soft frontal
light, plain top, no accessories.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from idvid.synth.identity import RGB, Identity

COLOURS: dict[str, RGB] = {
    "red": (0.78, 0.1, 0.1),
    "orange": (0.92, 0.45, 0.08),
    "yellow": (0.93, 0.8, 0.15),
    "green": (0.15, 0.55, 0.2),
    "teal": (0.05, 0.5, 0.5),
    "blue": (0.12, 0.3, 0.8),
    "navy": (0.07, 0.1, 0.32),
    "purple": (0.45, 0.18, 0.6),
    "pink": (0.93, 0.5, 0.65),
    "brown": (0.42, 0.26, 0.13),
    "beige": (0.85, 0.77, 0.62),
    "white": (0.93, 0.93, 0.92),
    "grey": (0.5, 0.5, 0.52),
    "light grey": (0.8, 0.8, 0.82),
    "black": (0.07, 0.07, 0.08),
}
CLOTHING = ("t-shirt", "hoodie", "sweater", "shirt", "suit", "jacket", "turtleneck")
HATS = ("none", "beanie", "cap")
BACKGROUNDS = ("wall", "gradient", "stripes", "sky", "room", "bokeh", "bookshelf")
LIGHT_DIRECTIONS = {  # unit-ish vectors from the face towards the light, camera coords (x right, y down, z away)
    "front": (0.0, -0.25, -1.0),
    "left": (-0.7, -0.3, -0.65),
    "right": (0.7, -0.3, -0.65),
    "above": (0.0, -0.8, -0.6),
}
LIGHT_TEMPERATURES: dict[str, RGB] = {
    "warm": (1.08, 0.96, 0.8),
    "neutral": (1.0, 1.0, 1.0),
    "cool": (0.86, 0.95, 1.1),
}
_APPEARANCE_STREAM = 0xA9


@dataclass(frozen=True)
class Appearance:
    clothing: str
    clothing_colour: str
    hat: str
    hat_colour: str
    scarf: str  # colour name or "none"
    earrings: bool
    necklace: bool
    background: str
    background_colour: str
    background_colour2: str
    light_direction: str
    light_intensity: float
    light_temperature: str
    framing_scale: float  # head size relative to the default framing
    framing_dx: float  # head offset, fraction of the frame width
    framing_dy: float

    @property
    def light_vector(self) -> np.ndarray:
        v = np.asarray(LIGHT_DIRECTIONS[self.light_direction], float)
        return v / np.linalg.norm(v)

    @property
    def light_rgb(self) -> np.ndarray:
        return np.asarray(LIGHT_TEMPERATURES[self.light_temperature]) * self.light_intensity

    def to_dict(self) -> dict:
        return asdict(self)


def _pick(rng: np.random.Generator, options, p=None):
    p = None if p is None else np.asarray(p, float) / np.sum(p)
    return options[int(rng.choice(len(options), p=p))]


def sample_appearance(ident: Identity, clip_index: int) -> Appearance:
    """The appearance of clip `clip_index` of `ident`: a pure function of (identity seed, clip index)."""
    rng = np.random.default_rng(np.random.SeedSequence([ident.seed, clip_index, _APPEARANCE_STREAM]))
    names = tuple(COLOURS)
    clothing_colour = _pick(rng, names)
    background_colour = _pick(rng, names)
    background_colour2 = _pick(rng, [n for n in names if n != background_colour])
    hat = _pick(rng, HATS, (0.84, 0.08, 0.08))
    if ident.hair_style in ("ponytail",) and hat == "beanie":
        hat = "cap"
    return Appearance(
        clothing=_pick(rng, CLOTHING),
        clothing_colour=clothing_colour,
        hat=hat,
        hat_colour=_pick(rng, names),
        scarf=_pick(rng, names) if rng.uniform() < 0.15 else "none",
        earrings=bool(rng.uniform() < (0.35 if ident.gender == "woman" else 0.06)),
        necklace=bool(rng.uniform() < 0.15),
        background=_pick(rng, BACKGROUNDS),
        background_colour=background_colour,
        background_colour2=background_colour2,
        light_direction=_pick(rng, tuple(LIGHT_DIRECTIONS), (0.46, 0.18, 0.18, 0.18)),
        light_intensity=float(rng.uniform(0.85, 1.15)),
        light_temperature=_pick(rng, tuple(LIGHT_TEMPERATURES)),
        framing_scale=float(rng.uniform(0.92, 1.08)),
        framing_dx=float(rng.uniform(-0.05, 0.05)),
        framing_dy=float(rng.uniform(-0.03, 0.03)),
    )


def reference_appearance(ident: Identity) -> Appearance:
    """The reference-portrait look: light plain background, soft frontal neutral light, a plain top."""
    rng = np.random.default_rng(np.random.SeedSequence([ident.seed, _APPEARANCE_STREAM, 1]))
    return Appearance(
        clothing=_pick(rng, ("t-shirt", "sweater", "shirt")),
        clothing_colour=_pick(rng, ("grey", "navy", "black", "white", "beige", "blue")),
        hat="none",
        hat_colour="black",
        scarf="none",
        earrings=False,
        necklace=False,
        background="wall",
        background_colour=_pick(rng, ("white", "beige", "light grey")),
        background_colour2="white",
        light_direction="front",
        light_intensity=1.0,
        light_temperature="neutral",
        framing_scale=1.0,
        framing_dx=0.0,
        framing_dy=0.0,
    )
