"""Correctness of the fast CPU path: fused kernels against float64 math, the pipelined encode loop,
and the fallbacks when no compiler is installed or the one installed is broken."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import mlx_embed  # before mlx.core: it loads the system OpenBLAS first (mlx_embed/_blas.py)
import mlx.core as mx  # noqa: I001
from mlx_embed import _blas, embedder
from mlx_embed.models import kernels

from .conftest import TEXTS
from .reference import cosines, reference_embed, torch_model

# Correct code is within ~2e-7 max abs of transformers; a tanh GELU or a wrong LayerNorm eps is 2-3e-4 off
# while still at cosine > 0.99999, so the cosine check alone is not enough.
MAX_ABS = 1e-5


def assert_matches(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    assert cosines(ours, reference).min() >= 0.99999
    err = np.abs(ours - reference).max()
    assert err <= MAX_ABS, f"max abs error {err:.3g} > {MAX_ABS:g}"


needs_fast = pytest.mark.skipif(not kernels.enabled(), reason=f"fused CPU kernels off: {kernels.reason()}")
ROOT = Path(__file__).resolve().parents[1]


def _erf64(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


@needs_fast
def test_gelu_matches_float64_erf_gelu():
    x = np.concatenate([np.linspace(-12, 12, 200_001), [-1e4, -50.0, 0.0, 50.0, 1e4]]).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * (1 + _erf64(x64 / math.sqrt(2)))
    got = np.array(kernels.gelu(mx.array(x))).astype(np.float64)
    assert np.all(np.abs(got - exact) <= 2e-6 * np.maximum(1.0, np.abs(x64)))


@needs_fast
def test_exp_matches_float64_exp_and_underflows_to_zero():
    d = -np.linspace(0, 87, 500_001).astype(np.float32)
    got = np.array(kernels.exp_nonpositive(mx.array(d))).astype(np.float64)
    exact = np.exp(d.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 5e-7
    edge = np.array(kernels.exp_nonpositive(mx.array([-np.inf, -1e30, -100.0, -87.5, 0.0], dtype=mx.float32)))
    assert edge.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


@needs_fast
def test_silu_mul_matches_float64():
    g = np.linspace(-100, 100, 200_001).astype(np.float32)
    u = np.cos(g).astype(np.float32)
    g64, u64 = g.astype(np.float64), u.astype(np.float64)
    exact = g64 / (1 + np.exp(-g64)) * u64
    got = np.array(kernels.silu_mul(mx.array(g), mx.array(u))).astype(np.float64)
    assert np.all(np.abs(got - exact) <= 1e-6 * np.maximum(1.0, np.abs(exact)))


@needs_fast
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_silu_mul_in_half_precision_is_finite_where_the_result_is(dtype):
    """In float16, gate * up overflowed before the sigmoid factor: silu(-300) * 300 came out NaN (the stock
    ops give -0.0), which encode reports as an overflow."""
    g = np.array([-300.0, -60.0, -20.0, -1.0, 0.0, 1.0, 20.0, 200.0], np.float32)
    u = np.full_like(g, 300.0)
    exact = g.astype(np.float64) / (1 + np.exp(-g.astype(np.float64))) * u
    half = getattr(mx, dtype)
    got = np.array(kernels.silu_mul(mx.array(g, dtype=half), mx.array(u, dtype=half)).astype(mx.float32))
    assert np.all(np.abs(got - exact) <= 1e-2 * np.maximum(1.0, np.abs(exact)))  # half precision's own rounding


def _attention64(q, k, v, scale, keep):
    """Softmax attention in float64 numpy; ``keep`` (B, 1, L|1, S) boolean; GQA by repeating K/V heads."""
    G = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, G, axis=1), np.repeat(v, G, axis=1)
    s = np.einsum("bhld,bhsd->bhls", q, k) * scale
    s = np.where(keep, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhls,bhsd->bhld", p, v)


@needs_fast
@pytest.mark.parametrize("heads, kv_heads, causal", [(4, 4, False), (8, 2, True)])
@pytest.mark.parametrize("block", [None, 5])
def test_attend_matches_float64_softmax_attention(heads, kv_heads, causal, block, monkeypatch):
    _check_attend(heads, kv_heads, causal, block, monkeypatch)


@pytest.mark.parametrize("heads, kv_heads, causal", [(4, 4, False), (8, 2, True)])
def test_stock_cpu_attention_runs_in_query_blocks(heads, kv_heads, causal, monkeypatch, cpu_device):
    """Without the fused kernels (macOS's CPU backend, no g++, MLX_EMBED_FAST=0) MLX's attention held the whole
    (B, H, L, S) score matrix: 4 GiB for one Qwen3-0.6B text of 8,192 tokens. It now runs a block of query rows
    at a time, as the fused path does: 5 blocks of at most 5 of the 23 rows here, each against every key."""
    monkeypatch.setattr(kernels, "_disabled_reason", "test")
    stock, calls = mx.fast.scaled_dot_product_attention, []

    def counted(q, k, v, **kwargs):
        calls.append((q.shape[-2], k.shape[-2]))
        return stock(q, k, v, **kwargs)

    monkeypatch.setattr(mx.fast, "scaled_dot_product_attention", counted)
    _check_attend(heads, kv_heads, causal, 5, monkeypatch)
    assert calls == [(5, 23)] * 4 + [(3, 23)]


def _attention_peak(heads: int, kv_heads: int, L: int, causal: bool) -> int:
    """MLX's peak memory over what was allocated before, in bytes, of ``attend`` on random (1, heads, L, 64)."""
    q = mx.random.normal((1, heads, L, 64))
    k, v = mx.random.normal((1, kv_heads, L, 64)), mx.random.normal((1, kv_heads, L, 64))
    keys = mx.ones((1, L), dtype=mx.int32)
    mx.eval(q, k, v, keys)
    mx.synchronize()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    mx.eval(kernels.attend(q, k, v, 0.125, keys, causal=causal))
    return mx.get_peak_memory() - base


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_cpu_attention_holds_one_block_of_scores_at_a_time(monkeypatch, cpu_device, fused, causal):
    """16 heads of 2,048 queries and keys: 256 MiB of float32 scores whole, 4 MiB a block here, and 4 MiB for a
    whole causal mask. Without blocks MLX's own attention held the whole score matrix. Blocks queued lazily, even
    ordered by ``mx.depends``, did not bound it: MLX's CPU scheduler allocated the blocks' scores side by side
    (measured: stock path 36.5 MiB, fused 78 MiB, with the causal mask made beforehand and not counted). Each block
    is now computed before the next is queued, its part of the mask with it. Measured: 20 MiB stock, 30 MiB fused
    (of which the blocks' outputs and their concatenation take 16)."""
    if not fused:
        monkeypatch.setattr(kernels, "_disabled_reason", "test")
    elif not kernels.enabled():
        pytest.skip(f"fused CPU kernels off: {kernels.reason()}")
    monkeypatch.setattr(kernels, "ATTENTION_BLOCK_ELEMENTS", 1 << 20)
    monkeypatch.setattr(kernels, "STOCK_ATTENTION_BLOCK_ELEMENTS", 1 << 20)
    assert _attention_peak(16, 4, 2048, causal) < (56 if fused else 28) * 2**20


@needs_fast
def test_attention_blocks_are_ordered_inside_compile(monkeypatch):
    """``mx.compile`` refuses ``eval``; there the blocks are only ordered, and give float64 attention's values."""
    monkeypatch.setattr(kernels, "ATTENTION_BLOCK_ELEMENTS", 3 * 4 * 23 * 5)
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((3, 4, 23, 8)).astype(np.float32) for _ in range(3))
    keys = np.arange(23)[None] < np.array([[23], [9], [1]])  # (B, L)
    keep = (np.tril(np.ones((23, 23), bool))[None, None] & keys[:, None, None, :]) | np.eye(23, dtype=bool)
    expected = _attention64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), 0.3, keep)

    def run(q, k, v, keys):
        return kernels.attend(q, k, v, 0.3, keys, causal=True)

    got = mx.compile(run)(mx.array(q), mx.array(k), mx.array(v), mx.array(keys.astype(np.int32)))
    assert np.abs(np.array(got) - expected).max() < 2e-5


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("block", [None, 2])
def test_causal_attention_without_a_padding_mask(monkeypatch, cpu_device, fused, block):
    """``keys=None`` (every key) with ``causal``: the fused path's grouped-query layout took the causal mask as
    (rows, S, 1) and raised a broadcast error."""
    if not fused:
        monkeypatch.setattr(kernels, "_disabled_reason", "test")
    elif not kernels.enabled():
        pytest.skip(f"fused CPU kernels off: {kernels.reason()}")
    if block is not None:
        monkeypatch.setattr(kernels, "ATTENTION_BLOCK_ELEMENTS", 2 * 4 * 6 * block)
        monkeypatch.setattr(kernels, "STOCK_ATTENTION_BLOCK_ELEMENTS", 2 * 4 * 6 * block)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, 6, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, 2, 6, 8)).astype(np.float32) for _ in range(2))
    expected = _attention64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), 0.5,
                            np.tril(np.ones((6, 6), bool))[None, None])
    got = np.array(kernels.attend(mx.array(q), mx.array(k), mx.array(v), 0.5, None, causal=True))
    assert np.abs(got - expected).max() < 2e-5


