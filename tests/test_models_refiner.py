"""The latent refiner head (idvid.models.refiner): zero-init identity on a trained model, what it reads,
warm start from a folder without it, save/load."""

import pytest
import torch

from idvid.errors import InputError
from idvid.models import build_model, tiny_config
from idvid.models.refiner import LatentRefiner, RefinerConfig
from tests.test_models_injection import make_inputs, perturb_new_weights


def make(refiner: RefinerConfig | None, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(tiny_config("moca", text_encoder="none", refiner=refiner)).eval()


def test_a_fresh_refiner_leaves_a_trained_model_unchanged(tmp_path):
    trained = make(None)
    perturb_new_weights(trained)
    trained.save_pretrained(tmp_path / "m")
    # the same weights in a model with a refiner added (how a training run warm-starts it)
    grown = make(RefinerConfig(channels=8, layers=1), seed=0)
    grown.transformer.load_state_dict(trained.transformer.state_dict())
    fresh = grown.load_adapter(tmp_path / "m", missing_ok=("refiner.",))
    assert fresh and all(k.startswith("refiner.") for k in fresh)
    inputs = make_inputs(trained)
    with torch.no_grad():
        assert torch.equal(grown(*inputs), trained(*inputs))
    # without the allowance a missing refiner is a mismatch, as any other missing weight
    with pytest.raises(InputError, match="does not fit"):
        make(RefinerConfig(channels=8, layers=1)).load_adapter(tmp_path / "m")


def test_trained_refiner_reads_the_noisy_input_prediction_and_timestep():
    torch.manual_seed(0)
    r = LatentRefiner(RefinerConfig(channels=8, layers=2, time_dim=16), in_channels=6, out_channels=3).eval()
    torch.nn.init.normal_(r.conv_out.weight, std=0.1)
    x, pred = torch.randn(2, 3, 6, 5, 5), torch.randn(2, 3, 3, 5, 5)
    t = torch.tensor([100, 900])
    with torch.no_grad():
        base = r(x, pred, t)
        assert base.shape == pred.shape
        for changed in ((x + 1, pred, t), (x, pred + 1, t), (x, pred, torch.tensor([900, 100]))):
            assert not torch.allclose(r(*changed), base)
        # frames are refined independently: changing frame 2's input leaves frames 0-1 alone
        x2 = x.clone()
        x2[:, 2] += 1
        out = r(x2, pred, t)
        assert torch.equal(out[:, :2], base[:, :2]) and not torch.allclose(out[:, 2], base[:, 2])


def test_refiner_weights_save_reload_and_get_gradients(tmp_path):
    model = make(RefinerConfig(channels=8, layers=1))
    perturb_new_weights(model)  # gives conv_out non-zero weights, as after training
    model.save_pretrained(tmp_path / "m")
    again = type(model).from_pretrained(tmp_path / "m").eval()
    assert again.config.refiner == model.config.refiner
    inputs = make_inputs(model)
    with torch.no_grad():
        assert torch.equal(again(*inputs), model(*inputs))
    model.train()
    model(*inputs).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.refiner.parameters())


def test_refiner_flops_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    r = LatentRefiner(RefinerConfig(channels=8, layers=2), in_channels=6, out_channels=3)
    x, pred, t = torch.randn(2, 3, 6, 5, 7), torch.randn(2, 3, 3, 5, 7), torch.tensor([1, 2])
    with FlopCounterMode(display=False) as counter:
        r(x, pred, t)
    convs = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
    assert r.flops(images=6, pixels=35) == convs


def test_refiner_config_is_validated():
    with pytest.raises(ValueError, match="channels and layers"):
        LatentRefiner(RefinerConfig(channels=0), 4, 4)


def test_reference_every_frame_layout_and_zero_init_warm_start(tmp_path):
    """backbone.reference_every_frame appends the reference latent to every frame (zeros without one); added
    to a trained model (transformer and refiner widened with zero weights) the output is unchanged."""
    from idvid.models import IdentityVideoModel, ModelConfig

    trained = make(RefinerConfig(channels=8, layers=1))
    perturb_new_weights(trained)
    trained.save_pretrained(tmp_path / "m")
    cfg = ModelConfig.from_yaml(tmp_path / "m" / "model_config.yaml")
    cfg.backbone.path = str(tmp_path / "m")
    cfg.backbone.reference_every_frame = True
    grown = IdentityVideoModel(cfg).eval()
    grown.load_adapter(tmp_path / "m")
    inputs = make_inputs(trained)
    latents, ref = inputs[0], inputs[3].reference_latent
    c = latents.shape[2]
    x = grown.condition_latents(latents, ref)
    assert x.shape[2] == 3 * c and grown.transformer.config.in_channels == 3 * c
    assert torch.equal(x[:, :, :c], latents) and torch.equal(x[:, 0, c:2 * c], ref)
    assert not x[:, 1:, c:2 * c].any()  # the I2V slot: frame 0 only
    assert all(torch.equal(x[:, f, 2 * c:], ref) for f in range(latents.shape[1]))  # every frame
    assert not grown.condition_latents(latents, None)[:, :, c:].any()  # unconditional: zeros
    with torch.no_grad():
        assert torch.equal(grown(*inputs), trained(*inputs))
        # once trained, the per-frame refiner of a later frame reads the reference directly
        torch.nn.init.normal_(grown.refiner.conv_in.weight, std=0.1)
        a = grown.refiner(grown.condition_latents(latents, ref), latents, inputs[1])
        b = grown.refiner(grown.condition_latents(latents, ref + 1), latents, inputs[1])
        assert not torch.allclose(a[:, 2], b[:, 2])
        # the grown model saves and reloads as itself
        grown.save_pretrained(tmp_path / "grown")
        again = IdentityVideoModel.from_pretrained(tmp_path / "grown").eval()
        assert again.config.backbone.reference_every_frame and torch.equal(again(*inputs), grown(*inputs))
    with pytest.raises(ValueError, match="needs reference_latent"):
        ModelConfig.from_dict({**cfg.to_dict(), "backbone": {**cfg.to_dict()["backbone"], "reference_latent": False}})
