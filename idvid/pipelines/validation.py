"""Validation hook for identity-model training: sample videos with the real pipeline and score them.

    validation: {every: 500, hooks: ["idvid.pipelines.validation:sample_videos"]}

At every validation, for each validation identity (never trained on): the identity's reference portrait
and its clip-0 prompt, action phrase and motion intensity go through `IDVideoPipeline` (the weights being
validated, the EMA when `validation.use_ema`; DPM-Solver++, fixed seeds), the video is written to
RUN/samples/step-N/<seed>.mp4 (+ .gif, .png), and the logged metrics are `val_facesim_arc` (FaceSim with
SFace against the reference, `idvid.evaluate.facesim`) and `val_face_frames` (fraction of sampled frames
with a detected face).
"""

from __future__ import annotations

import numpy as np

SAMPLE_STEPS = 20
SAMPLE_GUIDANCE = 5.0


def sample_videos(ctx) -> dict[str, float]:
    from idvid.evaluate.facesim import facesim
    from idvid.io import write_video_outputs
    from idvid.pipelines.ipt2v import IDVideoPipeline, PipelineDefaults

    task, data = ctx.task, ctx.config.data
    if not hasattr(task, "validation_set") or not hasattr(task, "scheduler"):
        return {}  # not an identity-model task
    defaults = PipelineDefaults(num_frames=data.frames, size=data.size, num_inference_steps=SAMPLE_STEPS,
                                guidance_scale=SAMPLE_GUIDANCE)
    pipe = IDVideoPipeline(task.model, IDVideoPipeline.scheduler_from_training(dict(task.scheduler.config)), defaults)
    pipe.set_progress_bar_config(disable=True)
    ds = task.validation_set()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    scores, face_frames = [], []
    for i, it in enumerate(ds.items):
        reference = ds.references.get(it.identity_seed)["image"].numpy()
        clip = ds.clip_data(it, pixels=False)
        out = pipe(reference, clip["prompt"], action=clip["action_phrase"], motion_intensity=clip["intensity"],
                   generator=ctx.generator(salt=i))
        write_video_outputs(ctx.out_dir / f"{it.identity_seed}.mp4", out.frames)
        result = facesim(reference, out.frames)
        scores.append(result.score)
        face_frames.append(result.face_frames)
    return {"val_facesim_arc": float(np.mean(scores)), "val_face_frames": float(np.mean(face_frames))}
