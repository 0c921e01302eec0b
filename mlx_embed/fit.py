"""Which models can an app run within a RAM budget (an 8 GB Mac, say), with what batch size and length?

    mlx-embed fit [--ram 8GB] [--alongside 2.5GB] [--reserve 2GB] [--model M ...] [--backend metal] [--json]
    python scripts/memory_fit.py ...

The memory a process needs to embed a batch of ``B`` texts of ``L`` tokens is modelled as

    need(B, L) = max(load_peak, footprint + runtime_overhead + B*L*token_bytes + B*L^2*pair_bytes)

``footprint`` is the process RSS after load (interpreter, libraries, tokenizer, resident weights),
``runtime_overhead`` what the first encode adds (compiled kernels, BLAS buffers), ``token_bytes`` the
working set per token in a batch (hidden states, MLP intermediates) and ``pair_bytes`` the working set
per (query, key) pair (attention scores where attention is not fused, masks): attention grows with L^2.
On CPU, attention runs in blocks of bounded size, so past 512 tokens an estimate uses one text's working
set, and two texts' on two streams, measured at 1024, 2048, ... tokens (``long_working``,
``stream_working``) instead of the L^2 law (fitted up to 512 tokens,
that law put a one-layer Qwen3-0.6B at 14.1 GiB for 8192 tokens; measured: 1.44 GiB).

* Weights present ("measured"): a fresh process loads the model, and RSS is recorded after load and
  at its peak (Linux VmHWM plus 5 ms sampling) while embedding a few batch x length points;
  ``token_bytes`` and ``pair_bytes`` are fitted to the peaks up to 512 tokens, and for a longer model
  one text is also measured at 1024, 2048, ... tokens and its max length (``long_working``), and two texts
  there on two CPU streams (``stream_working``: what ``encode`` runs at those lengths). If that
  process dies (out of memory, a crash) or runs past ``MEASURE_TIMEOUT``, the model is estimated instead and the row says why
  (``measure_error``); so is one that does not load (a damaged file), also where it is not measured (another
  backend, ``--estimate-only``), as far as its safetensors headers and sizes tell.
* Weights absent ("estimate"): from ``config.json`` or the registry figures below: resident weight
  bytes for the backend (parameters x bits; on the CPU backend mlx_embed dequantizes Linear weights to
  float32 at load, on Metal they stay 4-bit), the measured runtime constants in ``RUNTIME``, and
  ``token_bytes`` / ``pair_bytes`` measured on a one-layer random model with the same dims (activation
  memory per layer does not depend on the number of layers: layers run one after another).

The budget is ``ram - reserve - alongside``: ``ram`` defaults to this machine's RAM (a lower cgroup memory
limit on Linux, a container's say) and must be given
for Metal asked about from a machine without it (``--backend metal`` on Linux), ``reserve`` is what the OS keeps for itself
(``DEFAULT_RESERVE``, 2 GiB: an assumption, not a measurement), ``alongside`` memory held by other things
(e.g. a 4B VLM next to the embedder). Verdict at ``encode``'s default batches (:class:`Batching`: batch 32,
at most ``max_batch_tokens`` padded tokens per batch, 1,024 on CPU and 16,384 on Metal, lengths padded as
``encode`` pads them, and on CPU its streams each running a batch of 1/n of both at once), the most any length
up to the model's max length needs: "fits" with at least 10% of the budget to spare, "tight"
when it fits with less, "only with smaller inputs" when it does not fit but smaller batches or shorter
texts do (``advice`` says which), "does not fit" when even one 128-token text does not. Sizes: ``GB``
means GiB (2^30 bytes), as RAM is sold; the table prints GiB / MiB.

JSON (``--json``), keys stable, sizes in bytes::

    {"schema": "mlx_embed.fit/1", "machine": {...as in mlx_embed.profile},
     "measured_on": {...profile's "backend"} or null, "backend": "cpu" | "metal",
     "budget": {"ram_bytes", "ram_from": "given" | "machine" | "memory limit" (a cgroup's, below the machine's RAM),
                "reserve_bytes", "alongside_bytes", "available_bytes"},
     "models": [{"model", "measure_error": str | null, "source", "weight_format": "fp32" | "4-bit" | ...,
                 "bits_per_weight", "status": "measured" | "estimate", "backend", "max_length",
                 "footprint", "load_peak", "runtime_overhead", "token_bytes", "pair_bytes",
                 "weights_bytes", "resident_weight_bytes", "parameters", "notes": [str],
                 "measured_peaks": {"BxL": bytes}, "long_working": {"L": bytes},
                 "verdict": "fits" | "tight" | "only with smaller inputs" | "does not fit" | "does not load", "advice",
                 "default_batch", "default_length",
                 "need_bytes", "headroom_bytes", "headroom_fraction",
                 "max_batch_at_max_length", "max_length_at_batch_1",
                 "stream_working": {"L": bytes},
                 "points": [{"batch", "length", "streams": bool (a text on each of two CPU streams),
                             "measured_bytes", "estimated_bytes"}],
                 "estimate": {the same fields, from the estimator}   (measured models only)}]}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .models import max_positions
from .stats import files_float_dtype, quantization_config, tensor_headers, weight_files, weight_format

if TYPE_CHECKING:
    from . import loading, registry

SCHEMA_ID = "mlx_embed.fit/1"
GIB = 1024**3
MIB = 1024**2

# What macOS keeps for itself on an 8 GB Apple-silicon Mac with no apps open (kernel and wired memory,
# WindowServer, system daemons). An assumption, not measured here (no Mac), used for every OS and backend:
# pass --reserve to change it.
DEFAULT_RESERVE = 2 * GIB
TIGHT_HEADROOM = 0.10  # "fits" needs at least this fraction of the budget left over
ENCODE_BATCH_SIZE = 32  # Embedder.encode's default batch_size; a test holds them equal
SHORT_TEXT = 128  # "does not fit" when even one text of this many tokens does not
# Measured with encode's most texts at once (32 on CPU up to 32 tokens): many tokens and few (query, key) pairs, so
# the law's per-token term is pinned; at 128+ tokens alone it went to the pairs, and 12 x 80 came out 11 % low.
MANY_SHORT = 32
MEASURE_TIMEOUT = 1800.0  # seconds one model's measuring process may take before it is estimated instead
DOES_NOT_LOAD = "does not load"  # the verdict for a folder whose files are damaged: its row is its config's estimate
SMALLER_ONLY = "only with smaller inputs"  # the verdict when encode's defaults do not fit but shorter or fewer texts do
PROBE_LENGTH = 512  # the longest input of the probes the L^2 law is fitted to
MAX_BATCH_REPORTED = 4096

# Runtime constants, measured on Linux x86_64 (Xeon, 2 cores, mlx 0.32.4 CPU, Python 3.11) with
# `python scripts/memory_fit.py --calibrate` over all-MiniLM-L6-v2 fp32 / 8-bit / 4-bit, each in a
# fresh process. No Mac was available: the Metal estimate uses the same constants (labelled).
RUNTIME = {
    # RSS of a fresh interpreter after `import psutil, mlx_embed` (used when no child can measure it).
    "import_rss": 44 * MIB,
    # `import huggingface_hub`, which load() does to look up an alias or Hub id (not for a folder).
    "hub_import": 19 * MIB,
    # RSS after load - RSS before load - weights held at the load peak - tokenizer - hub import:
    # MiniLM fp32 / 8-bit / 4-bit: 2.2 / 2.8 / 7.7 MiB.
    "load_overhead": 3 * MIB,
    # RSS growth of the first encode of one short text (compiled kernels, BLAS thread buffers):
    # 5.0 / 4.3 / 4.3 MiB.
    "encode_overhead": int(4.5 * MIB),
}
# Temporaries of dequantizing Linear weights at load on CPU, as a fraction of their float32 size:
# MLX peak minus the loaded and dequantized tensors, MiniLM 4-bit 9.3 of 40.5 MiB, 8-bit 10 of 40.5.
DEQUANTIZE_TRANSIENT = 0.24
# Tokenizer RSS per vocabulary entry (`tokenizers`): MiniLM's WordPiece (30,522 entries) 10.0 MB;
# a byte-level BPE the size of Qwen3's (151,665 entries, 151,387 merges; synthetic) 110 MB.
TOKENIZER_BYTES_PER_ENTRY = {"bert": 330, "qwen3": 725}

# Registry models whose weights may be absent. Config numbers from the upstream config.json files;
# the mlx-community 4-bit layouts quantize every Linear and embedding table, group 64, 16-bit scales and
# biases (fp16 for the BERT models, bf16 for Qwen3's DWQ, as those checkpoints store them). Parameter counts match registry.py.
REGISTRY_CONFIGS: dict[str, dict] = {
    # Qwen/Qwen3-Embedding-0.6B config.json (QwenLM/Qwen3-Embedding): head_dim 128 != 1024 / 16.
    "qwen3-0.6b": {
        "model_type": "qwen3", "hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
        "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 3072, "vocab_size": 151669,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
        "tie_word_embeddings": True, "quantization": {"group_size": 64, "bits": 4},
    },
    # sentence-transformers/all-MiniLM-L6-v2 config.json.
    "minilm": {
        "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
        "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
        "quantization": {"group_size": 64, "bits": 4},
    },
    # BAAI/bge-small-en-v1.5 config.json.
    "bge-small": {
        "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
        "quantization": {"group_size": 64, "bits": 4},
    },
}

# The dtype each registry model's full-precision upstream ships in (its config.json's torch_dtype).
UPSTREAM_DTYPES = {"qwen3-0.6b": "bfloat16", "minilm": "float32", "bge-small": "float32"}


def registry_figures(name: str, spec: "registry.ModelSpec") -> tuple[dict, str]:
    """The config to estimate a registry model from, and where it came from: the mlx-community 4-bit layout,
    or the full-precision one where ``name`` is the upstream id (which loads the upstream's weights)."""
    config = REGISTRY_CONFIGS[spec.alias]
    if spec.upstream_id and name.lower() == spec.upstream_id.lower():
        dtype = UPSTREAM_DTYPES[spec.alias]
        floats = {k: v for k, v in config.items() if k != "quantization"} | {"torch_dtype": dtype}
        return floats, f"registry figures ({spec.upstream_id}, {dtype})"
    return config, f"registry figures ({spec.hub_id})"


# Metal's fused attention kernel ("sdpa_full" in mlx/backend/metal/scaled_dot_product_attention.cpp)
# takes these head dims with an array mask; others (MiniLM's and bge's 32) materialize the scores.
METAL_FUSED_HEAD_DIMS = (64, 80, 128)


# ---------------------------------------------------------------- sizes

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str | int | float) -> int:
    """``"8GB"``, ``"2.5G"``, ``"512MiB"``, ``"300MB"`` or a number of bytes -> bytes. K/M/G/T are powers of 1024."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a memory size cannot be negative, got {text}")
        return int(text)
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"cannot read {text!r} as a memory size: write e.g. 8GB, 2.5GB, 512MB or a number of bytes")
    value, unit = float(m.group(1)), m.group(2).lower()
    if not unit and m.group(3).lower() != "b" and 0 < value < 1024 * 1024:  # "8" or "8i", not "8B"
        raise ValueError(f"{text!r} reads as {value:g} bytes: write the unit, e.g. {m.group(1)}GB")
    return int(value * 1024 ** "_kmgt".index(unit or "_"))


def format_size(n: float) -> str:
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MIB:.0f} MiB"


# ---------------------------------------------------------------- the arithmetic


@dataclass
class MemoryModel:
    """What one model needs, as a function of batch size and input length. Bytes throughout."""

    name: str
    status: str  # "measured" or "estimate"
    backend: str  # the backend the figures are for: "cpu" or "metal"
    max_length: int
    footprint: int
    load_peak: int
    runtime_overhead: int
    token_bytes: float
    pair_bytes: float
    weights_bytes: int | None = None
    resident_weight_bytes: int | None = None
    parameters: int | None = None
    notes: list[str] = field(default_factory=list)
    measured_peaks: dict[str, int] = field(default_factory=dict)  # "BxL" -> peak RSS measured there
    # One text's working set measured at lengths past the fitted range ("L" -> bytes). On CPU attention
    # runs in blocks of at most kernels.ATTENTION_BLOCK_ELEMENTS scores (STOCK_ATTENTION_BLOCK_ELEMENTS
    # without the fused kernels), so it stops growing as L^2 there.
    long_working: dict[str, int] = field(default_factory=dict)
    # Two texts at those lengths, one on each of two CPU streams, as encode runs them there ("L" -> bytes): the
    # streams' peaks only partly coincide (Qwen3-0.6B's dims, one layer: MLX peak 18-35 % over one text at
    # 1,024-8,192 tokens).
    stream_working: dict[str, int] = field(default_factory=dict)

    def working(self, batch: int, length: int) -> float:
        """Bytes of activations for ``batch`` texts of ``length`` tokens: ``B*L*token_bytes +
        B*L^2*pair_bytes``; past ``PROBE_LENGTH``, where encode runs them a text a stream, ``B / 2`` times the
        two-stream working set or else ``B`` times the one-text one, interpolated from there through the
        measured points (extended along the last segment beyond them)."""
        if not self.long_working or length <= PROBE_LENGTH:
            return batch * length * self.token_bytes + batch * length * length * self.pair_bytes
        if batch >= 2 and self.stream_working:
            return batch / 2 * _along(self.stream_working, self.working(2, PROBE_LENGTH), length)
        return batch * _along(self.long_working, self.working(1, PROBE_LENGTH), length)

    def need(self, batch: int, length: int) -> int:
        """Bytes needed to embed a batch: the fitted formula, but never less than a peak measured at a batch
        and length no larger. The formula runs a few MiB under some measurements; a floor at the measured
        point alone would let a longer input need less than a shorter, measured one."""
        modelled = max(self.load_peak, self.footprint + self.runtime_overhead + self.working(batch, length))
        floor = max((peak for point, peak in self.measured_peaks.items()
                     if _within(point, batch, length)), default=0)
        return int(max(modelled, floor))


def _along(points: dict[str, int], start: float, length: int) -> float:
    """``points`` ("L" -> bytes past ``PROBE_LENGTH``, where the value is ``start``) at ``length``: linear
    between them, along the last segment beyond them."""
    xs = [PROBE_LENGTH] + sorted(int(n) for n in points)
    ys = [start] + [float(points[str(n)]) for n in xs[1:]]
    if length >= xs[-1]:
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if len(xs) > 1 else ys[-1] / xs[-1]
        return ys[-1] + max(slope, 0.0) * (length - xs[-1])
    i = next(k for k, x in enumerate(xs) if x >= length)
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (length - xs[i - 1]) / (xs[i] - xs[i - 1])


def _within(point: str, batch: int, length: int) -> bool:
    """Whether the measured point ``"BxL"`` is no larger than ``batch`` x ``length`` in either."""
    b, _, n = point.partition("x")
    return int(b) <= batch and int(n) <= length


@dataclass(frozen=True)
class Budget:
    ram: int
    reserve: int = DEFAULT_RESERVE
    alongside: int = 0

    @property
    def available(self) -> int:
        return self.ram - self.reserve - self.alongside

    def check(self) -> "Budget":
        for name in ("ram", "reserve", "alongside"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, got {getattr(self, name)}")
        if self.available <= 0:
            raise ValueError(
                f"nothing is left for the embedder: RAM {format_size(self.ram)} - reserve {format_size(self.reserve)} "
                f"- alongside {format_size(self.alongside)} = {format_size(self.available)}. "
                "Raise --ram or lower --reserve / --alongside."
            )
        return self


@dataclass(frozen=True)
class Batching:
    """How ``encode`` batches many texts (``Embedder._plan``): a batch of texts whose longest has ``L`` tokens
    takes ``padded(L)`` columns, at most ``batch_size`` texts and ``max_batch_tokens`` columns in all (a longer
    text alone); on CPU ``streams`` worker streams each run a batch of ``1 / streams`` of both at once."""

    max_batch_tokens: int
    streams: int = 0
    padded: Callable[[int], int] = int
    batch_size: int = ENCODE_BATCH_SIZE

    def at_once(self, length: int, batch_size: int | None = None) -> int:
        """Texts of ``length`` tokens that ``encode`` embeds at once, given many of them."""
        n = max(1, self.streams)
        per_stream = (self.max_batch_tokens // n) // self.padded(length)
        return n * max(1, min(-(-(batch_size or self.batch_size) // n), per_stream))


def encode_batching(backend: str) -> Batching:
    """``encode``'s batching on ``backend``: on CPU its worker streams and, on the fused Linux path, its padding."""
    from . import embedder

    if backend == "cpu":
        return Batching(embedder.CPU_BATCH_TOKENS, max(0, embedder.CPU_STREAMS), embedder.padded_length)
    return Batching(embedder.GPU_BATCH_TOKENS)


