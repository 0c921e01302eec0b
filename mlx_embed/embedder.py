"""``Embedder``: texts in, embeddings out, in length-sorted batches returned in input order."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import UserString
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, Set, ValuesView
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import _blas
from ._messages import REFETCH, caller_stacklevel
from ._threads import check_fork, note_mlx_use, note_thread, park_if_exiting, tracked
from .models import kernels, max_positions
from .pooling import POOLERS, l2_normalize
from .registry import ModelSpec
from .stats import weight_format
from .tokenize import LONG_TEXT_CHARS_PER_TOKEN, Batch, TextEncoder, bounded_starts, spans_from

# Cached MLX buffers above this are released between batches (within a batch the cache still
# recycles buffers from layer to layer). 0: release after every batch. Measured by
# scripts/rss_soak.py (MiniLM, CPU, 20,000 texts, one batch at a time): keeping MLX's cache (32 MiB
# on CPU by default, up to the memory limit on Metal) put peak RSS at load + one batch's working
# set +22.9% and steady RSS at 281 MiB; releasing it after every batch: +2.6% and 220 MiB, at the
# same throughput within noise (80 vs 84 texts/s).
CACHE_HIGH_WATER = 0


# Default cap on padded tokens per batch. On CPU small batches cost no more CPU time per token and
# bound the working set. MiniLM, one stream, 600 mixed texts: CPU time 12.7 s at 1024 and 12.8 at
# 2048, 14.2 at 4096, 15.2 at 8192 tokens; peak RSS 278, 358, 456, 551 MB. scripts/bench.py (2,000
# texts, two streams sharing 1024): peak RSS 273 MB against 894 MB for sentence-transformers.
CPU_BATCH_TOKENS = 1024
GPU_BATCH_TOKENS = 16384


def default_batch_tokens() -> int:
    """``encode``'s cap on padded tokens per batch on the device MLX computes on now."""
    return CPU_BATCH_TOKENS if mx.default_device() == mx.cpu else GPU_BATCH_TOKENS

# Texts tokenized at a time by one encode() call: the token ids of a whole corpus would grow with it.
# MiniLM, one call over 2,048 documents of 1-12 corpus texts (1.2 M characters): chunks of 4,096 /
# 1,024 / 512 / 256 texts took 90 / 82 / 84 / 84 s with peak RSS 351 / 313 / 285 / 271 MiB.
ENCODE_CHUNK = 512
# ... and at most this many characters to tokenize (or one text): the ids kept for a chunk take ~20 bytes a
# character of long documents at Qwen3's 8,192 tokens (a Qwen-style BPE: 1 M characters, +24 MiB peak RSS, the
# tokenizer's own encodings at most ENCODE_BATCH_CHARS at a time), and 512 of them in one chunk took 0.45-1.4 GB
# before either bound. Texts of up to ~2,000 characters still come 512 at a time.
ENCODE_CHUNK_CHARS = 1_000_000


def chunk_starts(items: Sequence[str], max_length: int) -> list[int]:
    """Where each chunk that ``encode`` tokenizes at a time starts: ``ENCODE_CHUNK`` texts, fewer where they hold
    more than ``ENCODE_CHUNK_CHARS`` characters to tokenize (a text past ``LONG_TEXT_CHARS_PER_TOKEN * max_length``
    characters is tokenized from a prefix)."""
    longest = LONG_TEXT_CHARS_PER_TOKEN * max_length
    return bounded_starts((min(len(text), longest) for text in items), ENCODE_CHUNK, ENCODE_CHUNK_CHARS)


