"""The world: clips of identities with their ground truth, the reference portraits, the manifest rows.

A clip is a pure function of (identity seed, clip index) plus the rendering settings (size, frames,
fps): `clip_spec` draws its appearance and motion, `render_clip` renders it (or, with `pixels=False`,
computes only its ground truth, which is how a resumed run rebuilds the manifest without re-rendering).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from idvid.errors import InputError
from idvid.synth import geometry
from idvid.synth.appearance import Appearance, reference_appearance, sample_appearance
from idvid.synth.head import NEUTRAL, Expression
from idvid.synth.identity import SPLITS, Identity, check_seed_range, identity
from idvid.synth.motion import Motion, intensity_from_tracks, sample_motion, trajectory
from idvid.synth.prompts import action_phrase, describe_person, prompt
from idvid.synth.render import make_scene, render_frame

DEFAULT_SIZE = 128
DEFAULT_FRAMES = 16
DEFAULT_FPS = 8.0


@dataclass(frozen=True)
class ClipSpec:
    """What a clip shows, before rendering."""

    identity: Identity
    clip_index: int
    appearance: Appearance
    motion: Motion

    @property
    def clip_id(self) -> str:
        return f"{self.identity.identity_id}_c{self.clip_index:03d}"


def clip_spec(identity_seed: int, clip_index: int) -> ClipSpec:
    """The clip `clip_index` of the identity with seed `identity_seed`."""
    ident = identity(identity_seed)
    return ClipSpec(ident, clip_index, sample_appearance(ident, clip_index), sample_motion(ident.seed, clip_index))


@dataclass
class Clip:
    """A rendered clip and its ground truth. Image coordinates are output pixels, centres at integers."""

    spec: ClipSpec
    size: int
    fps: float
    poses: np.ndarray  # (T, 3) yaw, pitch, roll in degrees
    expressions: list[Expression]
    face_boxes: np.ndarray  # (T, 4) x0, y0, x1, y1
    kps: np.ndarray  # (T, 5, 2) eye (image left), eye (image right), nose tip, mouth corners (left, right)
    motion_intensity: float
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray | None = None  # (T, H, W) bool face masks (skin + features + nose, not hair or ears)
    extra: dict = field(default_factory=dict)

    @property
    def clip_id(self) -> str:
        return self.spec.clip_id

    @property
    def prompt(self) -> str:
        return prompt(self.spec.identity, self.spec.appearance, self.spec.motion)

    @property
    def action_phrase(self) -> str:
        return action_phrase(self.spec.identity, self.spec.motion)


def _check_settings(size: int, num_frames: int, fps: float) -> None:
    if size < 64:
        raise InputError(f"--size must be at least 64 pixels, got {size}")
    if size > 1024:
        raise InputError(f"--size must be at most 1024 pixels, got {size}")
    if num_frames < 1:
        raise InputError(f"--frames must be at least 1, got {num_frames}")
    if not fps > 0:
        raise InputError(f"--fps must be positive, got {fps}")


def render_clip(spec: ClipSpec, size: int = DEFAULT_SIZE, num_frames: int = DEFAULT_FRAMES, fps: float = DEFAULT_FPS,
                pixels: bool = True, masks: bool = True) -> Clip:
    """Render a clip (frames, face masks) with its ground truth; `pixels=False` skips the rendering."""
    _check_settings(size, num_frames, fps)
    ident, app = spec.identity, spec.appearance
    poses, exprs = trajectory(spec.motion, num_frames, fps)
    scene = make_scene(ident, app, size, bg_seed=spec.clip_index, with_layers=pixels)
    boxes, kps, tracks, vis = [], [], [], []
    for pose, ex in zip(poses, exprs, strict=True):
        boxes.append(geometry.face_box(scene, pose, ex))
        kps.append(geometry.project(scene, pose, geometry.keypoints5(scene.lay, ex)).T)
        pts, v = geometry.tracking_points(scene, pose, ex)
        tracks.append(pts)
        vis.append(v)
    clip = Clip(spec, size, float(fps), poses, exprs, np.array(boxes), np.array(kps),
                intensity_from_tracks(np.array(tracks), np.array(vis), size))
    if pixels:
        out = [render_frame(scene, tuple(pose), ex) for pose, ex in zip(poses, exprs, strict=True)]
        clip.frames = np.stack([o[0] for o in out])
        if masks:
            clip.masks = np.stack([o[1] for o in out])
    return clip


def render_reference(ident: Identity, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The identity's reference portrait, like a user's photo: frontal, neutral expression, plain light
    background, soft frontal light, a plain top, no hat. Returns (RGB uint8, face mask bool)."""
    _check_settings(size, 1, 1.0)
    scene = make_scene(ident, reference_appearance(ident), size)
    return render_frame(scene, (0.0, 0.0, 0.0), NEUTRAL)


