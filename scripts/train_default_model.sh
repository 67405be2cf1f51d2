#!/usr/bin/env bash
# The commands that produced the bundled default model (idvid/assets/default_model), in order.
# Every step is resumable: run the same command again after a kill and it continues from its last checkpoint.
# Wall times on the 2-core CPU are in idvid/assets/default_model/MODEL_CARD.md.
#
#   bash scripts/train_default_model.sh [WORK_DIR]      (default: runs/default-model)
set -euo pipefail
W=${1:-runs/default-model}
mkdir -p "$W"

# 1. The VAE (configs/train/laptop-vae.yaml). The shipped one is the EMA after 800 of the preset's 3000 steps
#    (cosine schedule planned for 3000): the run was stopped at its step-800 checkpoint and exported from it.
if [ ! -f "$W/vae/config.json" ]; then
  idvid train --config laptop-vae run_dir="$W/run-vae" -q || true   # interrupt after checkpoints/step-00000800
  idvid train --config laptop-vae run_dir="$W/run-vae" max_steps=800 -q --export "$W/vae"
fi

# 2. The DiT with MoCA identity layers + Motion Control, on cached latents of that VAE. Stages 2-3 ran before
#    the laptop preset had its refiner head and speed-word dropout, hence refiner=null and
#    speed_word_dropout=0 to reproduce them.
idvid train --config laptop-moca run_dir="$W/run-moca" task.vae_path="$W/vae" data.cache_dir="$W/cache" \
  task.model_overrides.refiner=null task.speed_word_dropout=0 threads=2 -q --export "$W/moca"

# 3. Further training from that export on a new cosine schedule planned for 2000 steps; the shipped model
#    used its step-800 checkpoint (the session ended there), exported like the VAE.
if [ ! -f "$W/moca-2/model_config.yaml" ]; then
  idvid train --config laptop-moca run_dir="$W/run-moca-2" task.model="$W/moca" task.vae_path="$W/vae" \
    data.cache_dir="$W/cache" task.speed_word_dropout=0 threads=2 max_steps=2000 \
    optim.warmup_steps=50 -q || true  # interrupt after step 800
  idvid train --config "$W/run-moca-2/config.yaml" max_steps=800 -q --export "$W/moca-2"
fi

# 4. The latent refiner head added (zero-initialised, docs/models.md) and everything trained 3000 more steps.
idvid train --config laptop-moca run_dir="$W/run-moca-3" task.model="$W/moca-2" \
  task.model_overrides.refiner.channels=48 task.vae_path="$W/vae" data.cache_dir="$W/cache" \
  task.speed_word_dropout=0 threads=2 \
  max_steps=3000 optim.warmup_steps=50 checkpoint.every=200 validation.every=1000 -q --export "$W/moca-3"

# 5. DiT stage 4: the reference latent in every frame (backbone.reference_every_frame, zero-init channels), the
#    motion intensity also through the timestep embedding (injections.motion.time_embedding, zero-initialised
#    MLP) and speed-word dropout (the preset's 0.5), on a new cosine schedule planned for 3500 steps at lr 3e-4.
if [ ! -f "$W/moca-4/model_config.yaml" ]; then
  idvid train --config laptop-moca run_dir="$W/run-moca-4" task.model="$W/moca-3" task.vae_path="$W/vae" \
    data.cache_dir="$W/cache" task.model_overrides.backbone.reference_every_frame=true \
    task.model_overrides.injections.motion.time_embedding=true threads=2 \
    max_steps=3500 optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 validation.every=500 -q
  idvid train --config "$W/run-moca-4/config.yaml" run_dir="$W/run-moca-4-export" \
    --from-checkpoint "$W/run-moca-4/checkpoints/step-00003500" max_steps=3500 -q \
    --export "$W/moca-4"
fi

# 6. DiT stage 5: 2400 more steps from stage 4, same data and losses, a new cosine schedule at lr 2e-4.
if [ ! -f "$W/moca-5/model_config.yaml" ]; then
  idvid train --config laptop-moca run_dir="$W/run-moca-5" task.model="$W/moca-4" task.vae_path="$W/vae" \
    data.cache_dir="$W/cache" threads=2 max_steps=2400 optim.warmup_steps=50 optim.lr=2.0e-4 \
    checkpoint.every=100 validation.every=800 -q
  idvid train --config "$W/run-moca-5/config.yaml" run_dir="$W/run-moca-5-export" \
    --from-checkpoint "$W/run-moca-5/checkpoints/step-00002400" max_steps=2400 -q --export "$W/moca-5"
fi

# 7. DiT stage 6: the refiner's attention to the reference latent added (refiner.reference_dim=64, zero-initialised
#    output: the model predicts as stage 5 at step 0), 6000 steps, lr 3e-4 cosine.
if [ ! -f "$W/moca-6/model_config.yaml" ]; then
  idvid train --config laptop-moca run_dir="$W/run-moca-6" task.model="$W/moca-5" task.vae_path="$W/vae" \
    data.cache_dir="$W/cache" task.model_overrides.refiner.reference_dim=64 threads=2 max_steps=6000 \
    optim.warmup_steps=50 optim.lr=3.0e-4 checkpoint.every=100 validation.every=1000 -q
  idvid train --config "$W/run-moca-6/config.yaml" run_dir="$W/run-moca-6-export" \
    --from-checkpoint "$W/run-moca-6/checkpoints/step-00006000" max_steps=6000 -q --export "$W/moca-6"
fi

# 8. Package as a pipeline folder with its generation defaults.
python scripts/package_default_model.py --model "$W/moca-6" --out idvid/assets/default_model \
  --steps 20 --guidance 3.5 --motion-intensity 4
