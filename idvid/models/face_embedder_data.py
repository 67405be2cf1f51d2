"""Aligned face crops of the synthetic world, for training and testing the differentiable face embedder.

Crops are aligned with the ground-truth 5 keypoints the renderer reports (no detector in the loop), onto the
same ArcFace template `idvid.faces` uses for SFace, so the embedder sees what SFace sees. Identities are
chosen by seed: < 1,000,000 train, >= 2,000,000 held out (see `idvid.synth`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def synthetic_face_set(
    seeds: Iterable[int],
    clips_per_identity: int = 2,
    frames_per_clip: int = 4,
    size: int = 128,
    with_reference: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(crops (N, 112, 112, 3) uint8 RGB, identity seeds (N,)) from rendered clips and reference portraits."""
    from tqdm.auto import tqdm

    from idvid.faces import align_face
    from idvid.synth import (
        clip_spec,
        geometry,
        identity,
        make_scene,
        reference_appearance,
        render_clip,
        render_reference,
    )
    from idvid.synth.head import NEUTRAL

    crops, labels = [], []
    for seed in tqdm(list(seeds), desc="synthetic faces", disable=not progress):
        for c in range(clips_per_identity):
            clip = render_clip(clip_spec(seed, c), size=size, num_frames=frames_per_clip, fps=2.0, masks=False)
            for frame, kps in zip(clip.frames, clip.kps, strict=True):
                crops.append(align_face(frame, kps))
                labels.append(seed)
        if with_reference:  # the user-photo-like portrait: frontal, neutral, its own framing
            ident = identity(seed)
            image, _ = render_reference(ident, size=size)
            scene = make_scene(ident, reference_appearance(ident), size, with_layers=False)
            kps = geometry.project(scene, (0.0, 0.0, 0.0), geometry.keypoints5(scene.lay, NEUTRAL)).T
            crops.append(align_face(image, kps))
            labels.append(seed)
    return np.stack(crops), np.asarray(labels)
