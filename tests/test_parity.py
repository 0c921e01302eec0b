"""mlx_embed against the reference implementations: sentence-transformers and transformers on torch CPU."""

from __future__ import annotations

import numpy as np
import pytest

import mlx_embed
from mlx_embed.conversion import convert

from .conftest import TEXTS
from .reference import cosines, reference_embed, torch_model

PARITY_TEXTS = TEXTS + [
    "Retrieval-augmented generation feeds the nearest passages to a language model.",
    "Кошка спит на подоконнике, а за окном идёт снег.",
    "我喜欢在周末读书和喝茶。",
    "const squares = xs.map(x => x * x);",
    "Please summarise the attached contract and list every deadline it mentions, with the clause numbers.",
    "Transformers use self-attention to relate every token to every other token in the sequence, " * 3,
    "¿Dónde está la biblioteca?",
    "x",
    "The mitochondria is the powerhouse of the cell.",
    "git rebase -i HEAD~3",
]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return mlx_embed.load(minilm_path)


def test_minilm_fp32_matches_sentence_transformers(minilm, minilm_path, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    assert len(PARITY_TEXTS) >= 20
    reference = st.SentenceTransformer(str(minilm_path), device="cpu").encode(
        PARITY_TEXTS, normalize_embeddings=True, batch_size=8
    )
    ours = minilm.encode(PARITY_TEXTS, batch_size=8)
    cos = cosines(ours, reference)
    assert cos.min() >= 0.99999, cos
    # tokenized and sorted a few texts at a time, as a long corpus is: same vectors, same order
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 3)
    assert cosines(minilm.encode(PARITY_TEXTS, batch_size=2), reference).min() >= 0.99999


def _batch(embedder, texts, side):
    ids = embedder.text_encoder.encode(texts, embedder.max_length)
    return embedder.text_encoder.pad(ids, side)


def _ours(embedder, batch) -> np.ndarray:
    import mlx.core as mx

    from mlx_embed.pooling import POOLERS, l2_normalize

    mask = mx.array(batch.attention_mask)
    hidden = embedder.model(mx.array(batch.input_ids), mask)
    return np.array(l2_normalize(POOLERS[embedder.spec.pooling](hidden, mask)))


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("layout", ["hf", "4bit"])
def test_qwen3_matches_transformers(tiny_qwen3_hf, tiny_qwen3_4bit, layout, side):
    folder = tiny_qwen3_hf if layout == "hf" else tiny_qwen3_4bit
    ours_model = mlx_embed.load(folder, dequantize=False)
    if layout == "4bit":
        assert "QuantizedLinear" in repr(ours_model.model)
    batch = _batch(ours_model, PARITY_TEXTS, side)
    assert batch.attention_mask.min() == 0  # mixed lengths: real padding on that side
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "last_token")
    ours = _ours(ours_model, batch)
    assert np.isfinite(ours).all()
    assert cosines(ours, reference).min() >= 0.99999


@pytest.mark.parametrize("layout", ["hf", "4bit"])
def test_bert_cls_matches_transformers(tiny_bert_hf, tiny_bert_4bit, layout):
    folder = tiny_bert_hf if layout == "hf" else tiny_bert_4bit
    ours_model = mlx_embed.load(folder, dequantize=False)
    assert ours_model.spec.pooling == "cls"
    batch = _batch(ours_model, PARITY_TEXTS, "right")
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "cls")
    assert cosines(_ours(ours_model, batch), reference).min() >= 0.99999
    # the full encode path (sorting, batching, prompts off) gives the same vectors
    assert cosines(ours_model.encode(PARITY_TEXTS, batch_size=5), reference).min() >= 0.99999


def test_minilm_4bit_equals_fp32_forward_on_dequantized_weights(minilm_path, tmp_path, capsys):
    """The quantized MLX forward (quantized_matmul) vs transformers on numpy-dequantized weights."""
    report = convert(minilm_path, tmp_path / "q4", bits=4, group_size=64)
    print(report.summary())
    quantized = mlx_embed.load(tmp_path / "q4", dequantize=False)
    assert "QuantizedLinear" in repr(quantized.model) and "QuantizedEmbedding" in repr(quantized.model)
    batch = _batch(quantized, PARITY_TEXTS, "right")
    reference = reference_embed(torch_model(tmp_path / "q4"), batch.input_ids, batch.attention_mask, "mean")
    assert np.abs(_ours(quantized, batch) - reference).max() <= 1e-4
    # the CPU fast path (dequantized once at load) gives the same vectors
    fast = mlx_embed.load(tmp_path / "q4")
    assert "QuantizedLinear" not in repr(fast.model)
    assert np.abs(_ours(fast, batch) - reference).max() <= 1e-4
    # 4-bit is a real loss against fp32, and the report says so
    assert 0.8 < report.cosine_min < 0.999 and report.cosine_min <= report.cosine_mean < 0.9999
    assert "cosine min" in capsys.readouterr().out


@pytest.fixture(scope="module", params=["minilm", "bert-cls", "qwen3"])
def any_embedder(request, minilm_path, tiny_bert_hf, tiny_qwen3_hf):
    folder = {"minilm": minilm_path, "bert-cls": tiny_bert_hf, "qwen3": tiny_qwen3_hf}[request.param]
    return mlx_embed.load(folder)


def test_batch_invariance(any_embedder):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(PARITY_TEXTS))
    shuffled = [PARITY_TEXTS[i] for i in order]
    batched = any_embedder.encode(shuffled, batch_size=7)
    for row, i in enumerate(order):
        alone = any_embedder.encode(PARITY_TEXTS[i])
        assert alone.shape == (any_embedder.dim,)
        assert float(alone @ batched[row]) >= 0.99999, (i, PARITY_TEXTS[i])
