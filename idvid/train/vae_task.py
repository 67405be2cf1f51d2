"""Training the video VAE (diffusers `AutoencoderKLCogVideoX`) on identity-video clips.

The tiny laptop model needs its own VAE: a random one gives the denoiser meaningless latents. This task
trains one on the same clips the identity model sees (rendered or pre-rendered, training identities only):

    posterior = E(x);  z ~ posterior (from the step's generator) [+ latent_noise · ε / scale];  x̂ = D(z)
    l1     = mean |x̂ − x| · (1 + face_weight · M)      M = the face mask: faces are what must survive
    kl     = mean ½ (μ² + σ² − 1 − log σ²)
    id     = 1 − mean_frames cos(φ(crop(x̂)), φ(crop(x)))   φ: the differentiable face embedder (optional)
    chroma = mean |o(x̂) − o(x)|   o: the opponent chroma axes yellow−blue (R+G)/2 − B and green−magenta G − (R+B)/2
    anchor = mean (s · (μ − μ₀))²   μ₀: the posterior mean of the `init` VAE's frozen encoder, s its latent scale
    loss   = l1_weight · l1 + mse_weight · mean (x̂ − x)² + kl_weight · kl + id_loss_weight · id
             + chroma_weight · chroma + anchor_weight · anchor

The identity term is MotionCharacter's ID-consistency loss with each frame's own face as its target
(idvid.objectives.identity.frame_identity_loss): L1 rewards the blur that averages away what tells one face
from another, the embedder does not. `train_mode: adapter` with `init` trains the decoder only: the encoder,
every latent cached with it and the latent scaling factor stay as they were, so a DiT trained on them runs
unchanged on the new decoder.

`chroma_weight` exists because an L1 on RGB let the laptop VAE drop a whole colour axis: its latents carry
luminance and yellow−blue (linear-probe R² 0.97 and 0.93 on clothing colours) but not green−magenta (R² < 0),
so teal came back navy and pink beige (docs/training.md, session 14; short runs with the term did not bring the
axis back). `anchor_weight` lets the encoder learn what it lacks while its latents stay near those a DiT was
trained on (the latent scale is then kept as well).

`colour_whitening` trains the VAE on frames whose colours are whitened (ZCA of the training frames' pixel
colours, overall scale kept): x_w = W x in, x̂ = W⁻¹ D(E(x_w)) out. The synthetic world's colour covariance has
eigenvalues 17 : 8 : 1 (luminance largest, green−magenta smallest), and a deep network learns an input−output
mode at a rate set by its strength in the input−target correlation (Saxe et al., 2014): an RGB VAE learns
green−magenta last, and the laptop VAE never did. W is linear and per pixel, so it commutes with the
convolutions' zero padding and is folded exactly into the encoder's first and the decoder's last convolution on
export: the exported VAE is a plain RGB `AutoencoderKLCogVideoX`. With `init` the init's convolutions are
unfolded first (W⁻¹ into conv_in, W into conv_out), so training starts from exactly the init's function.
`whitened_loss` compares whitened colours too: with the input alone whitened, the target side still leaves
green−magenta ~4× slower than luminance; whitening both makes every colour axis equally fast (docs/training.md,
session 15: only both put the axis in the latent).

`extra_latent_channels` (with `init`) adds latent channels to the init VAE: the encoder gets new posterior rows
and every decoder convolution that reads the latent (conv_in and each spatial norm's conv_y / conv_b) zero
columns for them, so training starts from exactly the init's reconstruction and, with `anchor_weight`, the old
channels keep their meaning. That lets a VAE learn what its full latent lacks (session 16: v12's 8 channels
had no room for green−magenta under an anchor) while a DiT trained on the old channels can be widened the same
way (idvid.models.backbone). The new rows start as a least-squares fit of the colour the init loses
(`_fit_added_channels`; a random start left the channel empty), and on export the new channels are scaled to
the old ones' spread.

On export the latent scaling factor is set to 1 / std of the latents of the validation clips (as the LDM
and CogVideoX VAEs are normalised), and the VAE is written with `save_pretrained` — a folder that
`task.vae_path` of the identity task (or `BackboneConfig`) reads.

CogVideoX's decoder restores 4k + 1 frames only for even k (it decodes latent frames in pairs), so the
clips must have 1, 9, 17, 25, ... frames.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from idvid.errors import InputError
from idvid.objectives.identity import frame_identity_loss
from idvid.train.config import TaskConfig, TrainConfig, _check
from idvid.train.task import StepContext, TrainTask, ValidationContext


def decodes_to_same_length(frames: int) -> bool:
    """Whether CogVideoX's VAE decodes the latents of `frames` frames back to `frames` frames."""
    return frames == 1 or (frames % 4 == 1 and ((frames - 1) // 4) % 2 == 0)


@dataclass
class VAETaskConfig(TaskConfig):
    kind: str = "vae"
    vae: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's VAE config (or of init's)
    init: str | None = None  # start from this diffusers AutoencoderKLCogVideoX folder instead
    l1_weight: float = 1.0
    mse_weight: float = 0.0
    kl_weight: float = 1e-6
    face_weight: float = 1.0  # extra L1 weight on face pixels
    preset: str = "tiny"  # the VAE config task.vae overrides: "tiny" (tests) or "laptop" (the default model)
    crop: int | None = None  # train on random crop x crop windows of the clips (a convolutional VAE generalises)
    id_loss_weight: float = 0.0  # per-frame ID-consistency loss on the decoded faces (needs face_embedder)
    face_embedder: str | None = None  # safetensors of idvid.models.face_embedder.FaceEmbedder
    latent_noise: float = 0.0  # training only: Gaussian noise (std, scaled-latent units) added to z before decoding,
    # so the decoder learns to make faces of latents as imprecise as a DiT's
    chroma_weight: float = 0.0  # extra L1 on the two opponent chroma axes (see the module docstring)
    anchor_weight: float = 0.0  # keep the posterior mean near the init VAE's (scaled units); needs init
    colour_whitening: bool = False  # train on colour-whitened frames, folded back into RGB on export (see above)
    whitened_loss: bool = False  # the L1 / MSE compare whitened colours (W x̂ with W x); needs colour_whitening
    extra_latent_channels: int = 0  # latent channels added to init's, zero-initialised in the decoder (see above)

    def __post_init__(self) -> None:
        for name in ("l1_weight", "mse_weight", "kl_weight", "face_weight", "id_loss_weight", "latent_noise",
                     "chroma_weight", "anchor_weight"):
            _check(getattr(self, name) >= 0, f"task.{name}", f"must be >= 0, got {getattr(self, name)}")
        _check(self.preset in ("tiny", "laptop"), "task.preset", f"must be 'tiny' or 'laptop', got {self.preset!r}")
        if self.crop is not None:
            _check(self.crop >= 8 and self.crop % 8 == 0, "task.crop", f"must be a multiple of 8, got {self.crop}")
        _check(self.l1_weight + self.mse_weight > 0, "task.l1_weight", "l1_weight or mse_weight must be > 0")
        if self.whitened_loss:
            _check(self.colour_whitening, "task.whitened_loss", "needs task.colour_whitening=true")
        if self.init is not None:
            _check(Path(self.init, "config.json").is_file(), "task.init", f"{self.init}: no config.json")
        if self.anchor_weight > 0:
            _check(self.init is not None, "task.init", "is required when task.anchor_weight > 0 (the latents to stay near)")
        _check(self.extra_latent_channels >= 0, "task.extra_latent_channels",
               f"must be >= 0, got {self.extra_latent_channels}")
        if self.extra_latent_channels > 0:
            _check(self.init is not None, "task.init", "is required when task.extra_latent_channels > 0 (the VAE to widen)")
        if self.id_loss_weight > 0:
            _check(self.face_embedder is not None, "task.face_embedder", "is required when task.id_loss_weight > 0")
            _check(Path(self.face_embedder).is_file(), "task.face_embedder", f"{self.face_embedder}: no such file")


def opponent_chroma(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, ...) RGB -> (B, 2, ...): yellow−blue (R+G)/2 − B and green−magenta G − (R+B)/2."""
    r, g, b = video.unbind(1)
    return torch.stack([(r + g) / 2 - b, g - (r + b) / 2], dim=1)


def colour_whitening_matrix(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3) pixel colours -> the 3x3 ZCA matrix W = U diag(s / sqrt(λ)) Uᵀ of their covariance U diag(λ) Uᵀ, with
    s² = mean λ: the whitened colours have covariance s² I (every axis as large, the total variance kept)."""
    x = pixels.double()
    cov = torch.cov(x.T)
    lam, u = torch.linalg.eigh(cov)
    lam = lam.clamp_min(lam.max() * 1e-4)  # a colour axis that never varies is not blown up to noise
    return (u @ torch.diag(lam.mean().sqrt() / lam.sqrt()) @ u.T).float()


def apply_colour_matrix(m: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """(B, 3, ...) video -> m applied to every pixel's colour."""
    return torch.einsum("ij,bj...->bi...", m.to(video), video)


def grow_latent_channels(vae, extra: int):
    """A copy of `vae` with `extra` more latent channels that reconstructs exactly as `vae` does.

    The encoder's conv_out emits [means ; log-variances]: the old rows keep their places in each half, the new
    mean rows keep their random init and the new log-variance rows are the mean of the old ones (as noisy a
    posterior). Every decoder weight that reads the latent gets zero columns for the new channels."""
    from diffusers import AutoencoderKLCogVideoX

    c = vae.config.latent_channels
    grown = AutoencoderKLCogVideoX.from_config({**vae.config, "latent_channels": c + extra})
    new_state = grown.state_dict()
    with torch.no_grad():
        for name, old in vae.state_dict().items():
            new = new_state[name]
            if new.shape == old.shape:
                new.copy_(old)
            elif name.startswith("encoder.conv_out.") and new.shape[0] == 2 * (c + extra):
                new[:c] = old[:c]
                new[c + extra : 2 * c + extra] = old[c:]
                new[2 * c + extra :] = old[c:].mean(0)
            elif _reads_latent(name):
                new.zero_()
                new[:, :c] = old
            else:
                raise ValueError(f"grow_latent_channels: {name} changes from {tuple(old.shape)} to {tuple(new.shape)}")
    return grown


def scale_latent_channels(vae, channels: slice, factor: float) -> None:
    """In place: the latent channels `channels` come out `factor`× larger and are read back `factor`× smaller,
    so the reconstruction is unchanged (the decoder's first reads of the latent are all linear in it)."""
    c = vae.config.latent_channels
    logvar = slice(c + (channels.start or 0), c + (channels.stop or c))
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.startswith("encoder.conv_out."):
                p[channels] *= factor
                if name.endswith("bias"):
                    p[logvar] += 2 * math.log(factor)
            elif _reads_latent(name):
                p[:, channels] /= factor


def _reads_latent(name: str) -> bool:
    """Whether a decoder weight is applied to the latent itself (conv_in, and every spatial norm's conv_y / conv_b)."""
    return name == "decoder.conv_in.conv.weight" or (
        name.startswith("decoder.") and name.endswith((".conv_y.conv.weight", ".conv_b.conv.weight")))


def fold_colour_matrices(vae, into_input: torch.Tensor, into_output: torch.Tensor) -> None:
    """In place: conv_in(into_input x) becomes conv_in(x), and into_output conv_out(h) becomes conv_out(h)."""
    conv_in, conv_out = vae.encoder.conv_in.conv, vae.decoder.conv_out.conv
    with torch.no_grad():
        conv_in.weight.copy_(torch.einsum("oi...,ij->oj...", conv_in.weight, into_input.to(conv_in.weight)))
        conv_out.weight.copy_(torch.einsum("ij,jo...->io...", into_output.to(conv_out.weight), conv_out.weight))
        if conv_out.bias is not None:
            conv_out.bias.copy_(into_output.to(conv_out.bias) @ conv_out.bias)


def _to_video(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def _pool_to_latent_grid(video: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """(B, C, T, H, W) averaged over the pixels each latent cell of `grid` (T', h, w) encodes: CogVideoX's causal
    VAE puts frame 0 alone in latent frame 0 and each next `(T − 1) / (T' − 1)` frames in one latent frame
    (`latent_mask`'s pooling, applied to every channel)."""
    from idvid.objectives.perceptual import latent_mask

    b, c, t, h, w = video.shape
    step = (t - 1) // (grid[0] - 1) if grid[0] > 1 else 1
    pooled = latent_mask(video.reshape(b * c, t, h, w), tuple(grid), temporal_compression=step)  # (B·C, T', 1, h, w)
    return pooled.reshape(b, c, *pooled.shape[1:2], *pooled.shape[3:])


def window_offset(size: int, crop: int, generator: torch.Generator | None) -> int:
    """Start of a random `crop`-wide window in `size` pixels, drawn so that edge pixels are trained too.

    A uniform start would put the first and last pixel in 1 of every size − crop + 1 windows against the
    middle's every one (1/65 at crop 64 of 128): the clothing at the frame's bottom edge and the background
    in its corners went nearly untrained, and their colours did not survive the round trip. The start is
    drawn uniformly from [−(crop − 1), size − 1] and clamped to [0, size − crop] instead: every pixel then
    lies in a window with probability between crop / (size + crop − 1) (the edges) and twice that."""
    u = int(torch.randint(-(crop - 1), size, (), generator=generator))
    return min(max(u, 0), size - crop)


def face_weighted_l1(rec: torch.Tensor, x: torch.Tensor, face_mask: torch.Tensor, face_weight: float) -> torch.Tensor:
    """mean |rec − x| · w / mean w, w = 1 + face_weight · M: faces weigh more, the scale stays that of plain L1.
    `face_mask` broadcasts to `rec` (size 1 on the channel axis)."""
    weight = 1 + face_weight * face_mask.float()
    return ((rec.float() - x).abs() * weight).mean() / weight.mean()


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), optionally over `mask` only."""
    err = (a.float() - b.float()).square()
    if mask is not None:
        m = mask.float().expand_as(err)
        mse = (err * m).sum() / m.sum().clamp_min(1)
    else:
        mse = err.mean()
    return float(10 * torch.log10(4.0 / mse.clamp_min(1e-10)))


class VAETask(TrainTask):
    config_class = VAETaskConfig
    find_unused_parameters = False

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        from diffusers import AutoencoderKLCogVideoX

        from idvid.models.backbone import laptop_vae_config, tiny_vae_config

        c: VAETaskConfig = config.task
        self.c = c
        if not decodes_to_same_length(config.data.frames):
            raise InputError(f"config data.frames: the VAE decodes {config.data.frames} frames back to a different "
                             "count; use 1, 9, 17, 25, 33, 41 or 49")
        if config.data.cache_latents:
            raise InputError("config data.cache_latents: the VAE task trains the encoder; it cannot use cached latents")
        if c.crop is not None and c.crop > config.data.size:
            raise InputError(f"config task.crop: {c.crop} is larger than the clips (data.size {config.data.size})")
        known = set(inspect.signature(AutoencoderKLCogVideoX.__init__).parameters) - {"self"}
        if set(c.vae) - known:  # diffusers would ignore them without a word
            raise InputError(f"config task.vae: unknown VAE option(s) {sorted(set(c.vae) - known)}; "
                             f"known: {', '.join(sorted(known))}")
        if c.init is not None:  # task.vae may change what holds no weights (norm_eps), not the shapes
            try:
                self.vae = AutoencoderKLCogVideoX.from_pretrained(c.init, local_files_only=True, **c.vae)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise InputError(f"config task.vae: cannot apply {dict(c.vae)} to task.init {c.init}: "
                                 f"{str(exc).splitlines()[0]}") from exc
            self.init_latent_channels = self.vae.config.latent_channels
            if c.extra_latent_channels:
                self.vae = grow_latent_channels(self.vae, c.extra_latent_channels)
        else:
            try:
                self.vae = AutoencoderKLCogVideoX.from_config(
                    {**(laptop_vae_config() if c.preset == "laptop" else tiny_vae_config()), **c.vae})
            except (TypeError, ValueError) as exc:
                raise InputError(f"config task.vae: {exc}") from exc
        self.decoder_only = config.train_mode == "adapter"  # nothing new to adapt: train the decoder only
        if self.decoder_only:
            self.vae.encoder.requires_grad_(False)
            if getattr(self.vae, "quant_conv", None) is not None:
                self.vae.quant_conv.requires_grad_(False)
        self._first_clips: list[torch.Tensor] | None = None  # rendered on first use by the start-up measurements
        # W and W⁻¹ (see the module docstring), measured once: the same data give the same W at resume
        self.register_buffer("colour_matrix", None, persistent=False)
        self.register_buffer("colour_matrix_inv", None, persistent=False)
        if c.colour_whitening:
            w = colour_whitening_matrix(self._training_pixels())
            self.colour_matrix, self.colour_matrix_inv = w, torch.linalg.inv(w.double()).float()
            if c.init is not None:  # start from exactly the init's function
                fold_colour_matrices(self.vae, self.colour_matrix_inv, w)
        if c.extra_latent_channels:  # after the whitening is folded in: the fit sees what training sees
            self._fit_added_channels()
        self._first_clips = None  # start-up measurements done
        self.anchor = None  # the init VAE, frozen: its posterior means are what the latents stay near
        if c.anchor_weight > 0:
            self.anchor = AutoencoderKLCogVideoX.from_pretrained(c.init, local_files_only=True).requires_grad_(False).eval()
        self.face_embedder = None
        if c.id_loss_weight > 0:
            from idvid.models.face_embedder import load_face_embedder

            self.face_embedder = load_face_embedder(c.face_embedder).requires_grad_(False).eval()
        self._validation_set: Dataset | None = None

    def train(self, mode: bool = True) -> VAETask:
        super().train(mode)
        if self.face_embedder is not None:
            self.face_embedder.eval()  # frozen: its batch-norm statistics stay as trained
        if self.decoder_only:
            self.vae.encoder.eval()
        if self.anchor is not None:
            self.anchor.eval()
        return self

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def train_dataset(self) -> Dataset:
        from idvid.train.dataset import build_dataset

        cfg = self.run_config
        return build_dataset(cfg.data, cfg.run_dir, "train", cfg.seed, progress=cfg.log.progress, references=False)

    def collate(self, items):
        from idvid.train.dataset import collate

        return collate(items)

    def _first_training_clips(self, clips: int = 16) -> list[torch.Tensor]:
        """uint8 frames (T, H, W, 3) of the first `clips` training clips, rendered once for the start-up measurements
        (colour whitening, the added channels' fit); deterministic, so the same at resume."""
        if self._first_clips is None:
            ds = self.train_dataset()
            self._first_clips = [ds[(0, i)]["frames"] for i in range(min(clips, len(ds)))]
        return self._first_clips[:clips]

    def _training_pixels(self, clips: int = 16, stride: int = 7) -> torch.Tensor:
        """(N, 3) pixel colours in [-1, 1] of the first `clips` training clips (deterministic: the same at resume)."""
        return torch.cat([f.reshape(-1, 3)[::stride].float() / 127.5 - 1 for f in self._first_training_clips(clips)])

    @torch.no_grad()
    def _fit_added_channels(self, clips: int = 16, ridge: float = 1e-3) -> None:
        """Start each added latent channel as what the init misses: the clips' colour along each principal
        direction of the init's reconstruction error (in the loss's colours, averaged over each latent cell; on the
        synthetic world the first is green−magenta), on the first `clips` training clips, predicted by least
        squares from the features the encoder's conv_out reads at the same cell and scaled to the old channels'
        spread. With the decoder's zero columns a random added channel barely
        learns (session 16: 200 steps left green−magenta at latent R² 0.03); this one carries the missing colour
        from the start, and the decoder's first gradients already point at using it."""
        old, extra = self.init_latent_channels, self.c.extra_latent_channels
        conv = self.vae.encoder.conv_out
        seen: list[torch.Tensor] = []
        hook = conv.register_forward_hook(lambda module, args, out: seen.append(args[0].float()))
        features, colours, errors, spread = [], [], [], []
        try:
            for frames in self._first_training_clips(clips):
                seen.clear()
                x, rec, post = self.reconstruct(frames[None], None, sample=False)
                if self.c.whitened_loss:
                    x, rec = apply_colour_matrix(self.colour_matrix, x), apply_colour_matrix(self.colour_matrix, rec)
                f = torch.cat(seen, dim=2)  # (1, ch, T', h, w): the latent grid
                features.append(f[0].flatten(1).T)
                errors.append(_pool_to_latent_grid(x - rec, f.shape[2:])[0].flatten(1).T)
                colours.append(_pool_to_latent_grid(x, f.shape[2:])[0].flatten(1).T)
                spread.append(post.mean[0, :old].float().std())
        finally:
            hook.remove()
        f, e = torch.cat(features).double(), torch.cat(errors).double()  # (N, ch), (N, 3)
        directions = torch.linalg.svd(e - e.mean(0), full_matrices=False).Vh[:extra]  # (extra, 3)
        target = torch.cat(colours).double() @ directions.T
        f_mean = f.mean(0)
        fc = f - f_mean
        gram = fc.T @ fc
        gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
        coef = torch.linalg.solve(gram, fc.T @ (target - target.mean(0)))  # (ch, extra)
        coef *= float(torch.stack(spread).mean()) / (fc @ coef).std(0).clamp_min(1e-8)
        weight, bias = conv.conv.weight, conv.conv.bias
        rows = slice(old, old + extra)
        weight[rows] = 0
        # the causal 3x3x3 kernel reads frame t at temporal tap 2 and the same cell at spatial tap (1, 1)
        weight[rows, :, -1, weight.shape[3] // 2, weight.shape[4] // 2] = coef.T.to(weight)
        bias[rows] = -(f_mean @ coef).to(bias)

    def reconstruct(self, frames: torch.Tensor, generator: torch.Generator | None, sample: bool = True):
        x = _to_video(frames)  # (B, 3, T, H, W)
        w = self.colour_matrix
        posterior = self.vae.encode(x if w is None else apply_colour_matrix(w, x)).latent_dist
        z = posterior.sample(generator) if sample else posterior.mode()
        if sample and self.c.latent_noise > 0:  # in units of the scaled latents (unit std), as a DiT sees them
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + noise * (self.c.latent_noise / self.vae.config.scaling_factor)
        rec = self.vae.decode(z).sample[:, :, : x.shape[2]]
        if w is not None:
            rec = apply_colour_matrix(self.colour_matrix_inv, rec)
        return x, rec, posterior

    def compute_losses(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, torch.Tensor]:
        c = self.c
        frames, mask, boxes = batch["frames"], batch["face_mask"], batch["face_boxes"]
        if c.crop is not None and ctx.training:  # one window per batch, drawn from the step's generator
            h, w = frames.shape[2:4]
            y0 = window_offset(h, c.crop, ctx.generator)
            x0 = window_offset(w, c.crop, ctx.generator)
            frames = frames[:, :, y0 : y0 + c.crop, x0 : x0 + c.crop]
            mask = mask[:, :, y0 : y0 + c.crop, x0 : x0 + c.crop]
            boxes = boxes - boxes.new_tensor([x0, y0, x0, y0])
        x, rec, post = self.reconstruct(frames, ctx.generator, sample=ctx.training)
        rec_l, x_l = (rec, x) if not c.whitened_loss else (apply_colour_matrix(self.colour_matrix, rec.float()),
                                                             apply_colour_matrix(self.colour_matrix, x))
        l1 = face_weighted_l1(rec_l, x_l, mask[:, None], c.face_weight)  # mask (B, 1, T, H, W)
        mse = (rec_l.float() - x_l).square().mean()
        kl = 0.5 * (post.mean.float().square() + post.var.float() - 1 - post.logvar.float()).mean()
        loss = c.l1_weight * l1 + c.mse_weight * mse + c.kl_weight * kl
        losses = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
        if c.chroma_weight > 0:
            chroma = (opponent_chroma(rec.float()) - opponent_chroma(x)).abs().mean()
            loss = loss + c.chroma_weight * chroma
            losses["chroma"] = chroma.detach()
        if self.anchor is not None:
            with torch.no_grad():
                target = self.anchor.encode(x.to(self.anchor.dtype)).latent_dist.mean.float()
            scale = self.anchor.config.scaling_factor
            mean = post.mean.float()[:, : target.shape[1]]  # added channels (extra_latent_channels) are free
            anchor = (scale * (mean - target)).square().mean()
            loss = loss + c.anchor_weight * anchor
            losses["anchor"] = anchor.detach()
        if self.face_embedder is not None:
            id_loss = frame_identity_loss(self.face_embedder, rec.float(), x, boxes)
            loss = loss + c.id_loss_weight * id_loss
            losses["id"] = id_loss.detach()
        return {"loss": loss, **losses}

    def validation_set(self) -> Dataset:
        from idvid.train.dataset import build_dataset

        if self._validation_set is None:
            cfg = self.run_config
            self._validation_set = build_dataset(cfg.data, cfg.run_dir, "validation", cfg.seed,
                                                 num_validation=cfg.validation.num_samples, progress=False,
                                                 references=False)
        return self._validation_set

    @torch.no_grad()
    def validate(self, ctx: ValidationContext) -> dict[str, float]:
        """Reconstruction PSNR (whole frame and face region) on validation identities, posterior mode."""
        from idvid.train.dataset import collate

        self.eval()
        ds, device = self.validation_set(), ctx.accelerator.device
        out = {"val_psnr": 0.0, "val_psnr_face": 0.0, "val_latent_std": 0.0}
        for i in range(len(ds)):
            batch = self.move_batch(collate([ds[(0, i)]]), device)
            x, rec, post = self.reconstruct(batch["frames"], None, sample=False)
            out["val_psnr"] += psnr(rec, x) / len(ds)
            out["val_psnr_face"] += psnr(rec, x, batch["face_mask"][:, None]) / len(ds)
            out["val_latent_std"] += float(post.mode().float().std()) / len(ds)
        return out

    @torch.no_grad()
    def export(self, folder: str | Path, weights: dict[str, torch.Tensor] | None = None) -> Path:
        """`save_pretrained` of the VAE (with `weights`, e.g. the EMA), its scaling factor set to 1 / std of
        the validation latents — or kept, when only the decoder was trained from `init` or the latents were
        anchored to its."""

        from idvid.train.dataset import collate

        with self.weights_swapped_in(weights):
            self.eval()
            vae = self.vae
            if self.colour_matrix is not None:  # a plain RGB VAE: the whitening folded into its convolutions
                vae = copy.deepcopy(self.vae)
                fold_colour_matrices(vae, self.colour_matrix, self.colour_matrix_inv)
            keep_scale = (self.decoder_only or self.anchor is not None) and self.c.init is not None
            extra = self.c.extra_latent_channels
            if not keep_scale or extra:
                device = next(vae.parameters()).device
                ds = self.validation_set()
                latents = torch.cat([vae.encode(_to_video(collate([ds[(0, i)]])["frames"].to(device))).latent_dist.mode()
                                     .float().transpose(0, 1).flatten(1) for i in range(len(ds))], dim=1)  # (C, N)
                if extra:  # the added channels as spread out as the init's own
                    vae = copy.deepcopy(vae) if vae is self.vae else vae
                    old = self.init_latent_channels
                    target = float(latents[:old].std(dim=1).mean())
                    for ch in range(old, old + extra):
                        factor = target / max(float(latents[ch].std()), 1e-6)
                        scale_latent_channels(vae, slice(ch, ch + 1), factor)
                        latents[ch] *= factor
                # a frozen encoder keeps its latents' scale; so does one anchored to its init's latents
                if not keep_scale:
                    vae.register_to_config(scaling_factor=1.0 / max(float(latents.std()), 1e-6))
            vae.save_pretrained(Path(folder))
        return Path(folder)
