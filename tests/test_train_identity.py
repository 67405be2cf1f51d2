"""End to end on the real task: the tiny identity video model (MoCA + motion control) on rendered clips —
a killed run resumes exactly, checkpoints hold the trainable weights, and the export loads as a model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from idvid.train import load_config, setup
from idvid.train.checkpoint import latest_checkpoint
from idvid.train.dataset import collate
from idvid.train.trainer import export_run, fit


class Killed(Exception):
    pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_identity_task_trains_resumes_and_exports(tmp_path):
    overrides = [f"run_dir={tmp_path / 'run'}", "max_steps=4", "log.every=1", "log.progress=false",
                 "data.num_identities=2", "data.clips_per_identity=1", "data.frames=5", "data.num_workers=0",
                 "data.image_ratio=0.5", "batch_size=1", "checkpoint.every=2", "validation.every=4",
                 "validation.num_samples=1", "optim.warmup_steps=1", "task.text_dropout=0.3", "task.id_dropout=0.3"]
    cfg = load_config("tiny-synth-moca", overrides)
    assert cfg.task.variant == "moca" and cfg.task.motion and cfg.train_mode == "full"
    run = setup(cfg)
    assert {"moca", "motion"} <= set(run.task.model.injections)

    def kill_at_3(r, losses):
        if r.step == 3:
            raise Killed

    with pytest.raises(Killed):
        fit(run, on_step=kill_at_3)
    first = {h["step"]: h for h in run.history}
    assert all(math.isfinite(h["loss"]) and h["loss"] > 0 for h in first.values())
    assert {"diff", "face", "back"} <= set(first[0])  # loss components are logged

    resumed = setup(cfg)
    assert resumed.step == 2
    tail = fit(resumed)
    assert [h["step"] for h in tail] == [2, 3]
    assert abs(tail[0]["loss"] - first[2]["loss"]) <= 1e-6  # step 3 again, after the "kill"

    saved = load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors"))
    assert any(k.startswith("model.injections.moca.") for k in saved)
    assert any(k.startswith("model.injections.motion.") for k in saved)
    assert any(k.startswith("model.transformer.") for k in saved)  # full training of the tiny backbone
    assert not any(".vae." in k or ".text_encoder." in k for k in saved)  # frozen parts are not checkpointed
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert '"kind": "val"' in log and "val_id_gain" in log

    from idvid.models import IdentityVideoModel

    out = export_run(resumed, tmp_path / "model")
    model = IdentityVideoModel.from_pretrained(out)
    assert (out / "scheduler" / "scheduler_config.json").is_file()
    ema = resumed.ema.state_dict()
    name = next(k for k in ema if "injections.moca" in k)
    torch.testing.assert_close(dict(model.named_parameters())[name[len("model."):]], ema[name])


def test_adapter_only_on_a_cogvideox_folder_with_cached_latents(tmp_path):
    """Real-scale path on a tiny stand-in: a diffusers CogVideoX folder (text-to-video, so the patch
    embedding is widened for the reference latent), backbone frozen, latents cached once."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    from idvid.models import tiny_transformer_config, tiny_vae_config

    folder = tmp_path / "cogvideox"
    CogVideoXTransformer3DModel.from_config({**tiny_transformer_config(), "in_channels": 4}).save_pretrained(
        folder / "transformer")
    AutoencoderKLCogVideoX.from_config(tiny_vae_config()).save_pretrained(folder / "vae")
    small_ids = ("{text_encoder: minilm, text_encoder_path: null, injections: [{kind: moca}], identity: "
                 "{token_dim: 32, image_dim: 32, num_queries: 8, qformer_depth: 1, qformer_heads: 2, id_dim: 32}}")
    cfg = load_config("cogvideox-5b-moca-adapter", [
        f"task.model={folder}", f"task.model_overrides={small_ids}", f"run_dir={tmp_path / 'run'}",
        "data.source=synth", "data.path=null", "data.num_identities=2", "data.clips_per_identity=1",
        "data.frames=5", "data.size=64", "data.num_workers=0", "data.cache_latents=true", "max_steps=2",
        "batch_size=1", "optim.accumulation=1", "checkpoint.every=2", "validation.every=0", "log.progress=false"])
    assert cfg.train_mode == "adapter" and cfg.precision == "bf16"
    run = setup(cfg)
    transformer = run.task.model.transformer
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    hist = fit(run)
    assert all(math.isfinite(h["loss"]) for h in hist)
    changed = [k for k, v in transformer.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["patch_embed.proj.weight"]  # only the widened (new) input channels' layer trains
    saved = load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors"))
    assert {k.split(".")[1] for k in saved} == {"injections", "id_encoder", "transformer"}
    assert all(k.startswith("model.transformer.patch_embed.") for k in saved if ".transformer." in k)
    assert list((tmp_path / "run" / "cache").glob("latents-*/latents-*.safetensors"))
    # the cache is named by what the latents depend on: a new decoder keeps it, a new encoder or scale does not
    vae, key = run.task.model.vae, run.task.latent_fingerprint()
    with torch.no_grad():
        vae.decoder.conv_in.conv.weight.add_(1.0)
        assert run.task.latent_fingerprint() == key
        vae.encoder.conv_in.conv.weight.add_(1.0)
        assert run.task.latent_fingerprint() != key
        vae.encoder.conv_in.conv.weight.sub_(1.0)
        vae.register_to_config(scaling_factor=vae.config.scaling_factor * 2)
        assert run.task.latent_fingerprint() != key


def test_vae_task_trains_and_exports_a_normalised_vae(tmp_path):
    from diffusers import AutoencoderKLCogVideoX

    from idvid.errors import InputError
    from idvid.train.vae_task import decodes_to_same_length

    assert [f for f in range(1, 50) if decodes_to_same_length(f)] == [1, 9, 17, 25, 33, 41, 49]
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=2", "batch_size=1", "data.num_identities=2",
              "data.clips_per_identity=1", "data.num_workers=0", "validation.every=2", "validation.num_samples=1",
              "checkpoint.every=2", "log.progress=false"]
    with pytest.raises(InputError, match="decodes 13 frames back to a different count"):
        setup(load_config("tiny-synth-vae", [*common, "data.frames=13"]))
    run = setup(load_config("tiny-synth-vae", [*common, "data.frames=9"]))
    hist = fit(run)
    assert all(math.isfinite(h["loss"]) and {"l1", "kl"} <= set(h) for h in hist)
    assert "val_psnr_face" in (tmp_path / "run" / "log.jsonl").read_text()
    out = export_run(run, tmp_path / "vae")
    vae = AutoencoderKLCogVideoX.from_pretrained(out)
    assert (out / "diffusion_pytorch_model.safetensors").is_file()
    # the exported scaling factor normalises the (EMA) VAE's latents of the validation clips to unit std
    from idvid.train.dataset import collate
    from idvid.train.vae_task import _to_video

    frames = collate([run.task.validation_set()[(0, 0)]])["frames"]
    with torch.no_grad():
        z = vae.encode(_to_video(frames)).latent_dist.mode()
    assert float(z.std()) * vae.config.scaling_factor == pytest.approx(1.0, rel=1e-4)
    # ... and the identity model trains on top of it (task.vae_path)
    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'moca'}", f"task.vae_path={out}", "max_steps=1",
                                          "batch_size=1", "data.num_identities=1", "data.clips_per_identity=1",
                                          "data.frames=9", "data.num_workers=0", "validation.every=0",
                                          "log.progress=false"])
    moca = setup(cfg)
    assert moca.task.model.vae.config.scaling_factor == vae.config.scaling_factor
    assert math.isfinite(fit(moca)[0]["loss"])