@pytest.mark.parametrize("fused", [False, True])
def test_attend_takes_an_empty_batch(monkeypatch, cpu_device, fused):
    """The query block size divides by B * H * S: a batch of none raised ZeroDivisionError."""
    if not fused:
        monkeypatch.setattr(kernels, "_disabled_reason", "test")
    elif not kernels.enabled():
        pytest.skip(f"fused CPU kernels off: {kernels.reason()}")
    q, keys = mx.zeros((0, 4, 3, 8)), mx.ones((0, 3), dtype=mx.int32)
    assert kernels.attend(q, q, q, 0.5, keys).shape == (0, 4, 3, 8)
    assert kernels.attend(q, q, q, 0.5, keys, causal=True).shape == (0, 4, 3, 8)


def _check_attend(heads, kv_heads, causal, block, monkeypatch):
    if block is not None:  # force several query blocks: 5 rows each of L = 23
        monkeypatch.setattr(kernels, "ATTENTION_BLOCK_ELEMENTS", 3 * heads * 23 * block)
        monkeypatch.setattr(kernels, "STOCK_ATTENTION_BLOCK_ELEMENTS", 3 * heads * 23 * block)
    rng = np.random.default_rng(0)
    B, L, Dh = 3, 23, 16
    q = rng.standard_normal((B, heads, L, Dh)).astype(np.float32) * 2
    k = rng.standard_normal((B, kv_heads, L, Dh)).astype(np.float32) * 2
    v = rng.standard_normal((B, kv_heads, L, Dh)).astype(np.float32)
    # every key; the first 9 (right padding); the last 5 (left padding, as Qwen3 pads)
    keys = np.stack([np.ones(L, bool), np.arange(L) < 9, np.arange(L) >= L - 5])  # (B, L)
    keep = keys[:, None, None, :]  # (B, 1, 1, L)
    if causal:  # a padding query sees itself: no empty row
        keep = (np.tril(np.ones((L, L), bool))[None, None] & keep) | np.eye(L, dtype=bool)
    expected = _attention64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), 0.25, keep)
    got = np.array(kernels.attend(mx.array(q), mx.array(k), mx.array(v), 0.25, mx.array(keys.astype(np.int32)), causal))
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() < 2e-5


