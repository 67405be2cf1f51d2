#!/usr/bin/env bash
# The commands that produced the bundled default model (idvid/assets/default_model), in order.
# Every step is resumable: run the same command again after a kill and it continues from its last checkpoint.
# Wall times on the 2-core CPU are in idvid/assets/default_model/MODEL_CARD.md.
#
#   bash scripts/train_default_model.sh [WORK_DIR]      (default: runs/default-model)
set -euo pipefail
W=${1:-runs/default-model}
mkdir -p "$W"

# Train a DiT stage to step STEPS and export the EMA from that step's checkpoint; skipped when the export exists.
# dit_stage NAME STEPS [idvid train overrides...]: runs in $W/run-NAME, exports to $W/NAME.
dit_stage() {
  local name=$1 steps=$2
  shift 2
  [ -f "$W/$name/model_config.yaml" ] && return 0
  idvid train --config laptop-moca run_dir="$W/run-$name" data.cache_dir="$W/cache" threads=2 max_steps="$steps" "$@" -q
  idvid train --config "$W/run-$name/config.yaml" run_dir="$W/run-$name-export" \
    --from-checkpoint "$W/run-$name/checkpoints/step-$(printf %08d "$steps")" max_steps="$steps" -q --export "$W/$name"
}

# 1. The VAE (configs/train/laptop-vae.yaml). The shipped one is the EMA after 800 of the preset's 3000 steps
#    (cosine schedule planned for 3000; the shipped run was stopped at step 800, optim.schedule_steps gives the
#    same rates).
if [ ! -f "$W/vae/config.json" ]; then
  idvid train --config laptop-vae run_dir="$W/run-vae" max_steps=800 optim.schedule_steps=3000 -q --export "$W/vae"
fi

# 2. The DiT with MoCA identity layers + Motion Control, on cached latents of that VAE. Stages 2-3 ran before
#    the laptop preset had its refiner head and speed-word dropout, hence refiner=null and
#    speed_word_dropout=0 to reproduce them.
idvid train --config laptop-moca run_dir="$W/run-moca" task.vae_path="$W/vae" data.cache_dir="$W/cache" \
  task.model_overrides.refiner=null task.speed_word_dropout=0 threads=2 -q --export "$W/moca"

# 3. Further training from that export on a new cosine schedule planned for 2000 steps; the shipped model
#    used its step-800 checkpoint (the session ended there).
if [ ! -f "$W/moca-2/model_config.yaml" ]; then
  idvid train --config laptop-moca run_dir="$W/run-moca-2" task.model="$W/moca" task.vae_path="$W/vae" \
    data.cache_dir="$W/cache" task.speed_word_dropout=0 threads=2 max_steps=800 optim.schedule_steps=2000 \
    optim.warmup_steps=50 -q --export "$W/moca-2"
fi

# 4. The latent refiner head added (zero-initialised, docs/models.md) and everything trained 3000 more steps.
idvid train --config laptop-moca run_dir="$W/run-moca-3" task.model="$W/moca-2" \
  task.model_overrides.refiner.channels=48 task.vae_path="$W/vae" data.cache_dir="$W/cache" \
  task.speed_word_dropout=0 threads=2 \
  max_steps=3000 optim.warmup_steps=50 checkpoint.every=200 validation.every=1000 -q --export "$W/moca-3"

# 5. DiT stage 4: the reference latent in every frame (backbone.reference_every_frame, zero-init channels), the
#    motion intensity also through the timestep embedding (injections.motion.time_embedding, zero-initialised
#    MLP) and speed-word dropout (the preset's 0.5), on a new cosine schedule planned for 3500 steps at lr 3e-4.
dit_stage moca-4 3500 task.model="$W/moca-3" task.vae_path="$W/vae" \
  task.model_overrides.backbone.reference_every_frame=true \
  task.model_overrides.injections.motion.time_embedding=true optim.warmup_steps=50 optim.lr=3.0e-4 \
  checkpoint.every=100 validation.every=500

# 6. DiT stage 5: 2400 more steps from stage 4, same data and losses, a new cosine schedule at lr 2e-4.
dit_stage moca-5 2400 task.model="$W/moca-4" task.vae_path="$W/vae" optim.warmup_steps=50 optim.lr=2.0e-4 \
  checkpoint.every=100 validation.every=800

# 7. DiT stage 6: the refiner's attention to the reference latent added (refiner.reference_dim=64, zero-initialised
#    output: the model predicts as stage 5 at step 0), 6000 steps, lr 3e-4 cosine.
dit_stage moca-6 6000 task.model="$W/moca-5" task.vae_path="$W/vae" \
  task.model_overrides.refiner.reference_dim=64 optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 \
  validation.every=1000

# 8. The decoupled pipeline (seed 003): frame-condition channels added to stage 6 (zero-initialised), 5,000 steps of
#    50 % I2V / 25 % T2I / 25 % T2V batches (the shipped run changed the refiner's I2V reference to the first frame at
#    step 1,207 and resumed; this code has it from step 0), then 1,500 T2I-heavy steps (60 % T2I, 30 % I2V), lr 1e-4.
dit_stage moca-7d 5000 task.model="$W/moca-6" task.vae_path="$W/vae" \
  task.model_overrides.backbone.frame_condition=true task.first_frame_condition=0.5 task.head_condition=0.25 \
  optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 validation.every=1000 "validation.hooks=[]"
