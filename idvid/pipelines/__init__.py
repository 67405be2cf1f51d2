"""Generation pipelines (diffusers `DiffusionPipeline` subclasses)."""

from idvid.pipelines.ipt2v import (
    IDVideoPipeline,
    IDVideoPipelineOutput,
    PipelineDefaults,
    Reference,
    default_model_path,
    frame_portrait,
    load_pipeline,
)

__all__ = ["IDVideoPipeline", "IDVideoPipelineOutput", "PipelineDefaults", "Reference", "default_model_path",
           "frame_portrait", "load_pipeline"]
