"""Activations per backend: the fused kernels of :mod:`.kernels` on the Linux CPU backend, plain
uncompiled ops on any CPU backend when the kernels are off (macOS, or no or a broken ``g++``: ``nn.gelu``
and ``nn.silu`` are ``mx.compile``d themselves and would need the compiler too), MLX's own on a GPU."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from . import kernels


def _plain_cpu() -> bool:
    return mx.default_device() == mx.cpu


def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU."""
    if kernels.enabled():
        return kernels.gelu(x)
    if _plain_cpu():
        return 0.5 * x * (1 + mx.erf(x * (1 / math.sqrt(2))))
    return nn.gelu(x)


def silu_mul(gate: mx.array, up: mx.array) -> mx.array:
    """``silu(gate) * up`` (the SwiGLU of Qwen3's MLP)."""
    if kernels.enabled():
        return kernels.silu_mul(gate, up)
    if _plain_cpu():
        return gate * mx.sigmoid(gate) * up
    return nn.silu(gate) * up
