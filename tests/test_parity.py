"""mlx_embed against the reference implementations: sentence-transformers and transformers on torch CPU."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

import mlx_embed

from .conftest import TEXTS, _perturb_norms, _write_st_files, train_qwen_like_tokenizer
from .reference import (
    NEEDS_SENTENCE_TRANSFORMERS,
    NEEDS_TORCH,
    NEEDS_TRANSFORMERS,
    cosines,
    reference_embed,
    torch_model,
)

# Correct code is within 2.3e-7 max abs of the references here; a tanh-approximated GELU or a wrong
# LayerNorm eps is 2-3e-4 off while still at cosine > 0.99999, so the cosine check alone is not enough.
MAX_ABS = 1e-5
# float16 compute (a GPU's default for 4-bit checkpoints) measured here on the CPU against the float32
# references: tiny Qwen3 cos 0.999998 / max abs 7.6e-4, tiny BERT 0.9999998 / 2.4e-4, real MiniLM 4-bit
# 0.999994 / 5.8e-4. The bounds leave about 4x for another backend's float16 arithmetic.
HALF_COSINE, HALF_MAX_ABS = 0.9999, 3e-3


def assert_matches(ours: np.ndarray, reference: np.ndarray, atol: float = MAX_ABS) -> None:
    assert ours.shape == reference.shape
    cos = cosines(ours, reference)
    assert cos.min() >= 0.99999, cos
    err = np.abs(ours - reference).max()
    assert err <= atol, f"max abs error {err:.3g} > {atol:g}"

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


@pytest.fixture(scope="module")
def st_minilm(minilm_path):
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    return st.SentenceTransformer(str(minilm_path), device="cpu")


def test_minilm_fp32_matches_sentence_transformers(minilm, st_minilm, monkeypatch):
    assert len(PARITY_TEXTS) >= 20
    reference = st_minilm.encode(PARITY_TEXTS, normalize_embeddings=True, batch_size=8)
    assert_matches(minilm.encode(PARITY_TEXTS, batch_size=8), reference)
    # tokenized and sorted a few texts at a time, as a long corpus is: same vectors, same order
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 3)
    assert_matches(minilm.encode(PARITY_TEXTS, batch_size=2), reference)
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 512)
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK_CHARS", 100)  # chunks of a few texts, or one long one
    assert_matches(minilm.encode(PARITY_TEXTS, batch_size=2), reference)


def test_minilm_truncates_where_sentence_transformers_does(minilm, st_minilm):
    """Past max_seq_length (256 for MiniLM, whose position table holds 512) both keep the first 255
    tokens and [SEP]."""
    long = " ".join(f"word{i} is followed by another word" for i in range(80))  # about 560 tokens
    assert st_minilm.max_seq_length == 256 and len(st_minilm.tokenizer(long)["input_ids"]) > 512
    with pytest.warns(mlx_embed.TruncationWarning, match="1 of 2 texts"):
        ours = minilm.encode([long, "short"])
    reference = st_minilm.encode([long, "short"], normalize_embeddings=True)
    assert_matches(ours, reference)
    with pytest.warns(mlx_embed.TruncationWarning, match="max_length=512"):
        at_512 = minilm.encode([long], max_length=512)
    assert cosines(at_512, reference[:1]).max() < 0.999  # the cut point matters


def test_minilm_unnormalized_matches_sentence_transformers_without_normalize(minilm, st_minilm):
    """normalize=False is the pooled vector: sentence-transformers' Transformer + Pooling, no Normalize."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    assert type(st_minilm[2]).__name__ == "Normalize"
    unnormalized = st.SentenceTransformer(modules=[st_minilm[0], st_minilm[1]], device="cpu")
    reference = unnormalized.encode(PARITY_TEXTS, batch_size=8)
    norms = np.linalg.norm(reference, axis=1)
    assert norms.min() > 1.5  # far from unit length: a normalized output cannot pass
    ours = minilm.encode(PARITY_TEXTS, batch_size=8, normalize=False)
    assert np.abs(ours - reference).max() <= MAX_ABS  # measured 1.7e-6 on vectors of norm ~2.5


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
    ours_model = mlx_embed.load(folder, dequantize=False, dtype="float32")
    if layout == "4bit":
        assert "QuantizedLinear" in repr(ours_model.model)
    batch = _batch(ours_model, PARITY_TEXTS, side)
    assert batch.attention_mask.min() == 0  # mixed lengths: real padding on that side
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "last_token")
    ours = _ours(ours_model, batch)
    assert np.isfinite(ours).all()
    assert_matches(ours, reference)


