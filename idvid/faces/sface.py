"""SFace face-recognition embedding (OpenCV Zoo, 2021dec) on onnxruntime.

Input: 112x112 RGB crops aligned to the ArcFace template, 0..255 (the graph itself subtracts 127.5 and
multiplies by 1/128). Output: 128-d, which we L2-normalise so that cosine similarity is a dot product.
"""

from __future__ import annotations

import numpy as np

from idvid.faces.align import CROP_SIZE
from idvid.faces.onnx_models import SFACE_FILE, get_session

EMBED_DIM = 128


class SFaceEmbedder:
    """Embeds aligned crops: (112, 112, 3) or (N, 112, 112, 3) RGB uint8 -> (128,) / (N, 128) float32."""

    name = "sface"
    dim = EMBED_DIM

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    @property
    def session(self):
        return get_session(SFACE_FILE, "batch", self.threads)

    def embed_crops(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        crops = np.asarray(crops)
        single = crops.ndim == 3
        if single:
            crops = crops[None]
        if crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise ValueError(f"expected aligned crops (N, 112, 112, 3), got {crops.shape}")
        out = np.empty((len(crops), EMBED_DIM), np.float32)
        for start in range(0, len(crops), batch_size):
            x = crops[start : start + batch_size].astype(np.float32).transpose(0, 3, 1, 2)  # N,3,112,112 RGB
            out[start : start + len(x)] = self.session.run(None, {"data": np.ascontiguousarray(x)})[0]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out
