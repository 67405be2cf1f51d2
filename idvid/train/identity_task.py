"""Training the identity video model (`idvid.models.IdentityVideoModel`) on identity-video clips.

Per micro-batch (shapes for B clips of T frames, latents (B, F', C, h, w)):

    1. latents Z̃0 = VAE(frames) and the reference latent (global ID) — or both read from the latent cache
    2. text: prompts (dropped to "" with p = text_dropout per clip); identity: SFace embedding + aligned
       face crop + reference latent (the whole identity dropped with p = id_dropout per batch); with
       p = uncond_dropout a batch drops both — the unconditional branch classifier-free guidance needs
       (IDVideoPipeline guides text and identity together); motion: action phrase + motion intensity
       (with p = speed_word_dropout per clip, "slowly"/"quickly" leave prompt and phrase, so that the
       intensity alone must say how fast)
    3. t ~ U[0, T), ε ~ N(0, I), Z_t = scheduler.add_noise(Z̃0, ε, t); the model predicts the scheduler's
       target (v for CogVideoX); with `still_start`, some clips of an I2V batch are noised from their still first
       frame instead, with the target that leads to the clip (objectives.restart_from)
    4. losses (idvid.objectives):
         diff      = ‖target − pred‖²  (region-aware, seed 002 Eq. 10, when `region_aware`)
         face/back = latent video perceptual loss (seed 000 Eqs. 8, 10) on x̂0 with the face mask
         id        = ID-consistency (seed 002 Eq. 4) on decoded x̂0 face crops, with a trained differentiable
                     face embedder (`face_embedder`), on the clips noised to t < id_loss_max_t (at most
                     id_loss_clips of them, each decoded in a window of id_loss_window latent pixels around its face)
         loss      = diff + α face + β back + λ_id id

All draws (t, ε, dropouts, VAE sampling) come from the step's generator, so a resumed run repeats them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from idvid.errors import InputError
from idvid.train.config import TaskConfig, TrainConfig, _check, merge
from idvid.train.task import StepContext, TrainTask, ValidationContext

# CogVideoX-5b's training noise schedule (its scheduler_config.json), used unless the backbone folder
# has its own `scheduler/` or `task.scheduler` overrides it.
DEFAULT_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "snr_shift_scale": 1.0,
    "clip_sample": False,
    "set_alpha_to_one": True,
}
VALIDATION_TIMESTEPS = (50, 250, 500, 750, 950)
# Adapter parts a warm start may lack (added by task.model_overrides; zero-initialised, so harmless).
ZERO_INIT_ADDITIONS = ("refiner.", "injections.motion.temb_proj.")
log = logging.getLogger(__name__)


@dataclass
class IdentityTaskConfig(TaskConfig):
    kind: str = "identity"
    model: str = "tiny"  # a preset ("tiny" for tests, "laptop" for the default model), a folder saved by IdentityVideoModel.save_pretrained, or a CogVideoX folder
    variant: str = "moca"  # identity path: none | plain_ca | moca | mofe | motioncharacter | consisid
    motion: bool = False  # add the Motion Control Module when the variant has none
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields (nested mappings merge)
    vae_path: str | None = None  # a diffusers AutoencoderKLCogVideoX folder replacing the preset's VAE
    scheduler: dict[str, Any] = field(default_factory=dict)  # CogVideoXDDIMScheduler config overrides
    perceptual_alpha: float = 2.0  # α of L_face (0: off)
    perceptual_beta: float = 0.5  # β of L_back (0: off)
    region_aware: bool = False  # region-aware diffusion loss (needs data.flow_maps)
    id_loss_weight: float = 0.0  # λ of the ID-consistency loss (0: off)
    # only clips noised to t < id_loss_max_t get it (their x̂0 is decoded; 1000: all): at high noise x̂0 is a
    # blurred mean whose face no embedder can judge, and every clip left out is a VAE decode (and its backward) saved
    id_loss_max_t: int = 1000
    # a full decode with its backward costs about 17 s a step on the laptop model (2 CPU cores), so: at most
    # id_loss_clips of those clips a step (0: all), each decoded only in a square window of id_loss_window latent
    # pixels around its faces (0: the whole frame); the VAE decoder is convolutional, so the faces decode
    # nearly as in the whole frame (stage 10's VAE, a 20-pixel window: 46-52 dB PSNR against it inside the face box)
    id_loss_clips: int = 0
    id_loss_window: int = 0
    face_embedder: str | None = None  # safetensors of idvid.models.face_embedder.FaceEmbedder (None: the bundled one)
    text_dropout: float = 0.05
    id_dropout: float = 0.05
    # per micro-batch that keeps its identity: the reference latent alone dropped (zeros in its channels), so the ID
    # tokens, i.e. MoCA, must carry who it is (with MoCA zeroed at inference the laptop model keeps its identity)
    reference_dropout: float = 0.0
    uncond_dropout: float = 0.0  # whole batches with neither text nor identity: the branch CFG subtracts
    speed_word_dropout: float = 0.0  # per clip, "slowly"/"quickly" removed from prompt and action phrase
    vae_sample: bool = False  # sample the VAE posterior (True) or take its mode
    # the decoupled pipeline's conditions (needs backbone.frame_condition), drawn per batch: with p = first_frame_condition
    # an I2V batch (latent frame 0 known), with p = head_condition a T2I batch (one latent frame, its head region
    # known, the still prompt: idvid.text.prompts.spatial_prompt, intensity 0); otherwise plain T2V
    first_frame_condition: float = 0.0
    head_condition: float = 0.0
    # the I2V start the pipeline's first_frame_init uses: in an I2V batch each clip with p = still_start is noised
    # from its first latent frame held still (what the VAE makes of a still clip) at t ~ U[still_start_t], the
    # target still the clip itself (objectives.restart_from), so the denoiser learns to add the clip's motion
    # to such a start instead of keeping it still
    still_start: float = 0.0
    still_start_t: list[int] = field(default_factory=lambda: [300, 600])
    # > 0: train the VAE's decoder only, on the frozen DiT's x̂0 at t < decoder_tune_max_t decoded against the true
    # frames (L1, faces weighted 1 + decoder_tune_face_weight, + id_loss_weight · per-frame identity loss), so
    # the decoder learns the latents the DiT makes rather than the encoder's; the encoder and DiT are untouched
    decoder_tune_max_t: int = 0
    decoder_tune_face_weight: float = 3.0

    def __post_init__(self) -> None:
        from idvid.models.model import VARIANTS

        _check(self.variant in VARIANTS, "task.variant", f"must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        from idvid.models.model import PRESETS

        if self.model not in PRESETS:
            _check(Path(self.model).is_dir(), "task.model",
                   f"{self.model}: not a preset ({', '.join(PRESETS)}) and no such folder")
        if self.vae_path is not None:
            _check(Path(self.vae_path, "config.json").is_file(), "task.vae_path", f"{self.vae_path}: no config.json")
        for name in ("perceptual_alpha", "perceptual_beta", "id_loss_weight"):
            _check(getattr(self, name) >= 0, f"task.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("text_dropout", "id_dropout", "reference_dropout", "uncond_dropout", "speed_word_dropout",
                     "first_frame_condition", "head_condition"):
            _check(0 <= getattr(self, name) < 1, f"task.{name}", f"must be in [0, 1), got {getattr(self, name)}")
        _check(1 <= self.id_loss_max_t <= 1000, "task.id_loss_max_t", f"must be in [1, 1000], got {self.id_loss_max_t}")
        for name in ("id_loss_clips", "id_loss_window"):
            _check(getattr(self, name) >= 0, f"task.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.face_embedder is not None:
            _check(Path(self.face_embedder).is_file(), "task.face_embedder", f"{self.face_embedder}: no such file")
        _check(0 <= self.still_start <= 1, "task.still_start", f"must be in [0, 1], got {self.still_start}")
        _check(self.still_start == 0 or self.first_frame_condition > 0, "task.still_start",
               "starts I2V batches from their still first frame: set task.first_frame_condition > 0 too")
        lo_hi = self.still_start_t
        _check(len(lo_hi) == 2 and 0 <= lo_hi[0] <= lo_hi[1] < 1000, "task.still_start_t",
               f"must be [lo, hi] timesteps with 0 <= lo <= hi < 1000, got {lo_hi}")
        _check(self.first_frame_condition + self.head_condition < 1, "task.head_condition",
               f"first_frame_condition + head_condition must be < 1, got {self.first_frame_condition + self.head_condition}")
        _check(0 <= self.decoder_tune_max_t <= 1000, "task.decoder_tune_max_t",
               f"must be in [0, 1000], got {self.decoder_tune_max_t}")
        _check(self.decoder_tune_face_weight >= 0, "task.decoder_tune_face_weight",
               f"must be >= 0, got {self.decoder_tune_face_weight}")


def _uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return x.movedim(-1, -3).float() / 127.5 - 1


def face_windows(latents: torch.Tensor, boxes: torch.Tensor, window: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Square windows of `window` latent pixels out of latents (B, F, C, h, w), each centred on the middle of its
    clip's face boxes (B, T, 4; pixels of `size`-pixel frames) and kept inside the frame; returns the windows and
    the boxes in the pixels of the decoded windows. A window as large as the frame returns both unchanged."""
    h, w = latents.shape[-2:]
    if window >= h and window >= w:
        return latents, boxes
    scale = size / h  # pixels per latent pixel
    centre = torch.stack([(boxes[..., 0] + boxes[..., 2]).mean(1), (boxes[..., 1] + boxes[..., 3]).mean(1)], 1) / 2
    side_y, side_x = min(window, h), min(window, w)
    y0 = (centre[:, 1] / scale - side_y / 2).round().clamp(0, h - side_y).long()
    x0 = (centre[:, 0] / scale - side_x / 2).round().clamp(0, w - side_x).long()
    crops = torch.stack([latents[i, ..., int(y):int(y) + side_y, int(x):int(x) + side_x]
                         for i, (y, x) in enumerate(zip(y0.tolist(), x0.tolist(), strict=True))])
    shift = torch.stack([x0, y0, x0, y0], 1).to(boxes.dtype) * scale
    return crops, boxes - shift[:, None, :]


