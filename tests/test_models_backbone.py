"""The backbone loads from a diffusers folder exactly as a real CogVideoX checkpoint would, with memory
options; a text-to-video backbone is widened for the global ID latent without changing its output."""

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

from idvid.errors import ModelUnavailable
from idvid.models import (
    BackboneConfig,
    IdentityInputs,
    build_model,
    tiny_config,
    tiny_transformer_config,
    tiny_vae_config,
)


@pytest.fixture(scope="module")
def t2v_folder(tmp_path_factory):
    """A tiny CogVideoX *text-to-video* pipeline folder (transformer in_channels = latent channels)."""
    root = tmp_path_factory.mktemp("cogvideox-tiny")
    torch.manual_seed(0)
    cfg = {**tiny_transformer_config(), "in_channels": 4}
    CogVideoXTransformer3DModel(**cfg).save_pretrained(root / "transformer")
    AutoencoderKLCogVideoX(**tiny_vae_config()).save_pretrained(root / "vae")
    return root


def folder_model(root, variant="moca", **backbone):
    cfg = tiny_config(variant, text_encoder="none", train_backbone=False)
    cfg.backbone = BackboneConfig(path=str(root), **backbone)
    torch.manual_seed(1)
    return build_model(cfg).eval()


def test_loading_a_saved_folder_widens_a_t2v_backbone_without_changing_it(t2v_folder):
    model = folder_model(t2v_folder)
    assert model.widened and model.transformer.config.in_channels == 8
    original = CogVideoXTransformer3DModel.from_pretrained(t2v_folder / "transformer").eval()
    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 16, 384, generator=g)
    ref = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([300])
    with torch.no_grad():
        expected = original(latents, text, t, return_dict=False)[0]
        out = model(latents, t, text, IdentityInputs(face_embedding=torch.randn(1, 128), face_crop=torch.zeros(1, 3, 112, 112), reference_latent=ref))
    assert (out - expected).abs().max() <= 1e-6
    # the widened patch embedding is new: trainable and saved with the adapter, the blocks are not
    assert model.transformer.patch_embed.proj.weight.requires_grad
    assert not model.transformer.transformer_blocks[0].attn1.to_q.weight.requires_grad
    keys = model.adapter_state_dict()
    assert "transformer.patch_embed.proj.weight" in keys
    assert not any("transformer_blocks" in k for k in keys)


def test_memory_options_are_applied(t2v_folder):
    model = folder_model(t2v_folder, precision="bf16", gradient_checkpointing=True, offload_frozen=True)
    assert model.dtype == torch.bfloat16 and model.vae.dtype == torch.bfloat16
    assert model.transformer.gradient_checkpointing
    assert next(model.injections.parameters()).dtype == torch.float32  # new modules train in fp32
    out = model(torch.randn(1, 4, 4, 8, 8), 10, torch.randn(1, 16, 384), IdentityInputs(face_embedding=torch.randn(1, 128), face_crop=torch.zeros(1, 3, 112, 112)))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    # offloaded frozen parts are skipped by .to(): only the trained/denoising parts move or cast
    model.to(torch.float16)
    assert model.dtype == torch.float16 and next(model.injections.parameters()).dtype == torch.float16
    assert model.vae.dtype == torch.bfloat16


def test_vae_round_trip_shapes_and_reference_latent(t2v_folder):
    model = folder_model(t2v_folder)
    frames = torch.rand(1, 9, 3, 32, 32) * 2 - 1  # 4k+1 frames -> an odd latent count decodes back to 4k+1
    latents = model.encode_video(frames)
    assert latents.shape == (1, 3, 4, 4, 4)
    assert model.decode(latents).shape == (1, 9, 3, 32, 32)
    ref = model.encode_reference(frames[:, 0])  # as diffusers' I2V pipeline: the image as a 1-frame video
    assert ref.shape == (1, 4, 4, 4)
    torch.testing.assert_close(ref, model.encode_reference(frames[:, 0]))  # the latent mode: deterministic
    cond = model.condition_latents(latents, ref)
    assert cond.shape == (1, 3, 8, 4, 4)
    torch.testing.assert_close(cond[:, 0, 4:], ref)
    assert cond[:, 1:, 4:].abs().max() == 0


def test_missing_folders_are_model_unavailable(tmp_path):
    cfg = tiny_config("none", text_encoder="none")
    cfg.backbone = BackboneConfig(path=str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailable, match="not found"):
        build_model(cfg)
    (tmp_path / "half").mkdir()
    cfg.backbone = BackboneConfig(path=str(tmp_path / "half"))
    with pytest.raises(ModelUnavailable, match="transformer"):
        build_model(cfg)


def test_rotary_backbones_get_their_3d_rope():
    cfg = tiny_config("moca", text_encoder="none")
    cfg.backbone.transformer = {**cfg.backbone.transformer, "use_rotary_positional_embeddings": True}
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    latents, text, t = torch.randn(1, 4, 4, 8, 8), torch.randn(1, 16, 384), torch.tensor([5])
    rope = get_3d_rotary_pos_embed(16, get_resize_crop_region_for_grid((4, 4), 4, 4), (4, 4), 4)
    x = model.condition_latents(latents, None)
    with torch.no_grad():
        expected = model.transformer(x, text, t, image_rotary_emb=rope, return_dict=False)[0]
        without = model.transformer(x, text, t, return_dict=False)[0]
        out = model(latents, t, text)
    torch.testing.assert_close(out, expected)
    assert (out - without).abs().max() > 1e-4


def test_text_encoder_projection_when_widths_differ():
    cfg = tiny_config("none")
    cfg.backbone.transformer = {**cfg.backbone.transformer, "text_embed_dim": 24}
    model = build_model(cfg)
    assert model.text_proj is not None and model.text_proj.in_features == 384
    emb = model.encode_text(["a person nods"])
    assert emb.shape == (1, 16, 24)
    assert "text_proj.weight" in model.adapter_state_dict()