@needs_fast
def test_attend_on_stock_path_gives_the_same(monkeypatch):
    rng = np.random.default_rng(1)
    q, k, v = (mx.array(rng.standard_normal((2, 4, 7, 8)).astype(np.float32)) for _ in range(3))
    keys = mx.array(np.arange(7)[None, :] < np.array([7, 3])[:, None])
    fast = np.array(kernels.attend(q, k, v, 0.3, keys))
    monkeypatch.setattr(kernels, "_disabled_reason", "test")
    stock = np.array(kernels.attend(q, k, v, 0.3, keys))
    assert np.abs(fast - stock).max() < 1e-5


@needs_fast
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_computes_in_that_dtype_on_the_fused_path_too(tiny_qwen3_hf, minilm_path, dtype, monkeypatch):
    """``load(dtype=...)`` is the computation's dtype: each fused kernel returns its input's dtype
    (working in float32 inside), as the stock ops do, and gives their vectors. The real MiniLM has
    GELU inputs past |x| = 4, where the rational fit's x^8 would overflow float16."""
    x = np.linspace(-12, 12, 2001)
    exact = 0.5 * x * (1 + _erf64(x / math.sqrt(2)))
    got = np.array(kernels.gelu(mx.array(x, dtype=getattr(mx, dtype))).astype(mx.float32))
    assert np.all(np.abs(got - exact) <= 1e-2 * np.maximum(1.0, np.abs(x)))  # half precision's own rounding
    for folder, pooling in ((tiny_qwen3_hf, "last_token"), (minilm_path, "mean")):
        model = mlx_embed.load(folder, dtype=dtype)
        batch = model.text_encoder.pad(model.text_encoder.encode(TEXTS, 512), model.spec.padding_side)
        ids, mask = mx.array(batch.input_ids), mx.array(batch.attention_mask)
        with monkeypatch.context() as m:
            fused = [h.dtype for h in model.model.layerwise(ids, mask)]
            fast = model.encode(TEXTS)
            m.setattr(kernels, "_disabled_reason", "test")
            stock_dtypes = [h.dtype for h in model.model.layerwise(ids, mask)]
            stock = model.encode(TEXTS)
        assert fused == stock_dtypes == [getattr(mx, dtype)] * len(fused)
        reference = reference_embed(torch_model(folder), batch.input_ids, batch.attention_mask, pooling,
                                    batch.token_type_ids)  # transformers in float32
        # measured: float16 and bfloat16 rounding cost MiniLM cosine 2e-6 and 1.7e-4, the tiny Qwen3 1e-6 and 4e-5
        floor = {"float16": 0.9999, "bfloat16": 0.999}[dtype]
        assert cosines(fast, reference).min() >= floor and cosines(stock, reference).min() >= floor


@pytest.mark.parametrize(
    "lengths, batch_size, max_batch_tokens, expected",
    [
        # longest first (ties in input order): 12(#1) 12(#3) 7(#4) 5(#0) 3(#2) 1(#5).
        # 30 // 12 = 2 texts of 12; 30 // 7 = 4 capped by batch_size 3; the last one alone.
        ([5, 12, 3, 12, 7, 1], 3, 30, [[1, 3], [4, 0, 2], [5]]),
        # same texts, no token cap in reach: only batch_size splits
        ([5, 12, 3, 12, 7, 1], 4, 10_000, [[1, 3, 4, 0], [2, 5]]),
        # a text longer than the cap gets a batch of its own; then 16 // 2 = 8 texts fit
        ([2, 50, 2, 2], 8, 16, [[1], [0, 2, 3]]),
        # 16 // 5 = 3 texts of 5 tokens (15 padded tokens), then 16 // 4 = 4
        ([5, 5, 5, 5, 4, 4], 32, 16, [[0, 1, 2], [3, 4, 5]]),
        # empty token lists count as length 1
        ([0, 0, 0], 2, 1, [[0], [1], [2]]),
    ],
)
def test_batches_hand_worked(lengths, batch_size, max_batch_tokens, expected):
    got = [list(map(int, b)) for b in embedder.batches(lengths, batch_size, max_batch_tokens)]
    assert got == expected


def test_padded_lengths_hand_worked(monkeypatch):
    """Exact up to 32 tokens, then 16 steps per octave; exact where the fused kernels are off."""
    monkeypatch.setattr(embedder.kernels, "enabled", lambda: True)
    got = {n: embedder.padded_length(n) for n in (0, 1, 16, 32, 33, 34, 35, 64, 65, 255, 256, 257, 8000, 8192)}
    assert got == {0: 0, 1: 1, 16: 16, 32: 32, 33: 34, 34: 34, 35: 36, 64: 64, 65: 68, 255: 256, 256: 256, 257: 272,
                   8000: 8192, 8192: 8192}
    assert len({embedder.padded_length(n) for n in range(1, 8193)}) == 32 + 16 * 8
    monkeypatch.setattr(embedder.kernels, "enabled", lambda: False)
    assert embedder.padded_length(33) == 33


