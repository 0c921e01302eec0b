"""Fast elementwise math for the Linux CPU backend, fused with ``mx.compile``.

MLX's CPU ``exp`` and ``erf`` run at about 75 M and 40 M elements/s on one core, so the softmax of
attention and the exact GELU took over half of a MiniLM forward even with OpenBLAS matmuls. Here both
are rebuilt from multiply/add/divide (and, for ``exp``, a shift into the float32 exponent bits), which
``mx.compile`` turns into generated C++ loops: GELU about 8x and ``exp`` about 4x faster than the
stock ops, at float32 rounding accuracy (measured by ``tests/test_speed_path.py`` against float64).

MLX fuses at most 11 operations deep into one kernel and splits the rest into more passes over
memory, so the polynomials below are written shallow (Estrin's scheme) rather than in Horner form.
In the ``exp`` passes the clamp is a ``where``: there ``maximum`` made the loop ~1.4x slower.

``mx.compile`` on the CPU backend needs ``g++`` at run time (it caches the built kernels under
``$TMPDIR/mlx``); without it MLX runs compiled functions unfused, slower than the stock ops, so
:func:`enabled` is then False and the models use uncompiled ``erf``/``sigmoid`` and
``mx.fast.scaled_dot_product_attention``. ``Embedder.encode`` also turns this off, with a warning,
when ``g++`` is there but fails. The Metal path (a Mac's GPU) never uses this module.
``MLX_EMBED_FAST=0`` turns it off.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import mlx.core as mx

# exp(d) for d <= 0: d = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor series to r^6, 2^n
# written into the float32 exponent bits. Relative error < 3e-7 over [-87, 0].
_LOG2E = 1 / math.log(2)
_LN2_HI = 0.693145751953125  # ln 2 split so that n * _LN2_HI is exact for |n| < 2^11 (Cody & Waite)
_LN2_LO = 1.428606765330187e-06
_ROUND = 12582912.0  # + then - 1.5 * 2^23 rounds a float32 of magnitude < 2^22 to an integer
_EXP_FLOOR = -87.0  # below this exp underflows float32 normals; the result is 0
_EXP_CLAMP = -88.0
_C = tuple(1 / math.factorial(k) for k in range(7))

# Phi(x) - 1/2 = erf(x / sqrt 2) / 2 ~= x P(x^2) / Q(x^2) on |x| <= 4 sqrt 2 (beyond it
# erf = +-1 in float32). Our own rational minimax fit (Lawson-weighted least squares in float64):
# max abs error 1.9e-8, Q >= 1 (no poles). P[0] = 1 / sqrt(2 pi).
_GELU_CLIP = 4 * math.sqrt(2)
_P = (
    0.39894223377605564,
    0.033818257480101525,
    0.004667833151122231,
    0.00016775902409153643,
    6.276157392786424e-06,
    2.2294493422385072e-08,
)
_Q = (
    1.0,
    0.2514357385680747,
    0.028607793613130813,
    0.0018776715910532322,
    7.297720496243905e-05,
    1.178898067302141e-06,
)


def _initial_reason() -> str | None:
    setting = os.environ.get("MLX_EMBED_FAST", "1").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return f"disabled by MLX_EMBED_FAST={os.environ['MLX_EMBED_FAST']}"
    if setting not in ("1", "true", "yes", "on", ""):
        import warnings

        warnings.warn(f"MLX_EMBED_FAST={os.environ['MLX_EMBED_FAST']!r} is neither 0 nor 1; the fused CPU kernels stay "
                      "on (set MLX_EMBED_FAST=0 to turn them off)", stacklevel=2)
    if os.environ.get("MLX_DISABLE_COMPILE"):
        return "MLX_DISABLE_COMPILE is set"
    if sys.platform != "linux":
        return "not Linux"
    if shutil.which("g++") is None:
        return "no g++ on PATH (mx.compile on the CPU backend needs it to fuse kernels)"
    return None


_disabled_reason: str | None = _initial_reason()


def enabled() -> bool:
    """Whether the models use the fused CPU kernels now: CPU device, Linux, a C++ compiler."""
    return _disabled_reason is None and mx.default_device() == mx.cpu


def reason() -> str:
    """Why the fused kernels are off, or ``"enabled"``."""
    if _disabled_reason is None and mx.default_device() != mx.cpu:
        return "the default device is a GPU (the fused kernels are a CPU path)"
    return _disabled_reason or "enabled"


def disable(why: str) -> None:
    """Turn the fused kernels off for this process (e.g. after ``g++`` failed to build one)."""
    global _disabled_reason
    _disabled_reason = why


@contextmanager
def suspended(why: str) -> Iterator[None]:
    """Use the stock ops for the duration (e.g. while differentiating: the fused ``exp`` writes
    float32 exponent bits, which has no gradient)."""
    global _disabled_reason
    saved = _disabled_reason
    _disabled_reason = saved or why
    try:
        yield
    finally:
        _disabled_reason = saved


def is_compile_failure(err: BaseException) -> bool:
    """Whether ``err`` is MLX failing to build or load a compiled CPU kernel."""
    return isinstance(err, RuntimeError) and "Compile::eval_cpu" in str(err)


@mx.compile
def _exp_n(s: mx.array, m: mx.array) -> mx.array:
    d = s - m
    d = mx.where(d < _EXP_CLAMP, _EXP_CLAMP, d)  # 2^n stays a normal float or +0 (denormals are slow)
    return (d * _LOG2E + _ROUND) - _ROUND  # n = round(d / ln2), >= -127


@mx.compile
def _exp_bits(n: mx.array) -> mx.array:
    return (n.astype(mx.int32) + 127) << 23  # float32 bits of 2^n (+0 for n = -127)


@mx.compile
def _exp_poly(s: mx.array, m: mx.array, n: mx.array, two_n: mx.array) -> mx.array:
    d = s - m
    r = (mx.where(d < _EXP_CLAMP, _EXP_CLAMP, d) - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    p = (_C[0] + _C[1] * r) + r2 * (_C[2] + _C[3] * r) + (r2 * r2) * (_C[4] + _C[5] * r + _C[6] * r2)
    return mx.where(d < _EXP_FLOOR, 0.0, p * two_n)


def exp_nonpositive(d: mx.array, shift: mx.array | float = 0.0) -> mx.array:
    """``exp(d - shift)`` in float32 for ``d - shift <= 0`` (``shift`` broadcasts, e.g. a row max);
    ``-inf`` and arguments below -87 give 0. Half-precision ``d`` is widened first: the rounding
    trick needs float32's 24-bit mantissa.

    Three fused passes: a bit cast cannot be fused, and a kernel deeper than 11 operations would
    be split by MLX at a point of its choosing (into slower strided loops).
    """
    d = d.astype(mx.float32)
    shift = mx.array(shift, mx.float32) if not isinstance(shift, mx.array) else shift.astype(mx.float32)
    n = _exp_n(d, shift)
    return _exp_poly(d, shift, n, _exp_bits(n).view(mx.float32))


def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, x * Phi(x), with Phi from the rational fit above (|error| < 2e-6 * max(1, |x|)),
    computed in float32 (the fit's x^8 passes float16's 65504 at |x| = 4) and returned in ``x``'s dtype."""
    return _gelu(x.astype(mx.float32)).astype(x.dtype)


