"""A small differentiable face embedder (aligned 112x112 crop -> 128-d unit vector) and its training.

SFace and dlib run outside autograd, so the ID-consistency loss (seed 002 Eq. 4) needs its own torch
face-recognition network. It is trained on arrays of aligned crops with either

* `labels` (identity ids): ArcFace additive-angular-margin classification (cos(θ + m) for the true class,
  scale s), or
* `teacher` embeddings (e.g. SFace's 128-d vectors of the same crops): distillation, 1 − cos(student, teacher),

or both (summed). `verification_auc` measures it the way face models are judged: ROC AUC of cosine
similarity over all same- vs different-identity pairs.

Input convention: RGB in [-1, 1] (what the VAE decodes), shape (B, 3, 112, 112).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idvid.errors import InputError


@dataclass
class FaceEmbedderConfig:
    width: int = 32
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        if self.width < 4 or self.embedding_dim < 2:
            raise ValueError(f"face embedder too small: {self}")


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class FaceEmbedder(nn.Module):
    """ResNet-style CNN: (B, 3, 112, 112) in [-1, 1] -> (B, 128), unit norm."""

    def __init__(self, config: FaceEmbedderConfig | None = None):
        super().__init__()
        self.config = config or FaceEmbedderConfig()
        w = self.config.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.PReLU(w))  # 56
        self.stages = nn.Sequential(_ResBlock(w, w, 2), _ResBlock(w, 2 * w, 2), _ResBlock(2 * w, 4 * w, 2))  # 28, 14, 7
        self.head = nn.Sequential(
            nn.BatchNorm2d(4 * w),
            nn.Flatten(),  # spatial layout matters for faces: no global pooling
            nn.Linear(4 * w * 7 * 7, self.config.embedding_dim),
            nn.BatchNorm1d(self.config.embedding_dim),
        )

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        crops = crops.contiguous()
        if crops.shape[-2:] != (112, 112):
            crops = F.interpolate(crops, size=(112, 112), mode="bilinear", align_corners=False)
        return F.normalize(self.head(self.stages(self.stem(crops))), dim=-1)

    def embed(self, crops: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Embeddings of uint8 RGB crops (N, 112, 112, 3) or a float tensor (N, 3, 112, 112) in [-1, 1]."""
        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(crops), batch_size):
                out.append(self(to_tensor(crops[i : i + batch_size])).numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_dim), np.float32)


def to_tensor(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> float (N, 3, H, W) in [-1, 1]; tensors pass through."""
    if isinstance(crops, torch.Tensor):
        return crops.float()
    arr = np.asarray(crops)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"face crops must be (N, H, W, 3) RGB, got {arr.shape}")
    # contiguous: a channels-last input crashes oneDNN's conv backward in torch 2.13 (CPU)
    return (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1).contiguous()


class ArcMarginHead(nn.Module):
    """ArcFace logits: s·cos(θ_y + m) for the true class, s·cos θ_j for the others."""

    def __init__(self, dim: int, classes: int, margin: float = 0.3, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * dim**-0.5)
        self.margin, self.scale = margin, scale

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(embeddings, dim=-1) @ F.normalize(self.weight, dim=-1).T  # (B, classes)
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        # past θ = π - m cos(θ + m) stops decreasing; fall back to a linear penalty there (ArcFace's trick)
        target = torch.where(theta + self.margin < math.pi, target, cos - self.margin * math.sin(self.margin))
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return self.scale * torch.where(onehot, target, cos)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness/contrast jitter and up to 4-pixel shifts (no flips: faces are not symmetric)."""
    b = x.shape[0]
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    bias = 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    x = (x * gain + bias).clamp(-1, 1)
    dx, dy = (int(v) for v in torch.randint(-4, 5, (2,), generator=generator))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_face_embedder(
    crops: np.ndarray | torch.Tensor,
    labels: np.ndarray | None = None,
    teacher: np.ndarray | None = None,
    *,
    config: FaceEmbedderConfig | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    margin: float = 0.3,
    scale: float = 30.0,
    seed: int = 0,
    augment: bool = True,
    progress: bool = True,
) -> FaceEmbedder:
    """Train a `FaceEmbedder` on aligned crops with identity `labels` (ArcFace) and/or `teacher` embeddings."""
    if labels is None and teacher is None:
        raise InputError("train_face_embedder needs identity labels, teacher embeddings, or both")
    x = to_tensor(crops)
    n = x.shape[0]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = FaceEmbedder(config)
    params = list(model.parameters())
    head = None
    y = t = None
    if labels is not None:
        classes, y_np = np.unique(np.asarray(labels), return_inverse=True)
        y = torch.from_numpy(y_np).long()
        head = ArcMarginHead(model.config.embedding_dim, len(classes), margin, scale)
        params += list(head.parameters())
    if teacher is not None:
        t = F.normalize(torch.as_tensor(np.asarray(teacher), dtype=torch.float32), dim=-1)
        if t.shape != (n, model.config.embedding_dim):
            raise InputError(f"teacher embeddings must be ({n}, {model.config.embedding_dim}), got {tuple(t.shape)}")
    steps = epochs * math.ceil(n / batch_size)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=5e-4)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="face embedder", disable=not progress)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue
            xb = _augment(x[idx], gen) if augment else x[idx]
            emb = model(xb)
            loss = emb.new_zeros(())
            if head is not None:
                loss = loss + F.cross_entropy(head(emb, y[idx]), y[idx])
            if t is not None:
                loss = loss + (1 - (emb * t[idx]).sum(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def verification_auc(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of cosine similarity, same-identity pairs vs different-identity pairs (all pairs i < j)."""
    from scipy.stats import rankdata

    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
    labels = np.asarray(labels)
    iu = np.triu_indices(len(e), k=1)
    scores = (e @ e.T)[iu]
    same = (labels[:, None] == labels[None, :])[iu]
    pos, neg = int(same.sum()), int((~same).sum())
    if pos == 0 or neg == 0:
        raise InputError("verification AUC needs at least one same-identity and one different-identity pair")
    ranks = rankdata(scores)  # ties get their average rank
    return float((ranks[same].sum() - pos * (pos + 1) / 2) / (pos * neg))


def save_face_embedder(model: FaceEmbedder, path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"config": json.dumps(asdict(model.config))})
    os.replace(tmp, path)
    return path


# Trained on synthetic training identities by scripts/train_face_embedder.py; see the model card beside it.
BUNDLED_FACE_EMBEDDER = Path(__file__).resolve().parent.parent / "assets" / "face_embedder" / "face_embedder.safetensors"


def load_face_embedder(path: str | os.PathLike = BUNDLED_FACE_EMBEDDER) -> FaceEmbedder:
    """Load weights saved by `save_face_embedder`; by default the bundled embedder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no face-embedder weights here")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    model = FaceEmbedder(FaceEmbedderConfig(**json.loads(meta.get("config", "{}"))))
    model.load_state_dict(load_file(str(path)))
    return model.eval()
