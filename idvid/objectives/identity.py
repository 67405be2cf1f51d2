"""MotionCharacter's ID-consistency loss (seed 002 §3.2, Eq. 4).

    L_id = 1 − 1/N Σ_i cos(φ(I), φ(X_i^f))

X^f are the frames decoded from the model's x̂0 estimate, I the reference, φ a *differentiable* face
embedder (`idvid.models.face_embedder.FaceEmbedder`; SFace/dlib are not differentiable). Faces are cut
out of the frames with a differentiable crop (`crop_faces`, bilinear sampling of a box) and resized to
the embedder's 112x112; the reference's embedding is a constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def crop_faces(frames: torch.Tensor, boxes: torch.Tensor, size: int = 112) -> torch.Tensor:
    """Differentiable crops: frames (B, F, 3, H, W), boxes (B, F, 4) as pixel x0, y0, x1, y1 -> (B, F, 3, s, s)."""
    b, f, c, h, w = frames.shape
    x = frames.reshape(b * f, c, h, w)
    box = boxes.reshape(b * f, 4).to(x.dtype)
    # affine map from the output square [-1, 1]^2 to the box in normalised input coordinates
    cx = (box[:, 0] + box[:, 2]) / w - 1
    cy = (box[:, 1] + box[:, 3]) / h - 1
    sx = (box[:, 2] - box[:, 0]) / w
    sy = (box[:, 3] - box[:, 1]) / h
    zero = torch.zeros_like(cx)
    theta = torch.stack([torch.stack([sx, zero, cx], -1), torch.stack([zero, sy, cy], -1)], dim=1)  # (BF, 2, 3)
    grid = F.affine_grid(theta, (b * f, c, size, size), align_corners=False)
    crops = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return crops.reshape(b, f, c, size, size)


def id_consistency_loss(embedder: nn.Module, frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Eq. 4 over face crops: frames (B, F, 3, 112, 112), reference (B, 3, 112, 112), both in [-1, 1]."""
    b, f = frames.shape[:2]
    with torch.no_grad():
        ref = F.normalize(embedder(reference).float(), dim=-1)  # φ(I) (B, E)
    gen = F.normalize(embedder(frames.flatten(0, 1)).float(), dim=-1).reshape(b, f, -1)  # φ(X_i) (B, F, E)
    cos = (gen * ref[:, None]).sum(dim=-1)  # (B, F)
    return 1 - cos.mean()


def frame_identity_loss(embedder: nn.Module, frames: torch.Tensor, targets: torch.Tensor,
                        boxes: torch.Tensor) -> torch.Tensor:
    """Eq. 4 with each frame's own ground truth as its reference (VAE training): 1 − mean over frames of
    cos(φ(face of frames_t), φ(face of targets_t)). Videos (B, 3, T, H, W) in [-1, 1], boxes (B, T, 4) in
    pixels (the faces of the ground-truth frames); gradients reach `frames` only. A pose the reference
    portrait never showed is judged against itself."""
    n = min(frames.shape[2], boxes.shape[1])
    b = frames.shape[0]
    got = F.normalize(embedder(crop_faces(frames[:, :, :n].transpose(1, 2), boxes[:, :n]).flatten(0, 1)).float(), dim=-1)
    with torch.no_grad():
        want = crop_faces(targets[:, :, :n].transpose(1, 2), boxes[:, :n]).flatten(0, 1)
        want = F.normalize(embedder(want).float(), dim=-1)
    return 1 - (got * want).sum(dim=-1).reshape(b, n).mean()
