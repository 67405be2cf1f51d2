"""Frame conditioning (the decoupled pipeline's T2I head region and I2V first frame, seed 003): the masks on
hand-computed boxes, the zero-initialised channels, the training task's batches and the two-stage sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idvid.errors import InputError
from idvid.models import build_model, tiny_config
from idvid.models.frame_condition import (
    HEAD_AXES,
    HEAD_SHIFT,
    FrameCondition,
    first_frame_condition,
    head_region_mask,
    region_condition,
)
from idvid.text.prompts import STILL_PHRASE, spatial_prompt
from tests.test_pipeline import PROMPT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_head_region_mask_on_a_hand_computed_box():
    """Box (8, 8, 24, 24) in a 32-pixel frame, 8×8 latents (cell centres at 4i + 2): the ellipse is centred at
    (16, 16 − 0.12·16 = 14.08) with semi-axes (0.66·16, 0.8·16) = (10.56, 12.8)."""
    assert (HEAD_SHIFT, HEAD_AXES) == (0.12, (0.66, 0.8))  # the values the expectations below were computed with
    m = head_region_mask(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), (32, 32), (8, 8))[0]
    assert m[3, 3] == 1  # (14, 14): the centre
    assert m[0, 3] == 1  # (14, 2): ((14−16)/10.56)² + ((2−14.08)/12.8)² = 0.036 + 0.891 ≤ 1 — the hair
    assert m[7, 3] == 0  # (14, 30): ((30−14.08)/12.8)² = 1.55 — below the chin
    assert m[3, 0] == 0 and m[3, 7] == 0  # (2, 14), (30, 14): ((2−16)/10.56)² = 1.76 — beside the ears
    assert m[3, 1] == 1  # (6, 14): ((6−16)/10.56)² + ((14−14.08)/12.8)² = 0.897
    assert m.sum() == 30  # the same formula over all 64 cells, by hand per row: 2, 4, 6, 6, 6, 4, 2, 0


def test_training_like_box_moves_the_detectors_box_by_the_measured_offsets():
    from idvid.models.frame_condition import DETECTOR_TO_TRAINING_BOX, training_like_box

    assert DETECTOR_TO_TRAINING_BOX == (-0.005, 0.122, -0.024, 0.029)
    # a 100 x 50 box at (10, 20): x by 100 · offset, y by 50 · offset
    assert training_like_box((10, 20, 110, 70)) == pytest.approx((9.5, 26.1, 107.6, 71.45))


def test_frame_condition_channels_and_paste():
    z = torch.randn(2, 3, 4, 5, 5)
    cond = first_frame_condition(z)
    assert torch.equal(cond.known[:, 0], torch.ones(2, 1, 5, 5)) and cond.known[:, 1:].sum() == 0
    ch = cond.channels(torch.float32)
    assert torch.equal(ch[:, 0, :4], z[:, 0]) and ch[:, 1:, :4].abs().sum() == 0 and torch.equal(ch[:, :, 4:], cond.known)
    other = torch.randn_like(z)
    pasted = cond.paste(other)
    assert torch.equal(pasted[:, 0], z[:, 0]) and torch.equal(pasted[:, 1:], other[:, 1:])
    mask = torch.zeros(2, 5, 5)
    mask[:, 1:3, 2] = 1
    head = region_condition(z[:, 0], mask)
    assert head.latents.shape == (2, 1, 4, 5, 5)
    assert torch.equal(head.paste(other[:, :1])[:, 0, :, 1:3, 2], z[:, 0, :, 1:3, 2])
    assert torch.equal(head.paste(other[:, :1])[:, 0, :, 0], other[:, 0, :, 0])
    with pytest.raises(InputError, match="does not match"):
        FrameCondition(z, torch.ones(2, 3, 1, 4, 4))


def test_spatial_prompt_keeps_the_scene_and_stills_the_action():
    p = "a woman with brown hair, wearing a red hoodie, smiles and slowly turns to her left in front of a blue wall, soft light"
    assert spatial_prompt(p) == f"a woman with brown hair, wearing a red hoodie, {STILL_PHRASE} in front of a blue wall, soft light"
    assert spatial_prompt("a portrait of a man") == "a portrait of a man"  # nothing to still


def test_the_synthetic_worlds_still_prompt_is_what_the_parser_makes():
    """The T2I stage's prompt is the one image items were trained with: the same person's prompt with the
    static action."""
    import dataclasses

    from idvid.synth import clip_spec, render_clip

    for seed in range(2_000_000, 2_000_020):
        spec = clip_spec(seed, 0)
        still = dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, action="static", secondary=""))
        moving = render_clip(spec, size=64, num_frames=9, pixels=False).prompt
        assert spatial_prompt(moving) == render_clip(still, size=64, num_frames=9, pixels=False).prompt


def test_added_condition_channels_start_at_zero_and_are_wired(tmp_path):
    """A trained model given backbone.frame_condition (as a training warm start does) predicts exactly as
    before, with or without a condition, until the new weights move."""
    from idvid.models import IdentityVideoModel, ModelConfig

    torch.manual_seed(0)
    base = build_model(tiny_config("moca")).eval()
    folder = base.save_pretrained(tmp_path / "base")
    cfg = ModelConfig.from_yaml(folder / "model_config.yaml")
    cfg.backbone.path, cfg.backbone.frame_condition = str(folder), True
    model = IdentityVideoModel(cfg).eval()
    model.load_adapter(folder)
    c = base.latent_channels
    assert model.transformer.config.in_channels == base.transformer.config.in_channels + c + 1
    z = torch.randn(1, 3, c, 8, 8)
    text = base.encode_text(["a man"])
    cond = first_frame_condition(z, torch.randn(1, c, 8, 8))
    with torch.no_grad():
        ref = base(z, 500, text)
        torch.testing.assert_close(model(z, 500, text), ref)
        torch.testing.assert_close(model(z, 500, text, condition=cond), ref)  # zero weights: no effect yet
        model.transformer.patch_embed.proj.weight[:, -(c + 1):] = 0.1  # once trained, the condition reaches the output
        assert not torch.allclose(model(z, 500, text, condition=cond), ref)
    with pytest.raises(InputError, match="takes no frame condition"):
        base(z, 500, text, condition=cond)


# ------------------------------------------------------------------ the decoupled pipeline
@pytest.fixture(scope="module")
def decoupled_pipeline():
    from idvid.models import MotionControlConfig
    from idvid.pipelines import IDVideoPipeline, PipelineDefaults
    from idvid.train.identity_task import DEFAULT_SCHEDULER

    torch.manual_seed(0)
    cfg = tiny_config("moca")
    cfg.backbone.frame_condition = True
    cfg.injections.append(MotionControlConfig(context_dim=32, action_tokens=8))
    model = build_model(cfg).eval()
    pipe = IDVideoPipeline(model, IDVideoPipeline.scheduler_from_training(DEFAULT_SCHEDULER),
                           PipelineDefaults(num_frames=9, num_inference_steps=2, size=64, mode="decoupled"))
    pipe.set_progress_bar_config(disable=True)
    return pipe



def test_decoupled_mode_makes_a_first_frame_then_animates_it(decoupled_pipeline):
    from idvid.pipelines.ipt2v import sample_reference_path

    pipe = decoupled_pipeline
    ref = pipe.prepare_reference(sample_reference_path())
    a = pipe(ref, PROMPT, generator=5)
    assert a.info["mode"] == "decoupled" and a.info["first_frame"].shape == (64, 64, 3)
    assert np.array_equal(a.frames, pipe(ref, PROMPT, generator=5).frames)  # same seed, same frames
    # the video's latent frame 0 is the T2I stage's result: animating that image again starts from the same latent
    first = pipe(ref, PROMPT, generator=6, first_frame=a.info["first_frame"], output_type="latent").frames
    expect = pipe.model.encode_reference(pipe._unit(a.info["first_frame"]))
    torch.testing.assert_close(first[:, 0], expect)
    t2v = pipe(ref, PROMPT, generator=5, mode="t2v")
    assert "first_frame" not in t2v.info and not np.array_equal(t2v.frames, a.frames)


def test_a_t2v_first_frame_is_the_t2v_samples_frame_0_around_the_references_head(decoupled_pipeline):
    from idvid.models.frame_condition import training_like_box
    from idvid.pipelines.ipt2v import portrait_box, sample_reference_path

    pipe, d = decoupled_pipeline, decoupled_pipeline.defaults
    ref = pipe.prepare_reference(sample_reference_path())
    sample = pipe(ref, PROMPT, generator=5, mode="t2v", output_type="latent").frames
    video = pipe(ref, PROMPT, generator=5, first_frame_source="t2v", output_type="latent")
    assert video.info["first_frame_source"] == "t2v"
    box = training_like_box(portrait_box(ref.box, d.size, d.face_width, tuple(d.face_centre)))
    known = head_region_mask(torch.tensor([box]), (d.size, d.size), tuple(sample.shape[3:]))[:, None]
    assert 0 < known.sum() < known.numel()
    head = pipe.identity_inputs(ref).reference_latent
    # the video's latent frame 0 (known to the I2V stage) is the reference's head inside, T2V's frame 0 outside
    torch.testing.assert_close(video.frames[:, 0], known * head + (1 - known) * sample[:, 0])
    t2i = pipe(ref, PROMPT, generator=5, output_type="latent").frames
    assert not torch.allclose(t2i[:, 0], video.frames[:, 0])
    with pytest.raises(InputError, match="first_frame_source must be one of t2i, t2v, t2v-head"):
        pipe(ref, PROMPT, first_frame_source="i2v")


def test_a_t2v_head_first_frame_is_made_around_the_references_head(decoupled_pipeline):
    from idvid.models.frame_condition import training_like_box
    from idvid.pipelines.ipt2v import portrait_box, sample_reference_path

    pipe, d = decoupled_pipeline, decoupled_pipeline.defaults
    ref = pipe.prepare_reference(sample_reference_path())
    box = training_like_box(portrait_box(ref.box, d.size, d.face_width, tuple(d.face_centre)))
    plain = pipe(ref, PROMPT, generator=5, first_frame_source="t2v", output_type="latent").frames
    video = pipe(ref, PROMPT, generator=5, first_frame_source="t2v-head", output_type="latent")
    assert video.info["first_frame_source"] == "t2v-head"
    known = head_region_mask(torch.tensor([box]), (d.size, d.size), tuple(plain.shape[3:]))[:, None]
    head = pipe.identity_inputs(ref).reference_latent
    # inside the head the first frame is the reference's latent, exactly; outside, the T2V pass that saw that head
    # at every step made something else than the pass that did not
    torch.testing.assert_close(video.frames[:, 0] * known, head * known)
    outside = (1 - known).bool().expand_as(plain[:, 0])
    assert not torch.allclose(video.frames[:, 0][outside], plain[:, 0][outside])
    assert torch.equal(video.frames, pipe(ref, PROMPT, generator=5, first_frame_source="t2v-head",
                                          output_type="latent").frames)


def test_t2v_head_mode_is_one_t2v_pass_holding_the_references_head_in_frame_0(decoupled_pipeline):
    from idvid.models.frame_condition import training_like_box
    from idvid.pipelines.ipt2v import portrait_box, sample_reference_path

    pipe, d = decoupled_pipeline, decoupled_pipeline.defaults
    ref = pipe.prepare_reference(sample_reference_path())
    box = training_like_box(portrait_box(ref.box, d.size, d.face_width, tuple(d.face_centre)))
    video = pipe(ref, PROMPT, generator=5, mode="t2v-head", output_type="latent").frames
    first = pipe(ref, PROMPT, generator=5, first_frame_source="t2v-head", output_type="latent").frames
    known = head_region_mask(torch.tensor([box]), (d.size, d.size), tuple(video.shape[3:]))[:, None]
    torch.testing.assert_close(video[:, 0] * known, pipe.identity_inputs(ref).reference_latent * known)
    # the decoupled mode's t2v-head first frame is this video's frame 0; its I2V stage then makes new later frames
    torch.testing.assert_close(first[:, 0], video[:, 0])
    assert not torch.allclose(first[:, 1:], video[:, 1:])


def test_the_cli_offers_exactly_the_pipelines_modes_and_first_frame_sources():
    # the CLI spells them out (importing the pipeline would slow `idvid --help`); they must not drift apart
    from idvid.pipelines.cli import generate
    from idvid.pipelines.ipt2v import FIRST_FRAME_SOURCES, MODES

    choices = {p.name: tuple(p.type.choices) for p in generate.params if p.name in ("mode", "first_frame_source")}
    assert choices == {"mode": MODES, "first_frame_source": FIRST_FRAME_SOURCES}


def test_inpainting_holds_the_known_latents_and_noises_them_to_each_steps_level(decoupled_pipeline):
    from idvid.models.frame_condition import FrameCondition

    pipe = decoupled_pipeline
    model = pipe.model
    tc = model.transformer.config
    shape = (1, 2, model.latent_channels, tc.sample_height, tc.sample_width)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    known = torch.zeros(1, 2, 1, *shape[3:])
    known[:, 0, :, :4, :4] = 1
    target = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * known
    text, blank = model.encode_text([PROMPT]), model.encode_text([""])
    seen = []
    step = pipe.scheduler.step

    def spy(*args, **kwargs):  # the sample handed to each step: what the blend left before it
        seen.append(args[2].clone())
        return step(*args, **kwargs)

    pipe.scheduler.step = spy
    try:
        out = pipe._denoise(noise, text, blank, None, None, None, steps=3, guidance=1.0, rescale=0.0,
                            id_guidance=1.0, generator=None, inpaint=FrameCondition(target, known))
    finally:
        del pipe.scheduler.step
    mask = known.bool().expand(shape)
    torch.testing.assert_close(out[mask], target[mask])
    # before step 2 the known region is the target noised with the starting noise to that step's level
    t = pipe.scheduler.timesteps[1:2]
    expect = pipe.scheduler.add_noise(target, noise, t)
    torch.testing.assert_close(seen[1][mask], expect[mask])


def test_decoupled_mode_needs_a_frame_conditioned_model(decoupled_pipeline):
    from idvid.pipelines import IDVideoPipeline
    from idvid.pipelines.ipt2v import sample_reference_path

    plain = IDVideoPipeline(build_model(tiny_config("moca")).eval(), decoupled_pipeline.scheduler, decoupled_pipeline.defaults)
    with pytest.raises(InputError, match="trained without frame conditioning"):
        plain(sample_reference_path(), PROMPT)
    with pytest.raises(InputError, match="mode must be"):
        decoupled_pipeline(sample_reference_path(), PROMPT, mode="i2i")


def test_generate_in_decoupled_mode_writes_the_first_frame(decoupled_pipeline, tmp_path):
    import subprocess
    import sys

    from idvid.io import load_image, read_video

    folder = decoupled_pipeline.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "clip.mp4"
    proc = subprocess.run([sys.executable, "-m", "idvid", "generate", "--ref", "sample", "--prompt", PROMPT,
                           "--model", str(folder), "--out", str(out), "--threads", "1", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first = load_image(tmp_path / "clip_first.png")
    frames, _ = read_video(out)
    assert first.shape == (64, 64, 3) and frames.shape[:3] == (9, 64, 64)


def test_first_frame_init_starts_the_i2v_pass_from_the_still_first_frame(decoupled_pipeline, monkeypatch):
    """first_frame_init=s skips the first ⌊s·steps⌋ steps of the I2V pass and starts it from the clip holding the
    first frame still (VAE-encoded, its latent frame 0 the known one), noised with the starting noise to the
    level of the first step it runs; 0 starts from pure noise as before."""
    from idvid.pipelines import IDVideoPipeline
    from idvid.pipelines.ipt2v import sample_reference_path

    pipe, model = decoupled_pipeline, decoupled_pipeline.model
    ref = pipe.prepare_reference(sample_reference_path())
    image = pipe(ref, PROMPT, generator=5).info["first_frame"]
    calls = []
    real = model.forward

    def forward(x, t, *args, **kwargs):
        calls.append((x.clone(), int(t)))
        return real(x, t, *args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    out = pipe(ref, PROMPT, generator=7, first_frame=image, num_inference_steps=4, first_frame_init=0.5,
               output_type="latent")
    assert out.info["first_frame_init"] == 0.5
    sched = IDVideoPipeline.scheduler_from_training(dict(pipe.scheduler.config))
    sched.set_timesteps(4)
    ts = [int(t) for t in sched.timesteps]
    assert [t for _, t in calls] == [ts[2], ts[2], ts[3], ts[3]]  # two steps skipped, two branches a step
    unit = pipe._unit(image)
    with torch.no_grad():
        still = model.encode_video(unit.expand(9, -1, -1, -1)[None])
        still[:, 0] = model.encode_reference(unit)
    noise = torch.randn(still.shape, generator=torch.Generator().manual_seed(7))
    sched.set_begin_index(2)
    torch.testing.assert_close(calls[0][0], sched.add_noise(still, noise, sched.timesteps[2:3]))

    calls.clear()
    plain = pipe(ref, PROMPT, generator=7, first_frame=image, num_inference_steps=4, output_type="latent").frames
    assert [t for _, t in calls][::2] == ts and torch.equal(calls[0][0], noise)  # 0: pure noise, every step
    # started one step from the end, the video stays near the still clip; from noise, this random model's does not
    late = pipe(ref, PROMPT, generator=7, first_frame=image, num_inference_steps=10, first_frame_init=0.9,
                output_type="latent").frames
    assert (late - still).abs().mean() < 0.5 * (plain - still).abs().mean()
    with pytest.raises(InputError, match="first-frame-init must be in"):
        pipe(ref, PROMPT, first_frame_init=1.0)
