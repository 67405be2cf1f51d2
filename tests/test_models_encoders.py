"""Identity encoders (Q-Former, CLIP from a local folder), MotionCharacter's Eq. 2 fusion and Eq. 8 motion
module, MoFE's gate — against hand computations."""

import math

import pytest
import torch

from idvid.errors import ModelUnavailable
from idvid.models.encoders import IdentityEncoder, IdentityEncoderConfig, IdentityInputs
from idvid.models.id_adapter import IdFusion
from idvid.models.inject import BlockInputs
from idvid.models.mofe import MoFELayer
from idvid.models.motion import MotionControlLayer, MotionEmbedding

CFG = IdentityEncoderConfig(token_dim=16, image_dim=16, num_queries=4, qformer_depth=1, qformer_heads=2, id_dim=8)


def naive_attention(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def randomize(module, seed=1, std=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_qformer_id_tokens_depend_on_face_and_crop_only_as_built():
    torch.manual_seed(0)
    enc = IdentityEncoder(CFG, {"id_tokens"}).eval()
    assert enc.detail is None  # not required -> not built
    g = torch.Generator().manual_seed(0)
    face, crop = torch.randn(2, 128, generator=g), torch.rand(2, 3, 112, 112, generator=g) * 2 - 1
    f = enc(IdentityInputs(face_embedding=face, face_crop=crop))
    assert f.id_tokens.shape == (2, 4, 8)
    # scale of the recognition embedding does not matter (it is normalised), its direction does
    assert torch.allclose(enc(IdentityInputs(face_embedding=3 * face, face_crop=crop)).id_tokens, f.id_tokens, atol=1e-5)
    other = enc(IdentityInputs(face_embedding=face.flip(0), face_crop=crop)).id_tokens
    assert (other - f.id_tokens).abs().max() > 1e-3
    other_crop = enc(IdentityInputs(face_embedding=face, face_crop=crop.flip(0))).id_tokens
    assert (other_crop - f.id_tokens).abs().max() > 1e-3
    assert enc.feature_shapes() == {"id_tokens": (4, 8)}


def test_clip_image_encoder_from_a_local_folder(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    clip = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=24, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    )
    clip.save_pretrained(tmp_path / "clip")
    cfg = IdentityEncoderConfig(**{**CFG.__dict__, "image_encoder": "clip", "clip_path": str(tmp_path / "clip")})
    enc = IdentityEncoder(cfg, {"id_tokens", "image_tokens", "image_pooled"}).eval()
    assert enc.feature_shapes()["image_tokens"] == (1 + 16, 24)
    crop = torch.rand(2, 3, 112, 112) * 2 - 1
    f = enc(IdentityInputs(face_embedding=torch.randn(2, 128), face_crop=crop))
    # the same features as running the CLIP model by hand on the resized, CLIP-normalised crop
    x = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bicubic", align_corners=False)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    expected = clip.eval()(pixel_values=((x + 1) / 2 - mean) / std).last_hidden_state
    torch.testing.assert_close(f.image_tokens, expected, atol=1e-5, rtol=1e-4)
    assert not any(p.requires_grad for p in enc.image_encoder.parameters())  # CLIP is frozen
    with pytest.raises(ModelUnavailable):
        IdentityEncoder(IdentityEncoderConfig(image_encoder="clip", clip_path=str(tmp_path / "none")), {"image_tokens"})
    with pytest.raises(ValueError):
        IdentityEncoderConfig(image_encoder="clip")


def test_id_fusion_is_equation_2():
    torch.manual_seed(0)
    fusion = IdFusion(face_dim=6, image_dim=5, dim=8, num_tokens=3, heads=2, image_dropout=0.5).eval()
    randomize(fusion)
    g = torch.Generator().manual_seed(2)
    arc, clip = torch.randn(2, 6, generator=g), torch.randn(2, 5, generator=g)
    e_arc = fusion.arc_norm(fusion.arc_proj(arc).reshape(2, 3, 8))
    e_clip = fusion.clip_norm(fusion.clip_proj(clip).reshape(2, 3, 8))
    e = e_arc + e_clip
    q = fusion.to_q(e_arc).reshape(2, 3, 2, 4).transpose(1, 2)
    kv = fusion.kv.to_kv(e)
    k, v = (t.reshape(2, 3, 2, 4).transpose(1, 2) for t in kv.chunk(2, dim=-1))
    expected = fusion.proj(naive_attention(q, k, v).transpose(1, 2).reshape(2, 3, 8))
    torch.testing.assert_close(fusion(arc, clip), expected, atol=1e-5, rtol=1e-5)
    # image-embedding dropout (training only): with p = 1, E = E_arc
    fusion.train()
    fusion.image_dropout = 1.0
    dropped = fusion(arc, clip)
    kv = fusion.kv.to_kv(e_arc)
    k, v = (t.reshape(2, 3, 2, 4).transpose(1, 2) for t in kv.chunk(2, dim=-1))
    expected = fusion.proj(naive_attention(q, k, v).transpose(1, 2).reshape(2, 3, 8))
    torch.testing.assert_close(dropped, expected, atol=1e-5, rtol=1e-5)


def test_motion_control_is_equation_8_linear_in_alpha():
    torch.manual_seed(0)
    layer = MotionControlLayer(dim=12, context_dim=6, heads=2, head_dim=3, alpha=1.0)
    randomize(layer)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 10, 12, generator=g)
    cond = {"action": torch.randn(2, 4, 6, generator=g), "motion": torch.randn(2, 1, 6, generator=g)}
    outs = {}
    for alpha in (0.0, 1.0, 2.0):
        layer.alpha = alpha
        outs[alpha] = layer(z, BlockInputs(cond=cond, temb=None, grid=(1, 2, 5)))
    # Z'' = A + α M  ->  out(2) - out(1) == out(1) - out(0) (W_o is linear, its bias cancels)
    torch.testing.assert_close(outs[2.0] - outs[1.0], outs[1.0] - outs[0.0], atol=1e-5, rtol=1e-4)
    # α = 0 is the action cross-attention alone, by hand
    q = layer.to_q(layer.norm(z)).reshape(2, 10, 2, 3).transpose(1, 2)
    kv = layer.action.to_kv(layer.action.norm(cond["action"]))
    k, v = (t.reshape(2, 4, 2, 3).transpose(1, 2) for t in kv.chunk(2, dim=-1))
    torch.testing.assert_close(outs[0.0], layer.to_out(naive_attention(q, k, v).transpose(1, 2).reshape(2, 10, 6)), atol=1e-5, rtol=1e-4)


def test_motion_embedding_separates_intensities_and_caps_at_max():
    emb = MotionEmbedding(dim=8, tokens=2, frequencies=8, max_intensity=20.0)
    out = emb(torch.tensor([0.0, 5.0, 20.0, 35.0]))
    assert out.shape == (4, 2, 8)
    assert (out[0] - out[1]).abs().max() > 1e-3
    torch.testing.assert_close(out[2], out[3])  # capped at 20 as in the seed


def test_mofe_gate_sums_to_one_and_reads_the_timestep():
    layer = MoFELayer(dim=12, temb_dim=5, context_dims={"face_tokens": 4, "image_tokens": 6, "detail_tokens": 3}, heads=2, head_dim=3)
    z, temb = torch.randn(2, 7, 12), torch.randn(2, 5)
    torch.testing.assert_close(layer.gates(layer.norm(z), temb), torch.full((2, 7, 3), 1 / 3))  # untrained: uniform
    randomize(layer)
    g1 = layer.gates(layer.norm(z), temb)
    torch.testing.assert_close(g1.sum(-1), torch.ones(2, 7))
    assert (g1 - layer.gates(layer.norm(z), -temb)).abs().max() > 1e-3  # timestep-conditioned
    # the layer is the gate-weighted sum of three cross-attentions
    cond = {"face_tokens": torch.randn(2, 2, 4), "image_tokens": torch.randn(2, 5, 6), "detail_tokens": torch.randn(2, 3, 3)}
    normed = layer.norm(z)
    q = layer.to_q(normed).reshape(2, 7, 2, 3).transpose(1, 2)
    mix = 0
    for i, (expert, feature) in enumerate([("identity", "face_tokens"), ("semantic", "image_tokens"), ("detail", "detail_tokens")]):
        kv = layer.experts[expert].to_kv(layer.experts[expert].norm(cond[feature]))
        k, v = (t.reshape(2, -1, 2, 3).transpose(1, 2) for t in kv.chunk(2, dim=-1))
        mix = mix + g1[..., i][:, None, :, None] * naive_attention(q, k, v)
    expected = layer.to_out(mix.transpose(1, 2).reshape(2, 7, 6))
    torch.testing.assert_close(layer(z, BlockInputs(cond=cond, temb=temb, grid=(1, 1, 7))), expected, atol=1e-5, rtol=1e-4)
