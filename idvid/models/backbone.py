"""The video backbone: diffusers' CogVideoX transformer + its 3D VAE, built or loaded by one code path.

`BackboneConfig.path` names a local diffusers folder (a CogVideoX pipeline folder with `transformer/` and
`vae/`, e.g. CogVideoX-5b-I2V); without it the same classes are built from the `transformer` / `vae`
config dicts (the tiny laptop-scale presets). Tests write a tiny folder with `save_pretrained` and load it
through exactly the loader a real checkpoint goes through. Nothing is downloaded: `local_files_only`.

Global ID latent (seed 000 §3.2.1): the reference's VAE latent joins CogVideoX-I2V style, as channels:
`[video latents ; (reference latent in frame 0, zeros elsewhere)]` -> in_channels = 2 x latent channels.
A text-to-video backbone (in_channels = latent channels) is widened on load with zero-initialised weights
for the new channels, so it computes exactly what it did before; those patch-embedding weights then
count as new (trainable, saved with the adapter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idvid.errors import ModelUnavailable

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def tiny_transformer_config(latent_channels: int = 4, text_dim: int = 384) -> dict[str, Any]:
    """A 2-layer, 2 x 16-dim CogVideoX transformer for 5x8x8 latents (17 frames of 64x64 pixels).

    CogVideoX's VAE decodes an odd number of latent frames back to 4k+1 frames (13 latents <-> 49 frames);
    an even count (13 frames -> 4 latents) decodes to 16. Hence 17 frames, which also give the HTP pools
    [2, 4, 8] three different window layouts (3, 2 and 1 windows)."""
    return dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=2 * latent_channels,
        out_channels=latent_channels,
        time_embed_dim=32,
        text_embed_dim=text_dim,
        num_layers=2,
        sample_width=8,
        sample_height=8,
        sample_frames=17,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
    )


def laptop_transformer_config(patch_size: int = 4, num_layers: int = 6, heads: int = 4, head_dim: int = 32,
                              text_dim: int = 384) -> dict[str, Any]:
    """The bundled default model's CogVideoX transformer: 17 frames of 128x128 pixels are 5x32x32 latents
    (`laptop_vae_config`), cut into patch_size^2 patches: 5x8x8 = 320 tokens at the default 4 (a 2-pixel
    patch, 1,280 tokens, trains 3.5x slower per step on the 2-core CPU: docs/training.md)."""
    return dict(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=16,
        out_channels=8,
        time_embed_dim=128,
        text_embed_dim=text_dim,
        num_layers=num_layers,
        sample_width=32,
        sample_height=32,
        sample_frames=17,
        patch_size=patch_size,
        temporal_compression_ratio=4,
        max_text_seq_length=40,
    )


def laptop_vae_config() -> dict[str, Any]:
    """The bundled default model's VAE: 4x spatial, 4x temporal compression, 8 latent channels, levels of
    16/32/64 channels (1.9 M parameters): 17 frames of 128x128 -> 5x32x32 latents. A 4x (not CogVideoX's
    8x) spatial factor keeps a 128-pixel face legible to the face recogniser after a round trip."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3,
        block_out_channels=(16, 32, 64),
        latent_channels=8,
        layers_per_block=1,
        norm_num_groups=4,
        temporal_compression_ratio=4,
    )


