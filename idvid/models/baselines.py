"""Baselines for ablations: a single plain identity cross-attention, and ConsisID-style injection.

("No identity" is simply a model with no injection attached.)

* `PlainIdCrossAttention`: `z + W_o Attn(LN(z) W_q, f_id W_k, f_id W_v)` after every (every-th) block —
  MoCA with C = 0 experts, kept as its own small module so the ablation does not depend on MoCA's code.
* ConsisID: diffusers' own `ConsisIDTransformer3DModel` (a copy of the CogVideoX transformer with a
  local facial extractor and a perceiver cross-attention every `cross_attn_interval` blocks), built at the
  backbone's size, loaded with the backbone's weights and fed with *our* ID features: the
  face-recognition embedding as `id_cond` and the image-encoder tokens as its single ViT scale. Its
  cross-attention output projections are zeroed so that, like ours, it starts as the bare backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from idvid.models.attention import CrossAttention
from idvid.models.inject import BlockInputs, Injection, InjectionLayer


@dataclass
class PlainCrossAttentionConfig:
    heads: int | None = None
    head_dim: int | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"`every` must be >= 1, got {self.every}")


class PlainLayer(InjectionLayer):
    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.attn = CrossAttention(dim, context_dim, heads, head_dim, zero_init=True)

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        return self.attn(hidden_states, inputs.cond["id_tokens"])

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        return self.attn.flops(batch, grid[0] * grid[1] * grid[2], context_tokens["id_tokens"])


class PlainIdCrossAttention(Injection):
    config_class = PlainCrossAttentionConfig
    kind = "plain_ca"
    requires = frozenset({"id_tokens"})

    def make_layer(self) -> PlainLayer:
        cfg, w = self.config, self.wiring
        return PlainLayer(w.dim, w.features["id_tokens"][1], cfg.heads or w.heads, cfg.head_dim or w.head_dim)

    def prepare(self, features, motion=None):
        return None if features is None or features.id_tokens is None else {"id_tokens": features.id_tokens}

    def context_tokens(self) -> dict[str, int]:
        return {"id_tokens": self.wiring.features["id_tokens"][0]}


@dataclass
class ConsisIDConfig:
    cross_attn_interval: int = 2
    cross_attn_heads: int | None = None  # default: half the backbone's heads, as our identity attentions
    cross_attn_head_dim: int | None = None  # default: backbone head dim
    lfe_depth: int = 2  # local facial extractor layers
    lfe_heads: int = 4
    lfe_head_dim: int = 16
    num_id_tokens: int = 4  # tokens the face embedding becomes inside the extractor
    num_queries: int = 32
    scale: float = 1.0  # local_face_scale

    def __post_init__(self) -> None:
        if self.cross_attn_interval < 1:
            raise ValueError(f"cross_attn_interval must be >= 1, got {self.cross_attn_interval}")


CONSISID_REQUIRES = frozenset({"face_embedding", "image_tokens"})
_SHARED_KEYS = (
    "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "flip_sin_to_cos", "freq_shift",
    "time_embed_dim", "text_embed_dim", "num_layers", "dropout", "attention_bias", "sample_width", "sample_height",
    "sample_frames", "patch_size", "temporal_compression_ratio", "max_text_seq_length", "activation_fn",
    "timestep_activation_fn", "norm_elementwise_affine", "norm_eps", "spatial_interpolation_scale",
    "temporal_interpolation_scale", "use_rotary_positional_embeddings", "use_learned_positional_embeddings",
)  # fmt: skip


def build_consisid(backbone: nn.Module, config: ConsisIDConfig, face_dim: int, image_dim: int) -> nn.Module:
    """A `ConsisIDTransformer3DModel` with `backbone`'s architecture and weights plus zero-output face modules."""
    from diffusers import ConsisIDTransformer3DModel

    c = backbone.config
    if c.get("patch_size_t") or c.get("ofs_embed_dim"):
        raise ValueError("ConsisID supports CogVideoX 1.0 backbones only (no patch_size_t / ofs embedding)")
    if c.num_layers % config.cross_attn_interval:
        raise ValueError(
            f"ConsisID needs num_layers ({c.num_layers}) divisible by cross_attn_interval ({config.cross_attn_interval})"
        )
    inner = c.num_attention_heads * c.attention_head_dim
    model = ConsisIDTransformer3DModel(
        **{k: c[k] for k in _SHARED_KEYS},
        is_train_face=True,
        cross_attn_interval=config.cross_attn_interval,
        cross_attn_dim_head=config.cross_attn_head_dim or c.attention_head_dim,
        cross_attn_num_heads=config.cross_attn_heads or max(1, c.num_attention_heads // 2),
        LFE_id_dim=face_dim,
        LFE_vit_dim=image_dim,
        LFE_depth=config.lfe_depth,
        LFE_dim_head=config.lfe_head_dim,
        LFE_num_heads=config.lfe_heads,
        LFE_num_id_token=config.num_id_tokens,
        LFE_num_querie=config.num_queries,
        LFE_output_dim=int(inner / 3 * 2),  # ConsisID's cross-attention kv width, hard-wired there
        LFE_num_scale=1,
        local_face_scale=config.scale,
    )
    nn.Module.to(model, next(backbone.parameters()).dtype)
    missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
    face_prefixes = ("local_facial_extractor.", "perceiver_cross_attention.")
    if unexpected or any(not k.startswith(face_prefixes) for k in missing):
        raise RuntimeError(f"backbone weights do not fit ConsisID: missing={missing[:5]}, unexpected={unexpected[:5]}")
    for attn in model.perceiver_cross_attention:
        nn.init.zeros_(attn.to_out.weight)
    return model


def consisid_adapter_prefixes() -> tuple[str, ...]:
    return ("local_facial_extractor.", "perceiver_cross_attention.")


def consisid_layer_flops(model: nn.Module, batch: int, grid: tuple[int, int, int]) -> int:
    """Analytic FLOPs of a built ConsisID model's perceiver cross-attentions on one call."""
    c = model.config
    return consisid_flops(
        c.num_attention_heads, c.attention_head_dim, c.num_layers, c.cross_attn_interval,
        c.cross_attn_num_heads * c.cross_attn_dim_head, c.LFE_num_querie, batch, grid,
    )  # fmt: skip


def consisid_flops(
    heads: int, head_dim: int, num_layers: int, interval: int, inner: int, queries: int, batch: int, grid: tuple[int, int, int]
) -> int:
    """FLOPs of ConsisID's perceiver cross-attentions (every `interval`-th block) on one call. The local
    facial extractor runs once per call on the reference only and is excluded, as our encoders are."""
    n = grid[0] * grid[1] * grid[2]
    dim = heads * head_dim
    kv_dim = int(dim / 3 * 2)
    uses = len(range(0, num_layers, interval))
    one = 2 * batch * n * dim * inner + 2 * batch * queries * kv_dim * 2 * inner + 4 * batch * n * queries * inner
    return uses * (one + 2 * batch * n * inner * dim)