def iter_identities(split: str, count: int, start: int = 0) -> Iterator[Identity]:
    """`count` identities of a split, from the split's first seed + `start`."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    first = SPLITS[split][0] + start
    check_seed_range(first, count)
    for i in range(count):
        yield identity(first, i)


def iter_clip_specs(seed: int, identities: int, clips_per_identity: int) -> Iterator[ClipSpec]:
    """Clip specs of identities `seed .. seed+identities-1`, `clips_per_identity` each, identity-major."""
    check_seed_range(seed, identities)
    if clips_per_identity < 1:
        raise InputError(f"--clips-per-identity must be at least 1, got {clips_per_identity}")
    for i in range(identities):
        for k in range(clips_per_identity):
            yield clip_spec(seed + i, k)


def manifest_row(clip: Clip, video_path: str, reference_path: str) -> dict:
    """One manifest row (schema: `idvid.synth.manifest.MANIFEST_SCHEMA`); paths are stored as given."""
    spec = clip.spec
    ident, app, mo = spec.identity, spec.appearance, spec.motion
    r2 = lambda a: [round(float(v), 2) for v in a]  # noqa: E731
    return {
        "clip_id": clip.clip_id,
        "identity_id": ident.identity_id,
        "identity_seed": ident.seed,
        "clip_index": spec.clip_index,
        "split": ident.split,
        "video_path": video_path,
        "reference_path": reference_path,
        "prompt": clip.prompt,
        "action_phrase": clip.action_phrase,
        "person": describe_person(ident),
        "action": mo.action,
        "secondary_action": mo.secondary,
        "speed": round(mo.speed, 4),
        "motion_intensity": round(clip.motion_intensity, 4),
        "num_frames": int(clip.poses.shape[0]),
        "fps": clip.fps,
        "width": clip.size,
        "height": clip.size,
        "yaw": r2(clip.poses[:, 0]),
        "pitch": r2(clip.poses[:, 1]),
        "roll": r2(clip.poses[:, 2]),
        "face_box": [r2(b) for b in clip.face_boxes],
        "kps": [r2(k.ravel()) for k in clip.kps],
        "gender": ident.gender,
        "age": ident.age,
        "hair_style": ident.hair_style,
        "hair_colour": ident.hair_colour,
        "facial_hair": ident.facial_hair,
        "glasses": ident.glasses,
        "eye_colour": ident.eye_colour,
        "clothing": app.clothing,
        "clothing_colour": app.clothing_colour,
        "hat": app.hat,
        "hat_colour": app.hat_colour if app.hat != "none" else "",
        "scarf": app.scarf if app.scarf != "none" else "",
        "earrings": app.earrings,
        "necklace": app.necklace,
        "background": app.background,
        "background_colour": app.background_colour,
        "background_colour2": app.background_colour2,
        "light_direction": app.light_direction,
        "light_temperature": app.light_temperature,
        "light_intensity": round(app.light_intensity, 4),
        "identity_json": json.dumps(ident.to_dict()),
        "appearance_json": json.dumps(app.to_dict()),
        "motion_json": json.dumps(mo.to_dict()),
    }