def test_uncond_dropout_drops_text_and_identity_together(tmp_path, monkeypatch):
    """With uncond_dropout = 1 every batch is the unconditional branch CFG subtracts: empty prompts and
    no identity inputs reach the model."""
    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "max_steps=1", "log.progress=false",
                                          "data.num_identities=2", "data.clips_per_identity=1", "data.frames=5",
                                          "data.num_workers=0", "batch_size=2", "validation.every=0",
                                          "task.text_dropout=0", "task.id_dropout=0", "task.uncond_dropout=0.999"])
    run = setup(cfg)
    model = run.task.model
    seen = {}
    real_forward, real_text = model.forward, model.encode_text

    def forward(latents, timestep, text_emb, id_inputs=None, motion=None, condition=None):
        seen["ids"] = id_inputs
        return real_forward(latents, timestep, text_emb, id_inputs, motion, condition=condition)

    def encode_text(prompts, max_length=None):
        seen["prompts"] = list(prompts)
        return real_text(prompts, max_length)

    monkeypatch.setattr(model, "forward", forward)
    monkeypatch.setattr(model, "encode_text", encode_text)
    fit(run)
    assert seen["ids"] is None and seen["prompts"] == ["", ""]


@pytest.mark.parametrize("mode", ["head", "first"])
def test_decoupled_conditions_reach_the_model(tmp_path, monkeypatch, mode):
    """head_condition ~ 1: T2I batches — one latent frame, its head region (the ellipse around the ground-truth
    face box) known and equal to the clip's latents there, the still prompt and phrase, intensity 0.
    first_frame_condition ~ 1: I2V batches — latent frame 0 known and equal to the clip's."""
    from idvid.models.frame_condition import head_region_mask
    from idvid.text.prompts import STILL_PHRASE, spatial_prompt

    prob = "task.head_condition=0.999" if mode == "head" else "task.first_frame_condition=0.999"
    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "max_steps=1", "log.progress=false",
                                          "data.num_identities=2", "data.clips_per_identity=1", "data.frames=5",
                                          "data.num_workers=0", "batch_size=2", "validation.every=0", "task.motion=true",
                                          "task.text_dropout=0", "task.id_dropout=0", "task.speed_word_dropout=0", prob,
                                          "task.model_overrides={backbone: {frame_condition: true}}"])
    run = setup(cfg)
    model, task = run.task.model, run.task
    seen = {}
    real_forward, real_text, real_motion, real_inputs = model.forward, model.encode_text, model.motion_inputs, task._inputs

    def inputs(batch, ctx):
        out = real_inputs(batch, ctx)
        seen["z0"], seen["boxes"], seen["prompts_in"] = out[0], batch["face_boxes"], list(batch["prompt"])
        return out

    def forward(latents, timestep, text_emb, id_inputs=None, motion=None, condition=None):
        seen["shape"], seen["condition"] = tuple(latents.shape), condition
        return real_forward(latents, timestep, text_emb, id_inputs, motion, condition=condition)

    def encode_text(prompts, max_length=None):
        seen["prompts"] = list(prompts)
        return real_text(prompts, max_length)

    def motion_inputs(phrases, intensity):
        seen["phrases"], seen["intensity"] = list(phrases), [float(x) for x in intensity]
        return real_motion(phrases, intensity)

    for name, fn in (("forward", forward), ("encode_text", encode_text), ("motion_inputs", motion_inputs)):
        monkeypatch.setattr(model, name, fn)
    monkeypatch.setattr(task, "_inputs", inputs)
    fit(run)
    z0, cond = seen["z0"], seen["condition"]
    b, f, c, h, w = z0.shape
    if mode == "first":
        assert seen["shape"] == (b, f, c, h, w)
        assert torch.equal(cond.known[:, 0], torch.ones(b, 1, h, w)) and cond.known[:, 1:].sum() == 0
        assert torch.equal(cond.latents[:, 0], z0[:, 0])
        assert seen["prompts"] == seen["prompts_in"]
    else:
        assert seen["shape"] == (b, 1, c, h, w)
        known = head_region_mask(seen["boxes"][:, 0], (cfg.data.size, cfg.data.size), (h, w))
        assert 0 < known.sum() < known.numel()
        assert torch.equal(cond.known[:, 0, 0], known)
        assert torch.equal(cond.latents[:, 0], z0[:, 0] * known[:, None])
        assert seen["prompts"] == [spatial_prompt(p) for p in seen["prompts_in"]]
        assert seen["phrases"] == [STILL_PHRASE] * b and seen["intensity"] == [0.0] * b