def test_a_batch_is_never_padded_past_the_position_table(tiny_bert_hf, monkeypatch):
    """Padding stops at the position table: columns past it would look up rows the table does not have."""
    monkeypatch.setattr(embedder.kernels, "enabled", lambda: True)
    model = mlx_embed.load(tiny_bert_hf)
    model.position_limit = 99  # a table size that is no padded length: 97 and 98 pad to 100
    assert [model._columns(n) for n in (64, 96, 97, 98, 99)] == [64, 96, 99, 99, 99]


@pytest.mark.parametrize("multiple", [1, 8])
def test_batches_cover_every_text_once_within_both_caps(multiple):
    """Also with lengths rounded up (here to a multiple of 8) as the batches will be padded."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(0, 300, size=int(rng.integers(1, 60))).tolist()
        batch_size, cap = int(rng.integers(1, 40)), int(rng.integers(1, 2000))
        got = [list(map(int, b)) for b in embedder.batches(lengths, batch_size, cap, lambda n: -(-n // multiple) * multiple)]
        flat = [i for b in got for i in b]
        assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
        assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
        for b in got:
            assert 1 <= len(b) <= batch_size
            padded = len(b) * max(-(-max(lengths[i] for i in b) // multiple) * multiple, 1)
            assert padded <= cap or len(b) == 1, (b, [lengths[i] for i in b], cap)


@pytest.fixture(scope="module")
def gelu_bert(tiny_bert_hf, tmp_path_factory) -> Path:
    """tiny_bert_hf with its feed-forward input weights x10. At random-init scale the GELU inputs stay
    near 0, where a tanh GELU is within 1e-6 of the erf GELU; here they are O(1) and the two differ."""
    import shutil

    from safetensors.numpy import load_file, save_file

    folder = tmp_path_factory.mktemp("tiny-bert-gelu")
    shutil.copytree(tiny_bert_hf, folder, dirs_exist_ok=True)
    tensors = load_file(str(folder / "model.safetensors"))
    scaled = [k for k in tensors if k.endswith("intermediate.dense.weight")]
    assert len(scaled) == 2, sorted(tensors)
    for k in scaled:
        tensors[k] = tensors[k] * 10
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def bert_reference(gelu_bert):
    model = mlx_embed.load(gelu_bert)
    ids = model.text_encoder.encode(TEXTS, model.max_length)
    batch = model.text_encoder.pad(ids, "right")
    return reference_embed(torch_model(gelu_bert), batch.input_ids, batch.attention_mask, "cls")


@pytest.mark.parametrize("streams", [0, 1, 2])
def test_encode_with_worker_streams_matches_transformers(gelu_bert, bert_reference, streams, monkeypatch, cpu_device):
    monkeypatch.setattr(embedder, "CPU_STREAMS", streams)
    model = mlx_embed.load(gelu_bert)
    ours = model.encode(TEXTS, batch_size=3, max_batch_tokens=40)  # many small batches, out of order
    assert_matches(ours, bert_reference)


def test_blas_threads_restores_the_count():
    if _blas.loaded is None:
        pytest.skip(f"OpenBLAS not loaded: {_blas.reason}")
    get, set_ = _blas._functions()
    original = get()
    set_(2)
    try:
        with _blas.threads(1):
            assert get() == 1
        assert get() == 2
        # overlapping callers (two threads' encode): the count comes back when the last one leaves
        a, b = _blas.threads(1), _blas.threads(1)
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert get() == 1
        b.__exit__(None, None, None)
        assert get() == 2
    finally:
        set_(original)


def test_only_a_few_threads_get_worker_streams(gelu_bert, monkeypatch, cpu_device):
    """MLX never frees a stream, so threads past STREAM_THREADS encode inline: a thread per call
    leaks no streams, and every thread gets the same vectors."""

    created = []
    real = mx.new_stream
    monkeypatch.setattr(mx, "new_stream", lambda device: created.append(device) or real(device))
    monkeypatch.setattr(embedder, "CPU_STREAMS", 2)
    monkeypatch.setattr(embedder, "STREAM_THREADS", 2)
    monkeypatch.setattr(embedder, "_stream_threads", 0)
    model = mlx_embed.load(gelu_bert)
    texts = TEXTS * 4
    expected = model.encode(texts, batch_size=4)
    outs = []
    for _ in range(5):
        t = threading.Thread(target=lambda: outs.append(model.encode(texts, batch_size=4)))
        t.start()
        t.join()
    assert len(outs) == 5 and len(created) <= 2 * 2
    for out in outs:
        assert np.abs(out - expected).max() < 1e-5


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
@pytest.mark.parametrize("streams", [1, 2])
def test_openblas_threads_divide_the_cpus_the_process_may_use_among_the_streams(gelu_bert, monkeypatch, cpu_device, streams):
    """6 CPUs allowed on a bigger host: 6 // streams OpenBLAS threads a stream, not host CPUs // streams."""
    asked = []
    real = _blas.threads
    monkeypatch.setattr(_blas, "threads", lambda n: asked.append(n) or real(n))
    monkeypatch.setattr(embedder.os, "sched_getaffinity", lambda pid: set(range(6)))
    monkeypatch.setattr(embedder.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(embedder, "CPU_STREAMS", streams)
    mlx_embed.load(gelu_bert).encode(TEXTS * 8, batch_size=8)
    assert asked and set(asked) == {6 // streams}, asked


def test_concurrent_encode_calls_on_one_model_give_the_serial_vectors(gelu_bert, cpu_device):
    """The README's promise: ``encode`` may be called from several threads at once, results equal
    the single-threaded ones (each call its own texts, lengths and batch sizes, all in flight together)."""
    from concurrent.futures import ThreadPoolExecutor

    model = mlx_embed.load(gelu_bert)
    rng = np.random.default_rng(0)
    words = "the a cat sat on mat of dog river bank money loan walk".split()
    jobs = [[" ".join(rng.choice(words, rng.integers(1, 40))) for _ in range(rng.integers(5, 30))] for _ in range(8)]
    serial = [model.encode(texts, batch_size=4) for texts in jobs]
    start = threading.Barrier(4)

    def run(i: int) -> np.ndarray:
        if i < 4:  # the first four begin together
            start.wait()
        return model.encode(jobs[i], batch_size=4)

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, range(len(jobs))))
    for got, want in zip(together, serial):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import mlx_embed
    from mlx_embed.models import kernels
    folder, texts_file, out_file = sys.argv[1:]
    texts = json.load(open(texts_file))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = mlx_embed.load(folder).encode(texts, batch_size=4)
    np.save(out_file, vectors)
    print(json.dumps({"reason": kernels.reason(), "warnings": [[str(w.message), w.filename] for w in caught]}))
    """
)


def _run_child(tmp_path: Path, folder: Path, path: str) -> tuple[dict, np.ndarray]:
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    (tmp_path / "tmp").mkdir()
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", "/tmp"),
        "TMPDIR": str(tmp_path / "tmp"),  # MLX caches built kernels here: start empty
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(tmp_path / "texts.json"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(tmp_path / "out.npy")


@pytest.mark.skipif(sys.platform != "linux", reason="the fused kernels are a Linux CPU path")
def test_without_a_compiler_the_stock_ops_give_the_same_vectors(tmp_path, gelu_bert, bert_reference):
    bare = tmp_path / "bin"  # a PATH with python but no g++
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    info, vectors = _run_child(tmp_path, gelu_bert, str(bare))
    assert "no g++" in info["reason"]
    assert_matches(vectors, bert_reference)


@pytest.mark.skipif(sys.platform != "linux", reason="the fused kernels are a Linux CPU path")
def test_a_broken_compiler_falls_back_with_a_warning(tmp_path, gelu_bert, bert_reference):
    bad = tmp_path / "bin"
    bad.mkdir()
    gpp = bad / "g++"  # answers --version (MLX's availability check) but cannot build anything
    gpp.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "g++ (fake) 0"; exit 0; fi\necho "fake g++: broken" >&2\nexit 1\n')
    gpp.chmod(0o755)
    info, vectors = _run_child(tmp_path, gelu_bert, f"{bad}:{os.environ.get('PATH', '')}")
    assert "failed to build" in info["reason"]
    assert [where for w, where in info["warnings"] if "fused CPU kernel" in w] == ["<string>"]  # the caller's line
    assert_matches(vectors, bert_reference)


_THREADS_CHILD = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor
    import mlx_embed
    import mlx.core as mx
    from mlx_embed.models import kernels
    assert kernels.enabled() or mx.default_device() == mx.gpu, kernels.reason()
    model = mlx_embed.load(sys.argv[1])
    texts = [" ".join(["token"] * n) for n in range(1, 40)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(model.encode, [texts[i::4] for i in range(4)]))
    print("encoded")
    """
)


