"""`IDVideoPipeline`: reference photo + prompt -> a video of that person (identity-preserving T2V).

    reference image --face analysis--> aligned 112x112 crop + SFace embedding   (local ID: Q-Former tokens)
                    --framing--------> square portrait at the video size --VAE--> reference latent (global ID)
    prompt ---------> text embeddings; its action phrase (or `action`) + motion intensity -> motion control
    noise --DPM-Solver++ with classifier-free guidance over (text, identity)--> latents --VAE--> frames

`mode="decoupled"` (seed 003, spatial–temporal decoupled generation; needs a model with
`backbone.frame_condition`) makes the video in two stages with the same model:

    T2I  the reference portrait's head region (background removed: idvid.models.frame_condition) + the
         Spatial Semantic Parser's prompt (idvid.text.prompts.spatial_prompt: the action becomes "looks at
         the camera"), motion intensity 0, one latent frame -> the first frame, face kept, scene painted
    I2V  that first frame's latent known in frame 0 (VACE's F = {I_first} + {0}×n) + the full prompt and the
         motion condition -> the video

`first_frame_source="t2v"` makes the first frame from a T2V sample instead of the T2I stage: that sample's
first latent frame outside the head region, the reference portrait's latent inside it (the clothing and
scene of one-stage T2V, which the T2I stage paints less reliably on the laptop model; docs/training.md).
The T2V pass starts from the same noise as the I2V stage. `first_frame_source="t2v-head"` makes that T2V pass
around the reference's head instead: after every step the head region of latent frame 0 is the reference's head
latent noised to the next step's level (inpainting by blending, as diffusers' inpainting pipelines do for models
without mask channels), so the scene is painted to fit the head. `mode="t2v-head"` keeps that pass as the video
(one sampling loop; needs the reference latent, not frame conditioning). `first_frame=` skips the first-frame
stage and animates a given image (plain I2V).

`first_frame_init=s` (0 < s < 1) starts the I2V pass from the first frame instead of from pure noise: the clip
that holds it still for every frame is encoded, noised to the level after the first ⌊s·steps⌋ steps, and sampled
from there (SDEdit's start, applied to I2V as ConsistI2V's FrameInit does with a low-pass of that clip; with this
zero-terminal-SNR schedule the first step's level is pure noise, so the start is moved instead). The early steps,
which draw the layout, then begin where the first frame is; those steps are saved, too.

The unconditional branch drops the text (empty prompt) and the whole identity (no ID tokens, no reference
latent), as training does for `task.id_dropout`/`text_dropout`; the motion condition is kept in both
branches, so guidance amplifies who and what, not how much motion.

A pipeline folder (`save_pretrained`) holds `model/` (an `IdentityVideoModel` folder), `scheduler/` (the
DPM-Solver config) and `pipeline.json` (defaults: frames, steps, guidance, motion intensity, framing).
`from_pretrained` reads it back; nothing is downloaded.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

try:  # diffusers >= 0.35 keeps it in the guiders, which do not import transformers
    from diffusers.guiders.guider_utils import rescale_noise_cfg
except ImportError:  # older diffusers: the Stable Diffusion pipeline module (imports transformers' CLIP)
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from diffusers.utils import BaseOutput

from idvid.errors import InputError, NoFaceFound

log = logging.getLogger(__name__)

PIPELINE_FILE = "pipeline.json"
MODES = ("t2v", "decoupled", "t2v-head")
FIRST_FRAME_SOURCES = ("t2i", "t2v", "t2v-head")
# Where a face sits in the portraits the model was trained on (synthetic references, measured with YuNet
# on 20 identities): box width 0.41 of the frame, centre at (0.50, 0.47) of it.
REFERENCE_FACE_WIDTH = 0.41
REFERENCE_FACE_CENTRE = (0.50, 0.47)


@dataclass
class PipelineDefaults:
    """What `__call__` uses for arguments left out; saved as pipeline.json."""

    num_frames: int = 17  # also the most the model generates (it was trained on this many)
    num_inference_steps: int = 20
    guidance_scale: float = 5.0
    guidance_rescale: float = 0.0  # φ of Lin et al. 2023 §3.4 for zero-terminal-SNR schedules (0: plain CFG)
    # g_id: guidance of the identity apart from the text's (None: text and identity guided together by g)
    identity_guidance_scale: float | None = None
    motion_intensity: float = 3.0  # MotionCharacter's intensity scale (seed 002 Eq. 7), 0 .. 20
    # g_m: guidance of the motion intensity, ε += g_m (ε(I) − ε(0)) on the video pass (0: off, one call fewer)
    motion_guidance_scale: float = 0.0
    # g_m only at timesteps >= this (0: every step): the noisy steps lay out the motion, the rest refine without it
    motion_guidance_min_t: int = 0
    size: int = 128  # frame height and width in pixels
    face_width: float = REFERENCE_FACE_WIDTH
    face_centre: tuple[float, float] = REFERENCE_FACE_CENTRE
    mode: str = "t2v"  # "t2v": one stage; "decoupled": first frame, then I2V (seed 003); "t2v-head": one stage, head held
    first_frame_source: str = "t2i"  # decoupled mode: "t2i" (the T2I stage), "t2v" or "t2v-head" (a T2V sample's frame 0)
    # decoupled mode: the I2V pass starts from the first frame held still, noised to the level after this fraction
    # of its steps (the steps before are skipped); 0: from pure noise
    first_frame_init: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineDefaults:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "face_centre" in known:
            known["face_centre"] = tuple(known["face_centre"])
        return cls(**known)


@dataclass
class Reference:
    """A reference photo prepared for the model."""

    portrait: np.ndarray  # (S, S, 3) uint8: the photo cropped around the face like the training portraits
    crop: np.ndarray  # (112, 112, 3) uint8 aligned face (ArcFace 5-point template)
    embedding: np.ndarray  # (128,) float32 SFace embedding
    box: tuple[float, float, float, float]  # the face in the original photo
    num_faces: int


@dataclass
class IDVideoPipelineOutput(BaseOutput):
    frames: np.ndarray | torch.Tensor  # (T, H, W, 3) uint8 ("np"), (T, 3, H, W) in [-1, 1] ("pt") or latents
    reference: Reference | None = None
    action_phrase: str = ""
    motion_intensity: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def _portrait_transform(box: tuple[float, float, float, float], size: int, face_width: float,
                        face_centre: tuple[float, float]) -> tuple[float, float, float]:
    """(scale, left, top) of the framing: photo point (x, y) -> portrait point ((x − left)·scale, (y − top)·scale),
    which gives the face `box` a width of face_width·size, centred at face_centre·size."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, 1.0) / face_width
    left = (x0 + x1) / 2 - face_centre[0] * side
    top = (y0 + y1) / 2 - face_centre[1] * side
    return size / side, left, top


