"""`idvid bench overhead`: output contract, analytic FLOPs at CogVideoX-5B size, the memory counter."""

import json

import pytest
import torch
from click.testing import CliRunner

from idvid.bench.overhead import SHAPES, live_tensor_memory, overhead

KEYS = {"variant", "shape", "fwd_ratio", "fwdbwd_ratio", "peak_mem_mb", "gflops"}


@pytest.fixture(scope="module")
def rows():
    result = CliRunner().invoke(overhead, ["--shapes", "tiny,cogvideox-5b", "--json", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_contract(rows):
    variants = ["bare", "plain_ca", "moca", "mofe", "motioncharacter", "consisid"]
    assert [(r["shape"], r["variant"]) for r in rows] == [(s, v) for s in ("tiny", "cogvideox-5b") for v in variants]
    for r in rows:
        assert KEYS <= set(r)
    tiny = {r["variant"]: r for r in rows if r["shape"] == "tiny"}
    assert tiny["bare"]["fwd_ratio"] == 1.0 and tiny["bare"]["fwdbwd_ratio"] == 1.0
    for r in tiny.values():
        assert r["fwd_ratio"] > 0 and r["fwdbwd_ratio"] > 0 and r["peak_mem_mb"] > 0 and r["gflops"] > 0
    # every identity module adds work and memory over the bare backbone
    for v in variants[1:]:
        assert tiny[v]["gflops"] > tiny["bare"]["gflops"]
        assert tiny[v]["peak_mem_mb"] > tiny["bare"]["peak_mem_mb"]


def test_cogvideox_5b_flops_by_hand(rows):
    big = {r["variant"]: r for r in rows if r["shape"] == "cogvideox-5b"}
    assert big["bare"]["fwd_ratio"] is None  # not measured here, only counted
    # 42 blocks over s = 226 text + 13*30*45 video tokens at D = 3072: 24 s D² (projections + 4x MLP)
    # + 4 s² D (joint attention); the embeddings and the adaLN modulations add < 0.1%
    s, d = 226 + 13 * 30 * 45, 3072
    hand = 42 * (24 * s * d * d + 4 * s * s * d) / 1e9
    assert big["bare"]["gflops"] == pytest.approx(hand, rel=2e-3)
    # MoCA at half width: Q and W_o over the video tokens dominate -> about 2 * 2 * N * D * D/2 per block
    n = 13 * 30 * 45
    moca_hand = 42 * 2 * (2 * n * d * d / 2) / 1e9
    assert big["moca"]["gflops"] - big["bare"]["gflops"] == pytest.approx(moca_hand, rel=0.05)


def test_live_tensor_memory_counts_storage_exactly():
    with live_tensor_memory() as mem:
        a = torch.empty(1000)  # 4,000 bytes
        b = torch.empty(500)  # 2,000 bytes
        view = a.view(10, 100)  # shares a's storage: not new memory
        a.add_(1)  # in place: not new memory
        del a, view
        c = torch.empty(250)  # 1,000 bytes; a's 4,000 are free again
        assert mem.live == 3000
    assert mem.peak == 6000
    del b, c
    # autograd's backward ops are seen too: the gradient is counted and still live
    x = torch.ones(1000, requires_grad=True)
    with live_tensor_memory() as mem:
        (x * 2).sum().backward()
    assert mem.live >= 4000 and x.grad.untyped_storage().data_ptr() in mem._sizes


def test_unknown_shape_is_a_one_line_error():
    from idvid.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "overhead", "--shapes", "huge"])
    assert exc.value.code == 2
    assert set(SHAPES) == {"tiny", "mid", "cogvideox-5b"}
