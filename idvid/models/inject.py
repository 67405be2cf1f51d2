"""Attaching identity modules to a diffusers video transformer by composition.

The one place that knows how a module gets into a backbone. A CogVideoX block runs joint attention over
[text; video] tokens followed by a feed-forward layer and returns `(video, text)`. `attach()` registers a
pre-hook and a post-hook on the chosen blocks (the block classes and their state-dict keys stay exactly
diffusers'); after a block has run, each attached layer adds its residual to the *video* tokens:

    z = block(z, text, temb)           # diffusers, untouched
    z = z + layer_1(z, cond, temb)     # e.g. MoCA
    z = z + layer_2(z, cond, temb)     # e.g. the Motion Control Module, on the output of layer_1 (Eq. 8: Q' = Z' W'q)

Per-call conditioning (ID tokens, the latent frame grid HTP needs) travels inside the transformer's own
`attention_kwargs` under `CONTEXT_KEY`, so it is an ordinary argument of every block call: it survives
gradient checkpointing's recomputation in the backward pass and never lives in global state. The pre-hook
takes it out again before the block's attention sees its kwargs. An injection whose prepared conditioning
holds `TEMB_KEY` (B, Te) has it added to the timestep embedding every block receives, by the same
pre-hook: the block's adaptive LayerNorms then scale and shift with it.

Per-block layers are owned by their `Injection` (not registered in the transformer): the backbone's
`state_dict()` and `save_pretrained()` are unchanged by attaching, and the new weights are exactly the
injections' parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

CONTEXT_KEY = "idvid_context"
TEMB_KEY = "temb"  # in an injection's prepared conditioning: an addition to every block's timestep embedding


@dataclass
class InjectionContext:
    """Conditioning for one transformer call.

    `cond[name]` is what the injection called `name` prepared (None or missing: that injection adds
    nothing on this call — e.g. the unconditional branch of classifier-free guidance). `grid` is the
    (frames, height, width) of the video token grid in latent/patch space.
    """

    cond: dict[str, dict[str, torch.Tensor] | None]
    grid: tuple[int, int, int]


@dataclass(frozen=True)
class Wiring:
    """What an injection needs to know about the model it is built into."""

    dim: int  # backbone hidden size D
    temb_dim: int  # timestep-embedding size the blocks receive
    heads: int  # backbone attention heads (default for the injections' own attentions)
    head_dim: int
    num_layers: int  # backbone blocks
    features: Mapping[str, tuple[int, int]]  # identity feature name -> (tokens, channels)
    text_dim: int = 0  # channels of text-encoder embeddings (action phrases)


@dataclass
class BlockInputs:
    """What a per-block layer sees besides the video tokens."""

    cond: dict[str, torch.Tensor]
    temb: torch.Tensor | None  # (B, Te) the block's timestep embedding
    grid: tuple[int, int, int]  # (F, H, W) tokens; F*H*W == N


class InjectionLayer(nn.Module):
    """One block's worth of an injection: `forward(z (B, N, D), inputs) -> residual (B, N, D)`."""

    def forward(self, hidden_states: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        raise NotImplementedError

    def flops(self, batch: int, grid: tuple[int, int, int], context_tokens: Mapping[str, int]) -> int:
        """Analytic matmul/attention FLOPs of one call (2 per multiply-add), as `FlopCounterMode` counts."""
        raise NotImplementedError


class Injection(nn.Module):
    """A family of per-block layers plus the conditioning they share, built from its own config.

    Subclasses declare `config_class`, `kind` (registry name) and `requires` (identity features they read,
    see `IdentityFeatures`), implement `prepare()` (once per call) and `make_layer()` (once per block).
    """

    config_class: ClassVar[type]
    kind: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, wiring: Wiring):
        super().__init__()
        self.config, self.wiring = config, wiring
        every = int(getattr(config, "every", 1))
        self.block_indices: list[int] = list(range(0, wiring.num_layers, every))
        self.layers = nn.ModuleList([self.make_layer() for _ in self.block_indices])

    def make_layer(self) -> InjectionLayer:
        raise NotImplementedError

    def prepare(self, features: Any, motion: Any = None) -> dict[str, torch.Tensor] | None:
        """Conditioning shared by all blocks on this call (e.g. Eq. 2's fused ID embedding)."""
        raise NotImplementedError

    def context_tokens(self) -> dict[str, int]:
        """Number of tokens of each conditioning tensor `prepare()` returns (for analytic FLOPs)."""
        raise NotImplementedError

    def layer_flops(self, batch: int, grid: tuple[int, int, int], tokens: Mapping[str, int] | None = None) -> int:
        """Analytic FLOPs of all this injection's per-block layers on one call (`tokens` overrides counts)."""
        counts = {**self.context_tokens(), **(tokens or {})}
        return sum(layer.flops(batch, grid, counts) for layer in self.layers)