def chunk_spans(items: Sequence[str], max_length: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk :func:`chunk_starts` gives."""
    return spans_from(chunk_starts(items, max_length), len(items))


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count where the OS says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _env_streams() -> int:
    default = min(2, usable_cpus())
    value = os.environ.get("MLX_EMBED_CPU_STREAMS")
    try:
        streams = default if value is None else int(value)
    except ValueError:
        streams = -1
    if streams < 0:
        warnings.warn(f"MLX_EMBED_CPU_STREAMS={value!r} is not an integer >= 0 (0: no worker streams); using {default}",
                      stacklevel=2)
        return default
    return streams


# On the CPU backend this many batches run at once, each on its own MLX stream (a thread of its own;
# the default CPU stream runs on the calling thread), with OpenBLAS at cores // streams threads.
# 0 runs batches inline as on Metal. MiniLM, 600 texts of scripts/bench.py, 2 idle cores: 8.6 s
# with two streams dispatched a layer at a time, 9.7 s inline, 13.6 s dispatching whole forwards.
CPU_STREAMS = _env_streams()

# MLX streams belong to the Python thread that made them and are never freed (each holds an OS
# thread), so only this many threads get worker streams; later ones encode inline. A thread per
# request would otherwise leak CPU_STREAMS OS threads per request.
STREAM_THREADS = 4
_local = threading.local()
_stream_threads = 0
_stream_lock = threading.Lock()


def _synchronize() -> None:
    """Wait for everything this thread queued: on its default stream and its worker streams."""
    for stream in getattr(_local, "streams", None) or []:
        mx.synchronize(stream)
    mx.synchronize()


def _worker_streams() -> list:
    global _stream_threads
    if CPU_STREAMS <= 0 or mx.default_device() != mx.cpu:
        return []
    streams = getattr(_local, "streams", None)
    if streams is None:
        with _stream_lock:
            if _stream_threads >= STREAM_THREADS:
                return []
            _stream_threads += 1
    if streams is None or len(streams) != CPU_STREAMS:
        streams = _local.streams = [mx.new_stream(mx.cpu) for _ in range(CPU_STREAMS)]
    return streams


_BYTES = (bytes, bytearray, memoryview)


def _decode(b: bytes | bytearray | memoryview) -> str:
    return "bytes(m).decode('utf-8')" if isinstance(b, memoryview) else ".decode('utf-8')"


def _check_texts(texts: object, single: bool = False) -> list[str]:
    """``texts`` as a list of str; ``single``: it was one str, named ``text`` in errors."""
    if isinstance(texts, (Set, Mapping)) and not isinstance(texts, (KeysView, ItemsView)):  # dict views keep its order
        fix = "list(d.values()) or list(d)" if isinstance(texts, Mapping) else "sorted(s) or list(s)"
        raise TypeError(
            f"texts must be ordered (a list, tuple, iterator or 1-D array of str), got {type(texts).__name__}: "
            f"the output rows follow the input order, so pass {fix}"
        )
    if isinstance(texts, UserString):
        name = "text" if single else "texts"
        raise TypeError(f"{name} is a {type(texts).__name__}, not str: pass str({name}) for one text")
    if isinstance(texts, (Iterator, KeysView, ValuesView, ItemsView)) or (isinstance(texts, Sequence) and not isinstance(texts, (list, tuple, str, *_BYTES))):
        texts = list(texts)
    elif hasattr(texts, "tolist") and getattr(texts, "ndim", 1) == 1 and not isinstance(texts, memoryview):  # 1-D numpy array, pandas Series
        texts = texts.tolist()
    elif isinstance(texts, Iterable) and not hasattr(texts, "shape") and not isinstance(texts, (list, tuple, str, *_BYTES)):
        texts = list(texts)  # any other ordered collection (a dataset column, a custom container)
    if isinstance(texts, (list, tuple)):
        for i, t in enumerate(texts):
            name = "text" if single else f"texts[{i}]"
            if isinstance(t, (float, np.floating)) and t != t or t is None or type(t).__name__ in ("NAType", "NaTType"):
                what = "NaN" if isinstance(t, (float, np.floating)) else "None" if t is None else f"pd.{type(t).__name__[:-4]}"
                raise TypeError(f"{name} is {what} (a missing value, as pandas gives): drop or fill missing texts first")
            if not isinstance(t, str):
                fix = (f" (decode it first: {_decode(t)})" if isinstance(t, _BYTES)
                       else f" (pass str({name}))" if isinstance(t, UserString) else "")
                raise TypeError(f"{name} is {type(t).__name__}, not str: every input must be a string{fix}")
            _check_unicode(name, t)
        return list(texts)
    shape = getattr(texts, "shape", None)
    got = f"a {len(shape)}-D {type(texts).__name__} of shape {tuple(shape)}" if shape is not None else type(texts).__name__
    if isinstance(texts, _BYTES):
        got, fix = type(texts).__name__, f": decode it first ({_decode(texts)})"
    elif shape is not None and len(shape) > 1:
        fix = ": flatten it first (.ravel() / .squeeze())"
    elif shape is not None and len(shape) == 0:
        fix = ": a 0-D array holds one text, pass arr.item()"
    else:
        fix = ""
    raise TypeError(f"texts must be a str or a list of str (or a tuple, iterable or 1-D array of str), got {got}{fix}")


def _check_unicode(name: str, text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"{name} is not valid Unicode: {err.reason} at character {err.start} (it cannot be encoded "
                "as UTF-8); clean it first: text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace') joins "
                "surrogate pairs (e.g. escaped emoji) and replaces lone ones"
            ) from None


def _check_tokens(ids: list[list[int]], start: int, single: bool = False, skip: int = 0) -> None:
    """Refuse a text with nothing to pool: no ids at all, or (``skip``: pooling leaves the prompt's tokens
    out) none after the prompt's."""
    empty = next((i for i, seq in enumerate(ids) if len(seq) <= skip), None)
    if empty is None:
        return
    name = "text" if single else f"texts[{start + empty}]"
    if not ids[empty]:
        raise ValueError(
            f"{name} gives no tokens: this tokenizer adds no special tokens, so an empty or "
            "blank text has nothing to embed; drop or fill such texts first"
        )
    raise ValueError(
        f"{name} gives no tokens after the prompt's {skip}, and this model's pooling leaves the prompt's "
        "tokens out (include_prompt: false), so it has nothing to embed; drop or fill such texts first"
    )


class _ModelPrompt(str):
    """A prompt the model's own files give, used as written (a ``{task}`` in it is no template of ours)."""


def _check_prompt(prompt: str | None) -> None:
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
    if prompt:
        _check_unicode("prompt", prompt)
    if prompt and "{task}" in prompt and not isinstance(prompt, _ModelPrompt):
        raise ValueError(
            f"prompt={prompt!r} is a template: its {{task}} would be embedded literally; use "
            "encode_query(texts, task=...) for the model's query instruction, or fill in the task yourself"
        )


def _with_prompt(items: list[str], prompt: str | None) -> list[str]:
    return [prompt + t for t in items] if prompt else items


def _check_bool(name: str, value, default: bool | None = None) -> bool:
    """``value`` as a bool; None means ``default`` where one is given (the model's own choice)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, (bool, np.bool_)):
        choices = "True, False or None (the model's own choice)" if default is not None else "True or False"
        raise TypeError(f"{name} must be {choices}, got {value!r}")
    return bool(value)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class EncodeOptions(TypedDict, total=False):
    """The keyword arguments :meth:`Embedder.encode_query` and :meth:`Embedder.encode_document` pass on."""

    batch_size: int
    normalize: bool | None
    dim: int | None
    max_length: int | None
    truncate: bool
    show_progress: bool
    max_batch_tokens: int | None


@dataclass(frozen=True)
class _Run:
    """One ``encode`` call's checked options."""

    dim: int
    batch_size: int
    max_batch_tokens: int
    max_length: int
    normalize: bool
    truncate: bool
    show_progress: bool
    prompt: str | None
    skip: int  # tokens pooling leaves out at the start of every text (the prompt's, include_prompt: false)


@dataclass
class _Slot:
    """A batch in flight on one worker stream."""

    n: int  # its number in the batch order
    idx: np.ndarray  # its texts
    mask: mx.array  # (B, L)
    layers: Iterator[mx.array]  # the model's forward, a layer per step
    hidden: mx.array | None = None  # (B, L, D) after the last step taken


if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack

# sentence-transformers' names for what encode does otherwise
_THEIR_NAMES = {
    "normalize_embeddings": "use normalize=True for True; for False (which still runs the model's own Normalize "
    "module) leave normalize out: None follows the model's files, normalize=False skips that module too",
    "show_progress_bar": "use show_progress=",
    "truncate_dim": "use dim= on a model trained for it (Matryoshka); it truncates before normalizing, "
    "sentence-transformers after the model's Normalize module (same cosines)",
    "prompt_name": "encode_query() / encode_document() use the model's prompts; encode(texts, prompt=...) your own",
    "convert_to_numpy": "encode always returns a numpy array",
    "convert_to_tensor": "encode returns a numpy array: mx.array(result) makes an MLX array",
    "output_value": "encode returns pooled embeddings only",
    "precision": "encode returns float32: quantize the numpy array yourself",
    "device": "MLX picks the device: mx.set_default_device(mx.cpu) before load() for the CPU",
    "task": "a task instruction is for queries: use encode_query(texts, task=...)",
    "sentences": "pass the texts as the first argument (or texts=...)",
    "inputs": "pass the texts as the first argument (or texts=...)",
}
# sentence-transformers' model attributes (and read-only ones of ours): setting one here would change nothing
_THEIR_ATTRIBUTES = {
    "max_seq_length": "pass encode(..., max_length=N); model.max_length is the default",
    "max_length": "it is the model's default; encode(..., max_length=N) sets the limit per call",
    "dim": "it is the model's full size; encode(..., dim=N) truncates per call (Matryoshka)",
    "truncate_dim": "use encode(..., dim=N)",
    "get_sentence_embedding_dimension": "use model.dim",
    "get_max_seq_length": "use model.max_length",
    "similarity": "for L2-normalized vectors (the registry models' default) a @ b.T is their cosine similarity",
    "tokenizer": "model.text_encoder.tokenizer is the `tokenizers` Tokenizer",
    "device": "MLX picks the device: mx.default_device(); mx.set_default_device(mx.cpu) before load() for the CPU",
}
_NO_TEXTS: Any = object()  # encode(sentences=...) gets our hint, not Python's "missing argument 'texts'"


def _texts_given(method: str, texts: object, options: dict) -> None:
    if texts is _NO_TEXTS and not options.keys() & {"sentences", "inputs"}:
        raise TypeError(f"{method}() needs the texts to embed: {method}(texts)")


def _their_hint(name: str, value: object) -> str:
    if name == "normalize_embeddings" and isinstance(value, bool):
        return "use normalize=True" if value else (
            "leave normalize out: its default (None) follows the model's own Normalize module, as "
            "sentence-transformers does with normalize_embeddings=False; normalize=False skips that module"
        )
    return _THEIR_NAMES[name]


def _unknown_options(method: str, options: dict, takes: tuple[str, ...] = ()) -> None:
    """TypeError for keywords ``method`` does not take (its own ``takes`` and :class:`EncodeOptions`),
    naming sentence-transformers' equivalents."""
    known = (*takes, *EncodeOptions.__annotations__)
    unknown = [k for k in options if k not in known]
    if unknown:
        hints = [f"{k}: {_their_hint(k, options[k])}" for k in unknown if k in _THEIR_NAMES]
        if len(hints) < len(unknown):
            hints.append(f"it takes {', '.join(known)}")
        raise TypeError(f"{method}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))} ({'; '.join(hints)})")


def _no_prompt(method: str, kind: str, kwargs: dict) -> None:
    if "prompt" in kwargs:
        raise TypeError(
            f"{method}() sets the prompt itself (the model's {kind} prompt); "
            "to use your own, call encode(texts, prompt=...)"
        )


def _compute_dtype(model: nn.Module) -> mx.Dtype:
    from mlx.utils import tree_flatten

    return next(v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating))