@pytest.mark.skipif(not kernels.enabled() and mx.default_device() != mx.gpu,
                    reason="needs compiled functions: the fused CPU kernels (Linux, g++) or a GPU (Metal's nn.gelu)")
def test_encoding_in_worker_threads_then_exiting_does_not_abort(gelu_bert):
    """MLX 0.32 aborts the process at exit when a thread that ran a compiled function is still ending
    (its per-thread compile cache is freed under the GIL): 5 of 5 such runs aborted before the exit wait."""
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", _THREADS_CHILD, str(gelu_bert)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert (proc.returncode, proc.stdout.strip()) == (0, "encoded"), proc.stderr[-2000:]


@pytest.mark.parametrize("streams", [0, 2])
def test_cpu_batches_stay_within_the_default_token_budget(minilm_path, monkeypatch, streams, cpu_device):
    """On CPU a batch holds at most CPU_BATCH_TOKENS padded tokens (as padded: the fused path rounds long
    lengths up), shared by the worker streams (each gets 1/streams of them), whatever batch_size
    asks for."""
    monkeypatch.setattr(embedder, "CPU_STREAMS", streams)
    monkeypatch.setattr(embedder, "_stream_threads", 0)
    model = mlx_embed.load(minilm_path)
    shapes = []
    pad = model.text_encoder.pad

    def padded(*args):
        batch = pad(*args)
        shapes.append(batch.input_ids.shape)
        return batch

    monkeypatch.setattr(model.text_encoder, "pad", padded)
    model.encode(["word " * 100] * 40, batch_size=64)  # 102 tokens each
    budget = embedder.CPU_BATCH_TOKENS // max(streams, 1)
    assert all(rows * length <= budget for rows, length in shapes), (shapes, budget)
    assert max(rows * length for rows, length in shapes) > budget // 2, shapes


