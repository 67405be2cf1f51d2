"""Prompt-following for colours: is a colour the prompt names rendered in the region it names?

Every colour in a synthetic-world prompt is one of the named colours of `idvid.synth.appearance.COLOURS`,
so the check is a classification among those names, decided from pixels of a region derived from the
face box of each frame (YuNet, the largest face):

  clothing   rows from the face-box bottom + 0.4 h to the frame bottom (at least the last 5% of the rows),
             columns 0.4 w .. 0.8 w either side of the face centre — the shoulders, left and right of the
             neckline, tie, beard or long hair that sit below the face (w, h: the face box's size);
  background columns outside the face box widened by 0.3 w, rows from the top to the face-box bottom
             (per background kind: see `BACKGROUND_RULES`).
A frame without a detected face uses `DEFAULT_FACE_BOX`, where the face of the synthetic portraits is.

Decision: every region pixel of every frame is converted to CIE Lab and votes for the nearest named colour
(CIE76 ΔE) of a *rendered palette*; the colour is "rendered" when it gets the most votes. Named colours
that the palette draws alike (closer than `ALIKE_DELTA_E`; e.g. white, beige and pink all clip to white
under a strong key light) vote as one, and any of them counts as rendered. The palette is each named
colour as the synthetic renderer draws it in that region:
  clothing   `COLOURS[c] * light * CLOTHING_SHADING`, clipped to [0, 1], where `light` is the clip's
             subject light (light temperature × intensity, both named in the prompt, × the subject key
             gain the renderer derives from the skin tone; `subject_light(spec)`) and `CLOTHING_SHADING`
             the mean cylinder shading of the torso;
  background `COLOURS[c] * gain(kind)` (backgrounds are not lit).
Colours of other items the prompt puts in the same region (a scarf over the shoulders) can be left out
of the palette (`exclude`), so that the scarf does not count against the shirt under it.

Calibrated on 120 validation clips (seeds 1,000,000-1,000,059, clips 0-1; the held-out accuracy is in
docs/evaluation.md). The plain rule — nearest *unlit* named colour — was right on 0.82 of the clothing
(0.87 even on the exact clothing pixels): white / light grey / beige and orange / yellow swap under warm
or cool light and under the brighter key light of darker skin. The lit palette makes it 0.94, counting
alike colours as one 0.95; the remaining misses are a scarf or long hair that covers the visible
shoulders, or a turned head whose box no longer sits over the (static) torso. The vote, rather than
the median Lab colour, is what lets a scarf be left out and a striped wall be read by its main colour.

Kinds whose named colour is not reliably visible are not checked: `bokeh` (the named colour is only the
lights, ~15% of the background, on a dark base of the other colour) — `check_background_colour`
returns None for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from idvid.synth.appearance import COLOURS

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels

# Mean YuNet face box on the calibration clips, as fractions of the frame (x0, y0, x1, y1).
DEFAULT_FACE_BOX = (0.29, 0.22, 0.70, 0.74)
# Clothing region, in face-box units below and beside the face (see the module docstring).
CLOTHING_TOP = 0.4
CLOTHING_INNER = 0.4
CLOTHING_OUTER = 0.8
MIN_ROWS = 0.05
# Mean shading of the torso (cylinder shading × the renderer's 0.95), fitted on the calibration clips.
CLOTHING_SHADING = 0.9
BACKGROUND_MARGIN = 0.3
# Named colours drawn closer than this (CIE76 ΔE) in a scene cannot be told apart there: they count as one.
ALIKE_DELTA_E = 2.0


@dataclass(frozen=True)
class BackgroundRule:
    """Where a background kind shows its named colour and how bright it is drawn there."""

    top: float  # region rows start at this fraction of the frame height
    bottom: float | None  # ... and end at this fraction (None: the face-box bottom)
    gain: float  # the named colour is drawn at about this brightness


BACKGROUND_RULES: dict[str, BackgroundRule | None] = {
    "wall": BackgroundRule(0.0, None, 1.0),
    "stripes": BackgroundRule(0.0, None, 1.0),  # stripes of the colour and of a mix with the second one
    "room": BackgroundRule(0.0, None, 0.9),  # walls shaded 0.85-1.0, a window in them
    "gradient": BackgroundRule(0.0, 0.15, 1.0),  # the named colour is the top of the gradient
    "sky": BackgroundRule(0.68, 0.85, 0.85),  # the named colour is the hills below the horizon
    "bookshelf": BackgroundRule(0.0, None, 0.5),  # shelves' back wall (0.45) and shelves (1.0), between books
    "bokeh": None,  # not checked: the named colour is only the lights (~15% of the background)
}


@dataclass
class ColourCheck:
    """The outcome of one colour check."""

    region: str  # "clothing" or "background"
    named: str  # the colour the prompt names
    found: str  # the named colour(s) with the most votes ("pink/white" when they render alike here)
    share: float  # fraction of the region's pixels that voted for `named` (and colours drawn alike)
    found_share: float  # ... for `found`
    pixels: int  # region pixels over all frames
    face_frames: int  # frames whose region came from a detected face (the rest use DEFAULT_FACE_BOX)

    @property
    def rendered(self) -> bool:
        return self.named in self.found.split("/")

    def to_dict(self) -> dict:
        return {"region": self.region, "named": self.named, "found": self.found, "rendered": self.rendered,
                "share": round(self.share, 4), "found_share": round(self.found_share, 4), "pixels": self.pixels,
                "face_frames": self.face_frames}


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65; L in 0..100) of RGB values: uint8 0..255 or float 0..1, any leading shape."""
    rgb = np.asarray(rgb)
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    flat = np.ascontiguousarray(x.reshape(-1, 1, 3))
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(x.shape)