def _dtype_name(dtype: mx.Dtype) -> str:
    return str(dtype).removeprefix("mlx.core.")


def _non_finite_parameter(model: nn.Module) -> str | None:
    """The name of a floating parameter holding inf or NaN, if any."""
    from mlx.utils import tree_flatten

    return next((k for k, v in tree_flatten(model.parameters())
                 if mx.issubdtype(v.dtype, mx.floating) and not mx.isfinite(v).all().item()), None)


def _check_finite(vectors: np.ndarray, indices: np.ndarray, model: nn.Module) -> None:
    """Raise instead of handing back inf / NaN vectors, which would poison a vector index, or all-zero ones,
    which no trained model gives (weights of zeros: a file zeroed on disk)."""
    zero = ~vectors.any(axis=1)
    if zero.any():
        raise FloatingPointError(
            f"the model gave all-zero embeddings for {int(zero.sum())} text(s) of one batch, e.g. text "
            f"{int(indices[zero][0])}: its weights are zeros or broken; {REFETCH}"
        )
    bad = ~np.isfinite(vectors).all(axis=1)
    if not bad.any():
        return
    dtype = _compute_dtype(model)
    broken = _non_finite_parameter(model)
    if broken is not None:
        fix = f"the model's weights hold inf / NaN (e.g. {broken!r}); {REFETCH}"
    elif dtype == mx.float16:
        fix = "float16 activations overflowed (largest finite value 65504); load with dtype='float32' or 'bfloat16'"
    else:
        fix = f"the model computes in {_dtype_name(dtype)} and should not overflow: check the checkpoint's weights for inf / NaN"
    raise FloatingPointError(
        f"the model produced inf / NaN embeddings for {int(bad.sum())} text(s) of one batch, e.g. text {int(indices[bad][0])}: {fix}"
    )


