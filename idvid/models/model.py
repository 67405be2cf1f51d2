"""`IdentityVideoModel`: backbone + VAE + text encoder + ID encoder + injection modules, as one model.

    model = build_model("tiny", variant="moca")            # or build_model(ModelConfig(...))
    text = model.encode_text(["a woman is smiling"])        # (B, L, text_embed_dim)
    ref = model.encode_reference(reference_image)           # (B, C, h, w) global ID latent
    ids = IdentityInputs(face_embedding=sface_128d, face_crop=aligned_crop, reference_latent=ref)
    v = model(noisy_latents, timesteps, text, ids)          # the backbone's prediction (B, F, C, h, w)

The model is a pure function of (latents, t, text, identity[, motion]); noise schedules and losses live in
`idvid.objectives`, samplers come from diffusers. Variants: "none" (bare backbone), "plain_ca",
"moca", "mofe", "motioncharacter" (ID adapter + Motion Control Module) and "consisid".
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from idvid.errors import InputError
from idvid.models.backbone import (
    PRECISIONS,
    BackboneConfig,
    backbone_flops,
    load_transformer,
    load_vae,
    rotary_embeddings,
    token_grid,
    widen_input_channels,
    widen_latent_channels,
)
from idvid.models.baselines import (
    CONSISID_REQUIRES,
    ConsisIDConfig,
    PlainIdCrossAttention,
    build_consisid,
    consisid_adapter_prefixes,
    consisid_layer_flops,
)
from idvid.models.encoders import ClipImageEncoder, IdentityEncoder, IdentityEncoderConfig, IdentityInputs
from idvid.models.frame_condition import FrameCondition
from idvid.models.id_adapter import IdAdapter
from idvid.models.inject import CONTEXT_KEY, Injection, InjectionContext, Wiring, attach
from idvid.models.moca import MoCA
from idvid.models.mofe import MoFE
from idvid.models.motion import MotionControl, MotionInputs
from idvid.models.refiner import LatentRefiner, RefinerConfig, widen_refiner_latents

INJECTIONS: dict[str, type[Injection]] = {
    cls.kind: cls for cls in (MoCA, MoFE, IdAdapter, MotionControl, PlainIdCrossAttention)
}
VARIANTS: dict[str, list[str]] = {
    "none": [],
    "plain_ca": ["plain_ca"],
    "moca": ["moca"],
    "mofe": ["mofe"],
    "motioncharacter": ["id_adapter", "motion"],
    "consisid": [],
}
ADAPTER_FILE, CONFIG_FILE = "adapter.safetensors", "model_config.yaml"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; serialisable to YAML (checkpoints carry it)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    identity: IdentityEncoderConfig = field(default_factory=IdentityEncoderConfig)
    injections: list[Any] = field(default_factory=list)  # injection configs (MoCAConfig, ...) in order
    consisid: ConsisIDConfig | None = None  # the ConsisID baseline instead of attached injections
    refiner: RefinerConfig | None = None  # conv output head for narrow DiTs (idvid.models.refiner)
    text_encoder: str = "minilm"  # "minilm" | "t5" | "none" (text embeddings are given directly)
    text_encoder_path: str | None = None
    train_backbone: bool = False  # laptop scale trains the tiny backbone too; real scale freezes it
    adapter_precision: str = "fp32"  # of the new (trainable) modules

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = BackboneConfig(**self.backbone)
        if isinstance(self.identity, dict):
            self.identity = IdentityEncoderConfig(**self.identity)
        if isinstance(self.consisid, dict):
            self.consisid = ConsisIDConfig(**self.consisid)
        if isinstance(self.refiner, dict):
            self.refiner = RefinerConfig(**self.refiner)
        parsed = []
        for item in self.injections:
            if isinstance(item, dict):
                item = dict(item)
                kind = item.pop("kind", None)
                if kind not in INJECTIONS:
                    raise ValueError(f"unknown injection kind {kind!r}; known: {sorted(INJECTIONS)}")
                item = INJECTIONS[kind].config_class(**item)
            if not any(isinstance(item, cls.config_class) for cls in INJECTIONS.values()):
                raise ValueError(f"not an injection config: {item!r}")
            parsed.append(item)
        self.injections = parsed
        if self.consisid is not None and self.injections:
            raise ValueError("the ConsisID baseline replaces the transformer; it cannot be combined with injections")
        if self.text_encoder not in ("minilm", "t5", "none"):
            raise ValueError(f"text_encoder must be 'minilm', 't5' or 'none', got {self.text_encoder!r}")
        if self.adapter_precision not in PRECISIONS:
            raise ValueError(f"adapter_precision must be one of {sorted(PRECISIONS)}")

    @staticmethod
    def kind_of(injection_config: Any) -> str:
        return next(k for k, cls in INJECTIONS.items() if isinstance(injection_config, cls.config_class))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["injections"] = [{"kind": self.kind_of(c), **asdict(c)} for c in self.injections]
        d["backbone"]["transformer"] = dict(self.backbone.transformer)
        d["backbone"]["vae"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.backbone.vae.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        backbone = dict(d.get("backbone", {}))
        if "vae" in backbone:
            backbone["vae"] = {k: tuple(v) if isinstance(v, list) else v for k, v in backbone["vae"].items()}
        d["backbone"] = BackboneConfig(**backbone)
        return cls(**d)

    def to_yaml(self, path: str | os.PathLike) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ModelConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()))


def variant_injections(variant: str) -> list[Any]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    return [INJECTIONS[kind].config_class() for kind in VARIANTS[variant]]


def sized_injections(variant: str, width: int, heads: int, action_tokens: int) -> list[Any]:
    """The variant's injection configs with the preset's fusion / context widths and action length."""
    injections = variant_injections(variant)
    for c in injections:
        for name, value in (("fusion_dim", width), ("fusion_heads", heads), ("context_dim", width),
                            ("action_tokens", action_tokens)):
            if hasattr(c, name):
                setattr(c, name, value)
    return injections


def tiny_config(variant: str = "moca", **overrides: Any) -> ModelConfig:
    """Laptop-scale preset: 2-layer 2x16 CogVideoX, tiny VAE (5x8x8 latents for 17 frames of 64x64), MiniLM
    text, a conv ID encoder with 8 ID tokens, everything trainable."""
    identity = IdentityEncoderConfig(token_dim=32, image_dim=32, num_queries=8, qformer_depth=1, qformer_heads=2, id_dim=32)
    injections = sized_injections(variant, width=32, heads=2, action_tokens=8)
    consisid = ConsisIDConfig(lfe_depth=1, lfe_heads=2, lfe_head_dim=16, num_id_tokens=2, num_queries=8) if variant == "consisid" else None
    fields = dict(identity=identity, injections=injections, consisid=consisid, train_backbone=True)
    fields.update(overrides)
    return ModelConfig(**fields)


def cogvideox_config(path: str, variant: str = "moca", text_encoder_path: str | None = None, **overrides: Any) -> ModelConfig:
    """Real-scale preset: a local CogVideoX(-I2V) pipeline folder, bf16, T5 from the folder (or a path),
    ID modules at ConsisID-like widths, the backbone frozen."""
    identity = IdentityEncoderConfig(token_dim=1024, image_dim=1024, num_queries=32, qformer_depth=4, qformer_heads=16, id_dim=2048)
    consisid = ConsisIDConfig(lfe_depth=10, lfe_heads=16, lfe_head_dim=64, num_id_tokens=5, num_queries=32) if variant == "consisid" else None
    injections = sized_injections(variant, width=2048, heads=16, action_tokens=32)
    fields = dict(
        backbone=BackboneConfig(path=path, transformer={}, vae={}, precision="bf16", gradient_checkpointing=True),
        identity=identity,
        injections=injections,
        consisid=consisid,
        text_encoder="t5",
        text_encoder_path=text_encoder_path or path,
    )
    fields.update(overrides)
    return ModelConfig(**fields)


def laptop_config(variant: str = "moca", **overrides: Any) -> ModelConfig:
    """The bundled default model's architecture: a 6-layer 4x32 CogVideoX on 4x-compressed latents of
    128x128 video (`laptop_transformer_config`, `laptop_vae_config`), MiniLM text, conv ID encoder with 16 ID
    tokens, the latent refiner head (its 128-wide tokens cannot carry their 4x4 patches' noise; measured in
    docs/training.md), everything trainable. Small enough to train on a 2-core CPU and to sample in seconds."""
    from idvid.models.backbone import laptop_transformer_config, laptop_vae_config

    identity = IdentityEncoderConfig(token_dim=64, image_dim=64, num_queries=16, qformer_depth=1, qformer_heads=4, id_dim=64)
    injections = sized_injections(variant, width=64, heads=4, action_tokens=8)
    consisid = ConsisIDConfig(lfe_depth=1, lfe_heads=4, lfe_head_dim=16, num_id_tokens=4, num_queries=16) if variant == "consisid" else None
    backbone = BackboneConfig(transformer=laptop_transformer_config(), vae=laptop_vae_config())
    fields = dict(backbone=backbone, identity=identity, injections=injections, consisid=consisid,
                  refiner=RefinerConfig(), train_backbone=True)
    fields.update(overrides)
    return ModelConfig(**fields)


PRESETS = {"tiny": tiny_config, "laptop": laptop_config}


def identity_heads(backbone_heads: int) -> int:
    """Default heads of the identity cross-attentions: half the backbone's, at its head size.

    The ID tokens are few, so these attentions cost mostly their N x D query and output projections;
    half width halves that (ConsisID likewise attends at 2048 of CogVideoX-5B's 3072 channels). Every
    injection config can override it (`heads`, `head_dim`)."""
    return max(1, backbone_heads // 2)


@contextlib.contextmanager
def _onload(module: nn.Module | None, device: torch.device, enabled: bool):
    """Run `module` on `device`, then send it back to the CPU (CPU offload of frozen parts)."""
    if module is None or not enabled:
        yield
        return
    module.to(device)
    try:
        yield
    finally:
        module.to("cpu")


class IdentityVideoModel(nn.Module):
    """Identity-preserving video diffusion model; see the module docstring."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CogVideoXBlock", "ConsisIDBlock"]

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        bb = config.backbone
        transformer = load_transformer(bb)
        self.vae = load_vae(bb)
        tc = transformer.config
        self.latent_channels = self.vae.config.latent_channels if self.vae is not None else tc.out_channels
        self.widened = False
        # a VAE with more latent channels than the backbone predicts (vae_task.extra_latent_channels): each
        # latent group of the input and the output grow, the added channels zero-initialised
        self.latent_widened_from = None
        if self.latent_channels != tc.out_channels:
            if self.latent_channels < tc.out_channels:
                raise InputError(f"the VAE has {self.latent_channels} latent channels but the backbone predicts "
                                 f"{tc.out_channels}: use the VAE it was trained with")
            try:
                widen_latent_channels(transformer, tc.out_channels, self.latent_channels, *self._latent_layout())
            except ValueError as exc:
                raise InputError(f"cannot widen this backbone to the VAE's {self.latent_channels} latent channels: {exc}; "
                                 "widen the latent channels and add input channels in separate runs") from exc
            self.latent_widened_from = tc.out_channels
            tc = transformer.config
        # a backbone that already takes the reference channels (an idvid model folder) holds their trained
        # patch embedding itself; only channels added now are new
        self._folder_reference_channels = tc.in_channels > self.latent_channels
        wanted = (3 if bb.reference_every_frame else 2) * self.latent_channels if bb.reference_latent else self.latent_channels
        if bb.frame_condition:
            wanted += self.latent_channels + 1
        if wanted != self.latent_channels:
            self.widened = widen_input_channels(transformer, wanted)
        elif tc.in_channels != self.latent_channels:
            raise ValueError(f"backbone takes {tc.in_channels} channels but reference_latent is off ({self.latent_channels} latent channels)")

        # Text: a frozen encoder, plus a trainable projection when its width is not the backbone's.
        self.text_encoder = None
        text_dim = tc.text_embed_dim
        if config.text_encoder != "none":
            from idvid.text import load_text_encoder

            self.text_encoder = load_text_encoder(
                config.text_encoder, config.text_encoder_path, tc.max_text_seq_length, bb.dtype
            )
            text_dim = self.text_encoder.dim
        self.text_proj = nn.Linear(text_dim, tc.text_embed_dim) if text_dim != tc.text_embed_dim else None

        # Identity encoder: only the features some module reads.
        requires = set(CONSISID_REQUIRES) if config.consisid is not None else set()
        for c in config.injections:
            requires |= INJECTIONS[ModelConfig.kind_of(c)].requires
        self.id_encoder = IdentityEncoder(config.identity, requires) if requires else None

        heads, head_dim = tc.num_attention_heads, tc.attention_head_dim
        wiring = Wiring(
            dim=heads * head_dim,
            temb_dim=tc.time_embed_dim,
            heads=identity_heads(heads),
            head_dim=head_dim,
            num_layers=tc.num_layers,
            features=self.id_encoder.feature_shapes() if self.id_encoder is not None else {},
            text_dim=text_dim,
        )
        names = [ModelConfig.kind_of(c) for c in config.injections]
        if len(set(names)) != len(names):
            raise ValueError(f"each injection kind may appear once, got {names}")
        self.injections = nn.ModuleDict({n: INJECTIONS[n](c, wiring) for n, c in zip(names, config.injections, strict=True)})
        if config.consisid is not None:
            shapes = self.id_encoder.feature_shapes()
            transformer = build_consisid(transformer, config.consisid, shapes["face_embedding"][1], shapes["image_tokens"][1])
        self.transformer = transformer
        self.refiner = None
        if config.refiner is not None:
            self.refiner = LatentRefiner(config.refiner, transformer.config.in_channels, transformer.config.out_channels)
        self.attachment = attach(self.transformer, self.injections) if len(self.injections) else None

        # Trainability and precision of the new parts.
        self.transformer.requires_grad_(config.train_backbone)
        for _, module in self._adapter_modules():
            module.requires_grad_(True)
        if self.id_encoder is not None and isinstance(self.id_encoder.image_encoder, ClipImageEncoder):
            self.id_encoder.image_encoder.requires_grad_(False)
        adapter_dtype = PRECISIONS[config.adapter_precision]
        for module in (self.injections, self.id_encoder, self.text_proj, self.refiner):
            if module is not None:
                module.to(adapter_dtype)
        if self.id_encoder is not None and isinstance(self.id_encoder.image_encoder, ClipImageEncoder):
            self.id_encoder.image_encoder.to(bb.dtype)
        if bb.gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ bookkeeping
    @property
    def is_consisid(self) -> bool:
        return self.config.consisid is not None

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    def _frozen_encoders(self) -> list[nn.Module]:
        mods = [m for m in (self.vae, self.text_encoder) if m is not None]
        if self.id_encoder is not None and isinstance(self.id_encoder.image_encoder, ClipImageEncoder):
            mods.append(self.id_encoder.image_encoder)
        return mods

    def _apply(self, fn, recurse: bool = True):
        """With `offload_frozen`, `.to(device)` leaves the frozen encoders on the CPU (moved per use)."""
        if not recurse or not self.config.backbone.offload_frozen:
            return super()._apply(fn, recurse)
        skip = {id(m) for m in self._frozen_encoders()}

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if id(child) not in skip:
                    visit(child)
            module._apply(fn, recurse=False)

        for child in self.children():
            if id(child) not in skip:
                visit(child)
        return super()._apply(fn, recurse=False)

    def train(self, mode: bool = True) -> IdentityVideoModel:
        """Frozen encoders (VAE, text, CLIP) stay in eval mode whatever the model's mode."""
        super().train(mode)
        for module in self._frozen_encoders():
            module.eval()
        return self

    def enable_gradient_checkpointing(self) -> None:
        self.transformer.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        self.transformer.disable_gradient_checkpointing()

    def _adapter_modules(self) -> list[tuple[str, nn.Module]]:
        """(state-dict prefix, module) of every new, trainable part."""
        mods: list[tuple[str, nn.Module]] = []
        if len(self.injections):
            mods.append(("injections", self.injections))
        if self.id_encoder is not None:
            mods.append(("id_encoder", self.id_encoder))
        if self.text_proj is not None:
            mods.append(("text_proj", self.text_proj))
        if self.refiner is not None:
            mods.append(("refiner", self.refiner))
        if self.widened:
            mods.append(("transformer.patch_embed.proj", self.transformer.patch_embed.proj))
        if self.is_consisid:
            for prefix in consisid_adapter_prefixes():
                name = prefix.rstrip(".")
                mods.append((f"transformer.{name}", getattr(self.transformer, name)))
        return mods

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the new weights (injections, ID encoder without a frozen CLIP, text projection, widened
        patch embedding, ConsisID's face modules)."""
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self._adapter_modules():
            for key, value in module.state_dict().items():
                if prefix == "id_encoder" and key.startswith("image_encoder.model.") and isinstance(
                    self.id_encoder.image_encoder, ClipImageEncoder
                ):
                    continue
                out[f"{prefix}.{key}"] = value
        return out

    def save_adapter(self, path: str | os.PathLike) -> Path:
        """Write the adapter weights as safetensors (config JSON in the metadata) + the config as YAML beside."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / ADAPTER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.adapter_state_dict().items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"idvid_config": json.dumps(self.config.to_dict())})
        os.replace(tmp, path)
        self.config.to_yaml(path.with_name(CONFIG_FILE))
        return path

    def load_adapter(self, source: str | os.PathLike | dict[str, torch.Tensor],
                     missing_ok: tuple[str, ...] = ()) -> list[str]:
        """Load weights written by `save_adapter` (a file, its folder, or a state dict); keys must match, except
        that keys under the prefixes in `missing_ok` may be absent (those modules keep their initialisation,
        e.g. a zero-initialised refiner added to a trained model), and a refiner trained on fewer input
        channels gets zero weights for the new ones. Returns the absent keys."""
        if isinstance(source, dict):
            tensors = source
        else:
            from safetensors.torch import load_file

            path = Path(source)
            if path.is_dir():
                path = path / ADAPTER_FILE
            if not path.is_file():
                raise InputError(f"{path}: no adapter weights here")
            tensors = load_file(str(path))
        own = self.adapter_state_dict()
        patch = "transformer.patch_embed.proj."
        if self.widened and self._folder_reference_channels:
            missing_ok = (*missing_ok, patch)  # its weights came with the transformer, widened with zeros
        tensors = dict(tensors)
        if not self.widened:  # saved by a model that widened it; this one loaded it in the transformer
            for key in [k for k in tensors if k.startswith(patch)]:
                value = tensors.pop(key)
                if self.latent_widened_from is not None:  # the transformer's copy was widened as it loaded
                    continue
                if self.transformer.state_dict()[key[len("transformer."):]].shape != value.shape:
                    raise InputError(f"adapter tensor {key} does not match this model's patch embedding")
        absent = sorted(set(own) - set(tensors))
        missing = [k for k in absent if not k.startswith(missing_ok)]
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise InputError(
                f"adapter does not fit this model: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        if self.refiner is not None and self.latent_widened_from is not None and "refiner.conv_in.weight" in tensors \
                and tensors["refiner.conv_out.weight"].shape[0] == self.latent_widened_from:
            tensors = widen_refiner_latents(tensors, self.latent_widened_from, self.latent_channels, *self._latent_layout())
        if self.refiner is not None and "refiner.conv_in.weight" in tensors:
            # a refiner trained with fewer input channels (reference_every_frame added): new ones start at zero
            tensors["refiner.conv_in.weight"] = self.refiner.widen_conv_in(tensors["refiner.conv_in.weight"])
        for key, value in tensors.items():
            if own[key].shape != value.shape:
                raise InputError(f"adapter tensor {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
        for prefix, module in self._adapter_modules():
            sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            module.load_state_dict(sub, strict=False)
        return absent

    def _latent_layout(self) -> tuple[int, bool]:
        """(latent groups, mask channel) of the backbone's input, as condition_latents lays it out."""
        bb = self.config.backbone
        groups = (3 if bb.reference_every_frame else 2) if bb.reference_latent else 1
        return groups + bb.frame_condition, bb.frame_condition

    # ------------------------------------------------------------------ encoders
    def encode_text(self, prompts: list[str], max_length: int | None = None) -> torch.Tensor:
        """(B, L, text_embed_dim) for the backbone; L = its max_text_seq_length."""
        if self.text_encoder is None:
            raise InputError("this model has no text encoder (text_encoder='none'); pass text embeddings directly")
        device = self.device
        with _onload(self.text_encoder, device, self.config.backbone.offload_frozen):
            emb = self.text_encoder.encode(prompts, max_length or self.transformer.config.max_text_seq_length).embeddings
        emb = emb.to(device)
        if self.text_proj is not None:
            emb = self.text_proj(emb.to(self.text_proj.weight.dtype))
        return emb.to(self.dtype)

    def motion_inputs(self, action_phrases: list[str], intensity: torch.Tensor | list[float]) -> MotionInputs:
        """Encode action phrases with the text encoder (raw width; the motion module projects them)."""
        if self.text_encoder is None:
            raise InputError("this model has no text encoder; build MotionInputs from your own embeddings")
        motion = self.injections["motion"].config if "motion" in self.injections else None
        length = motion.action_tokens if motion is not None else 16
        with _onload(self.text_encoder, self.device, self.config.backbone.offload_frozen):
            emb, mask = self.text_encoder.encode(action_phrases, length)
        intensity = torch.as_tensor(intensity, dtype=torch.float32, device=self.device)
        return MotionInputs(action_embedding=emb.to(self.device), intensity=intensity, action_mask=mask.to(self.device))

    def _vae(self):
        if self.vae is None:
            raise InputError("this model was built without a VAE (backbone.with_vae=False)")
        return self.vae

    def encode_video(self, frames: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """frames (B, F, 3, H, W) in [-1, 1] -> scaled latents (B, F', C, H/8, W/8), F' = (F-1)/4 + 1."""
        vae = self._vae()
        with _onload(vae, self.device, self.config.backbone.offload_frozen):
            x = frames.to(device=self.device, dtype=vae.dtype).permute(0, 2, 1, 3, 4)  # (B, 3, F, H, W)
            dist = vae.encode(x).latent_dist
            z = dist.sample(generator) if sample else dist.mode()
        return (z * vae.config.scaling_factor).permute(0, 2, 1, 3, 4).to(self.dtype)

    def encode_reference(self, image: torch.Tensor) -> torch.Tensor:
        """The global ID embedding: reference (B, 3, H, W) in [-1, 1], at the video's size -> (B, C, h, w)."""
        return self.encode_video(image[:, None])[:, 0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, F, C, h, w) -> frames (B, F', 3, H, W) in [-1, 1] (differentiable)."""
        vae = self._vae()
        with _onload(vae, self.device, self.config.backbone.offload_frozen):
            z = (latents / vae.config.scaling_factor).permute(0, 2, 1, 3, 4).to(vae.dtype)
            frames = vae.decode(z).sample
        return frames.permute(0, 2, 1, 3, 4)

    def identity_features(self, id_inputs: IdentityInputs | None):
        if id_inputs is None or self.id_encoder is None:
            return None
        clip = self.id_encoder.image_encoder if isinstance(self.id_encoder.image_encoder, ClipImageEncoder) else None
        with _onload(clip, self.device, self.config.backbone.offload_frozen):
            return self.id_encoder(id_inputs)

    # ------------------------------------------------------------------ denoiser
    def condition_latents(self, latents: torch.Tensor, reference_latent: torch.Tensor | None,
                          condition: FrameCondition | None = None) -> torch.Tensor:
        """[latents ; reference latent in frame 0, zeros elsewhere] along channels: (B, F, 2C, h, w); with
        `backbone.reference_every_frame`, then also [; the reference latent in every frame]: (B, F, 3C, h, w).
        No reference (the unconditional branch): zeros in its place. With `backbone.frame_condition`, then
        [; known latents ; known mask] (C + 1 channels, zeros without a condition)."""
        bb = self.config.backbone
        if condition is not None and not bb.frame_condition:
            raise InputError("this model takes no frame condition (backbone.frame_condition is off): "
                             "it cannot start from a given first frame")
        x = self._reference_channels(latents, reference_latent)
        if not bb.frame_condition:
            return x
        if condition is None:
            b, f, c, h, w = latents.shape
            return torch.cat([x, x.new_zeros(b, f, c + 1, h, w)], dim=2)
        if condition.latents.shape != latents.shape:
            raise InputError(f"frame condition {tuple(condition.latents.shape)} does not match latents {tuple(latents.shape)}")
        return torch.cat([x, condition.channels(x.dtype)], dim=2)

    def _reference_channels(self, latents: torch.Tensor, reference_latent: torch.Tensor | None) -> torch.Tensor:
        bb = self.config.backbone
        if not bb.reference_latent:
            return latents
        b, f, c, h, w = latents.shape
        slots = 2 if bb.reference_every_frame else 1
        if reference_latent is None:
            return torch.cat([latents, latents.new_zeros(b, f, slots * c, h, w)], dim=2)
        if reference_latent.shape != (b, c, h, w):
            raise InputError(f"reference latent {tuple(reference_latent.shape)} does not match latents {(b, c, h, w)}")
        ref = reference_latent[:, None].to(latents.dtype)
        parts = [latents, torch.cat([ref, latents.new_zeros(b, f - 1, c, h, w)], dim=1)]
        if bb.reference_every_frame:
            parts.append(ref.expand(b, f, c, h, w))
        return torch.cat(parts, dim=2)

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        text_emb: torch.Tensor,
        id_inputs: IdentityInputs | None = None,
        motion: MotionInputs | None = None,
        condition: FrameCondition | None = None,
    ) -> torch.Tensor:
        """The backbone's prediction (per the scheduler's prediction type) for noisy `latents` (B, F, C, h, w).

        `id_inputs=None` (and `motion=None`) is the unconditional branch: no identity module adds anything.
        `condition`: known frame content (`idvid.models.frame_condition`; needs `backbone.frame_condition`).
        """
        b = latents.shape[0]
        x = self.condition_latents(latents.to(self.dtype), id_inputs.reference_latent if id_inputs is not None else None,
                                   condition)
        t = torch.as_tensor(timestep, device=x.device)
        t = t.reshape(1).expand(b) if t.numel() == 1 else t.reshape(b)
        tc = self.transformer.config
        grid = token_grid(tc, x.shape)
        rope = rotary_embeddings(tc, grid, x.device)
        features = self.identity_features(id_inputs)
        kwargs: dict[str, Any] = dict(
            hidden_states=x, encoder_hidden_states=text_emb.to(self.dtype), timestep=t, image_rotary_emb=rope, return_dict=False
        )
        if self.is_consisid:
            out = self._consisid_forward(kwargs, features)
        else:
            if tc.get("ofs_embed_dim"):
                kwargs["ofs"] = x.new_full((1,), 2.0)  # as diffusers' CogVideoX 1.5 I2V pipeline
            if len(self.injections):
                cond = {name: inj.prepare(features, motion) for name, inj in self.injections.items()}
                kwargs["attention_kwargs"] = {CONTEXT_KEY: InjectionContext(cond=cond, grid=grid)}
            out = self.transformer(**kwargs)[0]
        if self.refiner is not None:
            reference = condition.reference if condition is not None else None
            out = out + self.refiner(x, out, t, reference=reference).to(out.dtype)
        return out

    def _consisid_forward(self, kwargs: dict[str, Any], features) -> torch.Tensor:
        if features is None or features.face_embedding is None or features.image_tokens is None:
            self.transformer.is_train_face = False  # unconditional: the bare backbone
            try:
                return self.transformer(**kwargs)[0]
            finally:
                self.transformer.is_train_face = True
        return self.transformer(
            **kwargs, id_cond=features.face_embedding, id_vit_hidden=[features.image_tokens]
        )[0]

    # ------------------------------------------------------------------ analysis
    def flops(self, batch: int, latent_shape: tuple[int, int, int], text_tokens: int | None = None) -> dict[str, int]:
        """Analytic forward FLOPs for latents of (frames, h, w): backbone and identity layers apart.

        The per-call encoders (ID encoder, Eq. 2 fusion, ConsisID's extractor) run once per call on the
        reference only; they are excluded."""
        tc = self.transformer.config
        grid = token_grid(tc, (batch, latent_shape[0], 0, latent_shape[1], latent_shape[2]))
        out = {"backbone": backbone_flops(tc, batch, grid, text_tokens)}
        if self.is_consisid:
            out["consisid"] = consisid_layer_flops(self.transformer, batch, grid)
        for name, inj in self.injections.items():
            out[name] = inj.layer_flops(batch, grid)
        if self.refiner is not None:
            out["refiner"] = self.refiner.flops(batch * latent_shape[0], latent_shape[1] * latent_shape[2], batch)
        return out

    # ------------------------------------------------------------------ whole-model checkpoints
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """config YAML + transformer/ + vae/ (diffusers folders) + adapter.safetensors; reload with
        `IdentityVideoModel.from_pretrained(folder)`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        transformer = self.transformer
        if self.is_consisid:  # store the backbone part as the plain CogVideoX it was built from
            from diffusers import CogVideoXTransformer3DModel

            keys = set(inspect.signature(CogVideoXTransformer3DModel.__init__).parameters)
            transformer = CogVideoXTransformer3DModel(**{k: v for k, v in transformer.config.items() if k in keys})
            transformer.load_state_dict(self.transformer.state_dict(), strict=False)
        transformer.save_pretrained(folder / "transformer")
        if self.vae is not None:
            self.vae.save_pretrained(folder / "vae")
        self.save_adapter(folder / ADAPTER_FILE)
        cfg = ModelConfig.from_dict(self.config.to_dict())
        cfg.backbone.path, cfg.backbone.vae_path = ".", None  # the folder holds its own VAE
        cfg.to_yaml(folder / CONFIG_FILE)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides: Any) -> IdentityVideoModel:
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise InputError(f"{folder}: no {CONFIG_FILE} here (not an idvid model folder)")
        cfg = ModelConfig.from_yaml(folder / CONFIG_FILE)
        cfg.backbone.path = str(folder)
        for key, value in overrides.items():
            setattr(cfg, key, value)
        model = cls(cfg)
        model.load_adapter(folder / ADAPTER_FILE)
        return model


def build_model(config: ModelConfig | str = "tiny", variant: str = "moca", **overrides: Any) -> IdentityVideoModel:
    """An `IdentityVideoModel` from a config or a preset name ("tiny"); `variant` picks the identity path."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown preset {config!r}; known: {sorted(PRESETS)}")
        config = PRESETS[config](variant, **overrides)
    return IdentityVideoModel(config)


def without_identity(model: IdentityVideoModel) -> IdentityVideoModel:
    """The same network with its identity path taken out: no identity injections (MoCA, MoFE, ID adapter, plain
    cross-attention; the Motion Control Module stays), no ID encoder and no reference-latent input channels.

    Why: a no-identity baseline at (at least) the budget of a trained identity model, for the MoCA-vs-baseline
    comparison, starts from that model's own backbone instead of a fresh one. Every part it keeps has its trained
    weights, and the removed input channels are the ones the identity model's unconditional-identity branch fills
    with zeros, so the result predicts exactly as `model` does with `id_inputs=None` (tested; not exactly when a
    refiner's reference attention has no frame condition to read instead, and is dropped); train it further without
    identity to make it a baseline of its own (docs/training.md)."""
    if model.is_consisid:
        raise ValueError("a ConsisID model's identity modules are inside its transformer; build the baseline with variant 'none'")
    src = model.config
    bb = src.backbone
    c = model.latent_channels
    blocks, mask = model._latent_layout()  # [latents ; reference slots ; (known latents ; mask)]
    known = (blocks - 1) * c  # where the frame condition's latents start
    keep = list(range(c)) + (list(range(known, known + c + 1)) if mask else [])

    d = src.to_dict()
    d["injections"] = [i for i in d["injections"] if not INJECTIONS[i["kind"]].requires]
    d["backbone"].update(reference_latent=False, reference_every_frame=False, path=None, vae_path=None,
                         transformer={**dict(model.transformer.config), "in_channels": len(keep)},
                         vae=dict(model.vae.config) if model.vae is not None else d["backbone"]["vae"])
    kept = {f"injections.{i['kind']}." for i in d["injections"]}
    adapter = {k: v for k, v in model.adapter_state_dict().items()
               if not k.startswith(("id_encoder.", "transformer.patch_embed.proj."))
               and (not k.startswith("injections.") or k.startswith(tuple(kept)))}
    if model.refiner is not None:
        w = adapter["refiner.conv_in.weight"]  # (ch, [x ; prediction], 3, 3)
        x_channels = model.transformer.config.in_channels
        adapter["refiner.conv_in.weight"] = torch.cat([w[:, keep], w[:, x_channels:]], dim=1)
        if model.refiner.reference is not None and not bb.frame_condition:
            # it read the (absent) reference slot; with a frame condition it reads the I2V first frame instead
            d["refiner"]["reference_dim"] = 0
            adapter = {k: v for k, v in adapter.items() if not k.startswith("refiner.reference.")}
    out = IdentityVideoModel(ModelConfig.from_dict(d))
    with torch.no_grad():
        state = model.transformer.state_dict()
        proj = "patch_embed.proj.weight"
        w = state[proj]
        if w.dim() == 4:  # CogVideoX 1.0: Conv2d over channels
            state[proj] = w[:, keep]
        else:  # 1.5: Linear over (channels x p_t x p x p) features
            per_channel = w.shape[1] // model.transformer.config.in_channels
            state[proj] = w.view(w.shape[0], -1, per_channel)[:, keep].reshape(w.shape[0], -1)
        out.transformer.load_state_dict(state)
        if model.vae is not None:
            out.vae.load_state_dict(model.vae.state_dict())
    out.load_adapter(adapter)
    return out.to(model.device)