def portrait_box(box: tuple[float, float, float, float], size: int, face_width: float = REFERENCE_FACE_WIDTH,
                 face_centre: tuple[float, float] = REFERENCE_FACE_CENTRE) -> tuple[float, float, float, float]:
    """Where `frame_portrait` puts the face `box`."""
    scale, left, top = _portrait_transform(box, size, face_width, face_centre)
    x0, y0, x1, y1 = box
    return ((x0 - left) * scale, (y0 - top) * scale, (x1 - left) * scale, (y1 - top) * scale)


def frame_portrait(image: np.ndarray, box: tuple[float, float, float, float], size: int,
                   face_width: float = REFERENCE_FACE_WIDTH,
                   face_centre: tuple[float, float] = REFERENCE_FACE_CENTRE) -> np.ndarray:
    """Crop `image` to a square in which the face `box` has the training portraits' size and place, then
    resize to `size`; parts outside the photo repeat its border."""
    scale, left, top = _portrait_transform(box, size, face_width, face_centre)
    m = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def valid_frame_counts(limit: int) -> list[int]:
    """Frame counts the VAE decodes exactly (1, 9, 17, 25, ...) up to `limit`."""
    from idvid.train.vae_task import decodes_to_same_length

    return [n for n in range(1, limit + 1) if decodes_to_same_length(n)]


