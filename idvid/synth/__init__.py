"""The procedural identity-video world: generated people, clips of them with exact ground truth.

Identities are a pure function of their seed (`identity(seed, index)` uses seed + index); seeds
< 1,000,000 are training, 1,000,000-1,999,999 validation, >= 2,000,000 held-out (`split_of`).
A clip is a pure function of (identity seed, clip index)::

    from idvid.synth import clip_spec, render_clip, render_reference, identity
    clip = render_clip(clip_spec(2_000_000, 0), size=128, num_frames=16, fps=8)
    clip.frames, clip.masks             # (T, H, W, 3) uint8, (T, H, W) bool face masks
    clip.poses, clip.face_boxes, clip.kps, clip.motion_intensity, clip.prompt, clip.action_phrase
    ref, ref_mask = render_reference(identity(2_000_000), size=128)

Pose convention (shared with `idvid.faces`): yaw > 0 nose toward image right, pitch > 0 nose up,
roll > 0 clockwise in the image, degrees. `idvid synth` writes a slice of the world to disk
(see `idvid.synth.manifest` for the manifest schema). Modules: `identity` (who), `appearance`
(prompt-changeable look), `head` (3D head, pose, expressions), `paint` (surface colours), `layers`
(background, body), `render` (ray casting and shading), `geometry` (ground truth without pixels),
`motion` (actions, trajectories, motion intensity), `prompts`, `world` (clips), `manifest`.
"""

from idvid.synth.appearance import Appearance, reference_appearance, sample_appearance
from idvid.synth.head import NEUTRAL, Expression, rotation
from idvid.synth.identity import Identity, check_seed_range, identities, identity, split_of
from idvid.synth.manifest import MANIFEST_COLUMNS, MANIFEST_SCHEMA, read_manifest, write_manifest
from idvid.synth.motion import ACTIONS, Motion, sample_motion, trajectory
from idvid.synth.render import make_scene, render_frame
from idvid.synth.world import (
    Clip,
    ClipSpec,
    clip_spec,
    iter_clip_specs,
    iter_identities,
    manifest_row,
    render_clip,
    render_reference,
)

__all__ = [
    "ACTIONS",
    "MANIFEST_COLUMNS",
    "MANIFEST_SCHEMA",
    "NEUTRAL",
    "Appearance",
    "Clip",
    "ClipSpec",
    "Expression",
    "Identity",
    "Motion",
    "check_seed_range",
    "clip_spec",
    "identities",
    "identity",
    "iter_clip_specs",
    "iter_identities",
    "make_scene",
    "manifest_row",
    "read_manifest",
    "reference_appearance",
    "render_clip",
    "render_frame",
    "render_reference",
    "rotation",
    "sample_appearance",
    "sample_motion",
    "split_of",
    "trajectory",
    "write_manifest",
]