def test_exit_wait_covers_finished_encoding_threads_on_every_platform(monkeypatch):
    """Threads that encoded and finished are waited for at exit: on Linux until /proc drops them,
    elsewhere (a Mac, where Metal's nn.gelu is compiled too) for a fixed time; live ones are not."""

    from mlx_embed import _threads

    monkeypatch.setattr(_threads, "_noted", {})
    done = threading.Thread(target=_threads.note_thread)
    done.start()
    done.join()
    noted, release = threading.Event(), threading.Event()
    live = threading.Thread(target=lambda: (_threads.note_thread(), noted.set(), release.wait(10)))
    live.start()
    try:
        assert noted.wait(10) and len(_threads._noted) == 2
        slept = []
        _threads.wait_for_thread_exits(sleep=slept.append, platform="darwin")
        assert slept == [_threads.FALLBACK_WAIT_S]
        monkeypatch.setattr(_threads, "_os_thread_alive", lambda tid: tid == done.native_id and len(slept) < 4)
        _threads.wait_for_thread_exits(sleep=slept.append, platform="linux")
        assert len(slept) == 4  # polled until the finished thread's OS thread was gone, not for the live one
        monkeypatch.setattr(_threads, "_noted", {live.native_id: _threads._noted[live.native_id]})
        _threads.wait_for_thread_exits(sleep=slept.append, platform="linux")
        assert len(slept) == 4
    finally:
        release.set()
        live.join()


def test_a_thread_that_reuses_an_ended_threads_id_is_noted_as_itself(monkeypatch):
    """Linux reuses thread ids: the entry of an ended thread must not stand for a new, live one
    (the exit wait would then poll the live thread's /proc entry for the full EXIT_WAIT_S)."""
    import weakref

    from mlx_embed import _threads

    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    noted = threading.Event()

    def reuse():
        _threads._noted[threading.get_native_id()] = weakref.ref(ended)  # as if the id were reused
        _threads.note_thread()
        noted.set()

    monkeypatch.setattr(_threads, "_noted", {})
    thread = threading.Thread(target=reuse)
    thread.start()
    thread.join()
    assert noted.is_set() and _threads._noted[thread.native_id]() is thread


_FORK_CHILD = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, time
    import mlx_embed

    def wait(pid):
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        os.kill(pid, 9)
        sys.exit("the forked child hung")

    if sys.platform == "linux":  # measured there only: Metal in a forked child is another matter
        pid = os.fork()  # before MLX ran here: the child may load and encode
        if pid == 0:
            os._exit(0 if mlx_embed.load(sys.argv[1]).encode(["hello"]).shape == (1, 64) else 6)
        assert wait(pid) == 0
    model = mlx_embed.load(sys.argv[1])
    expected = model.encode(["hello"])

    def embed(text):
        return model.encode([text])

    pid = os.fork()
    if pid == 0:
        try:
            model.encode(["hello"])
            os._exit(3)
        except RuntimeError as err:
            ok = "forked after MLX had run" in str(err) and "get_context('spawn')" in str(err)
            try:
                mlx_embed.load(sys.argv[1])
                os._exit(4)
            except RuntimeError:
                os._exit(0 if ok else 5)
    assert wait(pid) == 0
    with mp.get_context("fork").Pool(1) as pool:
        try:
            pool.apply_async(embed, ("hello",)).get(timeout=60)
            sys.exit("a fork worker encoded")
        except RuntimeError as err:
            assert "forked after MLX had run" in str(err)
    assert abs(model.encode(["hello"]) - expected).max() == 0  # the parent is unaffected
    print("ok")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_child_forked_after_mlx_ran_gets_an_error_instead_of_hanging(tmp_path, tiny_bert_hf):
    """MLX's worker threads do not survive fork: the child's first evaluation waited forever."""
    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script), str(tiny_bert_hf)], capture_output=True, text=True,
                          env=env, timeout=600, start_new_session=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


_MANY_THREADS_CHILD = textwrap.dedent(
    """
    import os, sys, threading, time, warnings
    from concurrent.futures import ThreadPoolExecutor
    import mlx_embed
    from mlx_embed import _threads
    model = mlx_embed.load(sys.argv[1])

    def tasks():  # once threads that have just ended are gone (the count read 28-32 without waiting)
        count = lambda: len(os.listdir("/proc/self/task")) if sys.platform == "linux" else 0
        seen, deadline = count(), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if (now := count()) == seen:
                break
            seen = now
        return seen
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda t: model.encode([t]), ["a b c"] * 200))
        assert not caught, [str(w.message) for w in caught]
        before = tasks()
        for _ in range(_threads.MANY_THREADS):
            t = threading.Thread(target=lambda: model.encode(["a b c"]))
            t.start()
            t.join()
        grown = tasks() - before
    assert [w.filename for w in caught] == [__file__], [(str(w.message), w.filename) for w in caught]
    assert "different threads" in str(caught[0].message) and "ThreadPoolExecutor" in str(caught[0].message)
    print(grown)
    """
)


