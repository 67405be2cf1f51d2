"""Every loss against a hand computation on small tensors."""

import math

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDPMScheduler, DDPMScheduler

from idvid.objectives import (
    LatentVideoPerceptualLoss,
    cosine_weight,
    crop_faces,
    diffusion_loss,
    frame_identity_loss,
    id_consistency_loss,
    latent_mask,
    latent_region_weights,
    noise_batch,
    predict_x0,
    prediction_target,
    region_aware_loss,
    region_weights,
    restart_from,
)


def test_cosine_weight_at_0_half_and_T():
    w = cosine_weight(torch.tensor([0, 500, 1000]), 1000)
    torch.testing.assert_close(w, torch.tensor([1.0, math.sqrt(0.5), 0.0]), atol=1e-7, rtol=0)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_targets_follow_the_scheduler_prediction_type(kind):
    sched = CogVideoXDPMScheduler(prediction_type=kind, snr_shift_scale=1.0)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 2, 2, generator=g), torch.randn(2, 3, 4, 2, 2, generator=g)
    t = torch.tensor([10, 900])
    a = sched.alphas_cumprod[t].float().view(2, 1, 1, 1, 1)
    noisy = sched.add_noise(x0, eps, t)
    torch.testing.assert_close(noisy, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    target = prediction_target(sched, x0, eps, t)
    hand = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}[kind]
    torch.testing.assert_close(target, hand)
    # x̂0 from a perfect prediction is the clean latent
    torch.testing.assert_close(predict_x0(sched, noisy, target, t), x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_restart_from_noises_the_chosen_clips_from_the_start_and_targets_the_clip(kind):
    sched = CogVideoXDPMScheduler(prediction_type=kind, snr_shift_scale=1.0)
    g = torch.Generator().manual_seed(0)
    x0, start = torch.randn(3, 2, 4, 2, 2, generator=g), torch.randn(3, 2, 4, 2, 2, generator=g)
    batch = noise_batch(sched, x0, timesteps=torch.tensor([10, 700, 900]), generator=g)
    rows = torch.tensor([True, False, True])
    out = restart_from(sched, batch, x0, start, rows, torch.tensor([450, 450, 300]))
    assert out.timesteps.tolist() == [450, 700, 300]
    a = sched.alphas_cumprod[out.timesteps].float().view(3, 1, 1, 1, 1)
    # chosen clips: the start noised with their own ε (as image-to-image sampling starts); the others untouched
    torch.testing.assert_close(out.noisy[rows], (a.sqrt() * start + (1 - a).sqrt() * batch.noise)[rows])
    torch.testing.assert_close(out.noisy[1], batch.noisy[1])
    torch.testing.assert_close(out.target[1], batch.target[1])
    # and a perfect prediction from there is the clip itself, not the start
    torch.testing.assert_close(predict_x0(sched, out.noisy, out.target, out.timesteps), x0, atol=1e-4, rtol=1e-4)


def test_noise_batch_and_diffusion_loss():
    sched = DDPMScheduler(prediction_type="v_prediction")
    x0 = torch.randn(3, 2, 4, 2, 2)
    batch = noise_batch(sched, x0, generator=torch.Generator().manual_seed(0))
    assert batch.timesteps.shape == (3,) and (batch.timesteps < 1000).all()
    torch.testing.assert_close(batch.noisy, sched.add_noise(x0, batch.noise, batch.timesteps))
    torch.testing.assert_close(batch.target, sched.get_velocity(x0, batch.noise, batch.timesteps))
    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert diffusion_loss(out, torch.zeros(2, 2)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    # v-loss == x0-loss weighted by 1 / (1 - ᾱ_t)
    pred_v = batch.target + 0.1 * torch.randn_like(batch.target)
    a = sched.alphas_cumprod[batch.timesteps].float().view(3, 1, 1, 1, 1)
    x0_err = (predict_x0(sched, batch.noisy, pred_v, batch.timesteps) - x0).square() / (1 - a)
    torch.testing.assert_close((pred_v - batch.target).square(), x0_err, atol=1e-4, rtol=1e-3)


def test_latent_mask_follows_the_causal_vae_frames():
    mask = torch.zeros(1, 5, 4, 4)  # 5 pixel frames -> 2 latent frames with r = 4
    mask[0, 0, :2, :2] = 1  # frame 0: top-left quadrant
    mask[0, 1:3, :, :] = 1  # frames 1, 2 full, 3, 4 empty -> latent frame 1 = 0.5 everywhere
    m = latent_mask(mask, (2, 2, 2))
    assert m.shape == (1, 2, 1, 2, 2)
    assert m[0, 0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert m[0, 1, 0].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    # same frame count: spatial area averages only
    m2 = latent_mask(torch.ones(1, 2, 4, 4), (2, 2, 2))
    assert m2.unique().tolist() == [1.0]


def _one_by_one_conv(weight: torch.Tensor) -> torch.nn.Conv3d:
    conv = torch.nn.Conv3d(weight.shape[1], weight.shape[0], 1)
    with torch.no_grad():
        conv.weight.copy_(weight[..., None, None, None])
        conv.bias.fill_(0.7)  # cancels in f(Ẑ0) − f(Z̃0)
    return conv


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_latent_video_perceptual_loss_by_hand(reduction):
    w_f = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])  # f: 2 latent channels -> 3 features
    loss = LatentVideoPerceptualLoss(_one_by_one_conv(w_f), scaling_factor=2.0, reduction=reduction)
    # B=1, F=1, C=2, 1x2 latents; mask covers the first pixel
    x0 = torch.zeros(1, 1, 2, 1, 2)
    pred = torch.tensor([[[[[2.0, 4.0]], [[6.0, 8.0]]]]])  # (1, 1, 2, 1, 2)
    mask = torch.tensor([[[[[1.0, 0.0]]]]])  # (1, 1, 1, 1, 2)
    t = torch.tensor([500])
    terms = loss(pred, x0, mask, t)
    # face: f on pred/2 at pixel 0: z = (1, 3) -> (1, 4, 6); squares 1 + 16 + 36 = 53 over 3*2 = 6 elements
    # back: (1 - M) keeps pixel 1: (4, 8) -> 16 + 64 = 80 over 4 elements
    w = math.cos(math.pi / 4)
    face = w * (math.sqrt(53 / 6) if reduction == "mean" else math.sqrt(53))
    back = w * (80 / 4 if reduction == "mean" else 80)
    assert terms.face.item() == pytest.approx(face, rel=1e-6)
    assert terms.back.item() == pytest.approx(back, rel=1e-6)
    assert terms.total.item() == pytest.approx(2.0 * face + 0.5 * back, rel=1e-6)
    # t = T: the cosine weight switches the loss off
    assert loss(pred, x0, mask, torch.tensor([1000])).total.abs().item() < 1e-5


def test_perceptual_loss_uses_the_vae_decoders_first_convolution():
    from diffusers import AutoencoderKLCogVideoX

    from idvid.models.backbone import tiny_vae_config

    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(**tiny_vae_config())
    loss = LatentVideoPerceptualLoss.from_vae(vae)
    assert loss.first_conv is vae.decoder.conv_in and loss.scaling_factor == vae.config.scaling_factor
    pred, x0 = torch.randn(1, 2, 4, 4, 4, requires_grad=True), torch.randn(1, 2, 4, 4, 4)
    terms = loss(pred, x0, torch.ones(1, 2, 1, 4, 4), torch.tensor([0]))

    def f(z):  # the decoder's first convolution on unscaled latents, (B, C, F, h, w) layout
        return vae.decoder.conv_in((z / vae.config.scaling_factor).permute(0, 2, 1, 3, 4))[0]

    with torch.no_grad():
        expected_face = (f(pred) - f(x0)).square().mean().sqrt()
    assert terms.face.item() == pytest.approx(expected_face.item(), rel=1e-5)
    assert terms.back.item() == 0.0  # M = 1 everywhere: no background
    terms.total.backward()
    assert pred.grad.abs().sum() > 0 and vae.decoder.conv_in.conv.weight.grad is None


def test_region_weights_and_region_aware_loss_by_hand():
    flow = torch.tensor([0.0, 100.0, 127.5, 191.25, 255.0, 1000.0])
    assert region_weights(flow).tolist() == [1.0, 1.0, 1.0, 1.25, 1.5, 1.5]
    pred = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    target = torch.zeros(2, 2)
    weights = torch.tensor([[1.5, 1.0], [1.0, 1.25]])
    assert region_aware_loss(pred, target, weights).item() == pytest.approx((1.5 * 1 + 1.0 * 4 + 0 + 1.25 * 1) / 4)
    # M ≡ 1 is the plain diffusion loss
    assert region_aware_loss(pred, target, torch.ones(2, 2)).item() == pytest.approx(diffusion_loss(pred, target).item())
    w = latent_region_weights(torch.full((1, 5, 4, 4), 255.0), (2, 2, 2))
    assert w.shape == (1, 2, 1, 2, 2) and w.unique().tolist() == [1.5]


class FlattenEmbedder(torch.nn.Module):
    """φ(x) = x flattened: cosines are then plain pixel-vector cosines."""

    def forward(self, x):
        return x.flatten(1)


def test_id_consistency_loss_by_hand():
    ref = torch.zeros(1, 3, 2, 2)
    ref[0, 0, 0, 0] = 1.0  # a unit vector e0
    frames = torch.zeros(1, 2, 3, 2, 2)
    frames[0, 0, 0, 0, 0] = 2.0  # parallel: cos = 1
    frames[0, 1, 0, 0, 0] = 1.0
    frames[0, 1, 0, 0, 1] = 1.0  # 45 degrees: cos = 1/√2
    loss = id_consistency_loss(FlattenEmbedder(), frames, ref)
    assert loss.item() == pytest.approx(1 - (1 + 1 / math.sqrt(2)) / 2, rel=1e-6)
    assert id_consistency_loss(FlattenEmbedder(), ref[:, None].repeat(1, 3, 1, 1, 1), ref).item() == pytest.approx(0, abs=1e-6)


def test_frame_identity_loss_judges_each_frame_against_its_own_target():
    # constant-colour frames: the 112-pixel face crops are constant too, so φ = flatten gives colour cosines
    targets = torch.zeros(1, 3, 2, 8, 8)
    targets[:, 0] = 1.0  # both frames red: (1, 0, 0)
    frames = torch.zeros(1, 3, 2, 8, 8)
    frames[:, 0, 0] = 1.0  # frame 0 red: cos 1
    frames[:, 0, 1] = frames[:, 1, 1] = 1.0  # frame 1 yellow: cos 1/√2
    frames.requires_grad_(True)
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0]]])
    loss = frame_identity_loss(FlattenEmbedder(), frames, targets, boxes)
    assert loss.item() == pytest.approx(1 - (1 + 1 / math.sqrt(2)) / 2, rel=1e-5)
    loss.backward()
    assert frames.grad[:, :, 1].abs().sum() > 0 and frames.grad[:, :, 0].abs().sum() == pytest.approx(0, abs=1e-6)
    # each frame is judged against its own target: targets equal to the (different) frames give 0
    swapped = targets.clone()
    swapped[:, :, 1] = frames[:, :, 1].detach()
    assert frame_identity_loss(FlattenEmbedder(), frames, swapped, boxes).item() == pytest.approx(0, abs=1e-6)


