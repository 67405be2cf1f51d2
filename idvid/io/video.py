"""Video files: mp4 (H.264 through PyAV), GIF, and a contact-sheet PNG.

H.264 in yuv420p needs even frame sizes; odd sizes are padded by one edge pixel when writing and the
padding is not removed on reading (the stored video *is* the padded one)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from idvid.errors import InputError, VideoError
from idvid.io.atomic import publish, temp_beside


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: file is empty")
    return p


def _as_frames(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {arr.dtype}")
    return arr


def read_video(
    path: str | os.PathLike, max_frames: int | None = None, min_frames: int = 1
) -> tuple[np.ndarray, float]:
    """Decode a video into (frames (T, H, W, 3) uint8 RGB, fps).

    Raises `VideoError` for an unreadable, truncated-to-nothing or too-short file. A truncated file that
    still yields frames returns the frames it has (players do the same).
    """
    p = _check_path(path)
    frames: list[np.ndarray] = []
    fps = 0.0
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"{p}: contains no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.average_rate:
                fps = float(stream.average_rate)
            try:
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
            except (av.error.InvalidDataError, av.error.EOFError):
                pass  # truncated tail: keep what decoded
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{p}: cannot decode video ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise VideoError(f"{p}: no decodable frames (empty or truncated video)")
    if len(frames) < min_frames:
        raise VideoError(f"{p}: has {len(frames)} frame(s), at least {min_frames} needed")
    return np.stack(frames), (fps if fps > 0 else 25.0)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps and size from the container header (counts frames by demuxing if absent)."""
    p = _check_path(path)
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"{p}: contains no video stream")
            stream = container.streams.video[0]
            n = stream.frames or sum(1 for pkt in container.demux(stream) if pkt.size)
            fps = float(stream.average_rate) if stream.average_rate else 25.0
            return VideoInfo(n, fps, stream.codec_context.width, stream.codec_context.height)
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{p}: cannot read video ({type(exc).__name__}: {exc})") from None


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0, crf: int = 18) -> None:
    """Encode frames as H.264 mp4 (yuv420p, plays everywhere), written atomically."""
    arr = _as_frames(frames)
    t, h, w, _ = arr.shape
    if h % 2 or w % 2:  # yuv420p needs even sizes
        arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = arr.shape[1:3]
    p = Path(path)
    tmp = temp_beside(p)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=round(fps) if float(fps).is_integer() else fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for frame in arr:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        publish(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write an looping animated GIF, atomically."""
    arr = _as_frames(frames)
    p = Path(path)
    tmp = temp_beside(p)
    try:
        images = [Image.fromarray(f) for f in arr]
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0, optimize=False)
        publish(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def contact_sheet(frames: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile frames into one image, row-major, `gap` white pixels between tiles."""
    arr = _as_frames(frames)
    t, h, w, _ = arr.shape
    cols = columns or min(t, 8)
    rows = -(-t // cols)
    sheet = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for i, frame in enumerate(arr):
        r, c = divmod(i, cols)
        sheet[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = frame
    return sheet


def save_contact_sheet(path: str | os.PathLike, frames: np.ndarray, columns: int | None = None) -> None:
    from idvid.io.images import save_image

    save_image(path, contact_sheet(frames, columns))


def write_video_outputs(out_mp4: str | os.PathLike, frames: np.ndarray, fps: float = 8.0) -> dict[str, Path]:
    """The standard trio for a generated clip: OUT.mp4, OUT.gif and the contact sheet OUT.png."""
    out = Path(out_mp4)
    paths = {"mp4": out, "gif": out.with_suffix(".gif"), "png": out.with_suffix(".png")}
    write_mp4(paths["mp4"], frames, fps)
    write_gif(paths["gif"], frames, fps)
    save_contact_sheet(paths["png"], frames)
    return paths