def test_still_start_noises_i2v_clips_from_their_still_first_frame(tmp_path, monkeypatch):
    """task.still_start = 1: every clip of an I2V batch is noised from its first latent frame held still, at a
    timestep in still_start_t, and its target leads to the clip (with zero noise: x_t = √ᾱ_t · frame 0 repeated)."""
    import idvid.objectives as objectives
    from idvid.objectives import NoisedBatch, predict_x0, prediction_target

    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "max_steps=1", "log.progress=false",
                                          "data.num_identities=2", "data.clips_per_identity=1", "data.frames=9",
                                          "data.num_workers=0", "batch_size=2", "validation.every=0", "task.motion=true",
                                          "task.first_frame_condition=0.999", "task.still_start=1.0",
                                          "task.still_start_t=[450, 450]", "data.image_ratio=0",
                                          "task.model_overrides={backbone: {frame_condition: true}}"])
    run = setup(cfg)
    task, sched = run.task, run.task.scheduler
    seen = {}
    real_noise, real_loss, real_inputs, real_forward = (objectives.noise_batch, objectives.diffusion_loss, task._inputs,
                                                        task.model.forward)

    def zero_noise(scheduler, latents, timesteps=None, generator=None):
        drawn = real_noise(scheduler, latents, timesteps, generator)
        zero = torch.zeros_like(latents)
        return NoisedBatch(scheduler.add_noise(latents, zero, drawn.timesteps), zero, drawn.timesteps,
                           prediction_target(scheduler, latents, zero, drawn.timesteps))

    def inputs(batch, ctx):
        out = real_inputs(batch, ctx)
        seen["z0"] = out[0]
        return out

    def forward(latents, timestep, *args, **kwargs):
        seen["noisy"], seen["t"] = latents, timestep
        return real_forward(latents, timestep, *args, **kwargs)

    def loss(pred, target):
        seen["target"] = target
        return real_loss(pred, target)

    monkeypatch.setattr(objectives, "noise_batch", zero_noise)
    monkeypatch.setattr(objectives, "diffusion_loss", loss)
    monkeypatch.setattr(task, "_inputs", inputs)
    monkeypatch.setattr(task.model, "forward", forward)
    fit(run)
    z0, t = seen["z0"], seen["t"]
    assert not torch.allclose(z0[:, 1:], z0[:, :1].expand_as(z0[:, 1:]))  # the clips move
    assert t.tolist() == [450, 450]
    a = float(sched.alphas_cumprod[450])
    torch.testing.assert_close(seen["noisy"], a ** 0.5 * z0[:, :1].expand_as(z0))
    torch.testing.assert_close(predict_x0(sched, seen["noisy"], seen["target"], t), z0, atol=1e-4, rtol=1e-4)
    # why frame 0 repeated is the still start: the causal VAE encodes a still clip as its first frame in every latent frame
    with torch.no_grad():
        still = task.model.encode_video(torch.rand(1, 1, 3, 64, 64).mul(2).sub(1).expand(-1, 9, -1, -1, -1))
    torch.testing.assert_close(still, still[:, :1].expand_as(still), atol=1e-5, rtol=0)


