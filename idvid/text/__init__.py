"""Text side: encoders behind one interface (bundled MiniLM by default, T5 from a local folder)."""

from idvid.text.encoders import (
    MiniLMTextEncoder,
    T5TextEncoder,
    TextEmbeddings,
    TextEncoder,
    load_text_encoder,
    minilm_path,
)

__all__ = ["MiniLMTextEncoder", "T5TextEncoder", "TextEmbeddings", "TextEncoder", "load_text_encoder", "minilm_path"]