dit_stage moca-8d 1500 task.model="$W/moca-7d" task.vae_path="$W/vae" task.first_frame_condition=0.3 \
  task.head_condition=0.6 optim.warmup_steps=20 optim.lr=1.0e-4 checkpoint.every=100 validation.every=0 \
  "validation.hooks=[]"

# 9. The VAE trained further on whole 128-pixel frames (its clothing rows were rarely in the 64-pixel windows of
#    step 1): a cosine schedule planned for 1,600 steps, stopped at step 1,210 (the shipped run was interrupted
#    there; optim.schedule_steps gives the same rates).
if [ ! -f "$W/vae-2/config.json" ]; then
  idvid train --config laptop-vae run_dir="$W/run-vae-2" task.init="$W/vae" task.crop=null batch_size=2 \
    optim.lr=4e-4 optim.warmup_steps=30 max_steps=1210 optim.schedule_steps=1600 ema.decay=0.99 threads=2 \
    checkpoint.every=10 validation.every=0 -q --export "$W/vae-2"
fi

# 10. The decoupled DiT re-cached on that VAE's latents and trained to follow them (40 % I2V / 35 % T2I / 25 % T2V).
dit_stage moca-9d 2000 task.model="$W/moca-8d" task.vae_path="$W/vae-2" task.first_frame_condition=0.4 \
  task.head_condition=0.35 optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 validation.every=0 \
  "validation.hooks=[]"

# 11. A ninth latent channel for the green-magenta colour axis the VAE of step 9 lacks (task.extra_latent_channels:
#     the new encoder row starts as a least-squares fit of the clips' colour along the first principal direction of
#     the VAE's reconstruction error, the decoder reads it through zero-initialised columns, anchor_weight holds the
#     old 8 channels), whitened colour in input and loss, whole frames. The shipped run was planned for 600 steps,
#     stopped at step 497, and resumed with a new plan of 1,400 steps (the same two commands reproduce its rates).
if [ ! -f "$W/vae-3/config.json" ]; then
  vae3=(idvid train --config laptop-vae run_dir="$W/run-vae-3" task.init="$W/vae-2" task.extra_latent_channels=1
    task.anchor_weight=1.0 task.colour_whitening=true task.whitened_loss=true task.crop=null batch_size=2
    optim.lr=3e-4 optim.warmup_steps=20 ema.decay=0.99 threads=2 checkpoint.every=100 validation.every=0 -q)
  if [ ! -f "$W/run-vae-3/first-plan.done" ]; then
    "${vae3[@]}" max_steps=497 optim.schedule_steps=600
    touch "$W/run-vae-3/first-plan.done"
  fi
  "${vae3[@]}" max_steps=1400 --export "$W/vae-3"
fi

# 12. The DiT of step 10 widened to the 9-channel latents as it loads (zero-initialised weights for the new channel:
#     it predicts as before at step 0), latents re-cached, 4,000 steps of 50 % I2V / 50 % T2V, lr 3e-4 cosine.
dit_stage moca-10d 4000 task.model="$W/moca-9d" task.vae_path="$W/vae-3" task.first_frame_condition=0.5 \
  task.head_condition=0.0 optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 validation.every=0 \
  "validation.hooks=[]"

# 13. Package as a pipeline folder with its generation defaults; the video pass starts from the first frame held
#     still, noised to step 12 of 20 (first_frame_init 0.6), with motion guidance 2 (sessions 18-19: no training,
#     sampling settings).
python scripts/package_default_model.py --model "$W/moca-10d" --out idvid/assets/default_model \
  --steps 20 --guidance 3.5 --motion-intensity 4 --mode decoupled --first-frame-source t2v --first-frame-init 0.6 \
  --motion-guidance 2

# 14. Not shipped: the no-identity baseline the model card compares with (issue 4's MoCA-vs-baseline check). The
#     packaged model with its identity path cut out (exactly its identity-dropped branch), 1,500 more steps without
#     identity on the same clips and task mix, packaged in t2v mode (a baseline must not see the reference's head).
if [ ! -f "$W/baseline-pkg/pipeline.json" ]; then
  [ -f "$W/baseline-start/model_config.yaml" ] || \
    python scripts/make_no_identity_baseline.py --model idvid/assets/default_model --out "$W/baseline-start"
  [ -f "$W/baseline/model_config.yaml" ] || \
    idvid train --config laptop-baseline run_dir="$W/run-baseline" task.model="$W/baseline-start" data.cache_dir="$W/cache" \
      threads=2 max_steps=1500 task.first_frame_condition=0.5 task.head_condition=0.0 optim.warmup_steps=50 optim.lr=1.0e-4 \
      checkpoint.every=100 validation.every=0 "validation.hooks=[]" -q --export "$W/baseline"
  python scripts/package_default_model.py --model "$W/baseline" --out "$W/baseline-pkg" --mode t2v --steps 20 \
    --guidance 3.5 --motion-intensity 4
fi
