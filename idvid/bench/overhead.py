"""`idvid bench overhead`: what each identity-injection variant costs on top of the bare video backbone.

For each shape, every variant is built around the same backbone architecture and measured side by side in
one process, interleaved (round r runs all variants, starting at a different one each round) so that load
from other processes hits them alike; the figure kept is the median over rounds.

* fwd: one denoiser call under `torch.no_grad()` (inference), ID encoders included;
* fwd+bwd: one training step's forward and backward with the backbone frozen and the new modules
  trainable (the bare backbone backpropagates to its input latents, so it pays the same activation
  gradients);
* peak_mem_mb: weights (parameters + buffers) plus the peak of live tensor storage during a fwd+bwd step,
  counted exactly by a `TorchDispatchMode` that records every storage a torch op creates and forgets it
  when it is freed (allocator caching and kernel scratch space are not included; the CPU has no
  allocator statistics to ask);
* gflops: analytic forward FLOPs of the backbone and the per-block identity layers (2 per multiply-add;
  the per-clip encoders are excluded, < 0.1% at real size), checked against `FlopCounterMode` in the tests.

Shapes: `tiny` (the test preset: 2 layers, 2x16, 4x8x8 latents), `mid` (8 layers, 12x64 = 768 wide,
13x32x48 latents -> 4,992 video tokens, 226 text tokens, bf16) and `cogvideox-5b` (42 layers, 48x64 = 3072
wide, 13x60x90 latents -> 17,550 video tokens; FLOPs only).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import click

VARIANTS = ("bare", "plain_ca", "moca", "mofe", "motioncharacter", "consisid")


@dataclass(frozen=True)
class Shape:
    name: str
    transformer: dict[str, Any]
    latent: tuple[int, int, int]  # latent frames, height, width
    identity: dict[str, Any]
    injection_dims: dict[str, int]  # fusion / context widths of MotionCharacter's modules
    consisid: dict[str, Any]
    precision: str = "fp32"
    measured: bool = True


def _transformer(heads: int, head_dim: int, layers: int, latent: tuple[int, int, int], channels: int, **kw: Any) -> dict[str, Any]:
    f, h, w = latent
    return dict(
        num_attention_heads=heads, attention_head_dim=head_dim, in_channels=2 * channels, out_channels=channels,
        time_embed_dim=kw.get("time_embed_dim", 512), text_embed_dim=kw.get("text_embed_dim", 4096), num_layers=layers,
        sample_width=w, sample_height=h, sample_frames=(f - 1) * 4 + 1, patch_size=2,
        max_text_seq_length=kw.get("text_tokens", 226),
    )  # fmt: skip


SHAPES = {
    "tiny": Shape(
        "tiny",
        _transformer(2, 16, 2, (5, 8, 8), 4, time_embed_dim=32, text_embed_dim=384, text_tokens=16),
        (5, 8, 8),
        dict(token_dim=32, image_dim=32, num_queries=8, qformer_depth=1, qformer_heads=2, id_dim=32),
        dict(fusion_dim=32, fusion_heads=2, context_dim=32, action_tokens=8),
        dict(lfe_depth=1, lfe_heads=2, lfe_head_dim=16, num_id_tokens=2, num_queries=8),
    ),
    "mid": Shape(
        "mid",
        _transformer(12, 64, 8, (13, 32, 48), 16),
        (13, 32, 48),
        dict(token_dim=256, image_dim=256, num_queries=32, qformer_depth=2, qformer_heads=4, id_dim=768),
        dict(fusion_dim=768, fusion_heads=12, context_dim=768, action_tokens=16),
        dict(lfe_depth=2, lfe_heads=8, lfe_head_dim=64, num_id_tokens=4, num_queries=32),
        precision="bf16",
    ),
    "cogvideox-5b": Shape(
        "cogvideox-5b",
        _transformer(48, 64, 42, (13, 60, 90), 16),
        (13, 60, 90),
        dict(token_dim=1024, image_dim=1024, num_queries=32, qformer_depth=4, qformer_heads=16, id_dim=2048),
        dict(fusion_dim=2048, fusion_heads=16, context_dim=2048, action_tokens=32),
        dict(lfe_depth=10, lfe_heads=16, lfe_head_dim=64, num_id_tokens=5, num_queries=32),
        precision="bf16",
        measured=False,
    ),
}


def model_config(shape: Shape, variant: str):
    from idvid.models.backbone import BackboneConfig
    from idvid.models.baselines import ConsisIDConfig
    from idvid.models.encoders import IdentityEncoderConfig
    from idvid.models.model import ModelConfig, variant_injections

    injections = variant_injections("none" if variant == "bare" else variant)
    for c in injections:
        for name, value in shape.injection_dims.items():
            if hasattr(c, name):
                setattr(c, name, value)
    return ModelConfig(
        backbone=BackboneConfig(transformer=shape.transformer, precision=shape.precision, with_vae=False),
        identity=IdentityEncoderConfig(**shape.identity),
        injections=injections,
        consisid=ConsisIDConfig(**shape.consisid) if variant == "consisid" else None,
        text_encoder="none",
        adapter_precision=shape.precision,
    )


# ---------------------------------------------------------------------------------------------- memory
def live_tensor_memory():
    """A `TorchDispatchMode` counting the peak bytes of tensor storage that torch ops create while it is
    active (`.peak`). Views and in-place results share an input's storage and are not counted; a storage
    leaves the count when it is freed."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveTensorMemory(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.peak = 0
            self._sizes: dict[int, int] = {}

        def _free(self, key: int) -> None:
            self.live -= self._sizes.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
            for t in tree_leaves(out):
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key == 0 or key in inputs or key in self._sizes:
                    continue
                self._sizes[key] = storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key)
            return out

    return LiveTensorMemory()


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Case:
    variant: str
    model: Any
    args: tuple
    fwd: list[tuple[float, float]] = field(default_factory=list)  # (cpu s, wall s) per measurement
    fwdbwd: list[tuple[float, float]] = field(default_factory=list)
    peak_bytes: int = 0