def default_point(max_length: int, batching: Batching) -> tuple[int, int]:
    """``(texts at once, length)`` when ``encode`` embeds many texts of ``max_length`` tokens with its defaults."""
    return batching.at_once(max_length), max_length


def _largest(hi: int, fits) -> int:
    """The largest n in [1, hi] with ``fits(n)``, given ``fits(1)`` and that ``fits`` holds up to some n only."""
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def max_batch(model: MemoryModel, length: int, available: int, cap: int = MAX_BATCH_REPORTED) -> int:
    """The largest batch of ``length``-token texts within ``available`` bytes (0: not even one)."""
    if model.need(1, length) > available:
        return 0
    per_text = model.working(1, length)
    room = available - model.footprint - model.runtime_overhead
    bound = cap if per_text <= 0 else max(1, int(min(cap, room // per_text)))  # the formula's; a measured peak may lower it
    if bound < 2 <= cap and model.need(2, length) <= available:
        # two texts past PROBE_LENGTH run one a stream, measured as such (often well under twice one text); more
        # at once would be batches on each stream, which are not measured, so the bound stays one text's there
        bound = 2
    return _largest(bound, lambda n: model.need(n, length) <= available)


def max_length(model: MemoryModel, batch: int, available: int, padded: Callable[[int], int] = int) -> int:
    """The longest input (<= the model's max length) a batch of ``batch`` texts can have within ``available``,
    each length taking ``padded(length)`` columns."""
    if model.need(batch, padded(1)) > available:
        return 0
    return _largest(model.max_length, lambda n: model.need(batch, padded(n)) <= available)


def _default_need(model: MemoryModel, batching: Batching, length: int) -> int:
    """Bytes ``encode``'s default batches of ``length``-token texts need."""
    return model.need(batching.at_once(length), batching.padded(length))


def _at_defaults(model: MemoryModel, batching: Batching, length: int) -> tuple[int, int, int]:
    """``(need, texts at once, length)`` for ``encode`` with its defaults over texts of up to ``length`` tokens:
    the most any length needs (a shorter text may be batched with more others)."""
    need, n = max((_default_need(model, batching, n), n) for n in range(1, length + 1))
    return need, batching.at_once(n), n


def max_length_at_defaults(model: MemoryModel, batching: Batching, available: int) -> int:
    """The largest ``max_length`` for which ``encode``'s default batches of texts up to that long fit ``available``."""
    for n in range(1, model.max_length + 1):
        if _default_need(model, batching, n) > available:
            return n - 1
    return model.max_length


def assess(model: MemoryModel, budget: Budget, batching: Batching | None = None) -> dict:
    """Verdict, headroom and limits of ``model`` within ``budget``; the verdict is for ``encode``'s default
    batches (``batching``: default, ``encode``'s own on the model's backend)."""
    available = budget.available
    batching = batching or encode_batching(model.backend)
    need, batch, length = _at_defaults(model, batching, model.max_length)
    headroom = available - need
    short = model.need(1, min(SHORT_TEXT, model.max_length))
    if short > available:
        verdict = "does not fit"
    elif headroom < 0:
        verdict = SMALLER_ONLY
    elif headroom >= TIGHT_HEADROOM * available:
        verdict = "fits"
    else:
        verdict = "tight"
    columns = batching.padded(model.max_length)
    most = max_batch(model, columns, available)
    longest = max_length(model, 1, available, batching.padded)
    streams = max(1, batching.streams)

    def fits(changed: Batching) -> bool:  # every length up to the max: a shorter text may be batched with more
        return _at_defaults(model, changed, model.max_length)[0] <= available

    def largest_batch(base: Batching) -> int:  # up to encode's default batch_size
        return _largest(batching.batch_size, lambda b: fits(replace(base, batch_size=b)))

    if verdict == "fits":
        advice = f"encode's defaults ({batch} texts at once, up to {length} tokens) fit"
    elif verdict == "does not fit":
        advice = f"one {min(SHORT_TEXT, model.max_length)}-token text needs {format_size(short)} of {format_size(available)}"
    elif verdict == "tight":
        advice = f"encode's defaults fit with {_percent(headroom / available)} of the budget to spare"
    elif fits(replace(batching, batch_size=1)):  # then one text a stream fits at every length
        texts = largest_batch(batching)
        # at most the tokens the batch_size advice runs at the max length: the same spare either way, and no
        # shorter batch past a measured peak's texts (up to 1,023 tokens ran 4 x 255 under a 4 x 256 peak)
        tokens = _largest(texts * columns, lambda t: fits(replace(batching, max_batch_tokens=t)))
        advice = f"for texts of up to {model.max_length} tokens use batch_size <= {texts} (or max_batch_tokens <= {tokens})"
    else:
        shorter = max_length_at_defaults(model, batching, available)
        fewer = replace(batching, streams=most, batch_size=1)  # fewer streams run fewer texts only with a smaller batch
        if 1 <= most < batching.streams and fits(fewer):
            texts = largest_batch(fewer)
            size = "" if texts == batching.batch_size else f" and use batch_size <= {texts}"  # the default needs no advice
            advice = (f"at {model.max_length} tokens only {most} text(s) at once fit, and encode runs {streams} batches at "
                      f"once on CPU: set MLX_EMBED_CPU_STREAMS={most}{size}, or pass max_length <= {shorter} to encode")
        elif most >= 1:
            advice = f"encode's batches of shorter texts do not fit either: pass max_length <= {shorter} to encode"
        else:  # encode's batches of short texts may be what keeps max_length low: smaller batches go further
            one = max_length_at_defaults(model, replace(batching, batch_size=1), available)
            ways = [f"pass max_length <= {shorter} to encode"]
            if one > shorter:
                ways.insert(0, f"pass batch_size=1 and max_length <= {one}")
            if streams > 1 and longest > max(one, shorter):
                ways.insert(0, f"set MLX_EMBED_CPU_STREAMS=1 and pass batch_size=1 and max_length <= {longest}")
            advice = f"not even one {model.max_length}-token text fits: " + "; or ".join(ways)
    return {
        "verdict": verdict,
        "advice": advice,
        "default_batch": batch,
        "default_length": length,
        "need_bytes": need,
        "headroom_bytes": headroom,
        "headroom_fraction": headroom / available,
        "max_batch_at_max_length": most,
        "max_length_at_batch_1": longest,
    }


def fit_working_set(points: list[dict]) -> tuple[float, float]:
    """Non-negative least squares of ``working = B*L*token_bytes + B*L^2*pair_bytes`` over measured points
    (each ``{"batch", "length", "working_bytes"}`` and optionally ``"peak_bytes"``), each point's error
    relative to its peak (the quantity a verdict compares), else to its working set."""
    import numpy as np

    if not points:
        return 0.0, 0.0
    x = np.array([[p["batch"] * p["length"], p["batch"] * p["length"] ** 2] for p in points], dtype=np.float64)
    y = np.array([max(p["working_bytes"], 0) for p in points], dtype=np.float64)
    w = 1 / np.array([max(p.get("peak_bytes", p["working_bytes"]), 1) for p in points], dtype=np.float64)
    best = None
    for cols in ([0, 1], [0], [1]):
        coef, *_ = np.linalg.lstsq(x[:, cols] * w[:, None], y * w, rcond=None)
        if (coef < 0).any():
            continue
        full = np.zeros(2)
        full[cols] = coef
        err = float(((((x @ full) - y) * w) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, full)
    if best is None:
        return 0.0, 0.0
    return float(best[1][0]), float(best[1][1])


# ---------------------------------------------------------------- estimates from a config


def _dims(config: dict) -> dict:
    arch = config.get("model_type")
    if arch not in ("bert", "qwen3"):
        raise ValueError(f"cannot estimate memory for model_type {arch!r}: supported are bert and qwen3")
    D, H = config["hidden_size"], config["num_attention_heads"]
    return {
        "arch": arch,
        "D": D,
        "I": config["intermediate_size"],
        "layers": config["num_hidden_layers"],
        "H": H,
        "Hkv": config.get("num_key_value_heads", H),
        "Dh": config.get("head_dim", 128 if arch == "qwen3" else None) or D // H,  # Qwen3Config's default: 128
        "V": config["vocab_size"],
        "P": max_positions(config),
        "T": config.get("type_vocab_size", 2),
    }


def tensor_inventory(config: dict) -> list[tuple[str, int, int]]:
    """``(kind, rows, cols)`` of every stored tensor: kind is linear, embedding, vector (norms, biases)
    or pooler (BERT's pooler, stored in checkpoints but not loaded by mlx_embed)."""
    d = _dims(config)
    D, I, L = d["D"], d["I"], d["layers"]
    out: list[tuple[str, int, int]] = []
    if d["arch"] == "bert":
        out += [("embedding", d["V"], D), ("embedding", d["P"], D), ("embedding", d["T"], D), ("vector", 1, 2 * D)]
        for _ in range(L):
            out += [("linear", D, D)] * 4 + [("linear", I, D), ("linear", D, I)]
            out += [("vector", 1, 4 * D + I + D), ("vector", 1, 4 * D)]  # biases; two LayerNorms
        out += [("pooler", D, D), ("vector_pooler", 1, D)]
    else:
        q, kv = d["H"] * d["Dh"], d["Hkv"] * d["Dh"]
        out.append(("embedding", d["V"], D))
        for _ in range(L):
            out += [("linear", q, D), ("linear", kv, D), ("linear", kv, D), ("linear", D, q)]
            out += [("linear", I, D), ("linear", I, D), ("linear", D, I)]
            out.append(("vector", 1, 2 * D + 2 * d["Dh"]))
        out.append(("vector", 1, D))  # no LM head: embedding checkpoints (Qwen3Model's, ours) store none, untied or not
    return out


def parameter_count(config: dict) -> int:
    return sum(r * c for _, r, c in tensor_inventory(config))


def _float_bytes(config: dict) -> int:
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return 4 if "32" in dtype else 2


def weight_bytes(config: dict, backend: str) -> dict:
    """Bytes of the weights: ``disk`` (the safetensors files), ``resident`` after ``mlx_embed.load`` on
    ``backend``, and ``load_peak``: on CPU the loaded 4-bit Linear weights, their float32
    dequantization and its temporaries coexist until ``load`` returns (float casts happen one tensor
    at a time)."""
    quant = quantization_config(config)
    bits, group = (quant.get("bits", 4), quant.get("group_size", 64)) if quant else (None, None)
    fbytes = 2 if quant else _float_bytes(config)
    disk = resident = loaded = dequantized = 0
    for kind, rows, cols in tensor_inventory(config):
        n = rows * cols
        quantized = quant is not None and kind in ("linear", "embedding", "pooler") and cols % group == 0
        stored = n * bits / 8 + 2 * (n // group) * 2 if quantized else n * fbytes
        disk += stored
        if kind.endswith("pooler"):
            continue
        loaded += stored
        if backend == "metal":
            kept = stored
        elif quantized and kind == "linear":
            kept = 4 * n
            dequantized += kept
        elif quantized:
            kept = n * bits / 8 + 2 * (n // group) * 4  # CPU: scales and biases cast to float32
        else:
            kept = 4 * n  # CPU: everything else computes in float32
        resident += kept
    return {"disk": int(disk), "resident": int(resident),
            "load_peak": int(max(resident, loaded + dequantized * (1 + DEQUANTIZE_TRANSIENT)))}


def this_backend() -> str:
    from .profile import backend_name

    return backend_name()


def probe_activations(config: dict, backend: str, max_length: int = PROBE_LENGTH) -> tuple[float, float, str, dict[str, int], dict[str, int]]:
    """``(token_bytes, pair_bytes, how, long_working, stream_working)``: MLX's peak memory of a one-layer random
    model with ``config``'s dims, on this machine, at batch 1 x 128 / 256 / 512 and 4 x 128, fitted to
    ``B*L*t + B*L^2*p``; for the CPU backend and ``max_length`` > 512 also one text at 1024, 2048, ...
    up to ``max_length`` (``long_working``, "L" -> bytes), where blocked attention breaks the L^2 law, and two
    texts there on two streams, dispatched a layer at a time as ``encode`` runs them (``stream_working``).

    Run on the backend asked for when it is this machine's; a Metal estimate made on a CPU machine
    halves the CPU figures (16-bit activations: quantized and 16-bit checkpoints compute in their float
    dtype there) and keeps only the attention mask's L^2 bytes where Metal's fused attention takes the
    head dim.
    """
    keys = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")
    shape = json.dumps({k: config.get(k) for k in keys}, sort_keys=True)
    half = quantization_config(config) is not None or _float_bytes(config) == 2
    long = long_lengths(max_length) if backend == "cpu" else ()
    return _probe(shape, half, backend, long_lengths=long)


def long_lengths(max_length: int) -> tuple[int, ...]:
    """The batch-1 lengths past ``PROBE_LENGTH`` where one text's working set is measured: 1024, 2048, ...
    and ``max_length`` itself (empty when ``max_length`` <= ``PROBE_LENGTH``)."""
    if max_length <= PROBE_LENGTH:
        return ()
    return tuple(sorted({min(PROBE_LENGTH << i, max_length) for i in range(1, 16) if (PROBE_LENGTH << i) < 2 * max_length}))


@lru_cache(maxsize=None)
def _probe(
    shape: str, half: bool, backend: str, lengths: tuple[int, ...] = (128, 256, PROBE_LENGTH), long_lengths: tuple[int, ...] = ()
) -> tuple[float, float, str, dict[str, int], dict[str, int]]:
    import mlx.core as mx
    import numpy as np

    from .models import ARCHITECTURES

    config = dict(json.loads(shape), num_hidden_layers=1, vocab_size=256)
    config = {k: v for k, v in config.items() if v is not None}
    here = this_backend()
    d = _dims(config)
    small = dict(config, max_position_embeddings=max(lengths + long_lengths + (512,)))
    module = ARCHITECTURES[d["arch"]]
    stream = mx.cpu if (backend == "cpu" and here != "cpu") else mx.default_device()
    points = []
    long_working: dict[str, int] = {}
    stream_working: dict[str, int] = {}
    with mx.stream(stream):
        model = module.Model(module.ModelArgs.from_dict(small))
        if stream == mx.cpu:
            model.set_dtype(mx.float32)
        else:
            model.set_dtype(mx.float16 if half else mx.float32)
        mx.eval(model.parameters())
        for batch, length in [(1, n) for n in lengths] + [(4, lengths[0])] + [(1, n) for n in long_lengths]:
            ids = mx.array(np.full((batch, length), 5, dtype=np.int32))
            mask = mx.ones((batch, length), dtype=mx.int32)
            mx.eval(ids, mask)
            mx.clear_cache()
            before = mx.get_active_memory()
            mx.reset_peak_memory()
            hidden = model(ids, mask)
            pooled = hidden.mean(axis=1)
            mx.eval(pooled)
            working = mx.get_peak_memory() - before
            if length in long_lengths:
                long_working[str(length)] = int(working)
            else:
                points.append({"batch": batch, "length": length, "working_bytes": working})
            del hidden, pooled
        streams = [mx.new_stream(mx.cpu) for _ in range(2)] if long_lengths else []  # never freed: made once
        for length in long_lengths:
            stream_working[str(length)] = _two_streams(model, length, streams)
        del model
        mx.clear_cache()
    token, pair = fit_working_set(points)
    how = f"one-layer probe on {'cpu' if stream == mx.cpu else here}"
    if backend == "metal" and here != "metal":
        token /= 2 if half else 1
        if d["Dh"] in METAL_FUSED_HEAD_DIMS:
            pair = 2.0 if d["arch"] == "qwen3" else 0.0  # the (B, 1, L, L) bool mask and its causal part
        else:
            pair /= 2 if half else 1
        how += ", scaled for Metal (unverified: no Mac here)"
    if long_working:
        how += f"; measured at batch 1 x {', '.join(long_working)} past the fit, and two texts there on two streams"
    return token, pair, how, long_working, stream_working


def _two_streams(model, length: int, streams: list) -> int:
    """MLX's peak memory (bytes over what was allocated before) of two ``length``-token texts run on two CPU
    streams, a layer at a time in turn (``Embedder._interleaved``)."""
    import mlx.core as mx
    import numpy as np

    ids = mx.array(np.full((1, length), 5, dtype=np.int32))
    mask = mx.ones((1, length), dtype=mx.int32)
    mx.eval(ids, mask)
    mx.clear_cache()
    before = mx.get_active_memory()
    mx.reset_peak_memory()
    layers = []
    for s in streams:
        with mx.stream(s):
            layers.append(model.layerwise(ids, mask, None))
    last: list = [None, None]
    while any(g is not None for g in layers):
        for j, s in enumerate(streams):
            if layers[j] is None:
                continue
            with mx.stream(s):
                hidden = next(layers[j], None)
                if hidden is None:
                    layers[j] = None
                    last[j] = last[j].mean(axis=1)
                else:
                    last[j] = hidden
                mx.async_eval(last[j])
    mx.eval(*last)
    return int(mx.get_peak_memory() - before)


def estimate(
    name: str,
    config: dict,
    backend: str,
    *,
    max_length: int,
    import_rss: int | None = None,
    by_name: bool = True,
) -> MemoryModel:
    """The estimated :class:`MemoryModel` of a model from its config (no weights needed).

    ``by_name``: loaded by alias or Hub id (which imports huggingface_hub), not from a folder.
    """
    d = _dims(config)
    weights = weight_bytes(config, backend)
    tokenizer = TOKENIZER_BYTES_PER_ENTRY[d["arch"]] * d["V"]
    base = (import_rss or RUNTIME["import_rss"]) + RUNTIME["load_overhead"] + tokenizer
    if by_name:
        base += RUNTIME["hub_import"]
    # Freed load transients stay in the process (MLX's buffer cache, the C heap): RSS keeps the load peak.
    footprint = base + weights["load_peak"]
    token, pair, how, long_working, stream_working = probe_activations(config, backend, max_length)
    notes = [f"activations: {how}"]
    if backend == "cpu" and weights["resident"] > weights["disk"]:
        notes.append(f"weights held: {format_size(weights['resident'])}: on CPU mlx_embed dequantizes the Linear "
                     "weights to float32 at load (CPU quantized matmuls are ~70x slower)")
    if backend == "metal":
        notes.append("runtime constants measured on Linux CPU; Metal adds its own (unmeasured here)")
    return MemoryModel(
        name=name,
        status="estimate",
        backend=backend,
        max_length=max_length,
        footprint=int(footprint),
        load_peak=int(footprint),
        runtime_overhead=RUNTIME["encode_overhead"],
        token_bytes=token,
        pair_bytes=pair,
        long_working=long_working,
        stream_working=stream_working,
        weights_bytes=weights["disk"],
        resident_weight_bytes=weights["resident"],
        parameters=parameter_count(config),
        notes=notes,
    )


# ---------------------------------------------------------------- measurement (child process)


def _points_for(
    max_len: int, points: list[tuple[int, int]] | None, batching: Batching, only: bool = False
) -> list[tuple[int, int]]:
    """The batch x length points to measure: one text and ``encode``'s default texts at once at 128 tokens and at
    ``max_len``, and its most texts at once, at ``MANY_SHORT`` tokens (the law's fit needs them), with ``points``
    (``only``: ``points`` alone) and, for a model longer than ``PROBE_LENGTH``, one text at 256 and 512 tokens
    (the L^2 law's lengths) and at each of :func:`long_lengths` (where it no longer holds)."""
    short = min(SHORT_TEXT, max_len)
    defaults = [(1, short), default_point(short, batching), (1, max_len), default_point(min(MANY_SHORT, max_len), batching)]
    if max_len <= PROBE_LENGTH or batching.streams < 2:  # else encode runs a text a stream there: _measure's stream points
        defaults.append(default_point(max_len, batching))
    points = list(points or []) if only else defaults + list(points or [])
    if max_len > PROBE_LENGTH:
        points += [(1, PROBE_LENGTH // 2), (1, PROBE_LENGTH)] + [(1, n) for n in long_lengths(max_len)]
    return sorted({(b, min(n, max_len)) for b, n in points}, key=lambda p: (p[0] * p[1], p))


def _measure(model: str, points: list[tuple[int, int]] | None, rss_before_import: int, only: bool = False) -> dict:
    import gc
    import warnings

    import mlx.core as mx

    import mlx_embed
    from mlx_embed import embedder as embedder_module
    from mlx_embed.profile import PeakSampler, resident_bytes, rss
    from mlx_embed.samples import SAMPLE_TEXTS
    from mlx_embed.stats import checkpoint_stats

    gc.collect()
    before_load = rss()
    with PeakSampler() as sampler:
        embedder = mlx_embed.load(model)
        mx.eval(embedder.model.parameters())
    after_load = rss()
    embedder.encode(["warm up"])
    mx.clear_cache()
    after_warmup = rss()
    limit = min(embedder.max_length, embedder.position_limit)
    text = " ".join(SAMPLE_TEXTS)
    while len(embedder.text_encoder.encode([text], 1 << 30)[0]) <= limit:
        text = text + " " + text
    def peak(batch: int, length: int, runs: tuple[int, ...], batch_size: int, max_batch_tokens: int | None) -> dict:
        """Peak RSS over ``encode`` calls of ``runs`` texts cut to exactly ``length`` tokens, labelled
        ``batch`` x the columns encode pads them to."""
        mx.clear_cache()
        gc.collect()
        base = rss()
        with warnings.catch_warnings(), PeakSampler() as point:
            warnings.simplefilter("ignore", mlx_embed.TruncationWarning)
            for n in runs:  # prompt="": a default prompt would take the point's tokens (all of them, if long)
                embedder.encode([text] * n, batch_size=batch_size, max_length=length, max_batch_tokens=max_batch_tokens, prompt="")
        # base_bytes is for reading only: measured_model counts from the RSS after warm-up
        return {"batch": batch, "length": embedder._columns(length), "base_bytes": base, "peak_bytes": point.peak}

    # Through encode() itself: one batch, which it runs whole, and two, which on CPU it overlaps on its streams,
    # each taking half a batch (7-13 % less at 4 x 256). One text runs alone (inline): a batch of one is what a
    # query is.
    try:
        measured = [peak(batch, length, (batch, 2 * batch) if batch > 1 else (1,), batch, batch * embedder._columns(length))
                    for batch, length in _points_for(limit, points, encode_batching(this_backend()), only)]
        streamed = []
        if embedder_module.CPU_STREAMS >= 2 and mx.default_device() == mx.cpu:
            # two lone texts past 512 tokens: encode runs one on each of two streams; then two such pairs, as
            # the batch points run twice their batch (a second pair peaked 7-10 % above one at 1,024-2,048 tokens)
            streamed = [peak(2, length, (2, 4), 1, None) for length in long_lengths(limit)]
    except ValueError as err:  # the model loaded: encode refused a point (one no longer than the special tokens)
        raise _PointRefused(str(err)) from None
    stats = checkpoint_stats(embedder.path)
    return {
        "model": model,
        "alias": embedder.spec.alias,
        "path": str(embedder.path),
        "source": embedder.source,
        "config": embedder.config,
        "max_length": limit,
        "parameters": stats.parameters,
        "weights_bytes": stats.weights_bytes,
        "bits_per_weight": stats.bits_per_weight,
        "resident_weight_bytes": resident_bytes(embedder.model),
        "rss_before_import": rss_before_import,
        "rss_before_load": before_load,
        "rss_after_load": after_load,
        "rss_peak_load": max(sampler.peak, after_load),
        "rss_after_warmup": after_warmup,
        "points": measured,
        "stream_points": streamed,
    }


def _child_main(argv: list[str], *, import_s: float, rss_before_import: int) -> None:  # noqa: ARG001 (profile's launcher)
    from .profile import backend_info, machine_info

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--points", default=None)
    parser.add_argument("--only-points", action="store_true", help="measure --points alone, not also the default ones")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        points = parse_points(args.points) if args.points else None
        result = {"machine": machine_info(), "backend": backend_info(),
                  "model": _measure(args.model, points, rss_before_import, args.only_points)}
    except _PointRefused as err:
        result = {"error": str(err), "stage": "measure"}
    except (ValueError, TypeError, FileNotFoundError) as err:
        result = {"error": str(err), "stage": "load"}
    Path(args.out).write_text(json.dumps(result))


class _PointRefused(ValueError):
    """``encode`` refused a measuring point of a model that loaded."""


def _percent(fraction: float) -> str:
    """``fraction`` as a whole percentage rounded towards zero: 9.98 % of headroom, "tight" (under 10 %), reads 9 %."""
    return f"{math.trunc(100 * fraction)}%"


def parse_points(text: str) -> list[tuple[int, int]]:
    """``"1x128,32x256"`` -> ``[(1, 128), (32, 256)]`` (batch x length)."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", part)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 2:
            raise ValueError(f"cannot read point {part!r}: write BATCHxLENGTH, e.g. 1x128,32x256 (batch >= 1, length >= 2)")
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def measured_model(name: str, got: dict, backend: str) -> MemoryModel:
    """The :class:`MemoryModel` of a model from the child's measurements (``_measure``): the L^2 law fitted to
    the points up to ``PROBE_LENGTH`` tokens, and one text's working set at the batch-1 points past it
    (``long_working``), as for an estimate.

    A point's working set is its peak over the RSS after warm-up, the base :meth:`MemoryModel.need` adds it to,
    not over the RSS the point started from: that drifts with the heap the earlier points left (MiniLM's
    24 x 40 started at 170-176 MiB in three runs) while the peak repeats within 0.3 MiB, and fitted to
    ``peak - start`` the law moved by 20 % between runs and predicted up to 6 % under the peaks."""
    def working(p: dict) -> int:
        return max(0, int(p["peak_bytes"] - got["rss_after_warmup"]))

    points = [{**p, "working_bytes": working(p)} for p in got["points"]]
    token, pair = fit_working_set([p for p in points if p["length"] <= PROBE_LENGTH] or points)
    long_working = {str(p["length"]): p["working_bytes"] for p in points if p["batch"] == 1 and p["length"] > PROBE_LENGTH}
    streamed = got.get("stream_points", [])
    stream_working = {str(p["length"]): working(p) for p in streamed}
    return MemoryModel(
        name=name,
        status="measured",
        backend=backend,
        max_length=got["max_length"],
        footprint=got["rss_after_load"],
        load_peak=got["rss_peak_load"],
        runtime_overhead=max(0, got["rss_after_warmup"] - got["rss_after_load"]),
        token_bytes=token,
        pair_bytes=pair,
        long_working=long_working,
        stream_working=stream_working,
        weights_bytes=got["weights_bytes"],
        resident_weight_bytes=got["resident_weight_bytes"],
        parameters=got["parameters"],
        measured_peaks={f"{p['batch']}x{p['length']}": p["peak_bytes"] for p in got["points"] + streamed},
    )


# ---------------------------------------------------------------- the report


def _locate(name: str) -> tuple[loading.Resolved | None, dict, str]:
    """``(Resolved or None, config, where the config came from)``: Resolved only when the weights are here."""
    from . import loading, registry

    try:
        resolved = loading.resolve(name, local_files_only=True)  # ValueError for an unknown name propagates
    except loading.ModelNotFoundError as err:
        if os.path.isdir(os.path.expanduser(name)) or isinstance(err, loading.CachedAtAnotherRevision):
            raise  # here, but not loadable as named (a link to nothing, a snapshot at another commit): its own fix
        resolved = None
    if resolved is not None and (resolved.path / "config.json").exists():
        config = loading.read_config(resolved.path)
        if not loading.missing_weight_files(resolved.path):
            return resolved, config, "weights"
        return None, config, f"its config.json ({resolved.path})"
    spec = registry.find(name)
    if spec is not None and spec.alias in REGISTRY_CONFIGS:
        return None, *registry_figures(name, spec)
    raise ValueError(f"{name!r}: no weights and no config.json on this machine to estimate from; pass a folder with its config.json")


def _max_length_of(name: str, config: dict, resolved: "loading.Resolved | None") -> int:
    """What ``encode`` would use by default: the max length of the spec :func:`loading.spec_for` gives
    (the registry's, or a folder's own sentence-transformers files), capped by the position embeddings."""
    from . import loading, registry

    limit = max_positions(config)
    if resolved is not None:
        for pooling in (None, "mean"):  # without a pooling config load needs pooling=, which leaves the length alone
            try:
                return min(loading.spec_for(resolved, config, pooling).max_length, limit)
            except ValueError:
                continue
        return limit  # files load refuses (it names them): estimate at the position limit
    spec = registry.find(name)
    return min(spec.max_length, limit) if spec else limit


def _import_rss() -> int | None:
    """Memory (:mod:`mlx_embed.procmem`) of a fresh interpreter after ``import mlx_embed`` (None if it cannot be measured)."""
    import subprocess

    code = "import mlx_embed.procmem as p; print(p.process_memory())"
    from .profile import child_env

    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env())
        return int(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def report(
    models: list[str] | None = None,
    *,
    ram: int | None = None,
    reserve: int = DEFAULT_RESERVE,
    alongside: int = 0,
    backend: str | None = None,
    points: list[tuple[int, int]] | None = None,
    measure: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The memory-fit report (see the module docstring); ``measure=False`` estimates every model.
    ``progress`` is told what each step is before it starts (the probes take minutes for long models on CPU)."""
    say = progress or (lambda message: None)
    import psutil

    from . import loading, registry
    from .procmem import cgroup_memory_limit
    from .profile import ChildFailed, backend_info, machine_info, run_child

    here = this_backend()
    backend = backend or here
    if backend not in ("cpu", "metal"):
        raise ValueError(f"the fit report answers for the cpu or metal backend, not {backend!r}: pass --backend cpu or --backend metal")
    if ram is None and backend != here and backend != "cpu":  # every machine has a CPU backend: this one's RAM
        raise ValueError(
            f"--ram is required with --backend {backend} on this {here} machine: its RAM says nothing about the "
            f"{backend} machine you mean; pass that machine's RAM, e.g. --ram 8GB"
        )
    ram_from = "given"
    if ram is None:
        ram, ram_from = int(psutil.virtual_memory().total), "machine"
        limit = cgroup_memory_limit() if backend == here else None
        if limit is not None and limit < ram:  # a container's limit: the OOM killer acts there, not at the host's RAM
            ram, ram_from = limit, "memory limit"
    budget = Budget(ram, reserve, alongside).check()
    models = list(models) if models else list(registry.REGISTRY)
    import_rss = _import_rss() if backend == here else None
    located = [(name, *_locate(name)) for name in models]  # a name it cannot answer for fails before minutes of probes
    for _, _, config, _ in located:
        _dims(config)  # and so does an architecture it cannot estimate
    rows = []
    for name, resolved, config, origin in located:
        spec = registry.find(name)
        if backend != here and spec is not None and spec.alias in REGISTRY_CONFIGS and not os.path.isdir(name):
            # On another backend an alias means what a machine of that kind would download: the registry's layout.
            resolved, (config, origin) = None, registry_figures(name, spec)
        row: dict = {"model": name, "measure_error": None}
        got, unloadable = None, False
        if resolved is not None and measure and backend == here:
            args = ["--model", name]
            if points:
                args += ["--points", ",".join(f"{b}x{n}" for b, n in points)]
            say(f"{name}: measuring in a fresh process")
            try:
                got = run_child("mlx_embed.fit", args, timeout=MEASURE_TIMEOUT)["model"]
            except ChildFailed as err:
                row["measure_error"] = err.reason
            except ValueError as err:  # it does not load (a damaged file): the others are still answered for
                if getattr(err, "details", {}).get("stage") != "measure":
                    row["measure_error"], unloadable = str(err), True
                elif points:
                    raise ValueError(f"--points {','.join(f'{b}x{n}' for b, n in points)}: {err}") from None
                else:
                    row["measure_error"] = str(err)
        elif resolved is not None:  # estimated without loading: a damaged file still gets no verdict as if it loaded
            try:
                tensor_headers([f for f in weight_files(resolved.path) if f.is_file()])
            except ValueError as err:
                row["measure_error"], unloadable = str(err), True
        if got is not None:
            model = measured_model(name, got, backend)
            say(_probing(name, model.max_length, backend))
            est = estimate(name, got["config"], backend, max_length=model.max_length, import_rss=got["rss_before_load"],
                           by_name=resolved.source != "folder")
            row["source"] = got["source"]
            row["weight_format"] = weight_format(got["config"], files_float_dtype(Path(got["path"])))
            row["bits_per_weight"] = got["bits_per_weight"]
            row["points"] = [
                {"batch": p["batch"], "length": p["length"], "streams": streams, "measured_bytes": p["peak_bytes"],
                 "estimated_bytes": est.need(p["batch"], p["length"])}
                for streams, group in ((False, got["points"]), (True, got.get("stream_points", []))) for p in group
            ]
            row["estimate"] = {k: v for k, v in {**asdict(est), **assess(est, budget)}.items() if k != "name"}
        else:
            path = resolved.path if resolved is not None else (Path(name) if os.path.isdir(name) else None)
            where = resolved or (loading.resolve(name) if path is not None else None)
            longest = _max_length_of(name, config, where)
            say(_probing(name, longest, backend))
            model = estimate(name, config, backend, max_length=longest, import_rss=import_rss, by_name=not os.path.isdir(name))
            if resolved is None and origin.startswith("registry") and backend != here:
                model.notes.append(f"estimated from {origin}")
            elif resolved is None:
                model.notes.append(f"weights not on this machine: estimated from {origin}")
            elif unloadable:
                model.notes.append(f"it does not load ({row['measure_error']}), so estimated from its config.json; "
                                   "encode cannot run it until the folder is mended")
            elif row["measure_error"] is not None:
                model.notes.append(
                    f"measuring failed, so estimated instead ({row['measure_error']}); "
                    "close other apps and run again to measure, or pass --estimate-only to skip measuring"
                )
            elif not measure:
                model.notes.append("weights present; estimated as asked (--estimate-only)")
            else:
                model.notes.append(f"weights present, but measurements here are for {here}, not {backend}")
            row["source"] = origin if resolved is None else resolved.source
            readable = resolved is not None and not unloadable
            row["weight_format"] = weight_format(config, files_float_dtype(path) if readable else None)
            row["bits_per_weight"] = 8 * model.weights_bytes / model.parameters if model.parameters else None
            row["points"] = []
        if points and got is None and resolved is None:
            model.notes.append("--points were not measured: the weights are not on this machine")
        row.update({k: v for k, v in asdict(model).items() if k != "name"})
        row.update(assess(model, budget))
        if unloadable:  # the figures are its config's; no verdict as if encode could run it
            row["verdict"], row["advice"] = DOES_NOT_LOAD, "encode cannot run it until the folder is mended (see the note)"
        rows.append(row)
    return {
        "schema": SCHEMA_ID,
        "machine": machine_info(),
        "measured_on": backend_info() if backend == here else None,
        "backend": backend,
        "budget": {"ram_bytes": budget.ram, "ram_from": ram_from, "reserve_bytes": budget.reserve, "alongside_bytes": budget.alongside,
                   "available_bytes": budget.available},
        "models": rows,
    }


def calibrate(models: list[str]) -> list[dict]:
    """The runtime constants of ``RUNTIME`` as measured for each present model, each in a fresh process."""
    from .profile import run_child

    rows = []
    for name in models:
        resolved, config, _ = _locate(name)
        if resolved is None:
            raise ValueError(f"{name!r}: calibration needs weights on this machine")
        got = run_child("mlx_embed.fit", ["--model", name, "--points", "1x16", "--only-points"])["model"]
        d = _dims(got["config"])
        tokenizer = TOKENIZER_BYTES_PER_ENTRY[d["arch"]] * d["V"]
        held = weight_bytes(got["config"], this_backend())["load_peak"]
        hub = RUNTIME["hub_import"] if resolved.source != "folder" else 0
        rows.append({
            "model": name,
            "import_rss": got["rss_before_load"],
            "resident_weight_bytes": got["resident_weight_bytes"],
            "load_peak_weight_bytes": held,
            "tokenizer_bytes": tokenizer,
            "hub_import": hub,
            "load_overhead": got["rss_after_load"] - got["rss_before_load"] - held - tokenizer - hub,
            "encode_overhead": got["rss_after_warmup"] - got["rss_after_load"],
        })
    return rows


def _probing(name: str, longest: int, backend: str) -> str:
    lengths = long_lengths(longest) if backend == "cpu" else ()
    return f"{name}: estimating from one-layer probes at up to {max((PROBE_LENGTH, *lengths))} tokens"


# Measured by following the advice: MiniLM on Linux CPU, 1,000 texts of 1-420 words, batch_size 2 where fit's need
# was 198 MiB: 207 MiB in calls of 16 texts, 212 in one call (224 before the tokenizer encoded 64 texts at a time).
CALL_NOTE = (
    "need is one batch in flight; an encode call over many texts also holds its output (4 bytes x dim a text), "
    "one chunk's tokens, and on CPU a compiled kernel per new batch shape: following the advice, MiniLM on Linux "
    "CPU peaked 5 % over its need in calls of 16 mixed texts and 7 % in one call of 1,000, so leave that much spare"
)


_BACKEND_NOTE = {"cpu": " (MLX's CPU backend, quantized Linear weights dequantized to float32; a Mac's GPU: --backend metal)"}


_RAM_FROM = {"memory limit": " (this process's cgroup memory limit, e.g. a container's; --ram to set another)"}


def format_report(rep: dict) -> str:
    b = rep["budget"]
    m = rep["machine"]
    lines = [
        f"budget: RAM {format_size(b['ram_bytes'])}{_RAM_FROM.get(b.get('ram_from'), '')} - OS reserve {format_size(b['reserve_bytes'])}"
        " (assumed) - alongside "
        f"{format_size(b['alongside_bytes'])} = {format_size(b['available_bytes'])} for the embedder",
        f"backend: {rep['backend']}{_BACKEND_NOTE.get(rep['backend'], '')}; this machine: {m['chip']}, "
        f"{format_size(m['ram_bytes'])} RAM",
        "",
    ]
    cols = ["model", "figures", "weights", "footprint", "need @ batch x len", "headroom", "verdict",
            "max batch @ max len", "max len @ batch 1"]
    body = []
    for r in rep["models"]:
        body.append([
            r["model"], r["status"], f"{format_size(r['weights_bytes'] or 0)} {r['weight_format']}", format_size(r["footprint"]),
            f"{format_size(r['need_bytes'])} @ {r['default_batch']}x{r['default_length']}",
            f"{format_size(r['headroom_bytes'])} ({_percent(r['headroom_fraction'])})", r["verdict"],
            f"{r['max_batch_at_max_length']} @ {r['max_length']}", str(r["max_length_at_batch_1"]),
        ])
    widths = [max(len(x) for x in col) for col in zip(cols, *body)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(cols, widths)).rstrip())
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in body]
    lines.append(CALL_NOTE)
    for r in rep["models"]:
        lines.append(f"{r['model']}: {r['verdict']}: {r['advice']}")
        lines.append(f"{r['model']}: weights: {r['weight_format']}, from {r['source']}")
        if r["points"]:
            pts = ", ".join(
                f"{p['batch']}x{p['length']}{' on two streams' if p['streams'] else ''}: {format_size(p['measured_bytes'])} (estimate {100 * (p['estimated_bytes'] / p['measured_bytes'] - 1):+.0f}%)"
                for p in r["points"]
            )
            lines.append(f"{r['model']}: measured peak RSS {pts}")
        for note in r["notes"]:
            lines.append(f"{r['model']}: {note}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ram", help="RAM budget, e.g. 8GB (GB, MB: GiB, MiB, as RAM is sold; default: this machine's "
                        "RAM, or a lower cgroup memory limit such as a container's; required with --backend metal on a machine without Metal)")
    parser.add_argument("--alongside", default="0", help="memory held by other things, e.g. 2.5GB for a 4B VLM")
    parser.add_argument("--reserve", default=None, help=f"kept for the OS (default {format_size(DEFAULT_RESERVE)})")
    parser.add_argument("--model", action="append", metavar="M", help="alias, Hub id or folder (default: all registry models)")
    parser.add_argument("--backend", choices=["cpu", "metal"], help="the backend to answer for (default: this machine's)")
    parser.add_argument("--points", help="batch x length points to measure besides the default ones, e.g. 1x128,32x256 (models longer than 512 "
                        "tokens are also measured at one text of 256, 512, 1024, 2048, ... tokens and two on the CPU streams; "
                        "a length encode pads is measured and labelled padded, one past the max length cut to it)")
    parser.add_argument("--estimate-only", action="store_true", help="estimate present models too, do not measure (the "
                        "one-layer activation probes still run: about 2 minutes for Qwen3's 8,192 tokens on 2 CPU cores)")
    parser.add_argument("--json", action="store_true", help="print the JSON report")


def run(args: argparse.Namespace) -> int:
    if args.points and args.estimate_only:
        raise ValueError("--points are measured, so they do nothing with --estimate-only: drop one of them")
    if args.points and args.backend not in (None, this_backend()):
        raise ValueError(f"--points are measured on this machine's backend ({this_backend()}), so they do nothing "
                         f"with --backend {args.backend}: drop one of them")
    rep = report(
        args.model,
        ram=parse_size(args.ram) if args.ram is not None else None,
        reserve=parse_size(args.reserve) if args.reserve is not None else DEFAULT_RESERVE,
        alongside=parse_size(args.alongside),
        backend=args.backend,
        points=parse_points(args.points) if args.points else None,
        measure=not args.estimate_only,
        progress=lambda message: print(f"mlx-embed fit: {message} ...", file=sys.stderr, flush=True),
    )
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    broken = [r["model"] for r in rep["models"] if r["verdict"] == DOES_NOT_LOAD]
    if broken:
        print(f"mlx-embed fit: {', '.join(broken)} did not load (the others are answered for above)", file=sys.stderr)
    return 1 if broken else 0