@pytest.mark.parametrize("layout", ["hf", "4bit"])
def test_bert_cls_matches_transformers(tiny_bert_hf, tiny_bert_4bit, layout):
    folder = tiny_bert_hf if layout == "hf" else tiny_bert_4bit
    ours_model = mlx_embed.load(folder, dequantize=False, dtype="float32")
    assert ours_model.spec.pooling == "cls"
    batch = _batch(ours_model, PARITY_TEXTS, "right")
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "cls")
    assert_matches(_ours(ours_model, batch), reference)
    # the full encode path (sorting, batching, prompts off) gives the same vectors
    assert_matches(ours_model.encode(PARITY_TEXTS, batch_size=5), reference)


@pytest.mark.parametrize("arch", ["qwen3", "bert"])
def test_half_precision_stays_close_to_the_reference(tiny_qwen3_4bit, tiny_bert_4bit, arch):
    """The default on a GPU: a 4-bit checkpoint computed in its own float16. The checks above pin the
    math in float32; this bounds what half precision adds (run here with dtype="float16" on the CPU)."""
    import mlx.core as mx

    folder, pooling = (tiny_qwen3_4bit, "last_token") if arch == "qwen3" else (tiny_bert_4bit, "cls")
    half = mlx_embed.load(folder, dequantize=False, dtype="float16")
    batch = _batch(half, PARITY_TEXTS, half.spec.padding_side)
    hidden = half.model.layerwise(mx.array(batch.input_ids), mx.array(batch.attention_mask))
    assert {h.dtype for h in hidden} == {mx.float16}  # the bounds below are half precision's, not float32's
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, pooling)
    ours = _ours(half, batch).astype(np.float32)
    assert float(cosines(ours, reference).min()) >= HALF_COSINE
    assert np.abs(ours - reference).max() <= HALF_MAX_ABS