def tiny_vae_config(latent_channels: int = 4) -> dict[str, Any]:
    """A CogVideoX VAE with 8x spatial and 4x temporal compression and 8 channels per level."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


@dataclass
class BackboneConfig:
    path: str | None = None  # local diffusers folder (transformer/ + vae/); None: build from the dicts below
    transformer: dict[str, Any] = field(default_factory=tiny_transformer_config)  # (ignored with a path)
    vae: dict[str, Any] = field(default_factory=tiny_vae_config)  # (ignored with a path)
    precision: str = "fp32"  # of the backbone, VAE and text encoder: fp32 | bf16 | fp16
    gradient_checkpointing: bool = False
    offload_frozen: bool = False  # keep frozen VAE / text / image encoders on the CPU between uses
    reference_latent: bool = True  # I2V-style channel concat of the reference latent (global ID)
    # also the reference latent in every frame, in C more input channels (zero-initialised when added): a narrow
    # DiT and the per-frame refiner then see the face at full latent resolution in every frame, not only frame 0
    reference_every_frame: bool = False
    # C + 1 more input channels for known frame content (idvid.models.frame_condition: the first frame for I2V, the
    # reference's head region for T2I), zero-initialised when added
    frame_condition: bool = False
    with_vae: bool = True  # False: no VAE (e.g. the overhead bench, which feeds latents directly)
    # a diffusers VAE folder used instead of path's vae/ (training on another VAE's latents); with more latent
    # channels than the backbone predicts, the backbone is widened to them (widen_latent_channels)
    vae_path: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.reference_every_frame and not self.reference_latent:
            raise ValueError("reference_every_frame needs reference_latent")
        if self.path is not None:
            self.path = str(self.path)
        if self.vae_path is not None:
            self.vae_path = str(self.vae_path)

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]


def _subfolder(root: Path, name: str) -> Path:
    if (root / name / "config.json").is_file():
        return root / name
    if name == "transformer" and (root / "config.json").is_file():
        return root  # a bare transformer folder
    raise ModelUnavailable(f"{root}: no diffusers `{name}/` folder with config.json (weights are never downloaded)")


def load_transformer(config: BackboneConfig) -> nn.Module:
    """`CogVideoXTransformer3DModel` from `config.path` (or built from `config.transformer`)."""
    from diffusers import CogVideoXTransformer3DModel

    if config.path is None:
        model = CogVideoXTransformer3DModel.from_config(dict(config.transformer))
        nn.Module.to(model, config.dtype)  # (ModelMixin.to warns about fp32-pinned modules; CogVideoX has none)
    else:
        root = Path(config.path)
        if not root.is_dir():
            raise ModelUnavailable(f"{root}: backbone folder not found (weights are never downloaded)")
        model = CogVideoXTransformer3DModel.from_pretrained(
            str(_subfolder(root, "transformer")), torch_dtype=config.dtype, local_files_only=True
        )
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model


def load_vae(config: BackboneConfig) -> nn.Module | None:
    """`AutoencoderKLCogVideoX` from `config.vae_path`, else `config.path` (or built from `config.vae`), frozen."""
    from diffusers import AutoencoderKLCogVideoX

    if not config.with_vae:
        return None
    if config.vae_path is not None:
        vae = AutoencoderKLCogVideoX.from_pretrained(config.vae_path, torch_dtype=config.dtype, local_files_only=True)
    elif config.path is None:
        vae = AutoencoderKLCogVideoX.from_config(dict(config.vae))
        nn.Module.to(vae, config.dtype)
    else:
        vae = AutoencoderKLCogVideoX.from_pretrained(
            str(_subfolder(Path(config.path), "vae")), torch_dtype=config.dtype, local_files_only=True
        )
    vae.requires_grad_(False)
    return vae.eval()


def widen_input_channels(transformer: nn.Module, in_channels: int) -> bool:
    """Give the patch embedding `in_channels` inputs; the added ones get zero weights (output unchanged).

    Returns True when the layer was widened. CogVideoX 1.0 patchifies with a Conv2d, 1.5 with a Linear
    over (channels x p_t x p x p) features.
    """
    proj = transformer.patch_embed.proj
    old = transformer.config.in_channels
    if in_channels == old:
        return False
    if in_channels < old:
        raise ValueError(f"cannot narrow the patch embedding from {old} to {in_channels} channels")
    with torch.no_grad():
        if isinstance(proj, nn.Conv2d):
            new = nn.Conv2d(in_channels, proj.out_channels, proj.kernel_size, proj.stride, bias=proj.bias is not None)
            new.weight.zero_()
            new.weight[:, :old] = proj.weight
        else:  # Linear over features laid out as (c, p_t, p, p) per the 1.5 patchify
            per_channel = proj.in_features // old
            new = nn.Linear(in_channels * per_channel, proj.out_features, bias=proj.bias is not None)
            w = new.weight.view(proj.out_features, in_channels, per_channel)
            w.zero_()
            w[:, :old] = proj.weight.view(proj.out_features, old, per_channel)
        if proj.bias is not None:
            new.bias.copy_(proj.bias)
    transformer.patch_embed.proj = new.to(proj.weight.dtype)
    transformer.register_to_config(in_channels=in_channels)
    return True


def latent_channel_index(old: int, new: int, blocks: int, mask: bool) -> list[int]:
    """Where each of an input's channels goes when its `blocks` groups of `old` latent channels (then one mask
    channel when `mask`) become groups of `new`: channel j of group b moves from b·old + j to b·new + j."""
    index = [b * new + j for b in range(blocks) for j in range(old)]
    return index + [blocks * new] if mask else index


def widen_latent_channels(transformer: nn.Module, old: int, new: int, blocks: int, mask: bool) -> None:
    """Give a backbone trained on `old`-channel latents `new`-channel ones (a VAE grown by
    `vae_task.grow_latent_channels`): each input group gets the added channels with zero weights, and the output
    projection zero rows for them. The old channels' predictions are unchanged; the added ones start at zero."""
    c = transformer.config
    if c.in_channels != blocks * old + mask or c.out_channels != old:
        raise ValueError(f"backbone takes {c.in_channels} channels and predicts {c.out_channels}, not the "
                         f"{blocks} x {old}{' + 1' if mask else ''} and {old} of its configuration")
    index = latent_channel_index(old, new, blocks, mask)
    in_channels = blocks * new + mask
    proj, out = transformer.patch_embed.proj, transformer.proj_out
    with torch.no_grad():
        if isinstance(proj, nn.Conv2d):
            wide = nn.Conv2d(in_channels, proj.out_channels, proj.kernel_size, proj.stride, bias=proj.bias is not None)
            wide.weight.zero_()
            wide.weight[:, index] = proj.weight
        else:  # Linear over (c, p_t, p, p) features, as widen_input_channels
            per_channel = proj.in_features // c.in_channels
            wide = nn.Linear(in_channels * per_channel, proj.out_features, bias=proj.bias is not None)
            wide.weight.zero_()
            wide.weight.view(proj.out_features, in_channels, per_channel)[:, index] = \
                proj.weight.view(proj.out_features, c.in_channels, per_channel)
        if proj.bias is not None:
            wide.bias.copy_(proj.bias)
        # the output is unpatchified as (channels, [p_t,] p, p) per token: channel-major
        per_channel = out.out_features // old
        wide_out = nn.Linear(out.in_features, new * per_channel, bias=out.bias is not None)
        wide_out.weight.zero_()
        wide_out.weight[: old * per_channel] = out.weight
        if out.bias is not None:
            wide_out.bias.zero_()
            wide_out.bias[: old * per_channel] = out.bias
    transformer.patch_embed.proj = wide.to(proj.weight.dtype)
    transformer.proj_out = wide_out.to(out.weight.dtype)
    transformer.register_to_config(in_channels=in_channels, out_channels=new)


