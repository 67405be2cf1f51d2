"""YuNet face detector (OpenCV Zoo, 2023mar) on onnxruntime, with our own anchor decoding.

The network is fully convolutional. We run it on the image at its own scale (shrunk so the long side
is at most `max_side`, grown so it is at least `min_side`), padded bottom/right to a multiple of 32,
as OpenCV's `FaceDetectorYN` does, rather than letterboxing everything to 640x640: a 128x128 frame
costs ~1 ms instead of ~10 ms, and faces keep the size range the model was trained on. Small frames
are grown to `min_side` = 160: on 128x128 synthetic-world renders (40 held-out identities) that found
90-100% of faces at |yaw| 45-75° against 85-95% at native size and 82-100% when upscaled to 640.

For each stride s in (8, 16, 32) the model returns, per grid cell (row r, col c, row-major):
`cls`, `obj` (sigmoid scores), `bbox` = (dx, dy, log w, log h) and `kps` = 5 x (dx, dy), all in units
of s relative to the cell's corner. Decoding: score = sqrt(cls * obj), centre = (c + dx, r + dy) * s,
size = exp(log w/h) * s, keypoint = (c + dx, r + dy) * s; then NMS.
"""

from __future__ import annotations

import cv2
import numpy as np

from idvid.faces.onnx_models import YUNET_FILE, get_session
from idvid.faces.types import Face

STRIDES = (8, 16, 32)


class YuNetDetector:
    """Face boxes + 5 keypoints. Call with an RGB uint8 image (H, W, 3) or a batch (T, H, W, 3)."""

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 100,
        max_side: int = 640,
        min_side: int = 160,
        threads: int | None = None,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if min_side < 32 or max_side < min_side:
            raise ValueError(f"need 32 <= min_side <= max_side, got {min_side}, {max_side}")
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_side = max_side
        self.min_side = min_side
        self.threads = threads

    @property
    def session(self):
        return get_session(YUNET_FILE, "batch+spatial", self.threads)

    def _scale_for(self, h: int, w: int) -> float:
        long_side = max(h, w)
        if long_side > self.max_side:
            return self.max_side / long_side
        if long_side < self.min_side:
            return self.min_side / long_side
        return 1.0

    def _prepare(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        """(T, H, W, 3) RGB uint8 -> network input (T, 3, Hp, Wp) BGR float 0..255, and the scale used."""
        t, h, w = frames.shape[:3]
        scale = self._scale_for(h, w)
        sh, sw = max(round(h * scale), 1), max(round(w * scale), 1)
        hp, wp = -(-sh // 32) * 32, -(-sw // 32) * 32
        blob = np.zeros((t, hp, wp, 3), np.float32)  # padding is black, bottom/right only
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        for i, frame in enumerate(frames):
            img = frame if scale == 1.0 else cv2.resize(frame, (sw, sh), interpolation=interp)
            blob[i, :sh, :sw] = img[..., ::-1]  # RGB -> BGR
        return np.ascontiguousarray(blob.transpose(0, 3, 1, 2)), scale

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB image, sorted by box area (largest first)."""
        return self.detect_batch(image[None])[0]

    def detect_batch(self, frames: np.ndarray, batch_size: int = 16) -> list[list[Face]]:
        """Faces per frame for same-sized frames (T, H, W, 3); runs the network on chunks of frames."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        out: list[list[Face]] = []
        for start in range(0, len(frames), batch_size):
            blob, scale = self._prepare(frames[start : start + batch_size])
            names = [o.name for o in self.session.get_outputs()]
            maps = dict(zip(names, self.session.run(None, {"input": blob}), strict=True))
            hp, wp = blob.shape[2:]
            for i in range(blob.shape[0]):
                out.append(self._decode({k: v[i] for k, v in maps.items()}, hp, wp, scale, frames.shape[1:3]))
        return out

    def _decode(self, maps: dict[str, np.ndarray], hp: int, wp: int, scale: float, hw: tuple[int, int]) -> list[Face]:
        boxes, scores, kps = [], [], []
        for s in STRIDES:
            cols = wp // s
            cls = np.clip(maps[f"cls_{s}"][:, 0], 0, 1)  # (rows*cols,)
            obj = np.clip(maps[f"obj_{s}"][:, 0], 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            col = (keep % cols).astype(np.float32)
            row = (keep // cols).astype(np.float32)
            b = maps[f"bbox_{s}"][keep]  # (n, 4)
            cx, cy = (col + b[:, 0]) * s, (row + b[:, 1]) * s
            bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            k = maps[f"kps_{s}"][keep].reshape(-1, 5, 2)
            kps.append(np.stack([(col[:, None] + k[..., 0]) * s, (row[:, None] + k[..., 1]) * s], -1))
            scores.append(score[keep])
        if not boxes:
            return []
        boxes_a = np.concatenate(boxes) / scale  # back to input-image pixels
        kps_a = np.concatenate(kps) / scale
        scores_a = np.concatenate(scores)
        xywh = np.concatenate([boxes_a[:, :2], boxes_a[:, 2:] - boxes_a[:, :2]], 1)
        # NMS on unclipped boxes (clipping would merge distinct faces cut by the border)
        idx = cv2.dnn.NMSBoxes(xywh.tolist(), scores_a.tolist(), self.score_threshold, self.nms_threshold, top_k=self.top_k)
        idx = np.asarray(idx, dtype=int).reshape(-1)
        h, w = hw
        boxes_a = np.clip(boxes_a, 0, [w, h, w, h])  # keypoints may stay outside; boxes are kept in frame
        faces = [
            Face(
                box=tuple(float(v) for v in boxes_a[j]),
                score=float(scores_a[j]),
                kps=kps_a[j].astype(np.float32),
                detector="yunet",
            )
            for j in idx
        ]
        return sorted(faces, key=lambda f: -f.area)
