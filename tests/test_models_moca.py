"""Attention primitives, HTP and the MoCA layer against hand computations (seed 000 Eqs. 2–4)."""

import math

import pytest
import torch
from einops import rearrange

from idvid.models.attention import CrossAttention, attend
from idvid.models.baselines import PlainLayer
from idvid.models.inject import BlockInputs
from idvid.models.moca import MoCAConfig, MoCALayer, temporal_broadcast, temporal_pool


def naive_attention(q, k, v, mask=None):
    """softmax(q kᵀ / √d) v written out."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def randomize(module: torch.nn.Module, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_attend_matches_naive_softmax():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (5, 7, 7))
    torch.testing.assert_close(attend(q, k, v), naive_attention(q, k, v), atol=1e-6, rtol=1e-5)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(attend(q, k, v, mask), naive_attention(q, k, v, mask), atol=1e-6, rtol=1e-5)
    # masked tokens really are ignored: changing them changes nothing
    v2 = v.clone()
    v2[:, :, 2] += 100
    torch.testing.assert_close(attend(q, k, v2, mask), attend(q, k, v, mask))


def test_cross_attention_matches_hand_computation():
    attn = CrossAttention(dim=12, context_dim=6, heads=3, head_dim=4)
    randomize(attn)
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(2, 5, 12, generator=g), torch.randn(2, 4, 6, generator=g)
    q = attn.to_q(attn.norm(x)).reshape(2, 5, 3, 4).transpose(1, 2)
    kv = attn.kv.to_kv(attn.kv.norm(c))
    k, v = kv[..., :12].reshape(2, 4, 3, 4).transpose(1, 2), kv[..., 12:].reshape(2, 4, 3, 4).transpose(1, 2)
    expected = attn.to_out(naive_attention(q, k, v).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x, c), expected, atol=1e-5, rtol=1e-5)


def frames_tensor(frames: int) -> torch.Tensor:
    """(1, 1, F, 2, 1) whose frame f holds the values f and 10f."""
    f = torch.arange(frames, dtype=torch.float32)
    return torch.stack([f, 10 * f], dim=-1)[None, None, :, :, None]


def test_temporal_pool_hand_made():
    x = frames_tensor(5)  # frames 0..4
    # s = 2: windows {0,1}, {2,3}, {4} -> the short last window averages only its own frame
    assert temporal_pool(x, 2)[0, 0, :, 0, 0].tolist() == [0.5, 2.5, 4.0]
    assert temporal_pool(x, 2)[0, 0, :, 1, 0].tolist() == [5.0, 25.0, 40.0]
    assert temporal_pool(x, 4)[0, 0, :, 0, 0].tolist() == [1.5, 4.0]
    # a pool larger than the clip is one window over all frames
    assert temporal_pool(x, 8)[0, 0, :, 0, 0].tolist() == [2.0]
    torch.testing.assert_close(temporal_pool(x, 1), x)
    with pytest.raises(ValueError):
        temporal_pool(x, 0)


def test_temporal_broadcast_hand_made():
    pooled = torch.tensor([1.0, 2.0, 3.0])[None, None, :, None, None]
    out = temporal_broadcast(pooled, 2, 5)[0, 0, :, 0, 0]
    assert out.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    # round trip on a 13-frame clip with s = 4 (CogVideoX's latent frame count): each frame gets its window mean
    x = frames_tensor(13)
    back = temporal_broadcast(temporal_pool(x, 4), 4, 13)[0, 0, :, 0, 0]
    assert back.tolist() == [1.5] * 4 + [5.5] * 4 + [9.5] * 4 + [12.0]
    assert temporal_broadcast(temporal_pool(x, 16), 16, 13)[0, 0, :, 0, 0].tolist() == [6.0] * 13


def moca_reference(layer: MoCALayer, z, ids, grid):
    """Eqs. 2–4 written with explicit loops over experts and frame windows."""
    frames, h, w = grid
    heads, d = layer.heads, layer.head_dim
    normed = layer.norm(z)
    q = layer.to_q(normed).reshape(z.shape[0], frames, h * w, heads, d)  # per frame, per head
    def kv(module):
        out = module.to_kv(module.norm(ids))
        k, v = out.chunk(2, dim=-1)
        return k.reshape(*k.shape[:2], heads, d), v.reshape(*v.shape[:2], heads, d)

    def ca(qf, k, v):  # qf (B, T, H, d)
        return naive_attention(qf.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    k0, v0 = kv(layer.shared)
    out = ca(q.reshape(z.shape[0], -1, heads, d), k0, v0).reshape(q.shape)
    lam = torch.softmax(layer.router(normed.mean(1)), dim=-1)
    for i, size in enumerate(layer.pool_sizes):
        ki, vi = kv(layer.experts[i])
        s = min(size, frames)
        for start in range(0, frames, s):
            window = slice(start, min(start + s, frames))
            pooled = q[:, window].mean(dim=1)  # H_i(Q) for this window: (B, HW, H, d)
            o = ca(pooled, ki, vi)
            out[:, window] = out[:, window] + lam[:, i, None, None, None, None] * o[:, None]
    return layer.to_out(out.reshape(z.shape[0], frames * h * w, heads * d))


@pytest.mark.parametrize("frames,pools", [(5, [2, 4, 8]), (4, [2, 4, 8]), (3, [1, 2]), (7, [3])])
def test_moca_layer_matches_equations(frames, pools):
    torch.manual_seed(0)
    layer = MoCALayer(dim=16, context_dim=8, heads=2, head_dim=4, pool_sizes=pools)
    randomize(layer)
    grid = (frames, 2, 3)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, frames * 6, 16, generator=g)
    ids = torch.randn(2, 5, 8, generator=g)
    out = layer(z, BlockInputs(cond={"id_tokens": ids}, temb=None, grid=grid))
    torch.testing.assert_close(out, moca_reference(layer, z, ids, grid), atol=1e-5, rtol=1e-4)


def test_moca_router_weights_sum_to_one_and_depend_on_tokens():
    layer = MoCALayer(dim=16, context_dim=8, heads=2, head_dim=4, pool_sizes=[2, 4, 8])
    # untrained: uniform
    lam0 = layer.route(torch.randn(3, 10, 16))
    torch.testing.assert_close(lam0, torch.full((3, 3), 1 / 3))
    randomize(layer)
    lam = layer.route(layer.norm(torch.randn(3, 10, 16)))
    torch.testing.assert_close(lam.sum(-1), torch.ones(3))
    assert (lam > 0).all() and not torch.allclose(lam[0], lam[1])


def test_moca_with_zero_experts_is_plain_identity_cross_attention():
    moca = MoCALayer(dim=16, context_dim=8, heads=2, head_dim=4, pool_sizes=[])
    randomize(moca)
    plain = PlainLayer(dim=16, context_dim=8, heads=2, head_dim=4)
    renamed = {k.replace("shared.", "kv."): v for k, v in moca.state_dict().items()}
    plain.attn.load_state_dict(renamed)
    g = torch.Generator().manual_seed(4)
    z, ids = torch.randn(2, 12, 16, generator=g), torch.randn(2, 5, 8, generator=g)
    inputs = BlockInputs(cond={"id_tokens": ids}, temb=None, grid=(3, 2, 2))
    torch.testing.assert_close(moca(z, inputs), plain(z, inputs), atol=1e-6, rtol=1e-6)
    assert moca(z, inputs).abs().max() > 1e-3  # not trivially zero


def test_moca_pooled_expert_is_constant_within_a_window():
    """With only the pool-8 expert active and the shared CA's values zeroed, the output of a 3-frame clip
    is the same for every frame (one window covers the clip)."""
    layer = MoCALayer(dim=16, context_dim=8, heads=2, head_dim=4, pool_sizes=[8])
    randomize(layer)
    with torch.no_grad():
        layer.shared.to_kv.weight[8:] = 0  # V_id = 0 (rows 8: of [K; V]): the shared CA adds nothing
        layer.to_out.bias.zero_()
    z = torch.randn(1, 3 * 4, 16)
    out = layer(z, BlockInputs(cond={"id_tokens": torch.randn(1, 5, 8)}, temb=None, grid=(3, 2, 2)))
    per_frame = rearrange(out, "b (f s) d -> b f s d", f=3)
    torch.testing.assert_close(per_frame[:, 0], per_frame[:, 2])
    torch.testing.assert_close(per_frame[:, 0], per_frame[:, 1])


def test_moca_config_validates():
    with pytest.raises(ValueError):
        MoCAConfig(pool_sizes=[2, 0])
    with pytest.raises(ValueError):
        MoCAConfig(every=0)
    assert MoCAConfig().pool_sizes == [2, 4, 8]
