"""The public entry point ``load`` (``convert`` is in :mod:`mlx_embed.conversion`)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from . import loading
from ._threads import check_fork, note_mlx_use
from .embedder import Embedder
from .registry import ModelSpec
from .tokenize import TextEncoder, load_tokenizer, truncation_side

log = logging.getLogger("mlx_embed")
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


def _check_dtype(dtype: object) -> str | None:
    """``dtype`` as a key of :data:`DTYPES` (None stays None)."""
    if dtype is None:
        return None
    if isinstance(dtype, mx.Dtype):
        named = next((k for k, v in DTYPES.items() if v == dtype), None)
        if named is None:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)} or None, got {dtype}")
        return named
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = np.dtype(dtype).name  # numpy's float32 and float16, as a type or a dtype
    if not isinstance(dtype, str):
        raise TypeError(
            f"dtype must be a str ({', '.join(DTYPES)}), an mx or numpy dtype, or None; "
            f"got {type(dtype).__name__} {dtype!r}"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} or None, got {dtype!r}")
    return dtype


def text_encoder_for(path: Path, spec: ModelSpec, config: dict) -> TextEncoder:
    """The folder's tokenizer as ``spec`` uses it (lowercasing, end token), checked against ``config``."""
    tokenizer = load_tokenizer(path, spec.lowercase)
    ids = tokenizer.get_vocab(with_added_tokens=True).values()
    top = max(ids, default=-1)
    if top >= config["vocab_size"]:  # a count alone misses ids past the table (a gap in the numbering)
        raise ValueError(
            f"The tokenizer in {path} has {len(ids)} tokens with ids up to {top} but the model only "
            f"{config['vocab_size']} embeddings: the tokenizer files belong to another model. Copy the source model's tokenizer files."
        )
    encoder = TextEncoder(tokenizer, end_token=spec.end_token, truncation_side=truncation_side(path))
    types = encoder.types
    most = max([*types[0], types[1], *types[2]]) if types else 0
    if config.get("model_type") == "bert" and most >= config.get("type_vocab_size", 2):
        raise ValueError(
            f"The tokenizer in {path} gives token type {most} but the model has {config.get('type_vocab_size', 2)} "
            "token types (type_vocab_size in config.json): the tokenizer files belong to another model or "
            "conversion. Copy the source model's tokenizer files."
        )
    return encoder


def load(
    model: str | os.PathLike,
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    pooling: str | None = None,
    dequantize: bool | None = None,
    dtype: str | mx.Dtype | None = None,
) -> Embedder:
    """Load an embedding model: a registry alias (``qwen3-0.6b``, ``minilm``, ``bge-small``),
    a Hugging Face Hub id, or a local folder (mlx-community quantized or plain HF / sentence-transformers).

    ``local_files_only`` defaults to ``HF_HUB_OFFLINE``. ``pooling`` is needed only for folders that
    are neither registry models nor say their pooling in sentence-transformers files.
    ``dequantize`` (default: on the CPU backend only) turns quantized Linear weights into float ones once
    at load (float32 on CPU: CPU float32 matmuls are ~70x faster than CPU quantized ones; on a GPU
    ``dtype`` or the checkpoint's own); the Metal path keeps 4-bit by default.
    ``dtype`` (``"float32"``, ``"float16"``, ``"bfloat16"`` or the ``mx`` dtype) is what floating parameters, and so the
    computation, use; default: float32 on the CPU backend (CPU half-precision matmuls skip BLAS), the
    checkpoint's own on a GPU (float16 or bfloat16). Packed 4-bit weights stay packed either way.
    """
    start = time.perf_counter()
    check_fork()
    if dequantize is not None and not isinstance(dequantize, bool):
        raise TypeError(f"dequantize must be True, False or None, got {dequantize!r}")
    dtype = _check_dtype(dtype)
    resolved = loading.resolve(model, revision, local_files_only)
    config = loading.read_config(resolved.path)
    spec = loading.spec_for(resolved, config, pooling)
    note_mlx_use()
    weights = loading.load_weights(resolved.path)
    try:
        net = loading.build_model(config, weights)
    except ValueError as err:  # the config and the weights disagree: say whose
        raise ValueError(f"{resolved.path}: {err}") from None
    text_encoder = text_encoder_for(resolved.path, spec, config)  # after: its vocab_size check trusts config.json
    if dtype is None and on_cpu():
        dtype = "float32"  # CPU fp16/bf16 matmuls do not use BLAS (5-7 GFLOP/s)
    if dequantize if dequantize is not None else on_cpu():
        loading.dequantize_linears(net, None if dtype is None else DTYPES[dtype])
    if dtype is not None:
        net.set_dtype(DTYPES[dtype])
        mx.eval(net.parameters())  # cast now, so memory after load is what encoding will use
    log.info("loaded %s from %s (%s) in %.2fs", spec.alias, resolved.path, resolved.source, time.perf_counter() - start)
    return Embedder(net, text_encoder, spec, path=resolved.path, source=resolved.source, config=config)
