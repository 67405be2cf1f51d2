"""Image loading that accepts what users actually have (grayscale, RGBA, 16-bit, palette PNGs, EXIF
rotation) and rejects what cannot be a photo with one `ImageError` line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idvid.errors import ImageError, InputError
from idvid.io.atomic import publish, temp_beside

# 40 megapixels: a phone photo is ~12 MP; an 8000x8000 (64 MP) image is refused instead of being
# decoded into ~200 MB and then resized. Users can pre-shrink their photo.
MAX_IMAGE_PIXELS = 40_000_000


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected an image file")
    if p.stat().st_size == 0:
        raise ImageError(f"{p}: file is empty")
    return p


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit / 32-bit / float image data to uint8 by the range its dtype implies."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(arr) / hi * 255.0, 0, 255).round().astype(np.uint8)
    if arr.dtype in (np.uint16, np.int32, np.int64, np.uint32, np.int16):
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr.astype(np.float64) / hi * 255.0, 0, 255).round().astype(np.uint8)
    raise ImageError(f"unsupported pixel type {arr.dtype}")


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Load any common image file as an RGB uint8 array (H, W, 3).

    Grayscale is replicated to 3 channels, alpha is composited over white (a cut-out portrait on a
    plain background, like a user's photo), 16-bit data is scaled to 8 bits, EXIF orientation is applied.
    """
    p = _check_path(path)
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own, clearer limit below
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{p}: image is {w}x{h} ({w * h / 1e6:.0f} MP), above the {max_pixels / 1e6:.0f} MP limit; "
                    "resize it (e.g. to 2000 px on the long side) and try again"
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = _to_uint8(np.asarray(im))
                im = Image.fromarray(arr, mode="L")
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file (expected PNG, JPEG, WebP, BMP or TIFF)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{p}: cannot decode image ({exc})") from None
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(f"{p}: image is only {arr.shape[1]}x{arr.shape[0]} pixels")
    return np.ascontiguousarray(arr)


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB uint8 image atomically (temp file + rename), format from the suffix."""
    p = Path(path)
    tmp = temp_beside(p)
    try:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp)
        publish(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