def test_reference_dropout_drops_the_reference_latent_and_keeps_the_id_tokens(tmp_path, monkeypatch):
    """task.reference_dropout ~ 1: the identity is given without its reference latent (zeros in its channels), the
    face embedding and crop (MoCA's ID tokens) still there."""
    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "max_steps=1", "log.progress=false",
                                          "data.num_identities=2", "data.clips_per_identity=1", "data.frames=5",
                                          "data.num_workers=0", "batch_size=2", "validation.every=0",
                                          "task.text_dropout=0", "task.id_dropout=0", "task.reference_dropout=0.999"])
    run = setup(cfg)
    model, seen = run.task.model, {}
    real_forward = model.forward

    def forward(latents, timestep, text_emb, id_inputs=None, motion=None, condition=None):
        seen["ids"] = id_inputs
        return real_forward(latents, timestep, text_emb, id_inputs, motion, condition=condition)

    monkeypatch.setattr(model, "forward", forward)
    fit(run)
    ids = seen["ids"]
    assert ids is not None and ids.reference_latent is None
    assert ids.face_embedding.abs().sum() > 0 and ids.face_crop is not None


def test_decoupled_conditions_need_the_condition_channels(tmp_path):
    from idvid.errors import InputError

    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "task.first_frame_condition=0.5"])
    with pytest.raises(InputError, match="frame_condition=true"):
        setup(cfg)


def test_speed_word_dropout_strips_prompt_and_action_phrase_together(tmp_path, monkeypatch):
    """With speed_word_dropout ~ 1 no "slowly"/"quickly" reaches the text encoder or the motion module,
    while the intensity does: it alone then says how fast."""
    cfg = load_config("tiny-synth-moca", [f"run_dir={tmp_path / 'run'}", "max_steps=2", "log.progress=false",
                                          "data.num_identities=6", "data.clips_per_identity=2", "data.frames=5",
                                          "data.num_workers=0", "batch_size=6", "validation.every=0",
                                          "task.motion=true", "task.text_dropout=0", "task.speed_word_dropout=0.999"])
    run = setup(cfg)
    model = run.task.model
    seen = {"prompts": [], "phrases": [], "intensity": [], "raw": []}
    real_text, real_motion, real_losses = model.encode_text, model.motion_inputs, run.task.compute_losses

    def compute_losses(batch, ctx, *a, **k):
        seen["raw"] += list(batch["prompt"]) + list(batch["action_phrase"])
        return real_losses(batch, ctx, *a, **k)

    def encode_text(prompts, max_length=None):
        seen["prompts"] += list(prompts)
        return real_text(prompts, max_length)

    def motion_inputs(phrases, intensity):
        seen["phrases"] += list(phrases)
        seen["intensity"] += [float(x) for x in intensity]
        return real_motion(phrases, intensity)

    monkeypatch.setattr(model, "encode_text", encode_text)
    monkeypatch.setattr(model, "motion_inputs", motion_inputs)
    monkeypatch.setattr(run.task, "compute_losses", compute_losses)
    fit(run)
    assert any(w in " ".join(seen["raw"]) for w in ("slowly", "quickly"))  # there was something to strip
    words = " ".join(seen["prompts"] + seen["phrases"])
    assert seen["phrases"] and "slowly" not in words and "quickly" not in words
    assert all(p in t for p, t in zip(seen["phrases"], seen["prompts"], strict=True) if p)
    assert max(seen["intensity"]) > 0


def test_vae_windows_cover_the_frame_edges():
    """Start u ~ U[-(crop-1), size-1] clamped to [0, size-crop]: with size 16, crop 8 (23 values of u), pixel 0
    is covered when u <= 0 (8/23), pixel 8 when 1 <= u <= 15 (15/23); a plain uniform start covers pixel 0
    in 1 of 9 windows."""
    from idvid.train.vae_task import window_offset

    g = torch.Generator().manual_seed(0)
    starts = torch.tensor([window_offset(16, 8, g) for _ in range(23_000)])
    assert int(starts.min()) == 0 and int(starts.max()) == 8
    covered = torch.stack([(starts <= p) & (p < starts + 8) for p in range(16)]).float().mean(dim=1)
    assert abs(float(covered[0]) - 8 / 23) < 0.015 and abs(float(covered[15]) - 8 / 23) < 0.015
    assert abs(float(covered[8]) - 15 / 23) < 0.015
    assert torch.allclose(covered, covered.flip(0), atol=0.02)  # both edges alike


def test_vae_trains_on_random_windows_and_decoder_only_in_adapter_mode(tmp_path, monkeypatch):
    from idvid.errors import InputError

    common = [f"run_dir={tmp_path / 'run'}", "max_steps=1", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "log.progress=false"]
    with pytest.raises(InputError, match="larger than the clips"):
        setup(load_config("tiny-synth-vae", [*common, "task.crop=128"]))
    run = setup(load_config("tiny-synth-vae", [*common, "task.crop=32", "train_mode=adapter"]))
    seen = []
    real = run.task.reconstruct
    monkeypatch.setattr(run.task, "reconstruct", lambda frames, *a, **k: seen.append(frames.shape) or real(frames, *a, **k))
    encoder_before = {k: v.clone() for k, v in run.task.vae.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in run.task.vae.decoder.state_dict().items()}
    fit(run)
    assert seen[0][2:4] == (32, 32)  # (B, T, H, W, 3) windows of the 64-pixel clips
    # adapter mode: the encoder (hence every cached latent) is untouched, the decoder learns
    assert all(torch.equal(v, run.task.vae.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, run.task.vae.decoder.state_dict()[k]) for k, v in decoder_before.items())


