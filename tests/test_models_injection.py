"""Attaching identity modules to the diffusers backbone: zero-init identity, gradients, checkpointing,
adapter save/load, detach, FLOP formulas."""

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from safetensors import safe_open
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from idvid.errors import InputError
from idvid.models import IdentityInputs, ModelConfig, MotionInputs, build_model, tiny_config
from idvid.models.backbone import backbone_flops, token_grid

VARIANTS = ["plain_ca", "moca", "mofe", "motioncharacter", "consisid"]


def make_model(variant: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    overrides.setdefault("text_encoder", "none")
    return build_model(tiny_config(variant, **overrides)).eval()


def make_inputs(model, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tc = model.transformer.config
    latents = torch.randn(batch, 4, tc.out_channels, 8, 8, generator=g)
    text = torch.randn(batch, tc.max_text_seq_length, tc.text_embed_dim, generator=g)
    ids = IdentityInputs(
        face_embedding=torch.randn(batch, 128, generator=g),
        face_crop=torch.rand(batch, 3, 112, 112, generator=g) * 2 - 1,
        reference_latent=torch.randn(batch, tc.out_channels, 8, 8, generator=g),
    )
    motion = None
    if "motion" in model.injections:
        length = model.injections["motion"].config.action_tokens
        mask = torch.ones(batch, length, dtype=torch.bool)
        mask[0, 3:] = False
        motion = MotionInputs(torch.randn(batch, length, 384, generator=g), torch.tensor([2.0, 15.0][:batch]), mask)
    return latents, torch.tensor([10, 700][:batch]), text, ids, motion


def perturb_new_weights(model, seed: int = 5, std: float = 0.05):
    """Stand-in for training: every new parameter gets a random nudge (zero-init ones included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in model._adapter_modules():
            for p in module.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g) * std)


def bare_backbone(model) -> CogVideoXTransformer3DModel:
    """A plain diffusers CogVideoX transformer (no hooks) with the model's backbone weights."""
    keys = CogVideoXTransformer3DModel.extract_init_dict(dict(model.transformer.config))[0]
    bare = CogVideoXTransformer3DModel(**keys).eval()
    state = {k: v for k, v in model.transformer.state_dict().items() if k in bare.state_dict()}
    bare.load_state_dict(state, strict=True)
    return bare


@pytest.mark.parametrize("variant", VARIANTS)
def test_untrained_modules_leave_the_backbone_output_unchanged(variant):
    model = make_model(variant)
    latents, t, text, ids, motion = make_inputs(model)
    with torch.no_grad():
        out = model(latents, t, text, ids, motion)
        x = model.condition_latents(latents, ids.reference_latent)
        ref = bare_backbone(model)(x, text, t, return_dict=False)[0]
    assert (out - ref).abs().max().item() <= 1e-6
    # ... and the same model with trained (non-zero) modules does inject something
    perturb_new_weights(model)
    with torch.no_grad():
        moved = model(latents, t, text, ids, motion)
        uncond = model(latents, t, text, IdentityInputs(reference_latent=ids.reference_latent), None)
    assert (moved - ref).abs().max().item() > 1e-4
    # the unconditional branch (no ID features, no motion) is the bare backbone again
    assert (uncond - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_new_parameter_and_no_frozen_one(variant):
    model = make_model(variant, train_backbone=False)
    perturb_new_weights(model)  # zero-init outputs would otherwise block gradients to the layers behind them
    latents, t, text, ids, motion = make_inputs(model)
    model(latents, t, text, ids, motion).square().mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "no trainable parameters"
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"
        else:
            assert p.grad is None, f"frozen parameter {name} received a gradient"
    assert not any(n.startswith("transformer.transformer_blocks.") for n in trainable)


@pytest.mark.parametrize("variant", ["moca", "motioncharacter"])
def test_gradient_checkpointing_gives_the_same_gradients(variant):
    grads = []
    for checkpointing in (False, True):
        model = make_model(variant, train_backbone=True)
        perturb_new_weights(model)
        if checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        for _, module in model._adapter_modules():  # keep training-mode randomness out of the comparison
            for m in module.modules():
                if hasattr(m, "image_dropout"):
                    m.image_dropout = 0.0
        latents, t, text, ids, motion = make_inputs(model)
        model(latents, t, text, ids, motion).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)


def test_motion_time_embedding_starts_at_zero_then_shifts_every_blocks_timestep_embedding():
    """motion.time_embedding=True: added to a trained model it changes nothing, bit for bit; once trained,
    every block receives temb + MLP(sin/cos features of the intensity), and gradients reach the MLP."""
    from idvid.models.motion import MotionControlConfig

    trained = make_model("motioncharacter")
    perturb_new_weights(trained)
    cfg = tiny_config("motioncharacter", text_encoder="none")
    next(c for c in cfg.injections if isinstance(c, MotionControlConfig)).time_embedding = True
    timed = build_model(cfg).eval()
    timed.transformer.load_state_dict(trained.transformer.state_dict())
    fresh = timed.load_adapter(trained.adapter_state_dict(), missing_ok=("injections.motion.temb_proj.",))
    assert fresh and all(k.startswith("injections.motion.temb_proj.") for k in fresh)

    seen: dict[str, list[torch.Tensor]] = {"trained": [], "timed": []}
    for name, model in (("trained", trained), ("timed", timed)):
        for block in model.transformer.transformer_blocks:  # registered after attach(): sees the shifted temb
            block.register_forward_pre_hook(lambda m, a, kw, name=name: seen[name].append(kw["temb"].clone()),
                                            with_kwargs=True)
    latents, t, text, ids, motion = make_inputs(trained)
    with torch.no_grad():
        assert torch.equal(timed(latents, t, text, ids, motion), trained(latents, t, text, ids, motion))
        proj = timed.injections["motion"].temb_proj
        torch.nn.init.normal_(proj[2].weight, std=0.1)
        seen["timed"].clear()
        shifted = timed(latents, t, text, ids, motion)
        feats = timed.injections["motion"].motion_embed.features(motion.intensity)
        extra = proj[2](torch.nn.functional.silu(proj[0](feats)))
    assert len(seen["timed"]) == len(timed.transformer.transformer_blocks)
    for base, got in zip(seen["trained"], seen["timed"], strict=True):
        torch.testing.assert_close(got, base + extra)
    assert (shifted - trained(latents, t, text, ids, motion)).abs().max() > 1e-4
    with torch.no_grad():  # the unconditional branch (no motion) has no shift
        torch.testing.assert_close(timed(latents, t, text, None, None), trained(latents, t, text, None, None))
    timed(latents, t, text, ids, motion).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())


@pytest.mark.parametrize("variant", ["moca", "mofe", "motioncharacter", "consisid"])
def test_adapter_saves_and_loads_alone(variant, tmp_path):
    trained = make_model(variant, train_backbone=False)
    perturb_new_weights(trained, seed=1)
    path = trained.save_adapter(tmp_path / "adapter.safetensors")
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        assert "idvid_config" in f.metadata()
    assert keys and not any("transformer_blocks" in k or k.startswith("vae.") for k in keys)
    assert (tmp_path / "model_config.yaml").is_file()

    fresh = make_model(variant, train_backbone=False)  # same backbone (seed), different adapter weights
    perturb_new_weights(fresh, seed=2)
    inputs = make_inputs(trained)
    with torch.no_grad():
        expected = trained(*inputs)
        assert not torch.equal(fresh(*inputs), expected)
        fresh.load_adapter(path)
        assert torch.equal(fresh(*inputs), expected)


def test_load_adapter_rejects_a_mismatched_file(tmp_path):
    path = make_model("moca").save_adapter(tmp_path)
    with pytest.raises(InputError, match="does not fit"):
        make_model("mofe").load_adapter(path)
    with pytest.raises(InputError, match="no adapter"):
        make_model("moca").load_adapter(tmp_path / "missing.safetensors")


def test_detach_restores_the_bare_backbone():
    model = make_model("moca")
    perturb_new_weights(model)
    latents, t, text, ids, _ = make_inputs(model)
    x = model.condition_latents(latents, ids.reference_latent)
    with torch.no_grad():
        ref = bare_backbone(model)(x, text, t, return_dict=False)[0]
        hooked = model(latents, t, text, ids)
        model.attachment.detach()
        after = model(latents, t, text, ids)
    assert (hooked - ref).abs().max() > 1e-4
    assert torch.equal(after, ref)
    # attaching never changed the backbone's own state dict (keys are diffusers')
    assert set(model.transformer.state_dict()) == set(bare_backbone(model).state_dict())


def test_every_k_blocks_and_stacking_order():
    cfg = tiny_config("motioncharacter", text_encoder="none")
    cfg.injections[0].every = 2
    model = build_model(cfg)
    assert model.injections["id_adapter"].block_indices == [0]
    assert model.injections["motion"].block_indices == [0, 1]
    assert len(model.attachment.handles) == 4  # a pre- and a post-hook on each of the 2 blocks


def test_blocks_without_layers_never_pass_the_context_to_diffusers(caplog):
    cfg = tiny_config("moca", text_encoder="none")
    cfg.injections[0].every = 2  # block 1 hosts no MoCA layer
    model = build_model(cfg).eval()
    assert model.injections["moca"].block_indices == [0]
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.enable_propagation()  # diffusers' loggers do not propagate to caplog by default
    try:
        latents, t, text, ids, motion = make_inputs(model)
        with caplog.at_level("WARNING"), torch.no_grad():
            model(latents, t, text, ids, motion)
            x = model.condition_latents(latents, None)
            model.transformer(x, text, t, attention_kwargs={"unknown": 1})  # proves the check can fire
    finally:
        diffusers_logging.disable_propagation()
    warnings = [r.getMessage() for r in caplog.records if "not expected" in r.getMessage()]
    # The deliberately unknown key fires (once per block; log handlers may duplicate records), and no
    # warning is about our context: every one names only the unknown key.
    assert warnings and all("['unknown']" in w for w in warnings)


def test_config_round_trips_through_yaml(tmp_path):
    cfg = tiny_config("motioncharacter")
    cfg.injections[1].alpha = 0.25
    cfg.to_yaml(tmp_path / "c.yaml")
    back = ModelConfig.from_yaml(tmp_path / "c.yaml")
    assert back.to_dict() == cfg.to_dict()
    assert back.injections[1].alpha == 0.25
    with pytest.raises(ValueError, match="unknown injection"):
        ModelConfig(injections=[{"kind": "nope"}])
    with pytest.raises(ValueError, match="ConsisID"):
        ModelConfig(injections=[{"kind": "moca"}], consisid={})


def test_whole_model_save_and_reload(tmp_path):
    model = make_model("moca")
    perturb_new_weights(model)
    model.save_pretrained(tmp_path / "m")
    again = type(model).from_pretrained(tmp_path / "m").eval()
    inputs = make_inputs(model)
    with torch.no_grad():
        assert torch.equal(again(*inputs), model(*inputs))


def _counted_flops(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("variant", ["none", *VARIANTS])
def test_analytic_flops_match_the_flop_counter(variant):
    model = make_model(variant)
    perturb_new_weights(model)
    model.requires_grad_(False)  # FlopCounterMode's module tracker wants no leaf that requires grad
    latents, t, text, ids, motion = make_inputs(model, batch=1)
    with torch.no_grad():
        total = _counted_flops(lambda: model(latents, t, text, ids, motion))

        def encoders():  # per-call work outside the blocks, excluded from the analytic count
            features = model.identity_features(ids)
            for inj in model.injections.values():
                inj.prepare(features, motion)
            if model.is_consisid:
                model.transformer.local_facial_extractor(features.face_embedding, [features.image_tokens])

        per_call = _counted_flops(encoders)
    analytic = model.flops(1, (4, 8, 8))
    assert analytic["backbone"] == backbone_flops(model.transformer.config, 1, token_grid(model.transformer.config, (1, 4, 8, 8, 8)))
    assert sum(analytic.values()) == total - per_call
    if variant != "none":
        assert len(analytic) == 2 or variant == "motioncharacter"
