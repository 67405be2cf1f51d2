"""Face tracks from keyframe detections: associate boxes across keyframes, interpolate between them.

Detection runs only on keyframes (a few per second); in between, a face moves little, so boxes and
keypoints are linearly interpolated along each track. Association is greedy by IoU (largest faces
first), which is all that short, single-shot segments need. The *main* track is the one that covers
the most keyframe area (the person the clip is about).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One face over keyframes: `members[k]` is the face's index in keyframe k's detections."""

    members: dict[int, int] = field(default_factory=dict)
    last_box: tuple[float, float, float, float] | None = None


def associate(boxes_per_keyframe: list[list[tuple[float, float, float, float]]], min_iou: float = 0.2,
              max_gap: int = 2) -> list[Track]:
    """Greedy IoU association of keyframe boxes into tracks (a track may miss up to `max_gap` keyframes)."""
    tracks: list[Track] = []
    last_seen: list[int] = []
    for k, boxes in enumerate(boxes_per_keyframe):
        free = set(range(len(tracks)))
        for j, box in enumerate(boxes):  # boxes come largest first
            best, best_iou = None, min_iou
            for t in free:
                if k - last_seen[t] > max_gap + 1:
                    continue
                v = iou(tracks[t].last_box, box)
                if v >= best_iou:
                    best, best_iou = t, v
            if best is None:
                tracks.append(Track({k: j}, tuple(box)))
                last_seen.append(k)
            else:
                tracks[best].members[k] = j
                tracks[best].last_box = tuple(box)
                last_seen[best] = k
                free.discard(best)
    return tracks


def main_track(tracks: list[Track], boxes_per_keyframe) -> Track | None:
    """The track with the largest summed box area over keyframes (ties: the earlier track)."""
    def weight(t: Track) -> float:
        total = 0.0
        for k, j in t.members.items():
            b = boxes_per_keyframe[k][j]
            total += (b[2] - b[0]) * (b[3] - b[1])
        return total

    return max(tracks, key=weight) if tracks else None


def interpolate(keyframes: list[int], values: np.ndarray, num_frames: int, max_hold: int,
                max_span: int) -> np.ndarray:
    """Per-frame values (T, ...) from values at sorted keyframe indices, linear in between.

    `values` is (K, ...) with NaN rows where a keyframe has no value. A frame gets a value when it lies
    between two valid keyframes at most `max_span` frames apart, or within `max_hold` frames of one;
    otherwise it is NaN (the face was not seen near it).
    """
    shape = np.asarray(values).shape[1:]
    vals = np.asarray(values, np.float64).reshape(len(keyframes), -1)
    out = np.full((num_frames, vals.shape[1]), np.nan)
    ok = ~np.isnan(vals).any(axis=1)
    kf = np.asarray(keyframes)[ok]
    if len(kf) == 0:
        return out.reshape((num_frames,) + shape)
    t = np.arange(num_frames)
    for d in range(vals.shape[1]):
        out[:, d] = np.interp(t, kf, vals[ok, d])
    valid = np.min(np.abs(t[:, None] - kf[None, :]), axis=1) <= max_hold
    for a, b in zip(kf[:-1], kf[1:], strict=True):
        if b - a <= max_span:
            valid[a:b + 1] = True
    out[~valid] = np.nan
    return out.reshape((num_frames,) + shape)


def propagate(prev_gray: np.ndarray, next_gray: np.ndarray, box, points: np.ndarray | None = None,
              min_points: int = 6):
    """Carry a box (and optional (N, 2) points) from one frame to the next with sparse optical flow.

    Corners inside the box are tracked by pyramidal Lucas–Kanade; a similarity transform (shift, scale,
    rotation) fitted to them with RANSAC moves the box and the points. Returns (box, points) or None
    when too few corners survive (a blank region, or the face left the frame).
    """
    import cv2

    h, w = prev_gray.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    mask = np.zeros_like(prev_gray)
    mask[y0:y1, x0:x1] = 255
    pts = cv2.goodFeaturesToTrack(prev_gray, maxCorners=80, qualityLevel=0.01, minDistance=3, mask=mask)
    if pts is None or len(pts) < min_points:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, next_gray, pts, None, winSize=(21, 21), maxLevel=3)
    ok = status.ravel() == 1
    if ok.sum() < min_points:
        return None
    m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if m is None or inliers is None or inliers.sum() < min_points:
        return None
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]], np.float64)
    moved = corners @ m[:, :2].T + m[:, 2]
    new_box = (float(moved[:, 0].min()), float(moved[:, 1].min()), float(moved[:, 0].max()), float(moved[:, 1].max()))
    new_points = None if points is None else (np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)
    if new_box[2] <= 0 or new_box[3] <= 0 or new_box[0] >= w or new_box[1] >= h:
        return None
    return new_box, new_points


def fill_gaps(items: list, step, max_steps: int) -> tuple[list, list[bool]]:
    """Fill the None entries of `items` by carrying neighbours forward, then backward, with `step`.

    `step(item, src_index, dst_index)` returns the carried item or None. An entry is carried at most
    `max_steps` hops away from a real one; real entries are never replaced. Returns (items, carried).
    """
    out = list(items)
    depth = [0 if x is not None else None for x in out]  # hops from a real entry
    n = len(out)
    for order in (list(range(n)), list(range(n - 1, -1, -1))):
        for a, b in zip(order[:-1], order[1:], strict=True):
            if out[b] is not None or out[a] is None or depth[a] >= max_steps:
                continue
            carried = step(out[a], a, b)
            if carried is not None:
                out[b], depth[b] = carried, depth[a] + 1
    return out, [d is not None and d > 0 for d in depth]