def test_decoder_fine_tune_keeps_the_latent_scale_and_learns_from_the_face_embedder(tmp_path):
    """A decoder-only fine-tune from a trained VAE (task.init) must leave the latents a DiT was trained on as
    they were, their scaling factor included; the per-frame identity loss trains the decoder."""
    from diffusers import AutoencoderKLCogVideoX

    from idvid.errors import InputError
    from idvid.models import tiny_vae_config
    from idvid.train.vae_task import _to_video

    init = tmp_path / "vae-init"
    AutoencoderKLCogVideoX.from_config({**tiny_vae_config(), "scaling_factor": 0.37}).save_pretrained(init)
    embedder = Path(__file__).parents[1] / "idvid" / "assets" / "face_embedder" / "face_embedder.safetensors"
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=2", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "validation.num_samples=1", "log.progress=false", "log.every=1", f"task.init={init}"]
    with pytest.raises(InputError, match="task.face_embedder: is required"):
        load_config("tiny-synth-vae", [*common, "task.id_loss_weight=1"])
    run = setup(load_config("tiny-synth-vae", [*common, "train_mode=adapter", "task.id_loss_weight=1",
                                               f"task.face_embedder={embedder}"]))
    stats = {k: v.clone() for k, v in run.task.face_embedder.state_dict().items()}
    hist = fit(run)
    assert all(0 < h["id"] < 2 for h in hist)
    assert all(torch.equal(v, run.task.face_embedder.state_dict()[k]) for k, v in stats.items())  # BN stats frozen
    out = export_run(run, tmp_path / "vae")
    vae = AutoencoderKLCogVideoX.from_pretrained(out)
    assert vae.config.scaling_factor == 0.37  # not re-measured: the encoder, hence the latents, did not change
    # latent noise (scaled units) perturbs what the decoder sees in training only
    task, clip = run.task, collate([run.task.validation_set()[(0, 0)]])["frames"]
    with torch.no_grad():
        task.c.latent_noise = 0.0
        plain, plain_mode = (task.reconstruct(clip, torch.Generator().manual_seed(0))[1],
                             task.reconstruct(clip, None, sample=False)[1])
        task.c.latent_noise = 0.5
        assert not torch.allclose(plain, task.reconstruct(clip, torch.Generator().manual_seed(0))[1])
        torch.testing.assert_close(task.reconstruct(clip, None, sample=False)[1], plain_mode)
    before = AutoencoderKLCogVideoX.from_pretrained(init)
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(_to_video(clip)).latent_dist.mode(),
                                   before.encode(_to_video(clip)).latent_dist.mode())


def test_opponent_chroma_on_hand_computed_colours():
    from idvid.train.vae_task import opponent_chroma

    rgb = torch.tensor([[-1.0, 1.0, -1.0], [0.0, 0.0, 0.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]).T[None]  # (1, 3, 4)
    # green, grey, magenta, yellow -> yellow-blue (R+G)/2 - B, green-magenta G - (R+B)/2
    expected = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, -2.0], [2.0, 1.0]]).T[None]
    torch.testing.assert_close(opponent_chroma(rgb), expected)


