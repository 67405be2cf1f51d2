"""IDVideoPipeline and `idvid generate`, on a tiny random model (the trained default model is checked by
scripts/evaluate_default_model.py, not here)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from idvid.errors import InputError, NoFaceFound
from idvid.pipelines import IDVideoPipeline, PipelineDefaults, frame_portrait
from idvid.pipelines.ipt2v import sample_reference_path
from idvid.text.prompts import extract_action_phrase

PROMPT = "a woman with brown hair, wearing a red hoodie, smiles and turns to her left in front of a blue wall"


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    from idvid.models import MotionControlConfig, build_model, tiny_config
    from idvid.train.identity_task import DEFAULT_SCHEDULER

    torch.manual_seed(0)
    cfg = tiny_config("moca")
    cfg.injections.append(MotionControlConfig(context_dim=32, action_tokens=8))
    model = build_model(cfg).eval()
    with torch.no_grad():  # the motion layers' zero-initialised outputs opened, so intensity changes the video
        for name, p in model.injections["motion"].named_parameters():
            if name.endswith("to_out.weight"):
                p.normal_(0, 0.2)
    pipe = IDVideoPipeline(model, IDVideoPipeline.scheduler_from_training(DEFAULT_SCHEDULER),
                           PipelineDefaults(num_frames=17, num_inference_steps=3, size=64))
    return pipe.save_pretrained(tmp_path_factory.mktemp("pipe") / "tiny")


@pytest.fixture(scope="module")
def reference():
    from idvid.io import load_image

    return load_image(sample_reference_path())


# ------------------------------------------------------------------ pure functions
def test_frame_portrait_puts_the_face_where_training_portraits_have_it():
    img = np.zeros((300, 400, 3), np.uint8)
    img[100:180, 200:280] = 255  # an 80-pixel "face"
    out = frame_portrait(img, (200, 100, 280, 180), 100, face_width=0.4, face_centre=(0.5, 0.5))
    ys, xs = np.nonzero(out[..., 0] > 127)
    # the face becomes 0.4 x 100 = 40 pixels wide, centred at (50, 50)
    assert xs.min() == pytest.approx(30, abs=1) and xs.max() == pytest.approx(69, abs=1)
    assert ys.min() == pytest.approx(30, abs=1) and ys.max() == pytest.approx(69, abs=1)


def test_portrait_box_is_where_frame_portrait_puts_the_face():
    from idvid.pipelines.ipt2v import portrait_box

    img = np.zeros((300, 400, 3), np.uint8)
    img[100:160, 200:280] = 255  # an 80 x 60 "face"
    box = (200, 100, 280, 160)
    out = frame_portrait(img, box, 100, face_width=0.4, face_centre=(0.5, 0.45))
    ys, xs = np.nonzero(out[..., 0] > 127)
    x0, y0, x1, y1 = portrait_box(box, 100, face_width=0.4, face_centre=(0.5, 0.45))
    assert (x0, y0, x1, y1) == pytest.approx((30, 30, 70, 60))  # 40 x 30 around (50, 45)
    assert xs.min() == pytest.approx(x0, abs=1) and xs.max() + 1 == pytest.approx(x1, abs=1)
    assert ys.min() == pytest.approx(y0, abs=1) and ys.max() + 1 == pytest.approx(y1, abs=1)


def test_action_phrase_is_the_main_verb_clause():
    assert extract_action_phrase("she laughs and turns to the window, wearing a red scarf") == "laughs and turns to the window"
    assert extract_action_phrase(PROMPT) == "smiles and turns to her left"
    assert extract_action_phrase("a man, slowly nods in front of a wall") == "slowly nods"
    assert extract_action_phrase("a portrait of a man") == "a portrait of a man"  # no verb: the whole prompt


def test_action_phrase_recovers_the_synthetic_worlds_phrases():
    from idvid.synth import clip_spec, render_clip

    for seed in range(2_000_000, 2_000_040):
        clip = render_clip(clip_spec(seed, 1), size=64, num_frames=9, fps=8.0, pixels=False)
        assert extract_action_phrase(clip.prompt) == clip.action_phrase, clip.prompt


def test_frame_plan_rounds_up_to_a_decodable_count_and_refuses_too_many(tiny_pipeline_dir):
    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    assert pipe.frame_plan(16) == 17 and pipe.frame_plan(17) == 17 and pipe.frame_plan(5) == 9
    with pytest.raises(InputError, match="at most 17 frames"):
        pipe.frame_plan(18)


# ------------------------------------------------------------------ sampling
def test_same_seed_same_frames_after_a_save_load_round_trip(tiny_pipeline_dir, reference, tmp_path, one_torch_thread):
    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    a = pipe(reference, PROMPT, generator=7, num_frames=16)
    assert a.frames.shape == (16, 64, 64, 3) and a.frames.dtype == np.uint8
    again = IDVideoPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    again.set_progress_bar_config(disable=True)
    b = again(reference, PROMPT, generator=7, num_frames=16)
    assert np.array_equal(a.frames, b.frames)
    c = pipe(reference, PROMPT, generator=8, num_frames=16)
    assert not np.array_equal(a.frames, c.frames)
    assert a.action_phrase == "smiles and turns to her left"


def test_a_stochastic_solver_draws_its_noise_from_the_seed(tiny_pipeline_dir, reference, one_torch_thread):
    from diffusers import DPMSolverMultistepScheduler

    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    ode = pipe(reference, PROMPT, generator=7, num_frames=16, output_type="latent").frames
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="sde-dpmsolver++")
    a = pipe(reference, PROMPT, generator=7, num_frames=16, output_type="latent").frames
    torch.manual_seed(123)  # the global generator must not matter
    b = pipe(reference, PROMPT, generator=7, num_frames=16, output_type="latent").frames
    assert torch.equal(a, b)
    assert not torch.allclose(a, ode)  # the SDE solver did inject noise


@pytest.mark.parametrize("rescale, g_id, g_m, min_t", [(0.0, None, 0.0, 0), (0.7, None, 0.0, 0), (0.0, 6.0, 0.0, 0),
                                                       (0.7, 6.0, 0.0, 0), (0.7, None, 2.0, 0), (0.0, 6.0, 2.0, 0),
                                                       (0.0, None, 2.0, 500)])
def test_sampling_loop_is_dpm_solver_with_classifier_free_guidance(tiny_pipeline_dir, reference, one_torch_thread,
                                                                  rescale, g_id, g_m, min_t):
    """The pipeline's latents equal a hand-written loop: ε-free v-prediction guided as p = u + g (c − u), or with
    a separate identity scale p = u + g (c_text − u) + g_id (c − c_text); with guidance rescale φ (Lin et
    al. 2023 §3.4) p ← φ · p · std(c) / std(p) + (1 − φ) · p; then motion guidance p ← p + g_m (c − c at
    intensity 0) at the timesteps t >= min_t (3 steps: 999, 666, 333; min_t 500 leaves the last one unguided)."""
    from dataclasses import replace

    from idvid.models import IdentityInputs

    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    g = 2.5
    out = pipe(reference, PROMPT, generator=3, guidance_scale=g, guidance_rescale=rescale, num_inference_steps=3,
               identity_guidance_scale=g_id, motion_guidance_scale=g_m, motion_guidance_min_t=min_t, motion_intensity=6.0,
               output_type="latent")
    assert out.info["identity_guidance"] == (g if g_id is None else g_id) and out.info["motion_guidance"] == g_m
    assert out.info["motion_guidance_min_t"] == min_t
    model, ref = pipe.model, out.reference
    unit = IDVideoPipeline._unit
    ids = IdentityInputs(face_embedding=torch.from_numpy(ref.embedding)[None], face_crop=unit(ref.crop),
                         reference_latent=model.encode_reference(unit(ref.portrait)))
    motion = model.motion_inputs([out.action_phrase], [out.motion_intensity])
    still = replace(motion, intensity=torch.zeros(1))
    text, empty = model.encode_text([PROMPT]), model.encode_text([""])
    latents = torch.randn((1, 5, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    sched = IDVideoPipeline.scheduler_from_training(dict(pipe.scheduler.config))
    sched.set_timesteps(3)
    with torch.no_grad():
        for t in sched.timesteps:
            c = model(latents, t, text, ids, motion)
            u = model(latents, t, empty, None, motion)
            if g_id is None:
                p = u + g * (c - u)
            else:
                c_text = model(latents, t, text, None, motion)
                p = u + g * (c_text - u) + g_id * (c - c_text)
            p = rescale * p * c.std() / p.std() + (1 - rescale) * p
            if t >= min_t:
                p = p + g_m * (c - model(latents, t, text, ids, still))
            latents = sched.step(p, t, latents).prev_sample
    torch.testing.assert_close(out.frames, latents, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_clear_errors(tiny_pipeline_dir, reference):
    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    with pytest.raises(InputError, match="prompt is empty"):
        pipe(reference, "   ")
    with pytest.raises(NoFaceFound, match="no face found"):
        pipe(np.full((128, 128, 3), 127, np.uint8), PROMPT)
    with pytest.raises(InputError, match="motion-intensity"):
        pipe(reference, PROMPT, motion_intensity=25)
    with pytest.raises(InputError, match="guidance-rescale"):
        pipe(reference, PROMPT, guidance_rescale=1.5)
    with pytest.raises(InputError, match="identity-guidance"):
        pipe(reference, PROMPT, identity_guidance_scale=-1)
    with pytest.raises(InputError, match="motion-guidance"):
        pipe(reference, PROMPT, motion_guidance_scale=-1)
    with pytest.raises(InputError, match="motion-guidance-min-t"):
        pipe(reference, PROMPT, motion_guidance_min_t=1000)


def test_motion_guidance_changes_moving_videos_only(tiny_pipeline_dir, reference, one_torch_thread):
    """At intensity 0 the motion-guidance term ε(I) − ε(0) is zero (and is not computed): the same video."""
    pipe = IDVideoPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    run = dict(generator=5, num_inference_steps=2, output_type="latent")
    plain = pipe(reference, PROMPT, motion_intensity=0.0, **run).frames
    assert torch.equal(pipe(reference, PROMPT, motion_intensity=0.0, motion_guidance_scale=3.0, **run).frames, plain)
    moving = pipe(reference, PROMPT, motion_intensity=8.0, **run).frames
    assert not torch.allclose(pipe(reference, PROMPT, motion_intensity=8.0, motion_guidance_scale=3.0, **run).frames,
                              moving)


# ------------------------------------------------------------------ command line
def run_generate(*args):
    return subprocess.run([sys.executable, "-m", "idvid", "generate", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_generate_writes_mp4_gif_and_contact_sheet(tiny_pipeline_dir, tmp_path):
    out = tmp_path / "clip.mp4"
    proc = run_generate("--ref", "sample", "--prompt", PROMPT, "--model", tiny_pipeline_dir, "--out", out,
                        "--threads", 1, "-q", "--seed", 1)
    assert proc.returncode == 0, proc.stderr
    for suffix in (".mp4", ".gif", ".png"):
        assert out.with_suffix(suffix).stat().st_size > 0
    from idvid.io import read_video

    frames, _ = read_video(out)
    assert frames.shape[:3] == (17, 64, 64)


@pytest.mark.parametrize("case, expect", [
    ("noface", "no face found"),
    ("empty_prompt", "--prompt is empty"),
    ("too_many_frames", "at most 17 frames"),
    ("missing_ref", "no such file"),
    ("bad_out", "must name an .mp4"),
    ("decoupled_on_t2v_model", "trained without frame conditioning"),
    ("missing_first_frame", "--first-frame"),
])
def test_generate_user_errors_are_one_line_and_exit_2(case, expect, tiny_pipeline_dir, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128, 3), 127, np.uint8)).save(blank)
    args = {"ref": "sample", "prompt": PROMPT, "out": tmp_path / "o.mp4", "frames": 17}
    if case == "noface":
        args["ref"] = blank
    elif case == "empty_prompt":
        args["prompt"] = " "
    elif case == "too_many_frames":
        args["frames"] = 18
    elif case == "missing_ref":
        args["ref"] = tmp_path / "nope.png"
    elif case == "bad_out":
        args["out"] = tmp_path / "o.avi"
    extra = {"decoupled_on_t2v_model": ["--mode", "decoupled"],
             "missing_first_frame": ["--first-frame", tmp_path / "nope.png"]}.get(case, [])
    proc = run_generate("--ref", args["ref"], "--prompt", args["prompt"], "--out", args["out"], "--frames",
                        args["frames"], "--model", tiny_pipeline_dir, "--threads", 1, "-q", *extra)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idvid: error:") and expect in lines[0], proc.stderr


def test_validation_hook_samples_videos_with_the_pipeline(tmp_path, one_torch_thread):
    from idvid.io import read_video
    from idvid.train import load_config, setup
    from idvid.train.trainer import fit

    cfg = load_config("tiny-synth-moca", [
        f"run_dir={tmp_path / 'run'}", "max_steps=1", "log.progress=false", "data.num_identities=1",
        "data.clips_per_identity=1", "data.frames=9", "data.num_workers=0", "batch_size=1", "validation.every=1",
        "validation.num_samples=1", "validation.hooks=[idvid.pipelines.validation:sample_videos]"])
    run = setup(cfg)
    fit(run)
    import json

    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"][-1]
    assert 0 <= val["val_facesim_arc"] <= 1 and 0 <= val["val_face_frames"] <= 1
    frames, _ = read_video(tmp_path / "run" / "samples" / "step-00000001" / "1000000.mp4")
    assert frames.shape[:3] == (9, 64, 64)