def token_grid(transformer_config: Any, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(frames, height, width) of the video token grid for latents (B, F, C, H, W)."""
    _, frames, _, height, width = latent_shape
    p, p_t = transformer_config.patch_size, transformer_config.get("patch_size_t")
    if height % p or width % p:
        raise ValueError(f"latent size {height}x{width} is not divisible by the patch size {p}")
    return (math.ceil(frames / p_t) if p_t else frames), height // p, width // p


def rotary_embeddings(transformer_config: Any, grid: tuple[int, int, int], device: torch.device):
    """CogVideoX's 3D RoPE (cos, sin) for a token grid, as its pipelines compute them; None if unused."""
    if not transformer_config.use_rotary_positional_embeddings:
        return None
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    frames, height, width = grid
    p = transformer_config.patch_size
    base_w, base_h = transformer_config.sample_width // p, transformer_config.sample_height // p
    if transformer_config.get("patch_size_t") is None:
        crops = get_resize_crop_region_for_grid((height, width), base_w, base_h)
        return get_3d_rotary_pos_embed(
            embed_dim=transformer_config.attention_head_dim,
            crops_coords=crops,
            grid_size=(height, width),
            temporal_size=frames,
            device=device,
        )
    return get_3d_rotary_pos_embed(
        embed_dim=transformer_config.attention_head_dim,
        crops_coords=None,
        grid_size=(height, width),
        temporal_size=frames,
        grid_type="slice",
        max_size=(base_h, base_w),
        device=device,
    )


def backbone_flops(transformer_config: Any, batch: int, grid: tuple[int, int, int], text_tokens: int | None = None) -> int:
    """Analytic forward FLOPs (2 per multiply-add; matmuls, convs and attention, as `FlopCounterMode`
    counts them) of a CogVideoX transformer on `grid` video tokens."""
    c = transformer_config
    d = c.num_attention_heads * c.attention_head_dim
    te, p = c.time_embed_dim, c.patch_size
    p_t = c.get("patch_size_t") or 1
    t = c.max_text_seq_length if text_tokens is None else text_tokens
    n = grid[0] * grid[1] * grid[2]
    s = t + n
    ff = 4 * d  # FeedForward default inner dim
    total = 2 * batch * (d * te + te * te)  # time embedding MLP
    if c.get("ofs_embed_dim"):
        total += 2 * batch * 2 * c.ofs_embed_dim**2
    total += 2 * batch * t * c.text_embed_dim * d  # text projection
    total += 2 * batch * n * c.in_channels * p * p * p_t * d  # patch embedding
    per_block = (
        2 * 2 * batch * te * 6 * d  # two adaLN-zero modulations
        + 4 * 2 * batch * s * d * d  # q, k, v, out
        + 4 * batch * s * s * d  # joint attention
        + 2 * 2 * batch * s * d * ff  # feed-forward
    )
    total += c.num_layers * per_block
    total += 2 * batch * te * 2 * d  # final adaLN
    total += 2 * batch * n * d * p * p * p_t * c.out_channels  # unpatchify projection
    return total