def test_anchored_vae_fine_tune_starts_at_zero_anchor_and_keeps_the_latent_scale(tmp_path):
    """With task.anchor_weight the encoder trains (task.chroma_weight adds its colour term) but its latents are
    pulled toward the init VAE's: the anchor term is exactly 0 before the first update, and the export keeps
    the init's latent scale, so a DiT trained on the old latents reads the new ones in the same units."""
    from diffusers import AutoencoderKLCogVideoX

    from idvid.errors import InputError
    from idvid.models import tiny_vae_config

    init = tmp_path / "vae-init"
    AutoencoderKLCogVideoX.from_config({**tiny_vae_config(), "scaling_factor": 0.37}).save_pretrained(init)
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=2", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "validation.num_samples=1", "log.progress=false", "log.every=1", "optim.warmup_steps=0",
              "task.anchor_weight=1", "task.chroma_weight=1"]
    with pytest.raises(InputError, match="task.init: is required when task.anchor_weight"):
        load_config("tiny-synth-vae", common)
    run = setup(load_config("tiny-synth-vae", [*common, f"task.init={init}"]))
    encoder_before = {k: v.clone() for k, v in run.task.vae.encoder.state_dict().items()}
    hist = fit(run)
    assert hist[0]["anchor"] == 0.0 and hist[1]["anchor"] > 0  # the encoder moved, and the anchor saw it
    assert hist[0]["chroma"] > 0
    assert any(not torch.equal(v, run.task.vae.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert all(not p.requires_grad for p in run.task.anchor.parameters())
    assert not any(k.startswith("anchor.") for k in run.task.trainable_state_dict())  # not in checkpoints
    vae = AutoencoderKLCogVideoX.from_pretrained(export_run(run, tmp_path / "vae"))
    assert vae.config.scaling_factor == 0.37

def test_vae_overrides_apply_to_an_init_vae_and_bad_ones_are_one_line_errors(tmp_path):
    """task.vae with task.init changes what holds no weights (the GroupNorm eps of the laptop VAE's colour fix)
    and keeps every weight; an override that changes a shape, or that diffusers would silently ignore, is a
    config error."""
    from diffusers import AutoencoderKLCogVideoX

    from idvid.errors import InputError
    from idvid.models import tiny_vae_config

    init = tmp_path / "vae-init"
    AutoencoderKLCogVideoX.from_config(tiny_vae_config()).save_pretrained(init)
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=1", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "log.progress=false", f"task.init={init}"]
    run = setup(load_config("tiny-synth-vae", [*common, "task.vae={norm_eps: 1.0}"]))
    vae = run.task.vae
    assert vae.config.norm_eps == 1.0 and vae.encoder.down_blocks[0].resnets[0].norm1.eps == 1.0
    saved = AutoencoderKLCogVideoX.from_pretrained(init)
    assert saved.encoder.down_blocks[0].resnets[0].norm1.eps == 1e-6
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in vae.state_dict().items())
    with pytest.raises(InputError, match=r"task.vae: cannot apply \{'latent_channels': 8\}"):
        setup(load_config("tiny-synth-vae", [*common, "task.vae={latent_channels: 8}"]))
    with pytest.raises(InputError, match=r"task.vae: unknown VAE option\(s\) \['norm_epsilon'\]"):
        setup(load_config("tiny-synth-vae", [*common, "task.vae={norm_epsilon: 1.0}"]))


def test_colour_whitening_matrix_equalises_the_colour_axes():
    """On colours that vary 10x more along luminance than across it, the ZCA matrix gives every axis the
    same variance (the mean variance), and is symmetric."""
    from idvid.train.vae_task import apply_colour_matrix, colour_whitening_matrix

    g = torch.Generator().manual_seed(0)
    lum = torch.randn(20000, 1, generator=g) * 0.5
    pixels = lum.expand(-1, 3) + torch.randn(20000, 3, generator=g) * 0.05
    w = colour_whitening_matrix(pixels)
    torch.testing.assert_close(w, w.T)
    lam = torch.linalg.eigvalsh(torch.cov(pixels.T.double()))
    white = apply_colour_matrix(w, pixels.T[None])[0]  # (3, N)
    torch.testing.assert_close(torch.cov(white.double()), lam.mean() * torch.eye(3, dtype=torch.float64),
                               atol=2e-4, rtol=0)


def test_colour_whitened_vae_exports_as_the_same_rgb_vae_and_starts_from_its_init(tmp_path):
    """task.colour_whitening trains D(E(W x)) with W⁻¹ on the output; the export folds W and W⁻¹ into the first
    and last convolutions, so the plain RGB VAE it writes reconstructs exactly what the task did; and a run
    from task.init starts from exactly the init's reconstruction."""
    from diffusers import AutoencoderKLCogVideoX

    from idvid.train.vae_task import _to_video

    def rgb_round_trip(vae, frames):
        with torch.no_grad():
            x = _to_video(frames)
            return vae.decode(vae.encode(x).latent_dist.mode()).sample[:, :, : x.shape[2]]

    common = [f"run_dir={tmp_path / 'run'}", "max_steps=2", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "validation.num_samples=1", "log.progress=false", "task.colour_whitening=true"]
    run = setup(load_config("tiny-synth-vae", common))
    w = run.task.colour_matrix
    assert not torch.allclose(w, torch.eye(3), atol=0.1)  # the synthetic world's colours are not white
    fit(run)
    run.task.eval()
    frames = collate([run.task.validation_set()[(0, 0)]])["frames"]
    with torch.no_grad():
        task_rec = run.task.reconstruct(frames, None, sample=False)[1]
    exported = AutoencoderKLCogVideoX.from_pretrained(run.task.export(tmp_path / "vae")).eval()
    torch.testing.assert_close(rgb_round_trip(exported, frames), task_rec, atol=1e-4, rtol=0)

    # task.whitened_loss: the L1 compares W x̂ with W x (here on the posterior mode: training=False)
    from idvid.errors import InputError
    from idvid.train.task import StepContext
    from idvid.train.vae_task import apply_colour_matrix, face_weighted_l1

    with pytest.raises(InputError, match="task.whitened_loss: needs task.colour_whitening=true"):
        load_config("tiny-synth-vae", [*common[:-1], "task.whitened_loss=true"])
    run.task.c.whitened_loss = True
    batch = collate([run.task.validation_set()[(0, 0)]])
    ctx = StepContext(step=0, micro=0, generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                      training=False)
    with torch.no_grad():
        l1 = run.task.compute_losses(batch, ctx)["l1"]
        x = _to_video(batch["frames"])
        expected = face_weighted_l1(apply_colour_matrix(w, task_rec), apply_colour_matrix(w, x),
                                    batch["face_mask"][:, None], run.task.c.face_weight)
    torch.testing.assert_close(l1, expected)
    assert abs(float(l1) - float(face_weighted_l1(task_rec, x, batch["face_mask"][:, None], run.task.c.face_weight))) > 1e-3
    run.task.c.whitened_loss = False

    run2 = setup(load_config("tiny-synth-vae", [*common, f"run_dir={tmp_path / 'run2'}", f"task.init={tmp_path / 'vae'}"]))
    run2.task.eval()
    with torch.no_grad():
        start = run2.task.reconstruct(frames, None, sample=False)[1]
    torch.testing.assert_close(start, rgb_round_trip(exported, frames), atol=1e-4, rtol=0)


def test_model_overrides_address_an_injection_by_its_kind():
    from idvid.errors import InputError
    from idvid.models import MoCAConfig, MotionControlConfig
    from idvid.train.identity_task import model_config_for

    task = load_config("tiny-synth-moca", ["task.motion=true",
                                           "task.model_overrides.injections.motion.time_embedding=true",
                                           "task.model_overrides.injections.moca.pool_sizes=[2,4]"]).task
    cfg = model_config_for(task, "full")
    motion = [c for c in cfg.injections if isinstance(c, MotionControlConfig)]
    assert len(motion) == 1 and motion[0].time_embedding and motion[0].alpha == 1.0
    assert [c for c in cfg.injections if isinstance(c, MoCAConfig)][0].pool_sizes == [2, 4]
    task = load_config("tiny-synth-moca", ["task.model_overrides.injections.mofe.every=2"]).task
    with pytest.raises(InputError, match=r"injections.mofe: the model has no 'mofe' injection \(it has moca"):
        model_config_for(task, "full")


def test_decoder_tune_trains_only_the_decoder_on_the_dits_estimates(tmp_path):
    """task.decoder_tune_max_t: the frozen DiT's x̂0 decoded against the true frames; only the decoder learns,
    so the latents (encoder) and the denoiser stay exactly as they were."""
    from idvid.errors import InputError

    embedder = Path(__file__).parents[1] / "idvid" / "assets" / "face_embedder" / "face_embedder.safetensors"
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=2", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=2",
              "validation.num_samples=1", "log.progress=false", "log.every=1", "task.decoder_tune_max_t=300"]
    with pytest.raises(InputError, match="set data.cache_latents=false"):
        setup(load_config("tiny-synth-moca", [*common, "data.cache_latents=true"]))
    run = setup(load_config("tiny-synth-moca", [*common, "task.id_loss_weight=0.5", f"task.face_embedder={embedder}"]))
    assert {n.split(".")[2] for n, _ in run.task.named_trainable_parameters()} == {"decoder"}
    model = run.task.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = fit(run)
    assert all(math.isfinite(h["loss"]) and {"l1", "id"} <= set(h) for h in hist)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("vae.decoder.") for k in changed)
    assert "val_l1" in (tmp_path / "run" / "log.jsonl").read_text()