def model_config_for(task: IdentityTaskConfig, train_mode: str):
    """The `ModelConfig` a task config describes (without building the model)."""
    from idvid.models import ModelConfig, MotionControlConfig, cogvideox_config
    from idvid.models.model import PRESETS

    if task.model in PRESETS:
        cfg = PRESETS[task.model](task.variant)
    elif Path(task.model, "model_config.yaml").is_file():
        cfg = ModelConfig.from_yaml(Path(task.model, "model_config.yaml"))
        cfg.backbone.path = str(Path(task.model))
    else:
        cfg = cogvideox_config(str(task.model), task.variant)
    if task.motion and not any(isinstance(c, MotionControlConfig) for c in cfg.injections):
        cfg.injections.append(MotionControlConfig())
    d = merge(cfg.to_dict(), {"train_backbone": train_mode == "full"})
    overrides = dict(task.model_overrides)
    if isinstance(overrides.get("injections"), dict):  # injections.<kind>.<field>: one injection by its kind
        kinds = [inj["kind"] for inj in d["injections"]]
        for kind, update in overrides.pop("injections").items():
            if kind not in kinds:
                raise InputError(f"config task.model_overrides.injections.{kind}: the model has no {kind!r} "
                                 f"injection (it has {', '.join(kinds) or 'none'})")
            i = kinds.index(kind)
            d["injections"][i] = merge(d["injections"][i], update)
    d = merge(d, overrides)
    try:
        return ModelConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise InputError(f"config task.model_overrides: {exc}") from exc