@mx.compile
def _gelu(x: mx.array) -> mx.array:
    xc = mx.clip(x, -_GELU_CLIP, _GELU_CLIP)
    t = xc * xc
    t2 = t * t
    t4 = t2 * t2
    p = (_P[0] + _P[1] * t) + t2 * (_P[2] + _P[3] * t) + t4 * (_P[4] + _P[5] * t)
    q = (_Q[0] + _Q[1] * t) + t2 * (_Q[2] + _Q[3] * t) + t4 * (_Q[4] + _Q[5] * t)
    return x * mx.clip(0.5 + xc * p / q, 0.0, 1.0)  # float32 rounds Phi(-4 sqrt 2) below 0: x * Phi > 0 for x << 0


@mx.compile
def _neg_abs(x: mx.array) -> mx.array:
    return -mx.abs(x)


@mx.compile
def _silu_mul(g: mx.array, u: mx.array, e: mx.array) -> mx.array:
    # sigmoid(g) = [1 or e] / (1 + e), e = exp(-|g|); float32 (e's) before `* u`: in float16 g * u can
    # overflow to inf where silu(g) * u is about 0, and inf * 0 is NaN
    return g * mx.where(g < 0, e, 1.0) / (1 + e) * u


def silu_mul(gate: mx.array, up: mx.array) -> mx.array:
    """``silu(gate) * up`` with ``exp(-|gate|)`` from :func:`exp_nonpositive` (float32), returned in
    ``gate``'s dtype."""
    return _silu_mul(gate, up, exp_nonpositive(_neg_abs(gate))).astype(gate.dtype)


# Query rows per attention block are chosen so one block's scores hold at most this many elements, so that a
# long sequence never materializes its whole (L, S) score matrix: 2^22 (16 MiB in float32) on the fused path,
# 2^24 with MLX's own attention, each the faster there of 2^22, 2^23 and 2^24 (the attention of one 8,192-token
# Qwen3-0.6B text: fused 13.3 / 16.5 / 18.0 s, MLX's 35.0 / 32.4 / 29.8 s).
ATTENTION_BLOCK_ELEMENTS = 1 << 22
STOCK_ATTENTION_BLOCK_ELEMENTS = 1 << 24
_MASKED = -1e30  # a masked score: exp(_MASKED - row max) is 0 unless every key of the row is masked


