"""Text encoders behind one interface: the bundled MiniLM and a T5 encoder from a local folder."""

import shutil

import pytest
import torch

from idvid.errors import ModelUnavailable
from idvid.text import load_text_encoder, minilm_path


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm", max_length=16)


def sentence(enc, text):
    out = enc.encode([text])
    return (out.embeddings.sum(1) / out.mask.sum(1, keepdim=True))[0]  # mean pooling, as sentence-transformers


def test_minilm_pads_masks_and_is_deterministic(minilm):
    out = minilm.encode(["a man is talking", "hi"])
    assert out.embeddings.shape == (2, 16, 384) and minilm.dim == 384
    assert out.mask.sum(1).tolist() == [6, 3]  # [CLS] a man is talking [SEP] / [CLS] hi [SEP]
    assert out.embeddings[1, 3:].abs().max() == 0  # padding is zeroed
    torch.testing.assert_close(minilm.encode(["a man is talking"]).embeddings[0], out.embeddings[0])
    assert not any(p.requires_grad for p in minilm.parameters())


def test_minilm_is_the_real_pretrained_model(minilm):
    """Meaning, not just shapes: a paraphrase is closer than an unrelated sentence."""
    a = sentence(minilm, "a man is talking to the camera")
    b = sentence(minilm, "a person speaks into the camera")
    c = sentence(minilm, "a red car parked on a rainy street")
    cos = torch.nn.functional.cosine_similarity
    assert cos(a, b, dim=0) > cos(a, c, dim=0) + 0.2


def test_t5_from_a_local_folder(tmp_path):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    # tiny random T5 encoder; any tokenizer saved beside it works (here the bundled BERT word-pieces)
    model = T5EncoderModel(T5Config(vocab_size=30522, d_model=16, d_kv=8, num_heads=2, num_layers=1, d_ff=32))
    model.save_pretrained(tmp_path / "pipe" / "text_encoder")
    tok_dir = tmp_path / "pipe" / "tokenizer"
    tok_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, tok_dir / name)

    enc = load_text_encoder("t5", tmp_path / "pipe", max_length=12)
    out = enc.encode(["a woman smiles", "a woman smiles broadly"])
    assert out.embeddings.shape == (2, 12, 16) and enc.dim == 16
    ids = enc.tokenizer(["a woman smiles"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.eval()(input_ids=ids).last_hidden_state[0]
    n = int(out.mask[0].sum())
    torch.testing.assert_close(out.embeddings[0, :n], expected[:n], atol=1e-5, rtol=1e-4)


def test_missing_weights_are_one_line_errors(tmp_path):
    with pytest.raises(ModelUnavailable, match="no T5 encoder"):
        load_text_encoder("t5", tmp_path)
    with pytest.raises(ModelUnavailable, match="needs a local folder"):
        load_text_encoder("t5", None)
    with pytest.raises(ValueError):
        load_text_encoder("clip")