def _qwen3_reference(folder, texts: list[str]) -> np.ndarray:
    """Qwen3-Embedding's published recipe with transformers alone: tokenize, end every input with
    <|endoftext|> (current tokenizer.json files add it; for older ones, which do not, the recipe appended
    it to every text), pad on the left, Qwen3Model, last-token pooling, L2 normalize."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    # The folder's tokenizer.json as written. (transformers 5's AutoTokenizer swaps in Qwen2's own
    # pre-tokenizer for model_type qwen3; real Qwen3 tokenizer.json files use that same split, the tiny
    # fixture's plain byte-level one does not, so AutoTokenizer would test a different tokenizer.)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    adds_eos = tok("a")["input_ids"][-1] == eos
    seqs = [tok(text)["input_ids"] + ([] if adds_eos else [eos]) for text in texts]
    L = max(len(s) for s in seqs)
    input_ids = torch.tensor([[eos] * (L - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs])
    model = transformers.Qwen3Model.from_pretrained(str(folder), attn_implementation="eager").float().eval()
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    pooled = hidden[:, -1]  # left padding: every sequence ends at the last position
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


@pytest.fixture(scope="module", params=[True, False], ids=["tokenizer-adds-eos", "tokenizer-without-eos"])
def qwen3_folder(request, tiny_qwen3_hf, tmp_path_factory):
    if request.param:
        return tiny_qwen3_hf
    folder = tmp_path_factory.mktemp("tiny-qwen3-old-tokenizer")
    shutil.copytree(tiny_qwen3_hf, folder, dirs_exist_ok=True)
    train_qwen_like_tokenizer(append_eos=False).save(str(folder / "tokenizer.json"))
    return folder


def test_qwen3_encode_matches_transformers(qwen3_folder):
    """encode() end to end (tokenize, end token, sort, left-pad, batch, pool, normalize) on mixed lengths."""
    texts = PARITY_TEXTS + ["a text that ends in a literal <|endoftext|>"]
    reference = _qwen3_reference(qwen3_folder, texts)
    model = mlx_embed.load(qwen3_folder)
    assert_matches(model.encode(texts, batch_size=5), reference)
    assert_matches(model.encode(texts[1], batch_size=1), reference[1])


def test_qwen3_encode_query_sends_the_instruction(tiny_qwen3_hf, monkeypatch):
    """With the registry's Qwen3-Embedding spec (sized to the tiny model), encode_query(task=...) embeds
    f"Instruct: {task}\nQuery:{query}", and without a task the default web-search instruction."""
    model = mlx_embed.load(tiny_qwen3_hf)
    spec = dataclasses.replace(mlx_embed.registry.get("qwen3-0.6b"), dim=64, matryoshka=(32, 64), max_length=512)
    monkeypatch.setattr(model, "_spec", spec)
    queries = ["what is the capital of France?", "как сбросить пароль"]
    task = "Given a question, retrieve code that answers it"
    expected = _qwen3_reference(tiny_qwen3_hf, [f"Instruct: {task}\nQuery:{q}" for q in queries])
    assert_matches(model.encode_query(queries, task=task), expected)
    default = "Given a web search query, retrieve relevant passages that answer the query"
    expected = _qwen3_reference(tiny_qwen3_hf, [f"Instruct: {default}\nQuery:{q}" for q in queries])
    assert_matches(model.encode_query(queries), expected)
    # documents go in as they are
    assert_matches(model.encode_document(queries), _qwen3_reference(tiny_qwen3_hf, queries))


def test_minilm_4bit_equals_fp32_forward_on_dequantized_weights(minilm_path, minilm_4bit):
    """The quantized MLX forward (quantized_matmul) vs transformers on numpy-dequantized weights."""
    from mlx_embed.fidelity import compare

    quantized = mlx_embed.load(minilm_4bit, dequantize=False, dtype="float32")
    assert "QuantizedLinear" in repr(quantized.model) and "QuantizedEmbedding" in repr(quantized.model)
    batch = _batch(quantized, PARITY_TEXTS, "right")
    reference = reference_embed(torch_model(minilm_4bit), batch.input_ids, batch.attention_mask, "mean")
    assert np.abs(_ours(quantized, batch) - reference).max() <= 1e-4
    # the CPU fast path (dequantized once at load) gives the same vectors
    fast = mlx_embed.load(minilm_4bit, dequantize=True, dtype="float32")
    assert "QuantizedLinear" not in repr(fast.model)
    assert np.abs(_ours(fast, batch) - reference).max() <= 1e-4
    # 4-bit is a real loss against fp32, and the report says so
    report = compare(mlx_embed.load(minilm_path), fast, retrieval_k=None)
    assert 0.8 < report.cosine_min < 0.999 and report.cosine_min <= report.cosine_mean < 0.9999
    assert "cosine min" in report.summary()


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
        assert np.abs(alone - batched[row]).max() <= MAX_ABS, (i, PARITY_TEXTS[i])


@pytest.mark.parametrize("layout", ["rope_parameters", "top_level"])
def test_qwen3_rope_theta_is_read_in_both_config_layouts(tmp_path, layout):
    """rope_theta 50,000 (neither Qwen3-Embedding's 1e6 nor the 10,000 default), written the transformers 5
    way (inside rope_parameters) or the transformers 4 way (top level): same vectors as the model saved."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(vocab_size=640, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=32, intermediate_size=128,
                                   max_position_embeddings=512, rope_theta=50_000.0)
    model = transformers.Qwen3Model(cfg).eval()
    _perturb_norms(model, torch)
    model.save_pretrained(tmp_path, safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    if layout == "top_level":
        config.pop("rope_parameters", None)
        config["rope_theta"] = 50_000.0
    else:
        config.pop("rope_theta", None)
        config["rope_parameters"] = {"rope_type": "default", "rope_theta": 50_000.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    train_qwen_like_tokenizer(append_eos=True).save(str(tmp_path / "tokenizer.json"))
    _write_st_files(tmp_path, "last_token", 64, 512)
    ours = mlx_embed.load(tmp_path, dtype="float32")
    batch = ours.text_encoder.pad(ours.text_encoder.encode(PARITY_TEXTS, 512), "left")
    expected = reference_embed(model, batch.input_ids, batch.attention_mask, "last_token")
    assert_matches(ours.encode(PARITY_TEXTS), expected)


def _with_files_of(folder, source) -> None:
    for f in source.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            (shutil.copytree if f.is_dir() else shutil.copy)(f, folder / f.name)


def test_qwen3_causal_lm_checkpoint_loads_without_its_head(tmp_path, tiny_qwen3_hf):
    """A Qwen3ForCausalLM save ("model." prefix, an untied lm_head) embeds as its Qwen3Model does."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    cfg = transformers.Qwen3Config.from_pretrained(tiny_qwen3_hf)
    cfg.tie_word_embeddings = False
    lm = transformers.Qwen3ForCausalLM(cfg).eval()
    lm.model.load_state_dict(transformers.Qwen3Model.from_pretrained(tiny_qwen3_hf).state_dict())
    lm.save_pretrained(tmp_path, safe_serialization=True)
    _with_files_of(tmp_path, tiny_qwen3_hf)
    batch = _batch(mlx_embed.load(tiny_qwen3_hf), PARITY_TEXTS, "left")
    expected = reference_embed(lm.model, batch.input_ids, batch.attention_mask, "last_token")
    assert_matches(mlx_embed.load(tmp_path, dtype="float32").encode(PARITY_TEXTS), expected)


def test_bert_masked_lm_checkpoint_loads_without_its_head(tmp_path, tiny_bert_hf):
    """A BertForMaskedLM save ("bert." prefix, a "cls." head) embeds as transformers' inner BertModel."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    mlm = transformers.BertForMaskedLM.from_pretrained(tiny_bert_hf).eval()
    mlm.save_pretrained(tmp_path, safe_serialization=True)
    _with_files_of(tmp_path, tiny_bert_hf)
    ours = mlx_embed.load(tmp_path, dtype="float32")
    batch = _batch(ours, PARITY_TEXTS, "right")
    expected = reference_embed(mlm.bert, batch.input_ids, batch.attention_mask, "cls")
    assert_matches(ours.encode(PARITY_TEXTS), expected)


@pytest.mark.parametrize(
    "changes",
    [
        {"hidden_act": "swish"},  # transformers' other name for SiLU
        {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 2},  # every layer below max_window_layers: full
        {"use_sliding_window": True, "sliding_window": 4, "layer_types": ["full_attention"] * 2},
        {"use_sliding_window": False, "sliding_window": 4, "max_window_layers": 0},  # the window is off
    ],
)
def test_qwen3_configs_transformers_computes_as_the_plain_one_load(tiny_qwen3_hf, tmp_path, changes):
    folder = tmp_path / "qwen"
    shutil.copytree(tiny_qwen3_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("layer_types", None)  # transformers 5 writes them; without, they follow from max_window_layers
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    texts = PARITY_TEXTS[:6]
    assert_matches(mlx_embed.load(folder).encode(texts), _qwen3_reference(folder, texts))


def test_qwen3_sliding_window_layers_are_refused_by_number(tiny_qwen3_hf, tmp_path):
    folder = tmp_path / "qwen"
    shutil.copytree(tiny_qwen3_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    for layers in ({"max_window_layers": 1}, {"layer_types": ["full_attention", "sliding_attention"]}):
        config.pop("layer_types", None)
        (folder / "config.json").write_text(json.dumps({**config, "use_sliding_window": True, "sliding_window": 4, **layers}))
        with pytest.raises(ValueError, match=r"sliding-window attention \(use_sliding_window: true; layers \[1\]\) is not supported"):
            mlx_embed.load(folder)


def test_qwen3_without_max_position_embeddings_takes_transformers_default(tiny_qwen3_hf, tmp_path):
    """transformers' Qwen3Config defaults to 32,768 positions; the BERT default (512) cut texts there."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    folder = tmp_path / "qwen"
    shutil.copytree(tiny_qwen3_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["max_position_embeddings"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "sentence_bert_config.json").unlink()
    model = mlx_embed.load(folder)
    assert model.max_length == model.position_limit == transformers.Qwen3Config().max_position_embeddings
    text = " ".join(["word"] * 300)  # about 600 tokens: over the 512 it was cut at
    assert_matches(model.encode([text], truncate=False), _qwen3_reference(folder, [text]))


def test_bert_gelu_python_is_the_erf_gelu(tiny_bert_hf, tmp_path):
    folder = tmp_path / "bert"
    shutil.copytree(tiny_bert_hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_python"}))
    model = mlx_embed.load(folder)
    batch = model.text_encoder.pad(model.text_encoder.encode(PARITY_TEXTS, 128))
    reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, "cls")
    assert_matches(model.encode(PARITY_TEXTS, normalize=True), reference)
