"""Identity encoders: what the reference photo becomes before it meets the video transformer.

* the face-recognition embedding (128-d from SFace or dlib, computed by `idvid.faces` and passed in as a
  tensor) expanded to a few `face_tokens`;
* image features of the aligned 112x112 face crop: a CLIP vision tower loaded from a local folder when one
  is given (frozen), otherwise a small trainable conv encoder -> `image_tokens` + `image_pooled`;
* pixel-level `detail_tokens` from a shallow conv (MoFE's detail expert);
* `id_tokens` = f_id: a Q-Former (learned queries cross-attending to [face tokens; image tokens]), the
  "local" ID embedding of MoCA (seed 000 §3.2.1).

The "global" ID embedding (the reference's VAE latent, channel-concatenated in frame 0) is made by
`IdentityVideoModel.encode_reference`, not here.

Only the parts some attached module `requires` are built, so every parameter here receives gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from idvid.errors import ModelUnavailable
from idvid.models.attention import CrossAttention, FeedForward, SelfAttention

FEATURES = ("face_embedding", "face_tokens", "image_tokens", "image_pooled", "detail_tokens", "id_tokens")

# OpenAI CLIP preprocessing constants (the CLIP vision tower's own training statistics).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class IdentityInputs:
    """The reference identity as tensors. Crops are aligned to the ArcFace 5-point template."""

    face_embedding: torch.Tensor | None = None  # (B, E) SFace/dlib embedding from idvid.faces
    face_crop: torch.Tensor | None = None  # (B, 3, 112, 112) RGB in [-1, 1]
    reference_latent: torch.Tensor | None = None  # (B, C, h, w) scaled VAE latent of the reference

    def batch_size(self) -> int | None:
        for t in (self.face_embedding, self.face_crop, self.reference_latent):
            if t is not None:
                return t.shape[0]
        return None


@dataclass
class IdentityFeatures:
    """Everything the identity modules may read; fields nobody requires stay None."""

    face_embedding: torch.Tensor | None = None  # (B, E), unit norm
    face_tokens: torch.Tensor | None = None  # (B, n_face, token_dim)
    image_tokens: torch.Tensor | None = None  # (B, n_img, image_dim)
    image_pooled: torch.Tensor | None = None  # (B, image_dim)
    detail_tokens: torch.Tensor | None = None  # (B, 49, token_dim)
    id_tokens: torch.Tensor | None = None  # f_id (B, num_queries, id_dim)


@dataclass
class IdentityEncoderConfig:
    face_dim: int = 128  # SFace / dlib embedding size
    token_dim: int = 64  # width of face / detail tokens and of the Q-Former
    face_tokens: int = 4  # tokens the recognition embedding is expanded to
    image_encoder: str = "conv"  # "conv": trainable, on the aligned crop; "clip": CLIPVisionModel from clip_path
    clip_path: str | None = None
    image_dim: int = 64  # conv encoder width (with CLIP: its hidden size, read from the folder)
    num_queries: int = 32  # Q-Former queries = ID tokens
    qformer_depth: int = 2
    qformer_heads: int = 4
    id_dim: int = 64  # channels of f_id

    def __post_init__(self) -> None:
        if self.image_encoder not in ("conv", "clip"):
            raise ValueError(f"image_encoder must be 'conv' or 'clip', got {self.image_encoder!r}")
        if self.image_encoder == "clip" and not self.clip_path:
            raise ValueError("image_encoder='clip' needs clip_path (a local CLIPVisionModel folder)")
        if self.token_dim % self.qformer_heads:
            raise ValueError(f"token_dim {self.token_dim} is not divisible by qformer_heads {self.qformer_heads}")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ConvImageEncoder(nn.Module):
    """Small trainable encoder of the aligned crop: (B, 3, 112, 112) -> 7x7 = 49 tokens of `dim`."""

    def __init__(self, dim: int):
        super().__init__()
        widths = [max(dim // 4, 8), max(dim // 2, 8), dim, dim]
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in widths:  # 112 -> 56 -> 28 -> 14 -> 7
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm(c_out), nn.GELU()]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        crop = F.interpolate(crop, size=(112, 112), mode="bilinear", align_corners=False) if crop.shape[-1] != 112 else crop
        x = self.net(crop)  # (B, dim, 7, 7)
        tokens = rearrange(x, "b c h w -> b (h w) c")
        return tokens, tokens.mean(dim=1)


class ClipImageEncoder(nn.Module):
    """A frozen transformers `CLIPVisionModel` from a local folder: crop -> (tokens, pooled)."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        from transformers import CLIPVisionModel

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"{folder}: no CLIP vision model here (expected config.json + weights)")
        self.model = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True)
        self.model.requires_grad_(False)
        self.dim = self.model.config.hidden_size
        self.image_size = self.model.config.image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(crop, size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> CLIP normalisation
        out = self.model(pixel_values=x.to(self.model.dtype))
        return out.last_hidden_state, out.pooler_output  # (B, 1+P, C), (B, C)


class DetailEncoder(nn.Module):
    """Shallow conv features of the crop (pixel-level detail): (B, 3, 112, 112) -> 49 tokens."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, max(dim // 2, 8), 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(max(dim // 2, 8), dim, 3, stride=2, padding=1),
        )

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.net(crop), 7)  # (B, dim, 7, 7)
        return rearrange(x, "b c h w -> b (h w) c")


class QFormer(nn.Module):
    """Learned queries that cross-attend to feature tokens: (B, M, Dc) -> (B, num_queries, out_dim)."""

    def __init__(self, dim: int, context_dim: int, num_queries: int, depth: int, heads: int, out_dim: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * dim**-0.5)
        head_dim = dim // heads
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    CrossAttention(dim, context_dim, heads, head_dim, zero_init=False),
                    SelfAttention(dim, heads, head_dim),
                    FeedForward(dim),
                ]
            )
            for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(dim)
        self.proj_out = nn.Linear(dim, out_dim)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x = self.queries.expand(context.shape[0], -1, -1)  # (B, Q, dim)
        for cross, self_attn, ff in self.layers:
            x = x + cross(x, context)
            x = x + self_attn(x)
            x = x + ff(x)
        return self.proj_out(self.norm_out(x))  # (B, Q, out_dim)


class IdentityEncoder(nn.Module):
    """Builds the `IdentityFeatures` that the attached modules require from `IdentityInputs`."""

    def __init__(self, config: IdentityEncoderConfig, requires: set[str] | frozenset[str]):
        super().__init__()
        unknown = set(requires) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown identity features {sorted(unknown)}; known: {FEATURES}")
        self.config, self.requires = config, frozenset(requires)
        cfg = config
        need_image = bool(self.requires & {"image_tokens", "image_pooled", "id_tokens"})
        need_face_tokens = bool(self.requires & {"face_tokens", "id_tokens"})

        self.face_proj = None
        if need_face_tokens:
            self.face_proj = nn.Linear(cfg.face_dim, cfg.face_tokens * cfg.token_dim)
            self.face_norm = nn.LayerNorm(cfg.token_dim)
        self.image_encoder: nn.Module | None = None
        if need_image:
            self.image_encoder = ClipImageEncoder(cfg.clip_path) if cfg.image_encoder == "clip" else ConvImageEncoder(cfg.image_dim)
        self.detail = DetailEncoder(cfg.token_dim) if "detail_tokens" in self.requires else None
        self.qformer = None
        if "id_tokens" in self.requires:
            self.qformer = QFormer(
                cfg.token_dim, cfg.token_dim, cfg.num_queries, cfg.qformer_depth, cfg.qformer_heads, cfg.id_dim
            )
            self.image_to_context = nn.Linear(self.image_dim, cfg.token_dim)

    @property
    def image_dim(self) -> int:
        return self.image_encoder.dim if self.image_encoder is not None else self.config.image_dim

    def feature_shapes(self) -> dict[str, tuple[int, int]]:
        """(tokens, channels) of each feature this encoder produces."""
        cfg = self.config
        image_tokens = 49
        if isinstance(self.image_encoder, ClipImageEncoder):
            c = self.image_encoder.model.config
            image_tokens = 1 + (c.image_size // c.patch_size) ** 2
        shapes = {
            "face_embedding": (1, cfg.face_dim),
            "face_tokens": (cfg.face_tokens, cfg.token_dim),
            "image_tokens": (image_tokens, self.image_dim),
            "image_pooled": (1, self.image_dim),
            "detail_tokens": (49, cfg.token_dim),
            "id_tokens": (cfg.num_queries, cfg.id_dim),
        }
        return {k: v for k, v in shapes.items() if k in self.requires}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, inputs: IdentityInputs) -> IdentityFeatures:
        out = IdentityFeatures()
        dtype = next((p.dtype for p in self.parameters()), torch.float32)
        if inputs.face_embedding is not None:
            out.face_embedding = F.normalize(inputs.face_embedding.to(dtype), dim=-1)  # (B, E)
        if self.face_proj is not None and out.face_embedding is not None:
            tokens = self.face_proj(out.face_embedding)
            out.face_tokens = self.face_norm(rearrange(tokens, "b (n d) -> b n d", n=self.config.face_tokens))
        crop = inputs.face_crop.to(dtype) if inputs.face_crop is not None else None
        if self.image_encoder is not None and crop is not None:
            tokens, pooled = self.image_encoder(crop)
            out.image_tokens, out.image_pooled = tokens.to(dtype), pooled.to(dtype)
        if self.detail is not None and crop is not None:
            out.detail_tokens = self.detail(crop)
        if self.qformer is not None:
            context = [t for t in (out.face_tokens,) if t is not None]
            if out.image_tokens is not None:
                context.append(self.image_to_context(out.image_tokens))
            if context:
                out.id_tokens = self.qformer(torch.cat(context, dim=1))  # f_id (B, Q, id_dim)
        return out
