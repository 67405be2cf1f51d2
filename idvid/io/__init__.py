"""Reading and writing images and videos, with one clear error for every unusable input.

Frames are always `uint8` RGB arrays of shape (H, W, 3); videos are (T, H, W, 3)."""

from idvid.io.images import MAX_IMAGE_PIXELS, load_image, save_image
from idvid.io.video import (
    read_video,
    save_contact_sheet,
    video_info,
    write_gif,
    write_mp4,
    write_video_outputs,
)

__all__ = [
    "MAX_IMAGE_PIXELS",
    "load_image",
    "save_image",
    "read_video",
    "video_info",
    "write_mp4",
    "write_gif",
    "save_contact_sheet",
    "write_video_outputs",
]
