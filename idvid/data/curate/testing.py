"""Constructed videos with known answers, for tests, benchmarks and the acceptance corpus.

Textures are smoothed noise (enough detail for optical flow and a sharpness measure); motions are
exact integer translations, so the true flow of every pixel is known.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def texture(h: int, w: int, seed: int = 0, smooth: float = 2.0) -> np.ndarray:
    """(h, w, 3) uint8 smoothed colour noise with full contrast."""
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), smooth)
    img = (img - img.min()) / (img.max() - img.min() + 1e-9)
    return (img * 255).astype(np.uint8)


def translating(num_frames: int, h: int, w: int, dx: int, dy: int, seed: int = 0) -> np.ndarray:
    """Frames of a window panning over a large texture by (dx, dy) pixels per frame: every pixel's
    flow between consecutive frames is (-dx, -dy), of magnitude hypot(dx, dy)."""
    big = texture(h + abs(dy) * num_frames + 1, w + abs(dx) * num_frames + 1, seed)
    x0 = 0 if dx >= 0 else abs(dx) * num_frames
    y0 = 0 if dy >= 0 else abs(dy) * num_frames
    return np.stack([big[y0 + t * dy: y0 + t * dy + h, x0 + t * dx: x0 + t * dx + w] for t in range(num_frames)])


def moving_square(num_frames: int, h: int, w: int, side: int, speed: int, seed: int = 0) -> np.ndarray:
    """A textured square moving right by `speed` px/frame over a static textured background."""
    bg = texture(h, w, seed)
    patch = texture(side, side, seed + 1)
    frames = []
    for t in range(num_frames):
        f = bg.copy()
        x = 4 + t * speed
        y = (h - side) // 2
        f[y:y + side, x:x + side] = patch
        frames.append(f)
    return np.stack(frames)


def burn_text(frames: np.ndarray, text: str = "Subtitles burned into this video", scale: float | None = None) -> np.ndarray:
    """White subtitle text with a dark outline along the bottom of every frame."""
    out = frames.copy()
    h, w = frames.shape[1:3]
    scale = scale or w / 700
    thick = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = ((w - tw) // 2, h - max(8, h // 12))
    for f in out:
        cv2.putText(f, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
        cv2.putText(f, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def downscale(frames: np.ndarray, factor: float) -> np.ndarray:
    h, w = frames.shape[1:3]
    size = (max(2, round(w * factor / 2) * 2), max(2, round(h * factor / 2) * 2))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def truncate_file(src: str | Path, dst: str | Path, keep_fraction: float = 0.5) -> None:
    """Copy the first `keep_fraction` of a file's bytes (an mp4 cut short loses its index)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * keep_fraction))])


def garbage_file(dst: str | Path, size: int = 4096, seed: int = 0) -> None:
    Path(dst).write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())


def person_footage(num_frames: int, width: int = 720, height: int = 480, seed: int = 0,
                   render_size: int = 240) -> tuple[np.ndarray, bool]:
    """Frames of one synthetic person turning their head, composited on a textured background at
    `width` x `height` — footage shaped like CelebIPVid's, for throughput benchmarks.

    The head is rendered by `idvid.synth` at `render_size` and scaled to the frame height (rendering
    at full size would dominate the benchmark's set-up time). Returns (frames, has_face); without
    `idvid.synth` the frames are a panning texture with no face.
    """
    try:
        from idvid.synth.appearance import sample_appearance
        from idvid.synth.identity import identity
        from idvid.synth.render import make_scene, render_frame
    except ImportError:
        return translating(num_frames, height, width, 2, 1, seed), False
    ident = identity(seed, 0)
    scene = make_scene(ident, sample_appearance(ident, 0), size=render_size)
    bg = texture(height, width, seed, smooth=6.0)
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        pose = (35.0 * np.sin(t / 20.0), 8.0 * np.sin(t / 13.0), 3.0 * np.sin(t / 17.0))
        head = render_frame(scene, pose)[0]
        frames[t] = bg
        frames[t, y0:y0 + side, x0:x0 + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_LINEAR)
    return frames, True
