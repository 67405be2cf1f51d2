"""`without_identity`: the no-identity baseline cut from a trained identity model predicts exactly as that model's
unconditional-identity branch, keeps no identity part, and saves and reloads as a model folder."""

import pytest
import torch

from idvid.models import build_model, first_frame_condition, tiny_config
from idvid.models.model import IdentityVideoModel, without_identity
from idvid.models.refiner import RefinerConfig
from tests.test_models_injection import make_inputs, perturb_new_weights


def trained(every_frame: bool, frame_condition: bool, reference_dim: int):
    cfg = tiny_config("moca", text_encoder="none", refiner=RefinerConfig(channels=8, layers=1, reference_dim=reference_dim))
    cfg.injections.append(tiny_config("motioncharacter").injections[1])  # the Motion Control Module
    cfg.backbone.reference_every_frame = every_frame
    cfg.backbone.frame_condition = frame_condition
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    perturb_new_weights(model)  # MoCA, motion, refiner and the reference columns all non-zero, as after training
    return model


@pytest.mark.parametrize("every_frame,frame_condition,reference_dim", [(True, True, 8), (False, True, 0), (True, False, 0)])
def test_the_cut_model_is_the_identity_models_no_identity_branch(tmp_path, every_frame, frame_condition, reference_dim):
    model = trained(every_frame, frame_condition, reference_dim)
    assert [type(m).__name__ for m in model.injections.values()] == ["MoCA", "MotionControl"]
    base = without_identity(model).eval()
    c = model.latent_channels
    assert list(base.injections) == ["motion"] and base.id_encoder is None
    assert not base.config.backbone.reference_latent
    assert base.transformer.config.in_channels == c + (c + 1) * frame_condition
    latents, t, text, ids, motion = make_inputs(model)
    conditions = [None]
    if frame_condition:
        conditions.append(first_frame_condition(latents, torch.randn_like(latents[:, 0])))
    reloaded = None
    for condition in conditions:
        with torch.no_grad():
            want = model(latents, t, text, None, motion, condition)
            got = base(latents, t, text, None, motion, condition)
            # the identity model does use the identity it is given: the baseline differs from that
            assert not torch.allclose(model(latents, t, text, ids, motion, condition), want, atol=1e-3)
            # ids are ignored by the baseline (it has no identity path)
            assert torch.equal(base(latents, t, text, ids, motion, condition), got)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        if reloaded is None:
            base.save_pretrained(tmp_path / "base")
            reloaded = IdentityVideoModel.from_pretrained(tmp_path / "base").eval()
        with torch.no_grad():
            assert torch.equal(reloaded(latents, t, text, None, motion, condition), got)


def test_a_reference_attention_with_nothing_to_read_is_dropped():
    model = trained(True, False, 8)
    base = without_identity(model)
    assert base.refiner is not None and base.refiner.reference is None and base.config.refiner.reference_dim == 0
