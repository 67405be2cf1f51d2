"""Image/video I/O: what users hand us is loaded correctly or refused with an ImageError/VideoError."""

import numpy as np
import pytest
from PIL import Image

from idvid.errors import ImageError, InputError, VideoError
from idvid.io import load_image, read_video, video_info, write_gif, write_mp4, write_video_outputs
from idvid.io.video import contact_sheet


def test_grayscale_rgba_16bit_palette_are_converted_to_rgb(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (32, 1))
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])

    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:8, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[-1, -1], [255, 255, 255])  # transparency composited over white

    deep = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out[..., 0].max() >= 250 and out[0, 0, 0] == 0  # full 16-bit range mapped onto 0..255

    Image.fromarray(np.full((10, 10, 3), 51, np.uint8)).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png")[0, 0, 0] == 51  # 51 is on the web palette


def test_bad_images_raise_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match="not an image file"):
        load_image(tmp_path / "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError):
        load_image(tmp_path / "trunc.png")
    with pytest.raises(ImageError, match="MP limit"):
        load_image(tmp_path / "t.png", max_pixels=1000)


def test_mp4_roundtrip_keeps_frames_and_fps(tmp_path):
    t = np.arange(6)[:, None, None, None]
    frames = np.broadcast_to((t * 40 + 10), (6, 32, 48, 3)).astype(np.uint8).copy()
    write_mp4(tmp_path / "v.mp4", frames, fps=12)
    back, fps = read_video(tmp_path / "v.mp4")
    assert back.shape == frames.shape and fps == 12
    assert np.abs(back.astype(int) - frames).mean() < 2.0  # lossy, but near-exact on flat frames
    assert video_info(tmp_path / "v.mp4").num_frames == 6
    # Odd sizes are padded to even (H.264 4:2:0).
    write_mp4(tmp_path / "odd.mp4", frames[:, :31, :47], fps=8)
    assert read_video(tmp_path / "odd.mp4")[0].shape == (6, 32, 48, 3)


def test_bad_videos(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    write_mp4(tmp_path / "v.mp4", frames)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        read_video(tmp_path / "trunc.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    write_mp4(tmp_path / "one.mp4", frames[:1])
    with pytest.raises(VideoError, match="1 frame"):
        read_video(tmp_path / "one.mp4", min_frames=2)
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(VideoError, match="cannot decode"):
        read_video(tmp_path / "text.mp4")


def test_gif_contact_sheet_and_output_trio(tmp_path):
    frames = np.zeros((5, 8, 10, 3), np.uint8)
    frames[np.arange(5), :, :, 0] = (np.arange(5) * 50)[:, None, None]
    sheet = contact_sheet(frames, columns=3, gap=2)
    assert sheet.shape == (2 * 8 + 2, 3 * 10 + 2 * 2, 3)
    assert sheet[0, 0, 0] == 0 and sheet[0, 12, 0] == 50 and sheet[10, 0, 0] == 150  # row-major tiling
    assert (sheet[8:10] == 255).all()  # white gap between rows
    write_gif(tmp_path / "a.gif", frames, fps=5)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 5
    paths = write_video_outputs(tmp_path / "out.mp4", np.repeat(frames, 2, axis=0))
    assert all(p.exists() for p in paths.values()) and paths["png"].name == "out.png"