def _inputs(model, shape: Shape, generator):
    import torch

    from idvid.models.encoders import IdentityInputs

    f, h, w = shape.latent
    tc = model.transformer.config
    dtype = model.dtype
    latents = torch.randn(1, f, tc.out_channels, h, w, generator=generator).to(dtype)
    text = torch.randn(1, tc.max_text_seq_length, tc.text_embed_dim, generator=generator).to(dtype)
    ids = IdentityInputs(
        face_embedding=torch.randn(1, 128, generator=generator),
        face_crop=torch.rand(1, 3, 112, 112, generator=generator) * 2 - 1,
        reference_latent=torch.randn(1, tc.out_channels, h, w, generator=generator).to(dtype),
    )
    motion = None
    if "motion" in model.injections:
        from idvid.models.motion import MotionInputs

        length = model.injections["motion"].config.action_tokens
        motion = MotionInputs(torch.randn(1, length, tc.text_embed_dim, generator=generator), torch.tensor([8.0]))
    return latents, torch.tensor([500]), text, ids, motion


def _build(shape: Shape, variant: str):
    import torch

    from idvid.models.model import IdentityVideoModel

    torch.manual_seed(0)
    model = IdentityVideoModel(model_config(shape, variant)).eval()
    for p in model.transformer.parameters():
        p.requires_grad_(False)
    # Untrained modules are zero at the output; give them weights so no path is short-circuited by zeros.
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and not p.abs().sum():
                p.normal_(0, 0.02)
    return model


def _clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(start: tuple[float, float], repeat: int) -> tuple[float, float]:
    cpu, wall = _clocks()
    return (cpu - start[0]) / repeat, (wall - start[1]) / repeat


def _fwd(case: Case, repeat: int) -> tuple[float, float]:
    import torch

    start = _clocks()
    with torch.no_grad():
        for _ in range(repeat):
            case.model(*case.args)
    return _since(start, repeat)


def _fwdbwd(case: Case, repeat: int, memory=None) -> tuple[float, float]:
    import contextlib

    latents, t, text, ids, motion = case.args
    start = _clocks()
    for _ in range(repeat):
        case.model.zero_grad(set_to_none=True)
        x = latents.detach().requires_grad_(True)
        with memory if memory is not None else contextlib.nullcontext():
            case.model(x, t, text, ids, motion).float().square().mean().backward()
    return _since(start, repeat)


def _weight_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def measure_shape(shape: Shape, variants: tuple[str, ...], repeats: int, bwd_repeats: int, clock: str, log) -> list[dict[str, Any]]:
    import torch

    threads = torch.get_num_threads()
    if shape.name == "tiny":
        # Its ops last microseconds: with two threads on shared cores we would time OpenMP barrier waits.
        torch.set_num_threads(1)
    try:
        return _measure(shape, variants, repeats, bwd_repeats, clock, log)
    finally:
        torch.set_num_threads(threads)