def test_a_thread_per_request_is_warned_about_once(tmp_path, tiny_bert_hf):
    """MLX keeps an OS thread for every thread that ran it (measured: one per thread, never freed), so a
    new thread per request leaks; a fixed pool does not and gets no warning."""
    script = tmp_path / "many_threads.py"
    script.write_text(_MANY_THREADS_CHILD)
    proc = subprocess.run([sys.executable, str(script), str(tiny_bert_hf)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if sys.platform == "linux":  # the leak the warning is about is real: OS threads grew with the threads
        # one per thread, but a new thread may reuse an ended one's id and with it MLX's stream (31-32 of 32)
        assert int(proc.stdout.split()[-1]) >= 24


_DAEMON_CHILD = textwrap.dedent(
    """
    import sys, threading, time
    import mlx_embed
    model = mlx_embed.load(sys.argv[1])
    started = threading.Event()

    def index_in_background():
        while True:
            model.encode([f"text number {i} to index in the background, a little longer" for i in range(400)])
            started.set()

    threading.Thread(target=index_in_background, daemon=True).start()
    assert started.wait(120)
    time.sleep(0.5)  # into the next call's batches
    print("exiting", flush=True)
    """
)


@pytest.mark.parametrize("streams", ["2", "0"])
def test_a_daemon_thread_still_encoding_at_exit_does_not_abort_the_process(tmp_path, minilm_path, streams):
    """MLX aborts ("terminate called without an active exception", status 134) when a thread is inside
    it as the process exits: measured 5 of 5 runs before encode learned to stop between batches at exit."""
    script = tmp_path / "daemon.py"
    script.write_text(_DAEMON_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLX_EMBED_CPU_STREAMS": streams}
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(script), str(minilm_path)], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0 and "terminate called" not in proc.stderr, (proc.returncode, proc.stderr[-2000:])
        assert proc.stdout.strip() == "exiting"


_EXIT_EDGES_CHILD = textwrap.dedent(
    """
    import atexit, os, sys, threading

    import numpy as np

    def flush_at_exit():  # registered before mlx_embed: runs after its exit hook
        got = []
        t = threading.Thread(target=lambda: got.append(model.encode(["flushed at exit"] * 40)))
        t.start()
        t.join()
        if np.allclose(got[0], expected, atol=1e-5):
            print("flushed", flush=True)

    atexit.register(flush_at_exit)
    import mlx_embed
    from mlx_embed import _threads
    _threads.PARK_WAIT_S = 3600  # an exit that waits for an encode still running hangs, and the test times out
    model = mlx_embed.load(sys.argv[1])
    expected = model.encode(["flushed at exit"])
    if len(sys.argv) > 2:  # the exit hook's thread alone
        sys.exit(0)
    started = threading.Event()

    def background():
        while True:
            model.encode(["text in the background"] * 40)
            started.set()

    threading.Thread(target=background, daemon=True).start()
    assert started.wait(120)
    pid = os.fork()  # while the daemon encodes: the child must not wait for the parent's encode at exit
    if pid == 0:
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    print("child exited", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
@pytest.mark.skipif(sys.platform == "darwin", reason="Metal does not survive fork (macOS starts processes with spawn)")
def test_exit_parks_only_daemon_encodes(tmp_path, tiny_bert_hf):
    """A thread an exit hook starts and joins must not be parked (it hung forever), and a child forked while
    a daemon thread encodes does not wait for the parent's encode at its own exit (it waited ``PARK_WAIT_S``,
    which the script sets past the test's timeout)."""
    script = tmp_path / "exit_edges.py"
    script.write_text(_EXIT_EDGES_CHILD)
    proc = subprocess.run([sys.executable, str(script), str(tiny_bert_hf)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    lines = proc.stdout.split("\n")
    assert "child exited" in lines and "flushed" in lines and proc.returncode == 0, (
        proc.returncode, proc.stdout, proc.stderr[-1000:])


@needs_fast
def test_a_thread_an_earlier_exit_hook_starts_encodes_and_the_process_exits_cleanly(tmp_path, tiny_bert_hf):
    """An exit hook registered before mlx_embed runs after its exit hook: the compile cache of a thread it
    starts was freed as the interpreter finalized, and the process aborted ("terminate called without an
    active exception", 3 runs in 3). Its vectors match the ones encoded before exit."""
    script = tmp_path / "exit_hook_thread.py"
    script.write_text(_EXIT_EDGES_CHILD)
    proc = subprocess.run([sys.executable, str(script), str(tiny_bert_hf), "hook only"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, "flushed\n"), proc.stderr[-1000:]


@pytest.mark.skipif(sys.platform != "linux", reason="OpenBLAS is interposed on Linux only")
@pytest.mark.parametrize("name,reason", [("missing.so", "does not exist"), ("junk.so", "could not load")])
def test_a_blas_library_that_cannot_be_used_is_named_and_warned_about(tmp_path, name, reason):
    """An explicit MLX_EMBED_OPENBLAS that fails was reported as "no OpenBLAS found", with no warning."""
    (tmp_path / "junk.so").write_text("not a shared library")
    setting = str(tmp_path / name)
    code = "import warnings; warnings.simplefilter('always'); import mlx_embed._blas as b; print(repr(b.reason))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, MLX_EMBED_OPENBLAS=setting))
    assert out.returncode == 0 and reason in out.stdout, out
    assert "UserWarning" in out.stderr and "reference BLAS" in out.stderr and setting in out.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="OpenBLAS is interposed on Linux only")
@pytest.mark.parametrize("code,setting,warned", [("import mlx.core; import mlx_embed", "1", True),
                                                 ("import mlx_embed; import mlx.core", "1", False),
                                                 ("import mlx.core; import mlx_embed", "0", False)])
def test_importing_mlx_first_is_warned_about(code, setting, warned):
    """mlx.core imported first keeps MLX's reference BLAS, encoding about 9x slower here: said, not silent."""
    from mlx_embed import _blas

    if _blas.loaded is None:
        pytest.skip(f"OpenBLAS not loaded here either: {_blas.reason}")
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, MLX_EMBED_OPENBLAS=setting))
    assert out.returncode == 0, out.stderr
    assert ("imported before mlx_embed" in out.stderr and _blas.loaded in out.stderr) == warned, out.stderr


def test_cpu_activations_need_no_compiler_where_the_fused_kernels_are_off(monkeypatch, cpu_device):
    """On a Mac's CPU backend the kernels are off ("not Linux") and MLX's nn.gelu / nn.silu are compiled
    functions: a broken compiler made encode fail there with no fallback. The plain ops need none."""
    import math

    import mlx.core as mx
    import mlx.nn as nn

    from mlx_embed.models import activations, kernels

    def compiled(*args):
        raise RuntimeError("[Compile::eval_cpu] Failed to compile function")

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(kernels, "_disabled_reason", "not Linux")
    monkeypatch.setattr(nn, "gelu", compiled)
    monkeypatch.setattr(nn, "silu", compiled)
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    expected_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    np.testing.assert_allclose(np.array(activations.gelu(mx.array(x))), expected_gelu, atol=1e-5)
    expected_silu = x / (1 + np.exp(-x.astype(np.float64))) * 2.0
    np.testing.assert_allclose(np.array(activations.silu_mul(mx.array(x), mx.full(x.shape, 2.0))), expected_silu, atol=1e-5)


def test_encode_gives_mlx_buffer_cache_back(minilm_path):
    """Long runs keep memory flat: each batch's buffers go back to the system rather than into MLX's cache
    (22 MB of cache after these 240 texts when it was never cleared; under 1 MiB with)."""
    import mlx.core as mx

    model = mlx_embed.load(minilm_path)
    mx.clear_cache()
    model.encode([f"text number {i} " * (1 + i % 20) for i in range(240)], batch_size=4)
    assert mx.get_cache_memory() < 2**20


def test_openblas_kernels_follow_the_cpus_feature_flags():
    """The core type OpenBLAS is told from /proc/cpuinfo flags: all five AVX-512 sets of its SkylakeX kernels
    (with bf16: Cooperlake), else AVX2 and FMA (Haswell), else none (OpenBLAS detects)."""
    avx512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"}
    assert _blas.core_for(avx512 | {"avx512_bf16"}) == "Cooperlake"
    assert _blas.core_for(avx512) == "SkylakeX"
    assert _blas.core_for(avx512 - {"avx512vl"}) == "Haswell"
    assert _blas.core_for({"avx2", "sse4_2"}) is None and _blas.core_for(set()) is None


@pytest.mark.skipif(sys.platform != "linux", reason="OpenBLAS is interposed on Linux only")
@pytest.mark.parametrize("given", [None, "Haswell"])
def test_openblas_is_loaded_with_the_cpus_kernels_and_the_environment_is_restored(given):
    """Debian 12's OpenBLAS 0.3.21 took this 2-core Xeon (model 207) for a Prescott: SSE3 kernels, MLX's matmuls
    at 52 GFLOP/s instead of 235-291, MiniLM encoding 3x slower. A core type the user sets is kept; either way the
    environment after import is as it was."""
    if _blas.loaded is None:
        pytest.skip(f"OpenBLAS not loaded: {_blas.reason}")
    import ctypes

    get_config = ctypes.CDLL(_blas.loaded).openblas_get_config
    get_config.restype = ctypes.c_char_p
    if b"DYNAMIC_ARCH" not in get_config():  # built for one CPU: it has no core type to choose
        pytest.skip(f"this OpenBLAS has one set of kernels: {get_config().decode()}")
    code = "import os, mlx_embed; from mlx_embed import _blas; print(_blas.core, os.environ.get('OPENBLAS_CORETYPE'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"} | ({"OPENBLAS_CORETYPE": given} if given else {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    core, after = out.stdout.split()
    assert after == str(given)
    if given:
        assert core == given
        return
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE).group(1).split())
    if "avx2" in flags:  # no SSE-era kernels on an AVX2 CPU
        assert core not in ("Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom")
    if _blas.core_for(flags) is not None:
        assert core == _blas.core_for(flags)


@needs_fast
def test_gelu_of_very_negative_inputs_is_not_positive():
    """GELU(x) = x Phi(x) is in (x, 0] for x < 0; float32 rounded the fit's Phi(-4 sqrt 2) to -6e-8, so
    GELU(-1e7) came out as +0.6."""
    x = mx.array([-1e7, -1e5, -1e3, -40.0, -8.0])
    got = np.array(kernels.gelu(x))
    assert np.all(got <= 0) and np.all(got >= -1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_a_text_with_no_visible_key_attends_every_key_evenly(monkeypatch, cpu_device, fused):
    """Both paths agree with MLX's own attention (the mean of the values) for an all-padding text;
    the fused path gave NaN (0 / 0) there."""
    if not fused:
        monkeypatch.setattr(kernels, "_disabled_reason", "test")
    elif not kernels.enabled():
        pytest.skip(f"fused CPU kernels off: {kernels.reason()}")
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 4, 5, 8)).astype(np.float32) for _ in range(3))
    keys = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    got = np.array(kernels.attend(mx.array(q), mx.array(k), mx.array(v), 0.3, mx.array(keys)))
    np.testing.assert_allclose(got[1], np.broadcast_to(v[1].mean(axis=1, keepdims=True), (4, 5, 8)), atol=1e-5)
    expected = _attention64(q[:1].astype(np.float64), k[:1].astype(np.float64), v[:1].astype(np.float64), 0.3,
                            keys[:1, None, None, :] != 0)
    assert np.abs(got[:1] - expected).max() < 2e-5