@dataclass
class Attachment:
    """Hook handles of the injections attached to one transformer; `detach()` removes them."""

    transformer: nn.Module
    injections: dict[str, Injection]
    handles: list[Any] = field(default_factory=list)
    _pending: dict[int, list[InjectionContext | None]] = field(default_factory=dict)

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self._pending.clear()


def _blocks(transformer: nn.Module) -> nn.ModuleList:
    blocks = getattr(transformer, "transformer_blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"{type(transformer).__name__} has no `transformer_blocks` to attach identity modules to")
    return blocks


# CogVideoXBlock.forward(hidden_states, encoder_hidden_states, temb, image_rotary_emb, attention_kwargs)
_TEMB_POS, _KWARGS_POS = 2, 4


def _pop_context(args: tuple, kwargs: dict) -> tuple[tuple, dict, InjectionContext | None]:
    if "attention_kwargs" in kwargs:
        attn_kwargs = kwargs["attention_kwargs"]
        if attn_kwargs and CONTEXT_KEY in attn_kwargs:
            rest = {k: v for k, v in attn_kwargs.items() if k != CONTEXT_KEY}
            kwargs = {**kwargs, "attention_kwargs": rest or None}
            return args, kwargs, attn_kwargs[CONTEXT_KEY]
    elif len(args) > _KWARGS_POS:
        attn_kwargs = args[_KWARGS_POS]
        if attn_kwargs and CONTEXT_KEY in attn_kwargs:
            rest = {k: v for k, v in attn_kwargs.items() if k != CONTEXT_KEY}
            args = args[:_KWARGS_POS] + (rest or None,) + args[_KWARGS_POS + 1 :]
            return args, kwargs, attn_kwargs[CONTEXT_KEY]
    return args, kwargs, None


def _shift_temb(args: tuple, kwargs: dict, context: InjectionContext | None) -> tuple[tuple, dict]:
    """Add the injections' timestep-embedding terms (`TEMB_KEY`) to the block's `temb` argument."""
    if context is None:
        return args, kwargs
    extra = [c[TEMB_KEY] for c in context.cond.values() if c is not None and TEMB_KEY in c]
    if not extra:
        return args, kwargs
    temb = kwargs["temb"] if "temb" in kwargs else args[_TEMB_POS]
    shifted = temb + sum(extra).to(temb.dtype)
    if "temb" in kwargs:
        return args, {**kwargs, "temb": shifted}
    return args[:_TEMB_POS] + (shifted,) + args[_TEMB_POS + 1 :], kwargs


def _strip_hook(module, args, kwargs):
    args, kwargs, context = _pop_context(args, kwargs)
    return _shift_temb(args, kwargs, context)


def attach(transformer: nn.Module, injections: Mapping[str, Injection]) -> Attachment:
    """Run each injection's layers after its blocks of `transformer` (a CogVideoX-style transformer).

    Layers of several injections on the same block run in the order of `injections`, each on the output
    of the previous one.
    """
    blocks = _blocks(transformer)
    attachment = Attachment(transformer, dict(injections))
    per_block: dict[int, list[tuple[str, InjectionLayer]]] = {}
    for name, injection in injections.items():
        for layer, index in zip(injection.layers, injection.block_indices, strict=True):
            if index >= len(blocks):
                raise ValueError(f"injection {name!r} wants block {index}, the backbone has {len(blocks)}")
            per_block.setdefault(index, []).append((name, layer))

    for index, block in enumerate(blocks):
        layers = per_block.get(index, [])
        if not layers:  # still strip the context, or the block's attention would warn about an unknown kwarg
            attachment.handles.append(block.register_forward_pre_hook(_strip_hook, with_kwargs=True))
            continue
        # One slot per block: a block never runs inside itself, and a slot left filled (checkpointing may
        # stop a recomputation before the post-hook) is simply overwritten by the next call.
        slot: list[InjectionContext | None] = [None]
        attachment._pending[index] = slot

        def pre_hook(module, args, kwargs, slot=slot):
            args, kwargs, slot[0] = _pop_context(args, kwargs)
            return _shift_temb(args, kwargs, slot[0])

        def post_hook(module, args, kwargs, output, slot=slot, layers=layers):
            context, slot[0] = slot[0], None
            if context is None:
                return None
            hidden_states, encoder_hidden_states = output
            temb = kwargs["temb"] if "temb" in kwargs else args[_TEMB_POS]
            for name, layer in layers:
                cond = context.cond.get(name)
                if cond is None:
                    continue
                param = next(layer.parameters())
                inputs = BlockInputs(cond=cond, temb=temb, grid=context.grid)
                residual = layer(hidden_states.to(param.dtype), inputs)  # (B, N, D)
                hidden_states = hidden_states + residual.to(hidden_states.dtype)
            return hidden_states, encoder_hidden_states

        attachment.handles.append(block.register_forward_pre_hook(pre_hook, with_kwargs=True))
        attachment.handles.append(block.register_forward_hook(post_hook, with_kwargs=True))
    return attachment


def detach(attachment: Attachment) -> None:
    """Remove every hook `attach()` registered; the transformer is the bare backbone again."""
    attachment.detach()
