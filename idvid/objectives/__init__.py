"""Training objectives of the seeds: diffusion loss (scheduler-consistent), MoCA's latent video perceptual
loss, MotionCharacter's region-aware and ID-consistency losses."""

from idvid.objectives.diffusion import (
    NoisedBatch,
    diffusion_loss,
    noise_batch,
    predict_x0,
    prediction_target,
    restart_from,
    sample_timesteps,
)
from idvid.objectives.identity import crop_faces, frame_identity_loss, id_consistency_loss
from idvid.objectives.perceptual import LatentVideoPerceptualLoss, PerceptualTerms, cosine_weight, latent_mask
from idvid.objectives.region import latent_region_weights, region_aware_loss, region_weights

__all__ = [
    "LatentVideoPerceptualLoss", "NoisedBatch", "PerceptualTerms", "cosine_weight", "crop_faces",
    "diffusion_loss", "frame_identity_loss", "id_consistency_loss", "latent_mask", "latent_region_weights", "noise_batch",
    "predict_x0", "prediction_target", "region_aware_loss", "restart_from", "region_weights", "sample_timesteps",
]  # fmt: skip