def rendered_palette(light: Sequence[float] | np.ndarray = (1.0, 1.0, 1.0), gain: float = 1.0,
                     exclude: Iterable[str] = ()) -> tuple[list[str], np.ndarray]:
    """(names, (K, 3) Lab) of the named colours as drawn under `light` (RGB gain) at brightness `gain`."""
    drop = set(exclude)
    names = [n for n in COLOURS if n not in drop]
    rgb = np.asarray([COLOURS[n] for n in names], np.float32) * np.asarray(light, np.float32) * gain
    return names, to_lab(np.clip(rgb, 0.0, 1.0))


def colour_votes(lab_pixels: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    """(K,) fraction of `lab_pixels` (N, 3) whose nearest palette colour (CIE76 ΔE) is each palette entry."""
    lab_pixels = np.asarray(lab_pixels, np.float32).reshape(-1, 3)
    if len(lab_pixels) == 0:
        return np.zeros(len(palette_lab))
    d = ((lab_pixels[:, None, :] - palette_lab[None, :, :]) ** 2).sum(-1)  # (N, K)
    return np.bincount(d.argmin(1), minlength=len(palette_lab)) / len(lab_pixels)


def _box_or_default(box: Box | None, shape: tuple[int, int]) -> Box:
    h, w = shape
    if box is not None:
        return tuple(float(v) for v in box)
    x0, y0, x1, y1 = DEFAULT_FACE_BOX
    return (x0 * w, y0 * h, x1 * w, y1 * h)


def clothing_region(shape: tuple[int, int], box: Box | None) -> np.ndarray:
    """(H, W) bool: the shoulders below the face `box` (None: `DEFAULT_FACE_BOX`)."""
    h, w = shape
    x0, y0, x1, y1 = _box_or_default(box, shape)
    fw, fh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    top = min(y1 + CLOTHING_TOP * fh, h * (1 - MIN_ROWS))
    yy, xx = np.mgrid[0:h, 0:w]
    du = np.abs(xx + 0.5 - (x0 + x1) / 2) / fw
    return (yy + 0.5 >= top) & (du >= CLOTHING_INNER) & (du <= CLOTHING_OUTER)


def background_region(shape: tuple[int, int], box: Box | None, rule: BackgroundRule) -> np.ndarray:
    """(H, W) bool: background beside the face `box` (None: `DEFAULT_FACE_BOX`), rows per `rule`."""
    h, w = shape
    x0, _, x1, y1 = _box_or_default(box, shape)
    m = BACKGROUND_MARGIN * max(x1 - x0, 1.0)
    bottom = y1 if rule.bottom is None else rule.bottom * h
    yy, xx = np.mgrid[0:h, 0:w]
    rows = (yy + 0.5 >= rule.top * h) & (yy + 0.5 < bottom)
    return rows & ((xx + 0.5 < x0 - m) | (xx + 0.5 > x1 + m))


def face_boxes(frames: np.ndarray, analyzer=None) -> list[Box | None]:
    """The largest detected face box of each frame (None where there is none)."""
    from idvid.faces import get_default_analyzer

    fa = analyzer or get_default_analyzer()
    return [tuple(float(v) for v in faces[0].box) if faces else None for faces in fa.detect_frames(frames)]


def alike_groups(palette_lab: np.ndarray, tolerance: float = ALIKE_DELTA_E) -> np.ndarray:
    """(K,) group index per palette entry: entries closer than `tolerance` ΔE (chained) are one group —
    e.g. under a bright key light white, beige and pink shirts all clip to the same white."""
    k = len(palette_lab)
    group = np.arange(k)
    d = np.sqrt(((palette_lab[:, None] - palette_lab[None]) ** 2).sum(-1))
    for i in range(k):
        for j in range(i + 1, k):
            if d[i, j] < tolerance:
                group[group == group[j]] = group[i]
    return group


def _check(region: str, frames: np.ndarray, colour: str, boxes: Sequence[Box | None], mask_of,
           names: list[str], palette: np.ndarray) -> ColourCheck:
    frames = np.asarray(frames)
    if colour not in COLOURS:
        raise ValueError(f"{colour!r} is not a named colour; choose one of {', '.join(COLOURS)}")
    if len(boxes) != len(frames):
        raise ValueError(f"{len(boxes)} face boxes for {len(frames)} frames")
    shape = frames.shape[1:3]
    pixels = np.concatenate([frame[mask_of(shape, box)] for frame, box in zip(frames, boxes, strict=True)])
    group = alike_groups(palette)  # (K,)
    votes = np.bincount(group, weights=colour_votes(to_lab(pixels), palette), minlength=len(names))  # per group
    best = int(votes.argmax())  # ties: the group of the earliest colour in COLOURS
    return ColourCheck(region=region, named=colour, found="/".join(n for n, g in zip(names, group, strict=True) if g == best),
                       share=float(votes[group[names.index(colour)]]), found_share=float(votes[best]),
                       pixels=len(pixels), face_frames=sum(b is not None for b in boxes))


def check_clothing_colour(frames: np.ndarray, colour: str, light: Sequence[float] | np.ndarray = (1.0, 1.0, 1.0),
                          exclude: Iterable[str] = (), boxes: Sequence[Box | None] | None = None,
                          analyzer=None) -> ColourCheck:
    """Is the clothing below the face `colour`? `frames` (T, H, W, 3) uint8 RGB; `light`: the subject light
    (`subject_light(spec)`; ones = unlit); `exclude`: colours of other items over the shoulders (a scarf);
    `boxes`: per-frame face boxes (None: detect them)."""
    boxes = face_boxes(frames, analyzer) if boxes is None else boxes
    names, palette = rendered_palette(light, CLOTHING_SHADING, (c for c in exclude if c != colour))
    return _check("clothing", frames, colour, boxes, clothing_region, names, palette)


def check_background_colour(frames: np.ndarray, colour: str, kind: str,
                            boxes: Sequence[Box | None] | None = None, analyzer=None) -> ColourCheck | None:
    """Is the background of kind `kind` (`idvid.synth.appearance.BACKGROUNDS`) `colour`? None for kinds the
    check cannot judge (see `BACKGROUND_RULES`)."""
    if kind not in BACKGROUND_RULES:
        raise ValueError(f"unknown background kind {kind!r}; choose one of {', '.join(BACKGROUND_RULES)}")
    rule = BACKGROUND_RULES[kind]
    if rule is None:
        return None
    boxes = face_boxes(frames, analyzer) if boxes is None else boxes
    names, palette = rendered_palette(gain=rule.gain)
    return _check("background", frames, colour, boxes,
                  lambda shape, box: background_region(shape, box, rule), names, palette)


def subject_light(spec) -> np.ndarray:
    """(3,) RGB gain on the person in a synthetic clip: light temperature × intensity × the subject key
    (the renderer lights darker skin brighter). Ground truth from the clip spec, as the prompt states it."""
    from idvid.synth.render import make_scene

    scene = make_scene(spec.identity, spec.appearance, with_layers=False)
    return np.asarray(spec.appearance.light_rgb, np.float32) * scene.key


def check_clip_colours(frames: np.ndarray, spec, boxes: Sequence[Box | None] | None = None,
                       analyzer=None) -> dict[str, ColourCheck | None]:
    """The clothing and background colour checks of frames meant to show synthetic clip `spec`
    (`idvid.synth.clip_spec`): the named colours are read from the spec, not parsed from the prompt."""
    app = spec.appearance
    boxes = face_boxes(frames, analyzer) if boxes is None else boxes
    scarf = () if app.scarf == "none" or app.clothing == "suit" else (app.scarf,)  # a suit's tie is mid-chest
    return {
        "clothing": check_clothing_colour(frames, app.clothing_colour, subject_light(spec), scarf, boxes),
        "background": check_background_colour(frames, app.background_colour, app.background, boxes),
    }


def ground_truth_accuracy(seeds: Iterable[int], clips: Sequence[int] = (0,), size: int = 128,
                          num_frames: int = 17, analyzer=None) -> dict:
    """How often the checks accept the rendered ground truth of synthetic clips (their own colours):
    clothing over all clips, background over the clips of a checked kind (and per kind)."""
    from idvid.synth import clip_spec, render_clip

    clothing, background = [], {}
    for seed in seeds:
        for k in clips:
            spec = clip_spec(seed, k)
            clip = render_clip(spec, size=size, num_frames=num_frames, masks=False)
            res = check_clip_colours(clip.frames, spec, analyzer=analyzer)
            clothing.append(res["clothing"].rendered)
            if res["background"] is not None:
                background.setdefault(spec.appearance.background, []).append(res["background"].rendered)
    every_bg = [v for vals in background.values() for v in vals]
    return {
        "clips": len(clothing),
        "clothing_accuracy": float(np.mean(clothing)) if clothing else None,
        "background_clips": len(every_bg),
        "background_accuracy": float(np.mean(every_bg)) if every_bg else None,
        "background_by_kind": {k: {"clips": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(background.items())},
    }


__all__ = ["BACKGROUND_RULES", "DEFAULT_FACE_BOX", "BackgroundRule", "ColourCheck", "background_region",
           "check_background_colour", "check_clip_colours", "check_clothing_colour", "clothing_region",
           "colour_votes", "face_boxes", "ground_truth_accuracy", "rendered_palette", "subject_light", "to_lab"]