def _inputs(batch: Batch) -> tuple[mx.array, mx.array, mx.array | None]:
    """A padded batch as the models' ``(input_ids, attention_mask, token_type_ids)``."""
    types = None if batch.token_type_ids is None else mx.array(batch.token_type_ids)
    return mx.array(batch.input_ids), mx.array(batch.attention_mask), types


def padded_length(n: int) -> int:
    """The length ``encode`` pads a batch whose longest text has ``n`` tokens to. On the fused CPU path MLX
    keeps a compiled graph per kernel and input shape (about 38 KiB each: 249 queries of 249 lengths grew
    MiniLM's RSS by 9.4 MiB), so lengths past 32 are rounded up to 16 steps per octave (34, 36, ..., 64, 68,
    ...; at most 6.25% more tokens): 160 lengths up to 8,192 instead of 8,192. Short queries stay exact."""
    if not kernels.enabled():
        return n
    step = 1 << max(0, (n - 1).bit_length() - 5)
    return -(-n // step) * step


def batches(
    lengths: Sequence[int], batch_size: int, max_batch_tokens: int, padded: Callable[[int], int] = int
) -> Iterator[np.ndarray]:
    """Indices of texts, longest first, grouped so no batch has more than ``batch_size`` texts
    or ``max_batch_tokens`` padded tokens, a batch of longest ``n`` taking ``padded(n)`` columns (a single
    text longer than that gets a batch alone)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        longest = padded(lengths[order[start]])
        size = max(1, min(batch_size, max_batch_tokens // max(longest, 1)))
        yield order[start : start + size]
        start += size


class Embedder:
    """A loaded embedding model. Create with :func:`mlx_embed.load`."""

    def __init__(self, model: nn.Module, text_encoder: TextEncoder, spec: ModelSpec, *, path: Path, source: str, config: dict):
        self.model = model
        self.text_encoder = text_encoder
        self._spec = spec
        self.path = path
        self.source = source
        self.config = config
        self.position_limit = max_positions(config)

    @property
    def spec(self) -> ModelSpec:
        """The registry entry, or the one built from the folder's own files: pooling, prompts, limits."""
        return self._spec

    @property
    def dim(self) -> int:
        """The full embedding size (``encode(..., dim=)`` truncates Matryoshka models)."""
        return self._spec.dim

    @property
    def max_length(self) -> int:
        """Tokens per text, special tokens included, that ``encode`` keeps by default."""
        return self._spec.max_length

    @property
    def dtype(self) -> mx.Dtype:
        """What the model computes in (its floating parameters' dtype; packed weights stay packed)."""
        return _compute_dtype(self.model)

    def __getattr__(self, name: str):  # only for names that normal lookup misses
        if name in _THEIR_ATTRIBUTES:
            raise AttributeError(f"Embedder has no {name!r} (a sentence-transformers name): {_THEIR_ATTRIBUTES[name]}")
        raise AttributeError(f"'Embedder' object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in _THEIR_ATTRIBUTES:
            raise AttributeError(f"Embedder.{name} cannot be set: {_THEIR_ATTRIBUTES[name]}")
        object.__setattr__(self, name, value)

    def __reduce__(self):
        raise TypeError(
            "an Embedder cannot be pickled or copied (its MLX arrays and streams belong to this process): "
            "load the model in each worker process, e.g. mlx_embed.load(...) in the pool's initializer"
        )

    def __repr__(self) -> str:
        return (f"Embedder({self._spec.alias!r}, dim={self.dim}, pooling={self._spec.pooling!r}, "
                f"weights={weight_format(self.config)!r}, dtype={_dtype_name(self.dtype)!r}, "
                f"source={self.source!r})")

    @tracked  # a daemon thread still encoding at exit stops between batches
    def encode(
        self,
        texts: str | Sequence[str] = _NO_TEXTS,
        *,
        batch_size: int = 32,
        normalize: bool | None = None,
        prompt: str | None = None,
        dim: int | None = None,
        max_length: int | None = None,
        truncate: bool = True,
        show_progress: bool = False,
        max_batch_tokens: int | None = None,
        **unknown,
    ) -> np.ndarray:
        """Embed ``texts``: a ``str`` gives shape ``(dim,)``, a list gives ``(len(texts), dim)``, float32.

        ``prompt`` is prepended to every text. ``dim`` truncates (Matryoshka) before normalizing.
        ``normalize`` (L2) defaults to the model's own choice: its sentence-transformers ``Normalize``
        module (True for the registry models).
        Texts longer than ``max_length`` tokens are cut with a warning, or raise with ``truncate=False``.
        Batches hold at most ``batch_size`` texts and ``max_batch_tokens`` padded tokens (default
        ``CPU_BATCH_TOKENS`` on the CPU backend, ``GPU_BATCH_TOKENS`` on Metal).
        """
        check_fork()
        note_mlx_use()
        note_thread()  # MLX may abort at exit while this thread's compile cache is freed
        _texts_given("encode", texts, unknown)
        _unknown_options("encode", unknown, ("prompt",))
        run = self._run_options(batch_size, normalize, prompt, dim, max_length, truncate, show_progress, max_batch_tokens)
        single = isinstance(texts, str)
        items = _with_prompt(_check_texts([texts] if single else texts, single), run.prompt)  # last: it uses up an iterator

        out = np.empty((len(items), run.dim), dtype=np.float32)
        cut: dict[int, int] = {}  # {index: full length} of the texts cut
        spans = chunk_spans(items, run.max_length)
        if len(spans) > 1 and (not run.truncate or self._may_leave_nothing(run)):
            self._refuse_early(items, spans, run, single)
        done = 0
        for start, ids in self._chunks(items, spans, run.max_length, cut):
            _check_tokens(ids, start, single, run.skip)
            if not run.truncate:
                self.text_encoder.check_truncation(cut, len(items), run.max_length, run.truncate)
            for idx, vectors in self._embed_batches(ids, run.batch_size, run.max_batch_tokens, run.dim, run.normalize, run.skip):
                park_if_exiting(_synchronize)
                _check_finite(vectors, start + idx, self.model)
                out[start + idx] = vectors
                done += len(idx)
                if run.show_progress:
                    print(f"\rmlx_embed: {done}/{len(items)} texts", end="", file=sys.stderr, flush=True)
                if mx.get_cache_memory() > CACHE_HIGH_WATER:
                    mx.clear_cache()
        if run.show_progress and items:
            print(file=sys.stderr)
        self.text_encoder.check_truncation(cut, len(items), run.max_length, run.truncate)
        return out[0] if single else out

    def _refuse_early(self, items: list[str], spans: list[tuple[int, int]], run: _Run, single: bool) -> None:
        """Tokenize every chunk once before any is embedded (the ids are not kept), so that a text late in a
        long list that gives no tokens, or with ``truncate=False`` is too long, fails before anything is computed."""
        cut: dict[int, int] = {}
        for start, ids in self._chunks(items, spans, run.max_length, cut):
            _check_tokens(ids, start, single, run.skip)
        if not run.truncate:
            self.text_encoder.check_truncation(cut, len(items), run.max_length, run.truncate)

    def _may_leave_nothing(self, run: _Run) -> bool:
        """Whether a text can leave nothing to pool: the empty one gives the fewest tokens, and gives none with a
        tokenizer that adds no special tokens (so do blanks and a zero-width space), or none after the prompt's
        where pooling leaves those out."""
        empty = _with_prompt([""], run.prompt)[0]
        return len(self.text_encoder.tokenize([empty], sys.maxsize)[0][0]) <= run.skip

    def _run_options(
        self, batch_size, normalize, prompt, dim, max_length, truncate, show_progress, max_batch_tokens
    ) -> _Run:
        """``encode``'s arguments checked, with the model's defaults filled in."""
        if max_batch_tokens is None:
            max_batch_tokens = default_batch_tokens()
        whose = "user" if prompt is not None and not isinstance(prompt, _ModelPrompt) else "model"
        if prompt is None:
            whose = "default"
            prompt = _ModelPrompt(self._spec.default_prompt) if self._spec.default_prompt else None
        _check_prompt(prompt)
        run = _Run(
            dim=self._spec.check_dim(dim),
            batch_size=_check_int("batch_size", batch_size, 1),
            max_batch_tokens=_check_int("max_batch_tokens", max_batch_tokens, 1),
            max_length=self._check_max_length(max_length),
            normalize=_check_bool("normalize", normalize, default=self._spec.normalize),
            truncate=_check_bool("truncate", truncate),
            show_progress=_check_bool("show_progress", show_progress),
            prompt=prompt,
            skip=self._prompt_tokens(prompt),
        )
        self._check_room(prompt, run.max_length, whose, default_length=max_length is None)
        return run

    def _chunks(
        self, items: list[str], spans: list[tuple[int, int]], max_length: int, cut: dict[int, int]
    ) -> Iterator[tuple[int, list[list[int]]]]:
        """``(start, token ids)`` per chunk (``spans``, from :func:`chunk_spans`), adding the texts cut to ``cut``."""
        for start, end in spans:
            ids, chunk_cut = self.text_encoder.tokenize(items[start:end], max_length)
            cut.update((start + i, n) for i, n in chunk_cut.items())
            yield start, ids

    def _check_room(self, prompt: str | None, max_length: int, whose: str = "user", default_length: bool = False) -> None:
        """Refuse a ``max_length`` that the special tokens and the prompt fill: every text would be cut
        away and all would get the same vector. At the prompt's own length a text still has room when one
        letter after the prompt changes the ids (a byte-level BPE merges a trailing space into the text).
        ``whose``: the prompt is the caller's (``"user"``), ``encode_query``'s or ``encode_document``'s
        (``"model"``), or the model's default prompt for ``encode`` (``"default"``). ``default_length``: the
        caller gave no max_length, so the limit is the model's own (a folder's files may set one that small)."""
        prompt = prompt or ""
        n = len(self.text_encoder.tokenize([prompt], sys.maxsize)[0][0])  # special tokens included
        if max_length > n:
            return
        (alone, with_text), _ = self.text_encoder.tokenize([prompt, prompt + "a"], max_length)
        if alone != with_text:
            return
        if not prompt:
            what, fix = "the special tokens", ""
        elif whose == "user":
            what, fix = "the special tokens and the prompt", "use a shorter prompt"
        elif whose == "model":
            template = self._spec.query_prompt or ""
            what = "the special tokens and the model's prompt"
            fix = ("use a shorter task" if "{task}" in template and prompt != (self._spec.document_prompt or "")
                   else "use encode(texts, prompt=...) with a shorter prompt")
        else:
            what, fix = "the special tokens and the model's default prompt", "pass prompt='' to leave that out"
        if n < self.position_limit:
            advice = f"Use max_length > {n}" + (f", or {fix.removeprefix('use ')}" if fix else "")
        else:  # no max_length the model takes leaves room
            advice = f"The model takes at most {self.position_limit} tokens: {fix}"
        limit = f"The model's default max length, {max_length}," if default_length else f"max_length={max_length}"
        if default_length:  # a folder's own files set it (a registry model's is hundreds of tokens)
            advice += (" (a folder sets the default in sentence_bert_config.json, max_seq_length, or "
                       "tokenizer_config.json, model_max_length)")
        raise ValueError(f"{limit} leaves no room for the text: {what} already take {n} tokens. {advice}")

    def _prompt_tokens(self, prompt: str | None) -> int:
        """Tokens pooling leaves out at the start of every text when the model's pooling excludes the
        prompt (``include_prompt: false``), counted as sentence-transformers counts them: the prompt
        tokenized alone, less a special token at its end."""
        if not prompt or self._spec.include_prompt:
            return 0
        e = self.text_encoder.tokenizer.encode(prompt)
        return len(e.ids) - (1 if e.special_tokens_mask and e.special_tokens_mask[-1] else 0)

    def _embed_batches(
        self, ids: list[list[int]], batch_size: int, max_batch_tokens: int, dim: int, normalize: bool, skip: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(indices, vectors)`` per batch (not in order).

        On the CPU backend ``CPU_STREAMS`` batches run at once, each on its own MLX stream (thread)
        with ``1 / CPU_STREAMS`` of the batch's texts and tokens (so memory stays that of one batch),
        dispatched a layer at a time in turn: MLX blocks the dispatching thread while many tasks are in
        flight, so dispatching one whole forward at a time would run the streams one after the other.
        OpenBLAS gets ``cores // streams`` threads meanwhile. If a fused CPU kernel fails to build (a
        broken ``g++``), the remaining batches are recomputed with the stock MLX ops and a warning.
        """
        order, streams = self._plan([len(s) for s in ids], batch_size, max_batch_tokens)
        finished: set[int] = set()
        try:
            if not streams:
                yield from self._inline(order, ids, dim, normalize, skip, finished)
                return
            with _blas.threads(max(1, usable_cpus() // len(streams))):
                yield from self._interleaved(order, ids, streams, dim, normalize, skip, finished)
        except RuntimeError as err:
            if not kernels.is_compile_failure(err) or not kernels.enabled():
                raise
            kernels.disable(f"a fused CPU kernel failed to build: {err}")
            warnings.warn(
                f"mlx_embed: could not build a fused CPU kernel ({err}); using the slower stock MLX ops. "
                "Check that g++ works, or set MLX_EMBED_FAST=0 to skip the attempt.",
                RuntimeWarning,
                stacklevel=caller_stacklevel(),
            )
            yield from self._inline(order, ids, dim, normalize, skip, finished)

    def _plan(self, lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> tuple[list[np.ndarray], list]:
        """The batches ``encode`` runs over texts of ``lengths`` tokens, and the worker streams that run them
        (none: one after the other on the calling thread). The streams share the batch: each of ``n`` takes
        ``1 / n`` of ``batch_size`` and ``max_batch_tokens``, so together they hold one batch's texts and tokens."""
        order = list(batches(lengths, batch_size, max_batch_tokens, padded_length))
        # One batch (a query) runs inline: dispatching it stage by stage costs more than it gains.
        streams = _worker_streams() if len(order) > 1 and hasattr(self.model, "layerwise") else []
        if streams:
            n = len(streams)
            order = list(batches(lengths, -(-batch_size // n), max(1, max_batch_tokens // n), padded_length))
        return order, streams

    def _inline(
        self, order: list[np.ndarray], ids: list[list[int]], dim: int, normalize: bool, skip: int, finished: set[int]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of ``order`` not in ``finished``, one after the other on the calling thread."""
        for n, idx in enumerate(order):
            if n not in finished:
                yield idx, self._embed_batch([ids[i] for i in idx], dim, normalize, skip)
                finished.add(n)

    def _interleaved(
        self, order: list[np.ndarray], ids: list[list[int]], streams: list, dim: int, normalize: bool, skip: int,
        finished: set[int],
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Run one batch per stream, advancing each by a layer in turn; a slot that finishes pools
        its batch and takes the next one. Adds each yielded batch's number to ``finished``."""
        todo = iter(enumerate(order))
        slots: list[_Slot | None] = [None] * len(streams)
        ready: list = [None] * len(streams)  # per stream: (n, idx, vectors) dispatched, not yet read
        while True:
            park_if_exiting(_synchronize)
            busy = False
            for j, stream in enumerate(streams):
                if ready[j] is not None:
                    n, idx, vectors = ready[j]
                    ready[j] = None
                    yield idx, np.array(vectors)
                    finished.add(n)
                with mx.stream(stream):
                    if slots[j] is None:
                        nxt = next(todo, None)
                        if nxt is None:
                            continue
                        n, idx = nxt
                        batch = self._pad([ids[i] for i in idx])
                        slots[j] = _Slot(n, idx, mx.array(batch.attention_mask), self.model.layerwise(*_inputs(batch)))
                    slot = slots[j]
                    hidden = next(slot.layers, None)
                    if hidden is not None:
                        slot.hidden = hidden
                        mx.async_eval(hidden)
                    else:
                        vectors = self._pool(slot.hidden, slot.mask, dim, normalize, skip)
                        mx.async_eval(vectors)
                        ready[j], slots[j] = (slot.n, slot.idx, vectors), None
                busy = True
            if not busy and all(r is None for r in ready):
                return

    def _pad(self, seqs: list[list[int]]) -> Batch:
        """A batch as the model takes it: :meth:`_columns` of its longest text."""
        return self.text_encoder.pad(seqs, self._spec.padding_side, self._columns(max(map(len, seqs))))

    def _columns(self, longest: int) -> int:
        """The columns of a batch whose longest text has ``longest`` tokens: :func:`padded_length`, within the
        position table."""
        return min(padded_length(longest), self.position_limit)

    def _embed_batch(self, seqs: list[list[int]], dim: int, normalize: bool, skip: int = 0) -> np.ndarray:
        """The vectors ``(B, dim)`` of one batch, computed on the calling thread."""
        batch = self._pad(seqs)
        mask = mx.array(batch.attention_mask)
        return np.array(self._pool(self.model(*_inputs(batch)), mask, dim, normalize, skip))

    def _pool(self, hidden: mx.array, mask: mx.array, dim: int, normalize: bool, skip: int = 0) -> mx.array:
        if skip:  # the first ``skip`` real positions: [CLS] and the prompt
            first = mx.argmax(mask, axis=1)[:, None]  # (B, 1) left padding before it
            mask = mask * (mx.arange(mask.shape[1])[None] >= first + skip).astype(mask.dtype)  # (B, L)
        pooled = POOLERS[self._spec.pooling](hidden, mask)[:, :dim].astype(mx.float32)  # (B, dim)
        return l2_normalize(pooled) if normalize else pooled

    def encode_query(
        self, texts: str | Sequence[str] = _NO_TEXTS, *, task: str | None = None, **options: Unpack[EncodeOptions]
    ) -> np.ndarray:
        """Embed search queries with the model's query prompt (Qwen3: ``Instruct: {task}\\nQuery:``);
        ``options`` as :meth:`encode`'s."""
        _texts_given("encode_query", texts, options)
        _no_prompt("encode_query", "query", options)
        _unknown_options("encode_query", options, ("task",))
        if isinstance(task, str):
            _check_unicode("task", task)
        return self.encode(texts, prompt=_ModelPrompt(self._spec.format_query_prompt(task)), **options)

    def encode_document(
        self, texts: str | Sequence[str] = _NO_TEXTS, *, task: None = None, **options: Unpack[EncodeOptions]
    ) -> np.ndarray:
        """Embed passages to search in, with the model's document prompt (none for the known models);
        ``options`` as :meth:`encode`'s."""
        _texts_given("encode_document", texts, options)
        _no_prompt("encode_document", "document", options)
        _unknown_options("encode_document", options)
        if task is not None:
            raise TypeError("encode_document() takes no task: a task instruction is for queries (encode_query)")
        return self.encode(texts, prompt=_ModelPrompt(self._spec.document_prompt), **options)

    def _check_max_length(self, max_length: int | None) -> int:
        if max_length is None:
            return self._spec.max_length
        max_length = _check_int("max_length", max_length, 2)
        if max_length > self.position_limit:
            raise ValueError(
                f"max_length={max_length} exceeds what {self._spec.alias} can encode "
                f"({self.position_limit} positions); use max_length <= {self.position_limit}"
            )
        return max_length
