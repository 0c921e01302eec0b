"""Pooling: pure functions from hidden states ``(B, L, D)`` and an attention mask ``(B, L)`` to ``(B, D)``.

Every function is exact for either padding side: positions come from the mask, never from the layout.
"""

from __future__ import annotations

import mlx.core as mx


def mean(hidden: mx.array, mask: mx.array) -> mx.array:
    """Mean over real tokens (sentence-transformers ``pooling_mode_mean_tokens``), summed in float32:
    a float16 sum over hundreds of tokens loses digits."""
    m = mask.astype(mx.float32)[..., None]  # (B, L, 1)
    total = (hidden.astype(mx.float32) * m).sum(axis=1)  # (B, D)
    count = mx.maximum(m.sum(axis=1), 1e-9)  # (B, 1)
    return total / count


def cls(hidden: mx.array, mask: mx.array) -> mx.array:
    """Hidden state of the first real token ([CLS] for BERT)."""
    first = mx.argmax(mask, axis=1)  # (B,)
    return mx.take_along_axis(hidden, first[:, None, None], axis=1)[:, 0]  # (B, D)


def last_token(hidden: mx.array, mask: mx.array) -> mx.array:
    """Hidden state of the last real token (Qwen3-Embedding's end-of-text)."""
    L = mask.shape[1]
    last = L - 1 - mx.argmax(mask[:, ::-1], axis=1)  # (B,)
    return mx.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # (B, D)


def l2_normalize(x: mx.array, eps: float = 1e-12) -> mx.array:
    norm = mx.sqrt((x * x).sum(axis=-1, keepdims=True))  # (..., 1)
    return x / mx.maximum(norm, eps)


POOLERS = {"mean": mean, "cls": cls, "last_token": last_token}