class IdentityVideoTask(TrainTask):
    config_class = IdentityTaskConfig

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        from diffusers import CogVideoXDDIMScheduler

        from idvid.models import IdentityVideoModel
        from idvid.objectives import LatentVideoPerceptualLoss

        c: IdentityTaskConfig = config.task
        self.c = c
        if c.id_loss_weight > 0 or c.decoder_tune_max_t > 0:
            from idvid.train.vae_task import decodes_to_same_length

            why = "the ID-consistency loss" if c.id_loss_weight > 0 else "task.decoder_tune_max_t"
            if not decodes_to_same_length(config.data.frames):
                raise InputError(f"config data.frames: {why} decodes x̂0, and the VAE decodes "
                                 f"{config.data.frames} frames back to a different count; use 9, 17, 25, ... frames")
        if c.decoder_tune_max_t > 0 and config.data.cache_latents:
            raise InputError("config task.decoder_tune_max_t: tuning the decoder compares it with the true frames; "
                             "set data.cache_latents=false")
        if c.region_aware and not config.data.flow_maps:
            raise InputError("config task.region_aware: needs data.flow_maps=true (the loss weights by foreground flow)")
        mcfg = model_config_for(c, config.train_mode)
        if (c.first_frame_condition > 0 or c.head_condition > 0) and not mcfg.backbone.frame_condition:
            raise InputError("config task.first_frame_condition / task.head_condition: the model takes no frame "
                             "condition; add task.model_overrides.backbone.frame_condition=true")
        if mcfg.text_encoder == "none":
            raise InputError("config task.model_overrides: training needs a text encoder (text_encoder minilm or t5)")
        if c.vae_path is not None:  # a VAE with added latent channels widens the backbone as it loads
            mcfg.backbone.vae_path = c.vae_path
        self.model = IdentityVideoModel(mcfg)
        if Path(c.model, "adapter.safetensors").is_file():
            # parts added by task.model_overrides to a model trained without them (a refiner, the reference
            # channels of backbone.reference_every_frame, the motion time embedding) start at zero: the warm
            # start predicts as before
            fresh = self.model.load_adapter(Path(c.model), missing_ok=ZERO_INIT_ADDITIONS)
            for prefix in ZERO_INIT_ADDITIONS:
                if any(k.startswith(prefix) for k in fresh):
                    log.info("%s has no %s weights: they start zero-initialised", c.model, prefix.rstrip("."))
        if self.model.vae is None:
            raise InputError("config task.model_overrides: training needs the VAE (backbone.with_vae=true)")
        if c.decoder_tune_max_t > 0:  # only the decoder learns
            self.model.requires_grad_(False)
            self.model.vae.decoder.requires_grad_(True)

        sched = dict(DEFAULT_SCHEDULER)
        folder = Path(mcfg.backbone.path or "", "scheduler", "scheduler_config.json")
        if mcfg.backbone.path and folder.is_file():
            sched = {k: v for k, v in json.loads(folder.read_text()).items() if not k.startswith("_")}
        self.scheduler = CogVideoXDDIMScheduler.from_config({**sched, **c.scheduler})
        self.perceptual = None
        if c.perceptual_alpha > 0 or c.perceptual_beta > 0:
            self.perceptual = LatentVideoPerceptualLoss.from_vae(
                self.model.vae, alpha=c.perceptual_alpha, beta=c.perceptual_beta,
                num_train_timesteps=self.scheduler.config.num_train_timesteps)
        self.face_embedder = None
        if c.id_loss_weight > 0:
            from idvid.models.face_embedder import load_face_embedder

            embedder = load_face_embedder(c.face_embedder) if c.face_embedder else load_face_embedder()  # the bundled one
            self.face_embedder = embedder.requires_grad_(False)
        self._validation_set: Dataset | None = None

    def train(self, mode: bool = True) -> IdentityVideoTask:
        super().train(mode)
        for frozen in (self.model.vae, self.model.text_encoder, self.face_embedder):
            if frozen is not None:
                frozen.eval()  # frozen parts stay in eval mode (dropout, batch-norm statistics)
        return self

    def named_trainable_parameters(self):
        return [(n, p) for n, p in self.model.named_parameters(prefix="model") if p.requires_grad]

    def enable_gradient_checkpointing(self) -> None:
        self.model.enable_gradient_checkpointing()

    # -- data
    def train_dataset(self) -> Dataset:
        from idvid.train.dataset import LatentStore, build_dataset, cache_root

        cfg = self.run_config
        ds = build_dataset(cfg.data, cfg.run_dir, "train", cfg.seed, progress=cfg.log.progress)
        if cfg.data.cache_latents:
            store = LatentStore(cache_root(cfg.data, cfg.run_dir) / f"latents-{self.latent_fingerprint()}")
            device = next(self.model.transformer.parameters()).device
            self.model.to(device)
            store.ensure(ds, self._encode, cfg.data.num_workers, progress=cfg.log.progress)
            ds.latents = store
        return ds

    def latent_fingerprint(self) -> str:
        """Names a latent cache: what the latents depend on — the VAE's encoder weights and scaling factor,
        not its decoder (a decoder-only fine-tune keeps the cache) — and the data settings."""
        import hashlib

        h = hashlib.sha1()
        vae = self.model.vae
        for key, value in sorted(vae.state_dict().items()):
            if key.startswith(("encoder.", "quant_conv.")):
                h.update(key.encode())
                h.update(value.detach().float().cpu().numpy().tobytes())
        h.update(repr(float(vae.config.scaling_factor)).encode())
        d = self.run_config.data
        h.update(json.dumps([d.source, str(d.path), d.size, d.frames, d.flow_maps, self.run_config.seed,
                             self.c.vae_sample]).encode())
        return h.hexdigest()[:16]

    @torch.no_grad()
    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_video(frames.to(self.model.device))

    def collate(self, items):
        from idvid.train.dataset import collate

        return collate(items)

    # -- losses
    def _inputs(self, batch: dict[str, Any], ctx: StepContext):
        """(Z̃0, reference latent, latent face mask, latent region weights or None)."""
        from idvid.objectives import latent_mask, latent_region_weights

        if "latents" in batch:
            return (batch["latents"].to(self.model.dtype), batch["reference_latent"].to(self.model.dtype),
                    batch["latent_mask"].float(), batch.get("latent_region"))
        with torch.no_grad():
            frames = _uint8_to_unit(batch["frames"])  # (B, T, 3, H, W)
            z = self.model.encode_video(frames, sample=self.c.vae_sample, generator=ctx.generator)
            ref = self.model.encode_reference(_uint8_to_unit(batch["reference"]))  # (B, C, h, w)
        grid = (z.shape[1], z.shape[3], z.shape[4])
        mask = latent_mask(batch["face_mask"], grid)
        region = latent_region_weights(batch["flow_fg"], grid) if "flow_fg" in batch else None
        return z, ref, mask, region

    def _conditions(self, batch: dict[str, Any], ref_latent: torch.Tensor | None, prompts: list[str],
                    phrases: list[str], with_identity: bool = True):
        """The model's (text, identity, motion) inputs for a batch's (possibly dropped-out) prompts and phrases."""
        from idvid.models import IdentityInputs

        model = self.model
        text = model.encode_text(prompts)
        ids = IdentityInputs(face_embedding=batch["face_embedding"].float(), face_crop=_uint8_to_unit(batch["face_crop"]),
                             reference_latent=ref_latent) if with_identity else None
        motion = model.motion_inputs(phrases, batch["motion_intensity"]) if "motion" in model.injections else None
        return text, ids, motion

    def _head_batch(self, batch: dict[str, Any], z0: torch.Tensor, mask: torch.Tensor, region: torch.Tensor | None,
                    prompts: list[str]):
        """A batch as the T2I stage sees it: latent frame 0 alone, its head region known (the ellipse around
        the ground-truth face box, as generation draws it around the detector's), the still prompt, intensity 0."""
        from idvid.models.frame_condition import head_region_mask, region_condition
        from idvid.text.prompts import STILL_PHRASE, spatial_prompt

        z0, mask = z0[:, :1], mask[:, :1]
        region = region[:, :1] if region is not None else None
        size = self.run_config.data.size  # face boxes are in pixels of the training frames
        known = head_region_mask(batch["face_boxes"][:, 0].to(z0.device), (size, size), tuple(z0.shape[3:]))
        condition = region_condition(z0[:, 0], known)
        batch = {**batch, "motion_intensity": torch.zeros_like(batch["motion_intensity"])}
        prompts = [spatial_prompt(p) if p else p for p in prompts]
        return batch, z0, mask, region, condition, prompts, [STILL_PHRASE] * len(prompts)

    def compute_losses(self, batch: dict[str, Any], ctx: StepContext, timesteps: torch.Tensor | None = None,
                       use_identity: bool | None = None) -> dict[str, torch.Tensor]:
        from idvid.models.frame_condition import first_frame_condition
        from idvid.objectives import (
            diffusion_loss,
            noise_batch,
            predict_x0,
            region_aware_loss,
            restart_from,
        )

        c, model, g = self.c, self.model, ctx.generator
        if c.decoder_tune_max_t > 0:
            return self._decoder_tune_losses(batch, ctx, timesteps)
        z0, ref_latent, mask, region = self._inputs(batch, ctx)
        b = z0.shape[0]
        # conditioning dropouts (training only), drawn from the step's generator
        prompts, phrases = list(batch["prompt"]), list(batch["action_phrase"])
        if ctx.training and c.speed_word_dropout > 0:  # drawn only when on, so other runs keep their streams
            from idvid.synth.prompts import strip_speed_words

            strip = (torch.rand(b, generator=g) < c.speed_word_dropout).tolist()
            prompts = [strip_speed_words(p) if s else p for p, s in zip(prompts, strip, strict=True)]
            phrases = [strip_speed_words(p) if s else p for p, s in zip(phrases, strip, strict=True)]
        if ctx.training:
            drop_text = torch.rand(b, generator=g) < c.text_dropout
            drop_id = bool(torch.rand((), generator=g) < c.id_dropout)
            if c.uncond_dropout > 0 and bool(torch.rand((), generator=g) < c.uncond_dropout):
                drop_text[:], drop_id = True, True
            prompts = ["" if d else p for p, d in zip(prompts, drop_text.tolist(), strict=True)]
        else:
            drop_id = False
        if use_identity is not None:
            drop_id = not use_identity
        if ctx.training and c.reference_dropout > 0 and not drop_id:  # drawn only when on
            if bool(torch.rand((), generator=g) < c.reference_dropout):
                ref_latent = None
        condition, i2v = None, False
        if ctx.training and (c.first_frame_condition > 0 or c.head_condition > 0):  # drawn only when on
            u = float(torch.rand((), generator=g))
            if u < c.head_condition:
                batch, z0, mask, region, condition, prompts, phrases = self._head_batch(batch, z0, mask, region, prompts)
            elif u < c.head_condition + c.first_frame_condition:
                condition, i2v = first_frame_condition(z0), True
        text, ids, motion = self._conditions(batch, ref_latent, prompts, phrases, with_identity=not drop_id)

        noised = noise_batch(self.scheduler, z0, timesteps=timesteps, generator=g)
        if i2v and c.still_start > 0:  # drawn only when on
            rows = torch.rand(b, generator=g) < c.still_start
            lo, hi = c.still_start_t
            t_still = torch.randint(lo, hi + 1, (b,), generator=g)
            # a still clip's latent frames all equal its first (the causal VAE encodes each group of identical
            # frames as it encodes frame 0 alone; tested), so the still start is latent frame 0 repeated
            noised = restart_from(self.scheduler, noised, z0, z0[:, :1].expand_as(z0), rows, t_still)
        pred = model(noised.noisy, noised.timesteps, text, ids, motion, condition=condition)

        losses: dict[str, torch.Tensor] = {}
        if c.region_aware and region is not None:
            diff = region_aware_loss(pred, noised.target, region)
        else:
            diff = diffusion_loss(pred, noised.target)
        total = diff
        losses["diff"] = diff.detach()
        x0_hat = None
        if self.perceptual is not None:
            x0_hat = predict_x0(self.scheduler, noised.noisy, pred.float(), noised.timesteps)
            terms = self.perceptual(x0_hat, z0.float(), mask, noised.timesteps)
            total = total + terms.total
            losses["face"], losses["back"] = terms.face.detach(), terms.back.detach()
        if self.face_embedder is not None:
            id_loss = self._id_loss(batch, noised, pred, x0_hat)
            total = total + c.id_loss_weight * id_loss
            losses["id"] = id_loss.detach()
        losses["loss"] = total
        return losses

    def _id_loss(self, batch: dict[str, Any], noised, pred: torch.Tensor, x0_hat: torch.Tensor | None) -> torch.Tensor:
        """Seed 002 Eq. 4 on the decoded x̂0 of the clips noised to t < id_loss_max_t (at most id_loss_clips of
        them, in batch order), each clip's reference crop its target; counted zero for the other clips, so the
        term is (1/B) Σ over the chosen clips of 1 − mean over frames of cos(φ(face), φ(reference))."""
        from idvid.objectives import crop_faces, id_consistency_loss, predict_x0

        c = self.c
        chosen = torch.nonzero(noised.timesteps < c.id_loss_max_t).flatten()
        if c.id_loss_clips > 0:
            chosen = chosen[:c.id_loss_clips]
        if chosen.numel() == 0:
            return pred.new_zeros((), dtype=torch.float32)
        if x0_hat is None:
            x0_hat = predict_x0(self.scheduler, noised.noisy[chosen], pred[chosen].float(), noised.timesteps[chosen])
        else:
            x0_hat = x0_hat[chosen]
        on_cpu = chosen.cpu()
        boxes = batch["face_boxes"][on_cpu].float()  # (n, T, 4) in pixels of the training frames
        if c.id_loss_window > 0:
            x0_hat, boxes = face_windows(x0_hat, boxes, c.id_loss_window, self.run_config.data.size)
        frames = self.model.decode(x0_hat.to(self.model.dtype))  # (n, T', 3, H, W)
        t = min(frames.shape[1], boxes.shape[1])
        crops = crop_faces(frames[:, :t].float(), boxes[:, :t].to(frames.device))
        reference = _uint8_to_unit(batch["face_crop"][on_cpu]).to(frames.device)
        return id_consistency_loss(self.face_embedder, crops, reference) * (chosen.numel() / noised.timesteps.numel())

    def _decoder_tune_losses(self, batch: dict[str, Any], ctx: StepContext,
                             timesteps: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The decoder on what the frozen DiT makes: x̂0 of the clip noised to t < decoder_tune_max_t, with the
        clip's full conditioning (as in sampling), decoded and compared with the true frames."""
        from idvid.objectives import frame_identity_loss, noise_batch, predict_x0
        from idvid.train.vae_task import face_weighted_l1

        c, model, g = self.c, self.model, ctx.generator
        z0, ref_latent, _, _ = self._inputs(batch, ctx)
        if timesteps is None:
            timesteps = torch.randint(0, c.decoder_tune_max_t, (z0.shape[0],), generator=g).to(z0.device)
        with torch.no_grad():
            text, ids, motion = self._conditions(batch, ref_latent, list(batch["prompt"]), list(batch["action_phrase"]))
            noised = noise_batch(self.scheduler, z0, timesteps=timesteps, generator=g)
            pred = model(noised.noisy, noised.timesteps, text, ids, motion)
            x0_hat = predict_x0(self.scheduler, noised.noisy, pred.float(), noised.timesteps)
        x = _uint8_to_unit(batch["frames"])  # (B, T, 3, H, W)
        rec = model.decode(x0_hat.to(model.dtype))[:, : x.shape[1]].float()
        l1 = face_weighted_l1(rec, x, batch["face_mask"][:, :, None], c.decoder_tune_face_weight)  # mask (B, T, 1, H, W)
        losses = {"l1": l1.detach()}
        total = l1
        if self.face_embedder is not None:
            id_loss = frame_identity_loss(self.face_embedder, rec.transpose(1, 2), x.transpose(1, 2), batch["face_boxes"])
            total = total + c.id_loss_weight * id_loss
            losses["id"] = id_loss.detach()
        return {"loss": total, **losses}

    # -- validation
    def validation_set(self) -> Dataset:
        from idvid.train.dataset import build_dataset

        if self._validation_set is None:
            cfg = self.run_config
            self._validation_set = build_dataset(cfg.data, cfg.run_dir, "validation", cfg.seed,
                                                 num_validation=cfg.validation.num_samples, progress=False)
        return self._validation_set

    @torch.no_grad()
    def validate(self, ctx: ValidationContext) -> dict[str, float]:
        """Loss on validation identities (seeds in [1e6, 2e6), never trained on) at fixed timesteps and
        fixed noise, with the identity and without it: `val_id_gain` = loss(no id) − loss(id) > 0 means the
        model uses the reference."""
        from idvid.train.dataset import collate

        self.eval()
        ds = self.validation_set()
        device = ctx.accelerator.device
        sums: dict[str, float] = {}
        for i in range(len(ds)):
            item = collate([ds[(0, i)]] * len(VALIDATION_TIMESTEPS))
            batch = self.move_batch(item, device)
            t = torch.tensor(VALIDATION_TIMESTEPS, device=device)
            for tag, use_id in (("", True),) if self.c.decoder_tune_max_t > 0 else (("", True), ("_noid", False)):
                sc = StepContext(step=ctx.step, micro=i, generator=ctx.generator(salt=i), device=device, training=False)
                losses = self.compute_losses(batch, sc, timesteps=t, use_identity=use_id)
                for k, v in losses.items():
                    sums[f"val_{k}{tag}"] = sums.get(f"val_{k}{tag}", 0.0) + float(v) / len(ds)
        if "val_diff_noid" in sums:
            sums["val_id_gain"] = sums["val_diff_noid"] - sums["val_diff"]
        return sums

    # -- export
    def export(self, folder: str | Path, weights: dict[str, torch.Tensor] | None = None) -> Path:
        """Write a model folder (IdentityVideoModel.save_pretrained + scheduler/), with `weights` (e.g. the
        EMA) loaded into the trainable parameters for the save."""
        folder = Path(folder)
        with self.weights_swapped_in(weights):
            self.model.save_pretrained(folder)
        self.scheduler.save_pretrained(folder / "scheduler")
        return folder