def attend(
    q: mx.array, k: mx.array, v: mx.array, scale: float, keys: mx.array | None, causal: bool = False
) -> mx.array:
    """Softmax attention: ``q`` (B, H, L, Dh), ``k``/``v`` (B, Hkv, S, Dh) with H a multiple of Hkv.
    ``keys`` (B, S): nonzero for the keys that are tokens, 0 for padding, which is never attended (None:
    every key; a text with none attends every key evenly, as MLX's attention does). ``causal``
    (self-attention, S = L): query i also sees only keys j <= i, and always itself, so that no row is
    empty (a left-padding query would otherwise see nothing and give NaN, as in mlx-embeddings 0.1.0).
    Returns (B, H, L, Dh) in ``q``'s dtype (the fused path computes in float32 where there is a mask).

    The fused path equals ``mx.fast.scaled_dot_product_attention`` to float32 rounding; on the CPU
    backend that one spends most of its time in ``mx.exp``. On the CPU backend either path handles the
    queries in blocks of at most ``ATTENTION_BLOCK_ELEMENTS`` scores (``STOCK_ATTENTION_BLOCK_ELEMENTS`` on
    the stock path), each with its own part of the mask and each computed before the next is queued
    (:func:`_after`): MLX's CPU attention holds the whole (B, H, L, S) score matrix (Qwen3-0.6B, one text
    of 8,192 tokens: 4 GiB, and 0.25 GiB more for a whole causal mask in float32).
    """
    B, H, L, Dh = q.shape
    S = k.shape[2]
    limit = ATTENTION_BLOCK_ELEMENTS if enabled() else STOCK_ATTENTION_BLOCK_ELEMENTS
    rows = max(1, limit // max(1, B * H * S))
    n = max(1, -(-L // rows))  # blocks
    rows = max(1, -(-L // n))  # of equal size: MLX's buffer cache gives each block the one before's buffers
    spans = [(start, min(L, start + rows)) for start in range(0, L, rows)]
    keep = None if keys is None else (keys != 0)[:, None, None, :]  # (B, 1, 1, S)
    if not enabled():
        if len(spans) == 1 or mx.default_device() != mx.cpu:
            return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=_visible(keep, causal, 0, L, S))
        blocks = []
        for a, b in spans:
            qb = q[..., a:b, :] if not blocks else _after(q[..., a:b, :], blocks[-1])
            seen = _visible(keep, causal, a, b, S)
            blocks.append(mx.fast.scaled_dot_product_attention(qb, k, v, scale=scale, mask=seen))
        return mx.concatenate(blocks, axis=-2)
    Hkv = k.shape[1]
    dtype = q.dtype
    kt = k.swapaxes(-1, -2)  # (B, Hkv, Dh, S)
    v1 = mx.concatenate([v, mx.ones((*v.shape[:-1], 1), v.dtype)], axis=-1)  # (B, Hkv, S, Dh + 1)
    if Hkv != H:  # grouped-query attention: query heads h = kv * G + g share kv head kv
        q = q.reshape(B, Hkv, H // Hkv, L, Dh)
        kt, v1 = kt[:, :, None], v1[:, :, None]
    blocks = []
    for start, stop in spans:
        qb = q[..., start:stop, :] if len(spans) > 1 else q
        if blocks:
            qb = _after(qb, blocks[-1])
        s = (qb * scale) @ kt  # (B, H, rows, S) or (B, Hkv, G, rows, S)
        seen = _visible(keep, causal, start, stop, S)  # (B, 1, rows | 1, S)
        if seen is not None:
            # a finite floor, not -inf: a text with no visible key (all padding) then attends every key
            # evenly, as MLX's own attention does, where -inf gave 0 / 0 = NaN
            s = mx.where(seen if Hkv == H else seen[:, :, None], s, mx.array(_MASKED, mx.float32))
        e = exp_nonpositive(s, s.max(axis=-1, keepdims=True))  # unnormalized probabilities
        o = e @ v1  # (..., rows, Dh + 1): the weighted values and, from the ones column, the weight sums
        blocks.append(o[..., :Dh] / o[..., Dh:])
    out = blocks[0] if len(blocks) == 1 else mx.concatenate(blocks, axis=-2)
    return out.reshape(B, H, L, Dh).astype(dtype)


def _visible(keep: mx.array | None, causal: bool, start: int, stop: int, S: int) -> mx.array | None:
    """The keys that query rows ``start:stop`` may attend (boolean, broadcastable to (B, 1, rows, S)), or
    None for every key. Built per block, so a causal mask never exists whole."""
    if not causal:
        return keep
    i = mx.arange(start, stop)[:, None]  # (rows, 1)
    j = mx.arange(S)[None]  # (1, S)
    seen = (j <= i)[None, None]  # (1, 1, rows, S)
    if keep is not None:
        seen = seen & keep  # (B, 1, rows, S)
    return seen | (i == j)


def _after(x: mx.array, done: mx.array) -> mx.array:
    """``x``, with ``done`` computed first. Evaluates ``done`` now: MLX's CPU scheduler allocates the outputs
    of up to about 100 queued operations ahead of the one running, so blocks queued lazily, even when
    ordered by ``mx.depends``, held every block's scores at once. Inside ``mx.compile``, which refuses
    ``eval``, the blocks are only ordered."""
    try:
        mx.eval(done)
    except ValueError as err:
        if "function transformations" not in str(err):
            raise
        return mx.depends(x, done)
    return x
