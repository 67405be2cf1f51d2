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


# ---------------------------------------------------------------- attention to the reference latent
def naive_reference_attention(att, h, reference):
    """The same computation written out cell by cell: softmax over the reference cells of q·k/√d."""
    p = att.patch
    n, ch, height, width = h.shape
    frames = n // reference.shape[0]
    r = torch.nn.functional.silu(att.ref_norm(att.ref_in(reference)))
    hn = att.norm(h)
    rows, cols = height // p, width // p
    out = torch.zeros_like(h)

    def cell(t, y, x):  # a cell's pixels in (channel, row, column) order
        return t[:, y * p:(y + 1) * p, x * p:(x + 1) * p].reshape(-1)

    def feats(y, x):  # sin/cos of row and column at frequencies 2^k·π, positions in [0, 1)
        angles = torch.tensor([y / rows * torch.pi * 2.0**k for k in range(att.frequencies)]
                              + [x / cols * torch.pi * 2.0**k for k in range(att.frequencies)])
        return torch.cat([angles.sin(), angles.cos()])

    for i in range(n):
        ref = r[i // frames]
        keys = [(y, x) for y in range(rows) for x in range(cols)]
        k = torch.stack([att.to_k(cell(ref, y, x)) + att.pos_k(feats(y, x)) for y, x in keys])
        v = torch.stack([att.to_v(cell(ref, y, x)) for y, x in keys])
        for y, x in keys:
            q = att.to_q(cell(hn[i], y, x)) + att.pos_q(feats(y, x))
            w = torch.softmax(k @ q / q.numel() ** 0.5, dim=0)
            out[i, :, y * p:(y + 1) * p, x * p:(x + 1) * p] = (w @ v).reshape(ch, p, p)
    return h + att.to_out(out)


def attention_refiner(seed=0, **kw):
    torch.manual_seed(seed)
    r = LatentRefiner(RefinerConfig(channels=8, layers=1, time_dim=16, reference_dim=6, reference_frequencies=3, **kw),
                      in_channels=6, out_channels=3).eval()
    torch.nn.init.normal_(r.conv_out.weight, std=0.1)
    torch.nn.init.normal_(r.reference.to_out.weight, std=0.3)  # as after training
    return r


def test_reference_attention_matches_a_naive_softmax_over_reference_cells():
    att = attention_refiner().reference
    h, reference = torch.randn(6, 8, 4, 6), torch.randn(2, 3, 4, 6)  # 2 samples x 3 frames
    with torch.no_grad():
        assert torch.allclose(att(h, reference), naive_reference_attention(att, h, reference), atol=1e-5)


def test_reference_attention_reads_the_reference_slot_and_pads_odd_sizes():
    r = attention_refiner()
    x, pred, t = torch.randn(2, 3, 6, 5, 7), torch.randn(2, 3, 3, 5, 7), torch.tensor([100, 900])
    with torch.no_grad():
        base = r(x, pred, t)
        assert base.shape == pred.shape  # 5x7 padded to 6x8 cells and cropped back
        # the reference slot is frame 0's channels 3..5: changing it changes every frame of that sample only
        x2 = x.clone()
        x2[0, 0, 3:] += 1
        out = r(x2, pred, t)
        assert all(not torch.allclose(out[0, f], base[0, f]) for f in range(3)) and torch.equal(out[1], base[1])
        # without the attention the other frames would not have seen frame 0's slot at all
        r.reference = None
        plain, plain2 = r(x, pred, t), r(x2, pred, t)
        assert torch.equal(plain[0, 1:], plain2[0, 1:])


def test_reference_attention_reads_a_given_reference_instead_of_the_slot():
    """`reference=` (an I2V first frame) replaces frame 0's reference slot as what the attention reads."""
    r = attention_refiner()
    x, pred, t = torch.randn(2, 3, 6, 4, 6), torch.randn(2, 3, 3, 4, 6), torch.tensor([100, 900])
    first = torch.randn(2, 3, 4, 6)
    seen = []
    real = r.reference.forward
    r.reference.forward = lambda h, ref: seen.append(ref) or real(h, ref)
    with torch.no_grad():
        given, default = r(x, pred, t, reference=first), r(x, pred, t)
    assert torch.equal(seen[0], first) and torch.equal(seen[1], x[:, 0, 3:])
    assert not torch.allclose(given, default)


def test_an_i2v_condition_gives_the_refiner_its_first_frame():
    from idvid.models import first_frame_condition

    cfg = tiny_config("moca", text_encoder="none", refiner=RefinerConfig(channels=8, layers=1, reference_dim=8))
    cfg.backbone.frame_condition = True
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = make_inputs(model)
    z, first = inputs[0], torch.randn_like(inputs[0][:, 0])
    seen = []
    real = model.refiner.reference.forward
    model.refiner.reference.forward = lambda h, ref: seen.append(ref) or real(h, ref)
    with torch.no_grad():
        model(*inputs, condition=first_frame_condition(z, first))
    assert torch.equal(seen[0], first)


def test_reference_attention_added_to_a_trained_refiner_changes_nothing(tmp_path):
    trained = make(RefinerConfig(channels=8, layers=1))
    perturb_new_weights(trained)
    trained.save_pretrained(tmp_path / "m")
    grown = make(RefinerConfig(channels=8, layers=1, reference_dim=8), seed=3)
    grown.transformer.load_state_dict(trained.transformer.state_dict())
    fresh = grown.load_adapter(tmp_path / "m", missing_ok=("refiner.",))
    assert fresh and all(k.startswith("refiner.reference.") for k in fresh)
    inputs = make_inputs(trained)
    with torch.no_grad():
        assert torch.equal(grown(*inputs), trained(*inputs))
    grown.train()
    grown(*inputs).square().mean().backward()
    assert grown.refiner.reference.to_out.weight.grad.abs().sum() > 0  # it can start learning


def test_reference_attention_flops_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    r = attention_refiner()
    x, pred, t = torch.randn(2, 3, 6, 4, 6), torch.randn(2, 3, 3, 4, 6), torch.tensor([1, 2])
    with FlopCounterMode(display=False) as counter:
        r(x, pred, t)
    counted = sum(counter.get_flop_counts()["Global"].values())  # everything, minus the two small MLPs below
    time_mlp = sum(2 * m.in_features * m.out_features * 2 for m in r.time if isinstance(m, torch.nn.Linear))
    positions = sum(2 * m.in_features * m.out_features * 6 for m in (r.reference.pos_q, r.reference.pos_k))
    assert r.flops(images=6, pixels=24, references=2) == counted - time_mlp - positions


def test_reference_attention_needs_the_reference_channels_and_a_valid_shape():
    with pytest.raises(ValueError, match="reference latent"):
        LatentRefiner(RefinerConfig(reference_dim=4), in_channels=3, out_channels=3)
    with pytest.raises(ValueError, match="reference_patch >= 1, got 4 and 0"):
        LatentRefiner(RefinerConfig(reference_dim=4, reference_patch=0), in_channels=6, out_channels=3)