class IDVideoPipeline(DiffusionPipeline):
    """Identity-preserving text-to-video with an `idvid.models.IdentityVideoModel`; see the module docstring."""

    model_cpu_offload_seq = "model"

    def __init__(self, model, scheduler: DPMSolverMultistepScheduler, defaults: PipelineDefaults | None = None):
        super().__init__()
        self.register_modules(model=model, scheduler=scheduler)
        self.defaults = defaults or PipelineDefaults()
        self._analyzer = None

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def scheduler_from_training(config: dict[str, Any]) -> DPMSolverMultistepScheduler:
        """DPM-Solver++ (2nd order) on the noise schedule the model was trained with."""
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type",
                "rescale_betas_zero_snr", "timestep_spacing")
        return DPMSolverMultistepScheduler.from_config(
            {k: config[k] for k in keys if k in config},
            algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero")

    def save_pretrained(self, folder: str | Path, **_: Any) -> Path:  # noqa: D102 (see the module docstring)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder / "model")
        self.scheduler.save_pretrained(folder / "scheduler")
        (folder / PIPELINE_FILE).write_text(json.dumps(asdict(self.defaults), indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> IDVideoPipeline:
        """Load a folder written by `save_pretrained` (or by `idvid train --export` of an identity model:
        then the model is the folder itself and the scheduler comes from its training schedule)."""
        from idvid.models import IdentityVideoModel

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: no such model folder")
        if (folder / "model").is_dir():
            model = IdentityVideoModel.from_pretrained(folder / "model")
            scheduler = DPMSolverMultistepScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
            defaults = PipelineDefaults.from_dict(json.loads((folder / PIPELINE_FILE).read_text())) \
                if (folder / PIPELINE_FILE).is_file() else PipelineDefaults()
        elif (folder / "model_config.yaml").is_file():
            model = IdentityVideoModel.from_pretrained(folder)
            train_sched = folder / "scheduler" / "scheduler_config.json"
            if not train_sched.is_file():
                raise InputError(f"{folder}: no scheduler/scheduler_config.json (export it with `idvid train --export`)")
            scheduler = cls.scheduler_from_training(json.loads(train_sched.read_text()))
            tc = model.transformer.config
            spatial = 2 ** (len(model.vae.config.block_out_channels) - 1) if model.vae is not None else 8
            defaults = PipelineDefaults(num_frames=tc.sample_frames, size=tc.sample_height * spatial)
        else:
            raise InputError(f"{folder}: not an idvid pipeline or model folder (no model/ or model_config.yaml)")
        model.eval().requires_grad_(False)
        return cls(model, scheduler, defaults)

    # ------------------------------------------------------------------ inputs
    @property
    def analyzer(self):
        if self._analyzer is None:
            from idvid.faces import get_default_analyzer

            self._analyzer = get_default_analyzer()
        return self._analyzer

    def prepare_reference(self, image: np.ndarray | str | Path) -> Reference:
        """Face analysis of the reference photo: the largest face is the identity (a warning when there are
        more). Raises `NoFaceFound` when there is none."""
        from idvid.io import load_image

        if not isinstance(image, np.ndarray):
            image = load_image(image)
        fa = self.analyzer
        faces = fa.detect(image)
        if not faces:
            raise NoFaceFound("no face found in the reference image; give a photo in which one face is clearly visible")
        face = max(faces, key=lambda f: f.area)
        if len(faces) > 1:
            log.warning("%d faces in the reference image; using the largest", len(faces))
        d = self.defaults
        return Reference(
            portrait=frame_portrait(image, face.box, d.size, d.face_width, tuple(d.face_centre)),
            crop=fa.align(image, face),
            embedding=fa.embed(image, face, model="sface").astype(np.float32),
            box=tuple(float(v) for v in face.box),
            num_faces=len(faces),
        )

    def frame_plan(self, num_frames: int) -> int:
        """The frame count to generate for `num_frames` requested (the next one the VAE decodes exactly;
        the extra frames are dropped). Raises InputError beyond what the model supports."""
        limit = self.defaults.num_frames
        if num_frames < 1:
            raise InputError(f"--frames must be at least 1, got {num_frames}")
        if num_frames > limit:
            raise InputError(f"this model generates at most {limit} frames, {num_frames} were asked; "
                             f"pass --frames {limit} or fewer")
        return next(n for n in valid_frame_counts(limit) if n >= num_frames)

    @staticmethod
    def _unit(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 127.5 - 1

    @torch.no_grad()
    def identity_inputs(self, ref: Reference):
        """The model's identity condition from an analysed reference (SFace embedding, aligned crop and the
        framed portrait's VAE latent); None for a model with no identity path."""
        from idvid.models import IdentityInputs

        model = self.model
        if model.id_encoder is None and not model.config.backbone.reference_latent:
            return None
        device = model.device
        ref_latent = model.encode_reference(self._unit(ref.portrait).to(device)) \
            if model.config.backbone.reference_latent else None
        return IdentityInputs(face_embedding=torch.from_numpy(ref.embedding)[None].to(device),
                              face_crop=self._unit(ref.crop).to(device), reference_latent=ref_latent)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        reference: np.ndarray | str | Path | Reference,
        prompt: str,
        action: str | None = None,
        motion_intensity: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        identity_guidance_scale: float | None = None,
        motion_guidance_scale: float | None = None,
        motion_guidance_min_t: int | None = None,
        generator: torch.Generator | int | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        mode: str | None = None,
        first_frame: np.ndarray | str | Path | None = None,
        first_frame_source: str | None = None,
        first_frame_init: float | None = None,
    ) -> IDVideoPipelineOutput:
        """Generate a video of the person in `reference` doing what `prompt` says.

        Classifier-free guidance with scale g guides text and identity together: ε = ε(∅) + g (ε(c, id) − ε(∅)).
        `identity_guidance_scale` g_id separates them (three model calls a step instead of two):
        ε = ε(∅) + g (ε(c) − ε(∅)) + g_id (ε(c, id) − ε(c)); g_id = g is the two-call formula again.
        Both branches get the same action phrase and motion intensity I, so text guidance leaves how much the
        person moves to the model; `motion_guidance_scale` g_m > 0 amplifies it on the pass that makes the video:
        ε += g_m (ε(c, id, I) − ε(c, id, 0)) (one more call a step; none at I = 0, where the term is zero), at the
        timesteps t >= `motion_guidance_min_t` only (0: all; guidance in a limited interval, Kynkäänniemi et al. 2024).
        A frame condition (decoupled mode) is given to every branch: guidance amplifies who and what, not the
        known frame.

        `action`: the action phrase for motion control (default: extracted from the prompt). `generator`:
        a torch.Generator or an int seed; the same seed gives the same frames. `output_type`: "np" (uint8
        frames), "pt" (float frames in [-1, 1]) or "latent". `mode`: "t2v", "decoupled" or "t2v-head" (default: the
        pipeline's). `first_frame`: an image (at the video size or resized to it) to animate, instead of the
        decoupled mode's T2I stage. `first_frame_source`: "t2i", "t2v" or "t2v-head", where the decoupled mode's first
        frame comes from (default: the pipeline's; see the module docstring). `first_frame_init`: the fraction of the
        I2V pass's steps replaced by starting from the still first frame (decoupled mode; module docstring)."""
        from idvid.models.frame_condition import (
            first_frame_condition,
            head_region_mask,
            region_condition,
            training_like_box,
        )
        from idvid.text.prompts import STILL_PHRASE, extract_action_phrase, spatial_prompt

        d, model = self.defaults, self.model
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty; describe the video, e.g. --prompt \"she smiles and turns to her left\"")
        if output_type not in ("np", "pt", "latent"):
            raise InputError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        mode = d.mode if mode is None else mode
        if first_frame is not None:
            mode = "decoupled"
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        source = d.first_frame_source if first_frame_source is None else first_frame_source
        if source not in FIRST_FRAME_SOURCES:
            raise InputError(f"first_frame_source must be one of {', '.join(FIRST_FRAME_SOURCES)}, got {source!r}")
        if mode == "decoupled" and not model.config.backbone.frame_condition:
            raise InputError("this model cannot start from a first frame (it was trained without frame conditioning); "
                             "use mode 't2v'")
        steps = int(num_inference_steps or d.num_inference_steps)
        if steps < 1:
            raise InputError(f"--steps must be at least 1, got {steps}")
        guidance = float(d.guidance_scale if guidance_scale is None else guidance_scale)
        if guidance < 0:
            raise InputError(f"--guidance must be >= 0, got {guidance}")
        rescale = float(d.guidance_rescale if guidance_rescale is None else guidance_rescale)
        if not 0 <= rescale <= 1:
            raise InputError(f"--guidance-rescale must be in [0, 1], got {rescale}")
        id_guidance = d.identity_guidance_scale if identity_guidance_scale is None else identity_guidance_scale
        id_guidance = guidance if id_guidance is None else float(id_guidance)
        if id_guidance < 0:
            raise InputError(f"--identity-guidance must be >= 0, got {id_guidance}")
        init = float(d.first_frame_init if first_frame_init is None else first_frame_init)
        if not 0 <= init < 1:
            raise InputError(f"--first-frame-init must be in [0, 1), got {init:g}")
        motion_guidance = float(d.motion_guidance_scale if motion_guidance_scale is None else motion_guidance_scale)
        if motion_guidance < 0:
            raise InputError(f"--motion-guidance must be >= 0, got {motion_guidance:g}")
        motion_min_t = int(d.motion_guidance_min_t if motion_guidance_min_t is None else motion_guidance_min_t)
        if not 0 <= motion_min_t < self.scheduler.config.num_train_timesteps:
            raise InputError(f"--motion-guidance-min-t must be in [0, {self.scheduler.config.num_train_timesteps}), "
                             f"got {motion_min_t}")
        intensity = float(d.motion_intensity if motion_intensity is None else motion_intensity)
        max_intensity = 20.0
        if "motion" in model.injections:
            max_intensity = model.injections["motion"].config.max_intensity
        if not 0 <= intensity <= max_intensity:
            raise InputError(f"--motion-intensity must be in [0, {max_intensity:g}], got {intensity:g}")
        wanted = int(num_frames or d.num_frames)
        frames_out = self.frame_plan(wanted)
        if isinstance(generator, int):
            generator = torch.Generator("cpu").manual_seed(generator)
        ref = reference if isinstance(reference, Reference) else self.prepare_reference(reference)
        phrase = (action or "").strip() or extract_action_phrase(prompt)
        guide = dict(steps=steps, guidance=guidance, rescale=rescale, id_guidance=id_guidance, generator=generator)

        device, dtype = model.device, model.dtype
        text = model.encode_text([prompt])
        uncond_text = model.encode_text([""])
        motion = model.motion_inputs([phrase], [intensity]) if "motion" in model.injections else None
        # the pass that makes the video also gets motion guidance, against the same phrase at intensity 0
        video_guide = guide
        if motion is not None and motion_guidance > 0 and intensity > 0:
            still_motion = replace(motion, intensity=torch.zeros_like(motion.intensity))
            video_guide = dict(guide, motion_guidance=(motion_guidance, still_motion, motion_min_t))
        ids = self.identity_inputs(ref)

        # latents (1, F', C, h, w), drawn on the CPU so a seed means the same noise everywhere
        tc = model.transformer.config
        f_lat = (frames_out - 1) // tc.temporal_compression_ratio + 1
        shape = (1, f_lat, model.latent_channels, tc.sample_height, tc.sample_width)
        if latents is None:
            latents = torch.randn(shape, generator=generator, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device)

        condition, first_image, head = None, None, None
        if mode == "t2v-head" or (mode == "decoupled" and first_frame is None):  # the reference's head region
            if ids is None or ids.reference_latent is None:
                raise InputError(f"mode {mode!r} starts from the reference's head, which needs a model with the "
                                 "reference latent; use mode 't2v'")
            # the face in the framed portrait, moved to where training's ground-truth boxes put it
            box = training_like_box(portrait_box(ref.box, d.size, d.face_width, tuple(d.face_centre)))
            known = head_region_mask(torch.tensor([box], device=device), (d.size, d.size), tuple(shape[3:]))
            head = region_condition(ids.reference_latent.float(), known)
        if mode == "t2v-head":  # one T2V pass made around the reference's head in its first frame
            latents = self._denoise(latents, text, uncond_text, ids, motion, None, inpaint=self._in_frame_0(head, shape),
                                    **video_guide)
        elif mode == "decoupled":
            if first_frame is not None:  # plain I2V from the user's image
                first_image = self._fit_image(first_frame)
                first = model.encode_reference(self._unit(first_image).to(device))
            else:  # the reference's head in a generated scene
                if source in ("t2v", "t2v-head"):  # a T2V sample's frame 0, the reference's head pasted in (or held)
                    inpaint = self._in_frame_0(head, shape) if source == "t2v-head" else None
                    sample = self._denoise(latents, text, uncond_text, ids, motion, None, inpaint=inpaint, **guide)
                    first = head.paste(sample[:, :1].float())[:, 0]
                else:  # T2I: the scene from the spatial prompt, no motion
                    still = model.motion_inputs([STILL_PHRASE], [0.0]) if "motion" in model.injections else None
                    noise = torch.randn((1, 1, *shape[2:]), generator=generator, dtype=torch.float32).to(device)
                    first = self._denoise(noise, model.encode_text([spatial_prompt(prompt)]), uncond_text, ids,
                                          still, head, **guide)[:, 0]
                first_image = self._to_uint8(model.decode(first[:, None].to(dtype))[0, :1].float().clamp(-1, 1))[0]
            condition = first_frame_condition(latents, first.float())
            start, skip = None, int(init * steps)
            if skip > 0:  # the first frame held still, as the VAE encodes such a clip
                still = self._unit(first_image).to(device).expand(frames_out, -1, -1, -1)[None]
                start = (condition.paste(model.encode_video(still.to(dtype)).float()), skip)
            latents = self._denoise(latents, text, uncond_text, ids, motion, condition, start=start, **video_guide)
        else:
            latents = self._denoise(latents, text, uncond_text, ids, motion, None, **video_guide)

        info = dict(steps=steps, guidance=guidance, guidance_rescale=rescale, identity_guidance=id_guidance,
                    motion_guidance=motion_guidance, motion_guidance_min_t=motion_min_t, frames=wanted,
                    generated_frames=frames_out, mode=mode)
        if mode == "decoupled":
            info["first_frame_init"] = init
        if mode == "decoupled" and first_frame is None:
            info["first_frame_source"] = source
        if first_image is not None:
            info["first_frame"] = first_image
        out = dict(reference=ref, action_phrase=phrase, motion_intensity=intensity, info=info)
        if output_type == "latent":
            return IDVideoPipelineOutput(frames=latents, **out)
        video = model.decode(latents.to(dtype))[0, :wanted].float().clamp(-1, 1)  # (T, 3, H, W)
        if output_type == "pt":
            return IDVideoPipelineOutput(frames=video, **out)
        return IDVideoPipelineOutput(frames=self._to_uint8(video), **out)

    @staticmethod
    def _to_uint8(video: torch.Tensor) -> np.ndarray:
        """(T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
        return ((video.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()

    @staticmethod
    def _in_frame_0(head, shape: tuple[int, ...]):
        """The one-frame head condition `head` as latent frame 0 of a video of latent `shape` (nothing known after)."""
        from idvid.models.frame_condition import FrameCondition

        rest = (shape[0], shape[1] - 1)
        return FrameCondition(torch.cat([head.latents, head.latents.new_zeros((*rest, *shape[2:]))], 1),
                              torch.cat([head.known, head.known.new_zeros((*rest, 1, *shape[3:]))], 1))

    def _fit_image(self, image: np.ndarray | str | Path) -> np.ndarray:
        """An RGB image at the video size (centre-cropped to a square, then resized)."""
        from idvid.io import load_image

        if not isinstance(image, np.ndarray):
            image = load_image(image)
        h, w = image.shape[:2]
        side = min(h, w)
        image = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        size = self.defaults.size
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=interp))

    def _denoise(self, latents: torch.Tensor, text: torch.Tensor, uncond_text: torch.Tensor, ids, motion, condition,
                 steps: int, guidance: float, rescale: float, id_guidance: float, generator,
                 inpaint=None, motion_guidance: tuple[float, Any, int] | None = None,
                 start: tuple[torch.Tensor, int] | None = None) -> torch.Tensor:
        """The sampling loop from noise `latents`; the known latents of `condition` are pasted into the result.

        `inpaint` (a FrameCondition the model is not given): after every step its known latents, noised with the
        starting noise to the next step's level, replace the sample's there (the blend of diffusers' inpainting
        pipelines for models without mask channels), so the rest is made around them; the result holds them exactly.
        `motion_guidance` (g_m, the motion inputs at intensity 0, min_t) adds g_m (ε(cond) − ε(cond at 0)) to every
        step at a timestep >= min_t.
        `start` (clean latents, k): skip the first k steps and start from those latents noised with `latents` (the
        starting noise) to the level of step k (the start of diffusers' image-to-image pipelines)."""
        from idvid.models.frame_condition import FrameCondition

        model, dtype = self.model, self.model.dtype
        separate_identity = ids is not None and id_guidance != guidance
        self.scheduler.set_timesteps(steps, device=latents.device)
        noise = latents
        timesteps = self.scheduler.timesteps
        if start is not None:
            clean, skip = start
            timesteps = timesteps[skip:]
            self.scheduler.set_begin_index(skip)  # the solver (and add_noise) count steps from there
            latents = self.scheduler.add_noise(clean.to(noise.dtype), noise, timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        # a stochastic solver (e.g. algorithm_type "sde-dpmsolver++") draws its noise from the seed's generator
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        for i, t in enumerate(self.progress_bar(timesteps)):
            x = self.scheduler.scale_model_input(latents, t).to(dtype)
            cond = model(x, t, text, ids, motion, condition=condition).float()
            if separate_identity:
                uncond = model(x, t, uncond_text, None, motion, condition=condition).float()
                text_only = model(x, t, text, None, motion, condition=condition).float()
                pred = uncond + guidance * (text_only - uncond) + id_guidance * (cond - text_only)
                if rescale > 0:
                    pred = rescale_noise_cfg(pred, cond, guidance_rescale=rescale)
            elif guidance != 1.0:
                uncond = model(x, t, uncond_text, None, motion, condition=condition).float()
                pred = uncond + guidance * (cond - uncond)
                if rescale > 0:  # pull the guided prediction's std back toward the conditional one's
                    pred = rescale_noise_cfg(pred, cond, guidance_rescale=rescale)
            else:
                pred = cond
            if motion_guidance is not None and t >= motion_guidance[2]:  # after rescaling: it steers motion, not the std
                g_m, still, _ = motion_guidance
                pred = pred + g_m * (cond - model(x, t, text, ids, still, condition=condition).float())
            latents = self.scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]
            if inpaint is not None:
                known = inpaint.latents.to(latents.dtype)
                if i + 1 < len(timesteps):
                    known = self.scheduler.add_noise(known, noise.to(latents.dtype), timesteps[i + 1:i + 2])
                latents = FrameCondition(known, inpaint.known).paste(latents)
        return condition.paste(latents) if condition is not None else latents


def default_model_path() -> Path:
    """The bundled default pipeline folder (idvid/assets/default_model)."""
    return Path(__file__).resolve().parent.parent / "assets" / "default_model"


def sample_reference_path() -> Path:
    """The bundled sample reference: a synthetic person from the held-out seed range (never trained on)."""
    return Path(__file__).resolve().parent.parent / "assets" / "samples" / "reference.png"


def load_pipeline(path: str | Path | None = None, threads: int | None = None) -> IDVideoPipeline:
    """The pipeline in `path` (a pipeline or exported model folder), or the bundled default model."""
    if threads:
        torch.set_num_threads(threads)
    folder = Path(path) if path is not None else default_model_path()
    if path is None and not (folder / PIPELINE_FILE).is_file():
        raise InputError(f"the bundled default model is missing from {folder}; reinstall idvid or pass --model")
    return IDVideoPipeline.from_pretrained(folder)


__all__ = ["IDVideoPipeline", "IDVideoPipelineOutput", "PipelineDefaults", "Reference", "frame_portrait", "portrait_box",
           "load_pipeline", "default_model_path", "sample_reference_path", "valid_frame_counts"]