def _measure(shape: Shape, variants: tuple[str, ...], repeats: int, bwd_repeats: int, clock: str, log) -> list[dict[str, Any]]:
    import torch

    gen = torch.Generator().manual_seed(0)
    cases = []
    for v in variants:
        model = _build(shape, v)
        cases.append(Case(v, model, _inputs(model, shape, gen)))
    tiny = shape.name == "tiny"
    # Tiny calls last milliseconds: repeat each so that one measurement lasts >= ~50 ms, and warm up.
    inner = max(1, int(0.05 / max(_fwd(cases[0], 1)[1], 1e-4))) if tiny else 1
    if tiny:
        for case in cases:
            _fwd(case, 1), _fwdbwd(case, 1)
    n = len(cases)
    for r in range(repeats):
        for i in range(n):  # rotate the order so no variant always runs first
            case = cases[(r + i) % n]
            case.fwd.append(_fwd(case, inner))
        log(f"  [{shape.name}] fwd round {r + 1}/{repeats}")
    for r in range(bwd_repeats + (1 if tiny else 0)):
        memory_round = r == bwd_repeats - 1 + (1 if tiny else 0)
        for i in range(n):
            case = cases[(r + i) % n]
            if memory_round:  # the tracker's bookkeeping is timed only where it is negligible (mid)
                memory = live_tensor_memory()
                timing = _fwdbwd(case, 1, memory)
                case.peak_bytes = memory.peak
                if not tiny:
                    case.fwdbwd.append(timing)
            else:
                case.fwdbwd.append(_fwdbwd(case, inner))
        log(f"  [{shape.name}] fwd+bwd round {r + 1}/{bwd_repeats + (1 if tiny else 0)}")

    k = 0 if clock == "cpu" else 1

    def med(samples: list[tuple[float, float]], which: int) -> float:
        return statistics.median(x[which] for x in samples)

    base = cases[0]
    base_flops = _gflops(base.model, shape)
    rows = []
    for case in cases:
        gflops = _gflops(case.model, shape)
        rows.append(
            dict(
                variant=case.variant,
                shape=shape.name,
                fwd_ratio=round(med(case.fwd, k) / med(base.fwd, k), 4),
                fwdbwd_ratio=round(med(case.fwdbwd, k) / med(base.fwdbwd, k), 4),
                peak_mem_mb=round((_weight_bytes(case.model) + case.peak_bytes) / 2**20, 1),
                gflops=float(f"{gflops:.6g}"),
                gflops_ratio=round(gflops / base_flops, 4),
                clock=clock,
                fwd_ms=round(1000 * med(case.fwd, k), 2),
                fwdbwd_ms=round(1000 * med(case.fwdbwd, k), 2),
                fwd_wall_ratio=round(med(case.fwd, 1) / med(base.fwd, 1), 4),
                fwdbwd_wall_ratio=round(med(case.fwdbwd, 1) / med(base.fwdbwd, 1), 4),
                rounds=[len(case.fwd), len(case.fwdbwd)],
            )
        )
    return rows


def _gflops(model, shape: Shape) -> float:
    return sum(model.flops(1, shape.latent).values()) / 1e9