def test_vae_with_extra_latent_channels_trains_them_and_exports_them_at_the_old_spread(tmp_path):
    """task.extra_latent_channels grows the init VAE (starting from its exact reconstruction), the anchor holds
    the old channels only, and the export scales each added channel to the old channels' mean spread."""
    from diffusers import AutoencoderKLCogVideoX

    from idvid.errors import InputError
    from idvid.models import tiny_vae_config
    from idvid.train.vae_task import _to_video

    init = tmp_path / "vae-init"
    torch.manual_seed(0)
    AutoencoderKLCogVideoX.from_config(tiny_vae_config()).save_pretrained(init)
    common = [f"run_dir={tmp_path / 'run'}", "max_steps=3", "batch_size=1", "data.num_identities=1",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "validation.num_samples=2", "log.progress=false", "optim.lr=1e-2", "optim.warmup_steps=0"]
    with pytest.raises(InputError, match="task.init: is required when task.extra_latent_channels > 0"):
        load_config("tiny-synth-vae", [*common, "task.extra_latent_channels=1"])
    run = setup(load_config("tiny-synth-vae", [*common, f"task.init={init}", "task.extra_latent_channels=1",
                                               "task.anchor_weight=1.0"]))
    c = run.task.init_latent_channels
    assert run.task.vae.config.latent_channels == c + 1
    frames = collate([run.task.validation_set()[(0, 0)]])["frames"]
    saved = AutoencoderKLCogVideoX.from_pretrained(init).eval()
    run.task.eval()
    with torch.no_grad():
        x = _to_video(frames)
        torch.testing.assert_close(run.task.reconstruct(frames, None, sample=False)[1],
                                   saved.decode(saved.encode(x).latent_dist.mode()).sample, atol=1e-6, rtol=0)
        # the added channel starts as a per-cell linear map of what the encoder's conv_out reads
        seen = []
        hook = run.task.vae.encoder.conv_out.register_forward_hook(lambda m, a, o: seen.append(a[0]))
        mean = run.task.vae.encode(x).latent_dist.mean
        hook.remove()
        w = run.task.vae.encoder.conv_out.conv.weight[c, :, -1, 1, 1]
        expected = torch.einsum("i,bithw->bthw", w, seen[0]) + run.task.vae.encoder.conv_out.conv.bias[c]
        torch.testing.assert_close(mean[:, c], expected, atol=1e-5, rtol=0)
        assert mean[:, c].std() > 0.1 * mean[:, :c].std()
    hist = fit(run)
    assert hist[0]["anchor"] == 0.0  # the added channel is free; the old ones start on the init's
    exported = AutoencoderKLCogVideoX.from_pretrained(run.task.export(tmp_path / "vae")).eval()
    assert exported.config.scaling_factor == saved.config.scaling_factor  # anchored: the scale is kept
    run.task.eval()
    with torch.no_grad():
        z = torch.cat([exported.encode(_to_video(collate([run.task.validation_set()[(0, i)]])["frames"]))
                       .latent_dist.mode().transpose(0, 1).flatten(1) for i in range(2)], dim=1)
        torch.testing.assert_close(z[c].std(), z[:c].std(dim=1).mean(), rtol=1e-4, atol=0)
        # the export's reconstruction is the task's own (the scaling is folded back in the decoder)
        torch.testing.assert_close(exported.decode(exported.encode(x).latent_dist.mode()).sample,
                                   run.task.reconstruct(frames, None, sample=False)[1], atol=1e-4, rtol=0)