def test_crop_faces_cuts_the_box_differentiably():
    img = torch.zeros(1, 1, 3, 8, 8)
    img[..., :4, 4:] = 1.0  # top-right quadrant white
    img.requires_grad_(True)
    crop = crop_faces(img, torch.tensor([[[4.0, 0.0, 8.0, 4.0]]]), size=4)
    torch.testing.assert_close(crop, torch.ones(1, 1, 3, 4, 4))
    whole = crop_faces(img, torch.tensor([[[0.0, 0.0, 8.0, 8.0]]]), size=8)
    torch.testing.assert_close(whole, img.detach())
    whole.sum().backward()
    assert img.grad.abs().sum() > 0


def test_verification_auc_and_face_embedder_training():
    from idvid.models.face_embedder import (
        FaceEmbedder,
        FaceEmbedderConfig,
        train_face_embedder,
        verification_auc,
    )

    emb = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    assert verification_auc(emb, np.array([0, 0, 1, 1])) == 1.0
    # pairs: positives score 0 and 0.198, negatives 0.995, 0.0995, 0.0995, 0.995 -> 2 of 8 orderings right
    assert verification_auc(emb, np.array([0, 1, 0, 1])) == pytest.approx(0.25)

    # four "identities" = four colour patterns with noise; a few steps of a narrow net separate them
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(4, 1, 4, 4, 3))
    crops = np.repeat(np.repeat(base, 28, axis=2), 28, axis=3)  # (4, 1, 112, 112, 3)
    crops = np.repeat(crops, 4, axis=1).reshape(16, 112, 112, 3).astype(np.float32)
    crops = np.clip(crops + rng.normal(0, 25, crops.shape), 0, 255).astype(np.uint8)
    labels = np.repeat(np.arange(4), 4)
    small = FaceEmbedderConfig(width=8)
    model = train_face_embedder(crops, labels, config=small, epochs=4, batch_size=16, lr=5e-3, progress=False)
    assert isinstance(model, FaceEmbedder)
    assert verification_auc(model.embed(crops), labels) > 0.9
    # distillation: the student's embeddings turn towards the teacher's (one random direction per identity)
    teacher = rng.normal(size=(4, 128)).astype(np.float32)[labels]
    student = train_face_embedder(crops, teacher=teacher, config=small, epochs=6, batch_size=16, lr=1e-2, progress=False)
    cos = (student.embed(crops) * (teacher / np.linalg.norm(teacher, axis=1, keepdims=True))).sum(1)
    assert cos.mean() > 0.5


def test_face_embedder_save_load_round_trip(tmp_path):
    from idvid.models.face_embedder import (
        FaceEmbedder,
        FaceEmbedderConfig,
        load_face_embedder,
        save_face_embedder,
    )

    model = FaceEmbedder(FaceEmbedderConfig(width=8)).eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    path = save_face_embedder(model, tmp_path / "fe.safetensors")
    again = load_face_embedder(path)
    assert again.config.width == 8
    torch.testing.assert_close(again(x), model(x))
    torch.testing.assert_close(model(x).norm(dim=-1), torch.ones(2))
