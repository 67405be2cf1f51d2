"""Latent channels added to a trained VAE (vae_task.grow_latent_channels) and to a DiT trained on its old
latents (backbone.widen_latent_channels, refiner.widen_refiner_latents): both start as exactly what they were."""

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX

from idvid.errors import InputError
from idvid.models import IdentityVideoModel, ModelConfig, build_model, tiny_config
from idvid.models.backbone import latent_channel_index, tiny_vae_config
from idvid.models.frame_condition import first_frame_condition
from idvid.models.refiner import RefinerConfig
from idvid.train.vae_task import grow_latent_channels, scale_latent_channels
from tests.test_models_injection import make_inputs, perturb_new_weights


def tiny_vae(seed: int = 0) -> AutoencoderKLCogVideoX:
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX.from_config(tiny_vae_config()).eval()
    with torch.no_grad():  # stand-in for training: no weight left at its init value
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return vae


def test_latent_channel_index_moves_each_group_and_the_mask():
    # [x0 x1 | r0 r1 | m] -> [x0 x1 _ | r0 r1 _ | m]
    assert latent_channel_index(2, 3, blocks=2, mask=True) == [0, 1, 3, 4, 6]
    assert latent_channel_index(2, 3, blocks=1, mask=False) == [0, 1]


def test_a_grown_vae_encodes_and_reconstructs_as_before():
    vae = tiny_vae()
    grown = grow_latent_channels(vae, 2).eval()
    c = vae.config.latent_channels
    assert grown.config.latent_channels == c + 2
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        old, new = vae.encode(x).latent_dist, grown.encode(x).latent_dist
        assert torch.equal(new.mean[:, :c], old.mean) and torch.equal(new.logvar[:, :c], old.logvar)
        # the added channels are as noisy as the old on average, and the decoder ignores them
        assert torch.allclose(new.logvar[:, c:].mean(), old.logvar.mean(), atol=0.5)
        z = new.mode()
        assert torch.allclose(grown.decode(z).sample, vae.decode(old.mode()).sample, atol=1e-6)
        z[:, c:] = torch.randn_like(z[:, c:])
        assert torch.allclose(grown.decode(z).sample, vae.decode(old.mode()).sample, atol=1e-6)


def test_scaling_an_added_channel_keeps_the_reconstruction():
    grown = grow_latent_channels(tiny_vae(), 1).eval()
    c = grown.config.latent_channels
    with torch.no_grad():  # once trained the decoder reads the added channel
        for name, p in grown.named_parameters():
            if name.startswith("decoder.") and p.dim() > 1 and p.shape[1] == c:
                p[:, c - 1].normal_(std=0.1)
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        before, rec = grown.encode(x).latent_dist, grown.decode(grown.encode(x).latent_dist.mode()).sample
        scale_latent_channels(grown, slice(c - 1, c), 4.0)
        after = grown.encode(x).latent_dist
        assert torch.allclose(after.mean[:, c - 1], 4 * before.mean[:, c - 1], atol=1e-5)
        assert torch.allclose(after.std[:, c - 1], 4 * before.std[:, c - 1], rtol=1e-4)
        assert torch.equal(after.mean[:, : c - 1], before.mean[:, : c - 1])
        assert torch.allclose(grown.decode(after.mode()).sample, rec, atol=1e-5)


def trained_model(tmp_path):
    """A tiny model with every latent-reading part (reference in frame 0 and every frame, frame condition,
    refiner with reference attention), its new weights nudged as by training, saved."""
    torch.manual_seed(0)
    cfg = tiny_config("moca", text_encoder="none", refiner=RefinerConfig(channels=8, layers=1, reference_dim=8))
    cfg.backbone.reference_every_frame = True
    cfg.backbone.frame_condition = True
    model = build_model(cfg).eval()
    perturb_new_weights(model)
    model.save_pretrained(tmp_path / "m")
    return model


def test_a_widened_model_predicts_the_old_channels_as_before(tmp_path):
    trained = trained_model(tmp_path)
    c = trained.latent_channels
    grow_latent_channels(trained.vae, 1).save_pretrained(tmp_path / "vae")
    cfg = ModelConfig.from_yaml(tmp_path / "m" / "model_config.yaml")
    cfg.backbone.path, cfg.backbone.vae_path = str(tmp_path / "m"), str(tmp_path / "vae")
    wide = IdentityVideoModel(cfg).eval()
    wide.load_adapter(tmp_path / "m")
    assert wide.latent_channels == c + 1 and wide.transformer.config.out_channels == c + 1
    assert wide.transformer.config.in_channels == 4 * (c + 1) + 1

    latents, t, text, ids, motion = make_inputs(trained)
    extra = torch.randn(latents.shape[0], latents.shape[1], 1, *latents.shape[3:])
    wide_latents = torch.cat([latents, extra], dim=2)
    wide_ids = type(ids)(ids.face_embedding, ids.face_crop, torch.cat([ids.reference_latent, extra[:, 0]], dim=1))
    with torch.no_grad():
        for cond, wide_cond in ((None, None), (first_frame_condition(latents), first_frame_condition(wide_latents))):
            old = trained(latents, t, text, ids, motion, condition=cond)
            new = wide(wide_latents, t, text, wide_ids, motion, condition=wide_cond)
            assert torch.allclose(new[:, :, :c], old, atol=1e-5)
            assert not new[:, :, c:].any()  # the added channel's prediction starts at zero
        # it saves and reloads as itself, and needs no widening then
        wide.save_pretrained(tmp_path / "wide")
        again = IdentityVideoModel.from_pretrained(tmp_path / "wide").eval()
        assert again.latent_widened_from is None and again.config.backbone.vae_path is None
        assert torch.equal(again(wide_latents, t, text, wide_ids, motion), wide(wide_latents, t, text, wide_ids, motion))


def test_a_vae_with_fewer_channels_than_the_backbone_is_refused(tmp_path):
    trained_model(tmp_path)
    torch.manual_seed(0)
    small = {**tiny_vae_config(), "latent_channels": 2}
    AutoencoderKLCogVideoX.from_config(small).save_pretrained(tmp_path / "vae")
    cfg = ModelConfig.from_yaml(tmp_path / "m" / "model_config.yaml")
    cfg.backbone.path, cfg.backbone.vae_path = str(tmp_path / "m"), str(tmp_path / "vae")
    with pytest.raises(InputError, match="use the VAE it was trained with"):
        IdentityVideoModel(cfg)


def test_pool_to_latent_grid_averages_each_latent_cell():
    from idvid.train.vae_task import _pool_to_latent_grid

    video = torch.arange(9 * 4 * 4, dtype=torch.float64).reshape(1, 1, 9, 4, 4)
    pooled = _pool_to_latent_grid(video, (3, 2, 2))
    assert pooled.shape == (1, 1, 3, 2, 2)
    # latent frame 0 is frame 0 alone; latent frame 1 frames 1-4; each cell a 2x2 block
    assert pooled[0, 0, 0, 0, 0] == video[0, 0, 0, :2, :2].mean()
    assert pooled[0, 0, 1, 1, 0] == video[0, 0, 1:5, 2:, :2].mean()
    assert pooled[0, 0, 2, 1, 1] == video[0, 0, 5:9, 2:, 2:].mean()
