"""``Embedder``: texts in, embeddings out, in length-sorted batches returned in input order."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .pooling import POOLERS, l2_normalize
from .registry import ModelSpec
from .tokenize import TextEncoder

# Cached MLX buffers above this are released between batches, so long runs keep a flat RSS.
CACHE_HIGH_WATER = 256 * 1024**2


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (list, tuple)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str: every input must be a string")
        return list(texts)
    raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> Iterator[np.ndarray]:
    """Indices of texts, longest first, grouped so no batch has more than ``batch_size`` texts
    or ``max_batch_tokens`` padded tokens (a single text longer than that gets a batch alone)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
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
        self.position_limit = config.get("max_position_embeddings") or spec.max_length

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return self._spec.dim

    @property
    def max_length(self) -> int:
        return self._spec.max_length

    def __repr__(self) -> str:
        return f"Embedder({self._spec.alias!r}, dim={self.dim}, pooling={self._spec.pooling!r}, source={self.source!r})"

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool = True,
        prompt: str | None = None,
        dim: int | None = None,
        max_length: int | None = None,
        truncate: bool = True,
        show_progress: bool = False,
        max_batch_tokens: int = 16384,
    ) -> np.ndarray:
        """Embed ``texts``: a ``str`` gives shape ``(dim,)``, a list gives ``(len(texts), dim)``, float32.

        ``prompt`` is prepended to every text. ``dim`` truncates (Matryoshka) before normalizing.
        Texts longer than ``max_length`` tokens are cut with a warning, or raise with ``truncate=False``.
        """
        single = isinstance(texts, str)
        items = _check_texts([texts] if single else texts)
        dim = self._spec.check_dim(dim)
        batch_size = _check_int("batch_size", batch_size, 1)
        max_batch_tokens = _check_int("max_batch_tokens", max_batch_tokens, 1)
        max_length = self._check_max_length(max_length)
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
        if prompt:
            items = [prompt + t for t in items]

        out = np.empty((len(items), dim), dtype=np.float32)
        if items:
            ids = self.text_encoder.encode(items, max_length, truncate)
            done = 0
            for idx in batches([len(s) for s in ids], batch_size, max_batch_tokens):
                out[idx] = self._embed_batch([ids[i] for i in idx], dim, normalize)
                done += len(idx)
                if show_progress:
                    print(f"\rmlx_embed: {done}/{len(items)} texts", end="", file=sys.stderr, flush=True)
                if mx.get_cache_memory() > CACHE_HIGH_WATER:
                    mx.clear_cache()
            if show_progress:
                print(file=sys.stderr)
        return out[0] if single else out

    def _embed_batch(self, seqs: list[list[int]], dim: int, normalize: bool) -> np.ndarray:
        batch = self.text_encoder.pad(seqs, self._spec.padding_side)
        mask = mx.array(batch.attention_mask)
        hidden = self.model(mx.array(batch.input_ids), mask)  # (B, L, D)
        pooled = POOLERS[self._spec.pooling](hidden, mask)[:, :dim]  # (B, dim)
        if normalize:
            pooled = l2_normalize(pooled)
        return np.array(pooled.astype(mx.float32))

    def encode_query(self, texts: str | Sequence[str], *, task: str | None = None, **kwargs) -> np.ndarray:
        """Embed search queries with the model's query prompt (Qwen3: ``Instruct: {task}\\nQuery:``)."""
        return self.encode(texts, prompt=self._spec.format_query_prompt(task) or None, **kwargs)

    def encode_document(self, texts: str | Sequence[str], **kwargs) -> np.ndarray:
        """Embed passages to search in, with the model's document prompt (none for the known models)."""
        return self.encode(texts, prompt=self._spec.document_prompt or None, **kwargs)

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
