"""`idvid faces IMAGE_OR_VIDEO`: detect faces and print box, score, head pose and face-area ratio."""

from __future__ import annotations

import json
from pathlib import Path

import click

from idvid.errors import InputError, NoFaceFound

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif"}


def _face_row(fa, image, face, with_embedding: bool, embedder: str) -> dict:
    yaw, pitch, roll = fa.head_pose(image, face)
    row = {
        "box": [round(v, 1) for v in face.box],
        "score": round(face.score, 4),
        "yaw": round(yaw, 1),
        "pitch": round(pitch, 1),
        "roll": round(roll, 1),
        "area_ratio": round(face.area_ratio(image.shape), 4),
        "kps": [[round(float(x), 1), round(float(y), 1)] for x, y in face.kps],
    }
    if with_embedding:
        row[f"embedding[{embedder}]"] = [round(float(v), 6) for v in fa.embed(image, face)]
    return row


def _print_rows(prefix: str, rows: list[dict]) -> None:
    if not rows:
        click.echo(f"{prefix}no face")
    for i, r in enumerate(rows):
        box = ",".join(f"{v:.0f}" for v in r["box"])
        click.echo(
            f"{prefix}face {i}: box=({box}) score={r['score']:.3f} "
            f"yaw={r['yaw']:+.1f} pitch={r['pitch']:+.1f} roll={r['roll']:+.1f} area={r['area_ratio']:.3f}"
        )


@click.command("faces")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--detector", type=click.Choice(["yunet", "dlib-hog", "dlib-cnn"]), default="yunet", show_default=True,
              help="Face detector.")
@click.option("--embedder", type=click.Choice(["sface", "dlib"]), default="sface", show_default=True,
              help="Face recognition model for --embeddings.")
@click.option("--pose-from", type=click.Choice(["auto", "landmarks68", "kps5"]), default="auto", show_default=True,
              help="Head pose from dlib's 68 landmarks or the detector's 5 keypoints (auto: 68 when the detector "
                   "gives them, i.e. dlib-hog/dlib-cnn).")
@click.option("--all-faces/--largest", default=True, show_default=True,
              help="Report every face, or only the largest one (per image / frame).")
@click.option("--max-frames", type=int, default=None, help="Read at most this many frames of a video.")
@click.option("--embeddings", is_flag=True, help="Include 128-d embeddings in the --json output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def faces(path: str, detector: str, embedder: str, pose_from: str, all_faces: bool, max_frames: int | None,
          embeddings: bool, as_json: bool) -> None:
    """Analyse the faces in PATH (an image, or a video: mp4, mov, mkv, webm, gif).

    Prints, per face (per frame for a video), the box (x0,y0,x1,y1 pixels), detector score, head pose
    (yaw/pitch/roll in degrees: yaw > 0 nose to image right, pitch > 0 nose up, roll > 0 clockwise)
    and face-area ratio (box area / image area). An image without any face is an error; so is a video
    in which no frame has one.
    """
    from idvid.faces.analyzer import FaceAnalyzer

    if max_frames is not None and max_frames < 1:
        raise InputError("--max-frames must be at least 1")
    fa = FaceAnalyzer(detector=detector, embedder=embedder, pose_from=pose_from)
    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        from idvid.io.video import read_video

        frames, fps = read_video(p, max_frames=max_frames)
        per_frame = fa.detect_frames(frames)
        if not any(per_frame):
            raise NoFaceFound(f"{p}: no face found in any of its {len(frames)} frames")
        results = []
        for t, found in enumerate(per_frame):
            chosen = found if all_faces else found[:1]
            results.append({"frame": t, "faces": [_face_row(fa, frames[t], f, embeddings, embedder) for f in chosen]})
        if as_json:
            click.echo(json.dumps({
                "path": str(p), "type": "video", "frames": len(frames), "fps": round(fps, 3),
                "width": int(frames.shape[2]), "height": int(frames.shape[1]), "detector": detector,
                "face_frames": round(sum(bool(f) for f in per_frame) / len(frames), 4), "results": results,
            }))
        else:
            click.echo(f"{p}: video {frames.shape[2]}x{frames.shape[1]}, {len(frames)} frames @ {fps:.3g} fps, "
                       f"faces in {sum(bool(f) for f in per_frame)}/{len(frames)} frames ({detector})")
            for r in results:
                _print_rows(f"frame {r['frame']:4d} ", r["faces"])
        return

    from idvid.io.images import load_image

    image = load_image(p)
    found = fa.detect(image)
    if not found:
        raise NoFaceFound(f"{p}: no face found in the image")
    chosen = found if all_faces else found[:1]
    rows = [_face_row(fa, image, f, embeddings, embedder) for f in chosen]
    if as_json:
        click.echo(json.dumps({
            "path": str(p), "type": "image", "width": int(image.shape[1]), "height": int(image.shape[0]),
            "detector": detector, "num_faces": len(found), "faces": rows,
        }))
    else:
        click.echo(f"{p}: image {image.shape[1]}x{image.shape[0]}, {len(found)} face(s) ({detector})")
        _print_rows("", rows)