def analytic_rows(shape: Shape, variants: tuple[str, ...]) -> list[dict[str, Any]]:
    """FLOPs at a shape too large to build here: modules are created on the meta device (no memory)."""
    import torch
    from diffusers.configuration_utils import FrozenDict

    from idvid.models.backbone import backbone_flops, token_grid
    from idvid.models.baselines import consisid_flops
    from idvid.models.encoders import IdentityEncoder
    from idvid.models.inject import Wiring
    from idvid.models.model import INJECTIONS, ModelConfig, identity_heads

    tc = FrozenDict(shape.transformer)
    grid = token_grid(tc, (1, shape.latent[0], 0, shape.latent[1], shape.latent[2]))
    base = backbone_flops(tc, 1, grid)
    rows = []
    for variant in variants:
        cfg = model_config(shape, variant)
        total = base
        with torch.device("meta"):
            requires = set()
            for c in cfg.injections:
                requires |= INJECTIONS[ModelConfig.kind_of(c)].requires
            if requires:
                features = IdentityEncoder(cfg.identity, requires).feature_shapes()
                wiring = Wiring(
                    dim=tc.num_attention_heads * tc.attention_head_dim, temb_dim=tc.time_embed_dim,
                    heads=identity_heads(tc.num_attention_heads), head_dim=tc.attention_head_dim, num_layers=tc.num_layers,
                    features=features, text_dim=tc.text_embed_dim,
                )  # fmt: skip
                for c in cfg.injections:
                    total += INJECTIONS[ModelConfig.kind_of(c)](c, wiring).layer_flops(1, grid)
        if variant == "consisid":
            cc = cfg.consisid
            total += consisid_flops(
                tc.num_attention_heads, tc.attention_head_dim, tc.num_layers, cc.cross_attn_interval,
                (cc.cross_attn_heads or identity_heads(tc.num_attention_heads)) * (cc.cross_attn_head_dim or tc.attention_head_dim),
                cc.num_queries, 1, grid,
            )  # fmt: skip
        rows.append(
            dict(
                variant=variant, shape=shape.name, fwd_ratio=None, fwdbwd_ratio=None, peak_mem_mb=None,
                gflops=round(total / 1e9, 1), gflops_ratio=round(total / base, 4),
            )
        )  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'shape':<13} {'variant':<16} {'fwd ms':>9} {'fwd x':>7} {'fwd+bwd ms':>11} {'f+b x':>7} {'peak MB':>9} {'GFLOPs':>11} {'FLOPs x':>8}"
    lines = [head, "-" * len(head)]

    def fmt(v, spec):
        return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])

    for r in rows:
        lines.append(
            f"{r['shape']:<13} {r['variant']:<16} {fmt(r.get('fwd_ms'), '9.1f')} {fmt(r['fwd_ratio'], '7.3f')} "
            f"{fmt(r.get('fwdbwd_ms'), '11.1f')} {fmt(r['fwdbwd_ratio'], '7.3f')} {fmt(r['peak_mem_mb'], '9.1f')} "
            f"{fmt(r['gflops'], '11.4g')} {fmt(r['gflops_ratio'], '8.4f')}"
        )
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--shapes", default="tiny,mid,cogvideox-5b", show_default=True, help="Comma-separated shapes to run.")
@click.option("--variants", default=",".join(VARIANTS), show_default=True, help="Comma-separated variants ('bare' is always included).")
@click.option("--repeats", default=2, show_default=True, type=click.IntRange(1), help="Interleaved forward rounds per shape.")
@click.option("--bwd-repeats", default=1, show_default=True, type=click.IntRange(1), help="Interleaved forward+backward rounds per shape.")
@click.option(
    "--clock", type=click.Choice(["cpu", "wall"]), default="cpu", show_default=True,
    help="Ratios from process CPU time (robust to other jobs on shared cores) or wall time (both are in --json).",
)  # fmt: skip
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0), help="torch threads (0: torch's default).")
def overhead(as_json: bool, shapes: str, variants: str, repeats: int, bwd_repeats: int, clock: str, threads: int) -> None:
    """Time and memory of each identity-injection variant vs the bare backbone, side by side.

    Ratios are to 'bare' in the same run. The defaults cost ~6 CPU-minutes (about 3 minutes on 2 idle
    cores; longer when other jobs share them — CPU-time ratios stay put).
    """
    from idvid.errors import InputError

    if "torch" not in sys.modules:
        # Idle OpenMP threads sleep instead of spinning, so CPU time counts work, not waiting for a core.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    names = [s.strip() for s in shapes.split(",") if s.strip()]
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    for s in names:
        if s not in SHAPES:
            raise InputError(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    for v in chosen:
        if v not in VARIANTS:
            raise InputError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    chosen = ("bare",) + tuple(v for v in chosen if v != "bare")
    if threads:
        torch.set_num_threads(threads)

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for s in names:
        shape = SHAPES[s]
        if shape.measured:
            log(f"measuring {s} ({', '.join(chosen)})")
            rows += measure_shape(shape, chosen, repeats, bwd_repeats, clock, log)
        else:
            rows += analytic_rows(shape, chosen)
    log(f"done in {time.perf_counter() - started:.0f} s")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo(_table(rows))


__all__ = ["SHAPES", "VARIANTS", "analytic_rows", "live_tensor_memory", "measure_shape", "overhead"]
