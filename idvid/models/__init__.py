"""Models: the diffusers video backbone, identity encoders and the identity-injection modules.

Public API for trainers and pipelines:

    from idvid.models import build_model, IdentityInputs, MotionInputs
    model = build_model("tiny", variant="moca")
    prediction = model(noisy_latents, timesteps, model.encode_text(prompts), IdentityInputs(...))

See `docs/models.md` for the equations each module implements and the decisions taken where the seeds
are silent.
"""

from idvid.models.backbone import (
    BackboneConfig,
    backbone_flops,
    laptop_transformer_config,
    laptop_vae_config,
    tiny_transformer_config,
    tiny_vae_config,
)
from idvid.models.baselines import ConsisIDConfig, PlainCrossAttentionConfig, PlainIdCrossAttention
from idvid.models.encoders import IdentityEncoder, IdentityEncoderConfig, IdentityFeatures, IdentityInputs
from idvid.models.frame_condition import (
    FrameCondition,
    first_frame_condition,
    head_region_mask,
    region_condition,
)
from idvid.models.id_adapter import IdAdapter, IdAdapterConfig
from idvid.models.inject import Attachment, Injection, InjectionContext, attach, detach
from idvid.models.moca import MoCA, MoCAConfig, temporal_broadcast, temporal_pool
from idvid.models.model import (
    INJECTIONS,
    VARIANTS,
    IdentityVideoModel,
    ModelConfig,
    build_model,
    cogvideox_config,
    laptop_config,
    tiny_config,
)
from idvid.models.mofe import MoFE, MoFEConfig
from idvid.models.motion import MotionControl, MotionControlConfig, MotionInputs
from idvid.models.refiner import LatentRefiner, RefinerConfig

__all__ = [
    "INJECTIONS", "VARIANTS", "Attachment", "BackboneConfig", "ConsisIDConfig", "IdAdapter", "IdAdapterConfig",
    "IdentityEncoder", "IdentityEncoderConfig", "IdentityFeatures", "IdentityInputs", "IdentityVideoModel",
    "Injection", "LatentRefiner", "RefinerConfig", "InjectionContext", "MoCA", "MoCAConfig", "MoFE", "MoFEConfig", "ModelConfig", "MotionControl",
    "MotionControlConfig", "MotionInputs", "PlainCrossAttentionConfig", "PlainIdCrossAttention", "attach",
    "backbone_flops", "build_model", "cogvideox_config", "detach", "temporal_broadcast", "temporal_pool",
    "tiny_config", "tiny_transformer_config", "tiny_vae_config", "laptop_config",
    "laptop_transformer_config", "laptop_vae_config", "FrameCondition", "first_frame_condition", "head_region_mask",
    "region_condition",
]  # fmt: skip