def test_face_windows_on_hand_numbers():
    from idvid.train.identity_task import face_windows

    latents = torch.arange(64.0).reshape(1, 1, 1, 8, 8)  # 8x8 latent pixels of a 32-pixel frame: 4 pixels each
    boxes = torch.tensor([[[12.0, 12.0, 20.0, 20.0]]])  # centre (16, 16) px = latent (4, 4)
    win, moved = face_windows(latents, boxes, 4, 32)
    torch.testing.assert_close(win, latents[..., 2:6, 2:6])
    torch.testing.assert_close(moved, torch.tensor([[[4.0, 4.0, 12.0, 12.0]]]))  # shifted by 2 latent = 8 px
    corner = torch.tensor([[[0.0, 28.0, 4.0, 32.0]]])  # centre (2, 30) px: the window is kept inside the frame
    win, moved = face_windows(latents, corner, 4, 32)
    torch.testing.assert_close(win, latents[..., 4:8, 0:4])
    torch.testing.assert_close(moved, torch.tensor([[[0.0, 12.0, 4.0, 16.0]]]))
    same, kept = face_windows(latents, boxes, 8, 32)
    assert same is latents and kept is boxes


def test_id_loss_is_eq4_on_the_chosen_clips_only(tmp_path, monkeypatch):
    """task.id_loss_*: with a denoiser whose x̂0 is exactly the clean latents, the term is Eq. 4 on the decoded
    clean clip of the first clip with t < id_loss_max_t (id_loss_clips=1), times 1/B; none below the limit: 0."""
    import torch.nn.functional as F

    from idvid.errors import InputError
    from idvid.objectives import crop_faces
    from idvid.objectives.diffusion import alphas_cumprod
    from idvid.train.identity_task import _uint8_to_unit
    from idvid.train.task import StepContext

    common = [f"run_dir={tmp_path / 'run'}", "max_steps=1", "batch_size=3", "data.num_identities=3",
              "data.clips_per_identity=1", "data.num_workers=0", "data.frames=9", "validation.every=0",
              "log.progress=false", "task.id_loss_weight=1.0", "task.id_loss_max_t=500", "task.id_loss_clips=1"]
    with pytest.raises(InputError, match="task.id_loss_max_t"):
        load_config("tiny-synth-moca", [*common, "task.id_loss_max_t=0"])
    run = setup(load_config("tiny-synth-moca", common))
    task, model = run.task, run.task.model
    task.eval()
    batch = collate([task.validation_set()[(i, 0)] for i in range(3)])
    ctx = StepContext(step=0, micro=0, generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                      training=False)
    z0 = task._inputs(batch, ctx)[0].float()

    def forward(latents, timestep, *args, **kwargs):  # the v whose x̂0 is z0
        acp = alphas_cumprod(task.scheduler, timestep, latents)
        return (acp.sqrt() * latents - z0) / (1 - acp).sqrt()

    monkeypatch.setattr(model, "forward", forward)
    with torch.no_grad():
        got = task.compute_losses(batch, ctx, timesteps=torch.tensor([800, 100, 200]))["id"]
        frames = model.decode(z0[1:2])
        t = min(frames.shape[1], batch["face_boxes"].shape[1])
        crops = crop_faces(frames[:, :t], batch["face_boxes"][1:2, :t].float())[0]
        emb = F.normalize(task.face_embedder(crops), dim=-1)
        ref = F.normalize(task.face_embedder(_uint8_to_unit(batch["face_crop"][1:2])), dim=-1)
        expected = (1 - (emb * ref).sum(-1).mean()) / 3
        none = task.compute_losses(batch, ctx, timesteps=torch.tensor([800, 600, 500]))["id"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert float(expected) > 0.01 and float(none) == 0.0
