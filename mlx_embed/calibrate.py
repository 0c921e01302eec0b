"""Data-aware rounding of Linears and the token table onto the stock affine grid (GPTQ).

Writes the layout ``mx.quantize`` writes (``w ~= scale * q + bias``, ``q`` in ``[0, 2**bits - 1]``,
groups of ``group_size`` consecutive input columns, float16 or bfloat16 scales and biases): only the stored values
differ, so any mlx / mlx-lm style loader reads the result.

:func:`gptq` runs the float model on unlabelled calibration texts (``calibration_texts.py``) and, block
by block in forward order, for each Linear

1. collects its inputs ``x_q`` from the model whose earlier Linears are already rounded (and, with
   ``compensate``, the float model's inputs ``x_f`` at the same place);
2. with ``compensate``, refits the float weight and bias by ridge-regularised least squares so that
   ``W' x_q ~= W x_f``: it absorbs part of the error of everything rounded before it;
3. rounds ``W'`` column by column, feeding each column's rounding error into the columns not yet
   rounded through the inverse of ``H = sum x_q x_q^T`` (Frantar et al., "GPTQ", 2022); with
   ``act_order`` the columns go by decreasing input energy and each group's scale and bias are
   fixed up front, else left to right with each group's grid chosen when the group is reached.

Every text weighs the same in ``H`` whatever its length, so short inputs (queries, one-word
texts), where [CLS]/[SEP] dominate the pooled vector, are not drowned by long ones.

:func:`table_sensitivity` and :func:`gptq_table` do the same for the token table, with ``H``
measured at the embedding instead of at the table's (one-hot) inputs (see the section below).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_map

from .tokenize import TruncationWarning

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from .tokenize import TextEncoder


@dataclass
class Quantized:
    """One module's affine codes and scales/biases (float32 arrays of float16 or bfloat16 values)."""

    codes: np.ndarray  # (O, I) uint8
    scales: np.ndarray  # (O, I / group_size)
    biases: np.ndarray  # (O, I / group_size)
    bits: int
    group_size: int

    def dequantize(self, rows: Sequence[int] | None = None) -> np.ndarray:
        codes, scales, biases = (a if rows is None else a[list(rows)] for a in (self.codes, self.scales, self.biases))
        O, I = codes.shape
        g = codes.reshape(O, -1, self.group_size).astype(np.float32)  # (O, G, gs)
        return (g * scales[..., None] + biases[..., None]).reshape(O, I)


def stored(x: np.ndarray, dtype: mx.Dtype = mx.float16) -> np.ndarray:
    """``x`` as a checkpoint in ``dtype`` (float16 or bfloat16) stores it, back in float64."""
    if dtype == mx.float16:
        return np.asarray(x).astype(np.float16).astype(np.float64)
    return np.array(mx.array(np.asarray(x, dtype=np.float32)).astype(dtype).astype(mx.float32), dtype=np.float64)


def _group_grid(
    w: np.ndarray,
    bits: int,
    shrinks: Sequence[float] = (0.8, 0.85, 0.9, 0.95, 1.0),
    weight: np.ndarray | None = None,
    dtype: mx.Dtype = mx.float16,
):
    """Per-row scale/bias (values ``dtype`` stores) for one group ``w`` (O, gs): the clipping of the
    min-max range with the least squared error (columns weighted by ``weight`` (gs,) when given)."""
    maxq = 2**bits - 1
    lo, hi = w.min(1), w.max(1)  # (O,)
    best = None
    for shrink in shrinks:
        half = (hi - lo) * (shrink / 2)
        s = stored(np.maximum(2 * half / maxq, 1e-7), dtype)
        b = stored((hi + lo) / 2 - half, dtype)
        q = np.clip(np.round((w - b[:, None]) / s[:, None]), 0, maxq)
        err = np.square(q * s[:, None] + b[:, None] - w)
        err = (err * weight).sum(1) if weight is not None else err.sum(1)
        if best is None:
            best = [err, s, b]
        else:
            better = err < best[0]
            for k, v in enumerate((err, s, b)):
                best[k] = np.where(better, v, best[k])
    return best[1], best[2]


def _inverse_factor(H: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor U of the damped ``H^-1`` (``H^-1 = U^T U``): row j says how column j's
    rounding error is spread over columns j+1.. ."""
    I = H.shape[0]
    H = H.astype(np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H += np.eye(I) * damp * np.mean(np.diag(H))
    # with P the reversal permutation, P H P = L L^T gives H^-1 = U^T U for U = P L^-1 P (upper)
    flipped = mx.array(H[::-1, ::-1].astype(np.float32))
    L = mx.linalg.cholesky(flipped, stream=mx.cpu)
    U = mx.linalg.tri_inv(L, upper=False, stream=mx.cpu)  # (I, I) lower
    return np.array(U, dtype=np.float64)[::-1, ::-1].copy()


def gptq_matrix(
    w: np.ndarray,
    U: np.ndarray,
    bits: int,
    group_size: int,
    hdiag: np.ndarray | None = None,
    order: np.ndarray | None = None,
    dtype: mx.Dtype = mx.float16,
) -> Quantized:
    """GPTQ for one weight ``w`` (O, I) given ``U`` from :func:`_inverse_factor` of its inputs' ``H``;
    ``hdiag`` (I,), the diagonal of ``H``, weights the columns when each group's grid is chosen.

    ``order`` (a permutation of the I columns; ``U`` must then come from ``H[order][:, order]``)
    rounds the columns in that order, usually by decreasing ``hdiag`` ("act-order"); each group's
    grid is then fixed up front from ``w`` (the file layout keeps groups of consecutive columns).
    Without it, columns go left to right and each group's grid is chosen when the group is reached,
    from the weights as updated so far. Scales and biases are the values ``dtype`` stores.
    """
    O, I = w.shape
    maxq = 2**bits - 1
    G = I // group_size
    scales, biases = np.zeros((O, G)), np.zeros((O, G))

    def grid(W: np.ndarray, g: int) -> None:
        j0, j1 = g * group_size, (g + 1) * group_size
        weight = None if hdiag is None else hdiag[j0:j1]
        scales[:, g], biases[:, g] = _group_grid(W[:, j0:j1].astype(np.float64), bits, weight=weight, dtype=dtype)

    lazy = order is None  # groups in file order, each grid chosen from the weights as updated so far
    if lazy:
        order = np.arange(I)
    else:
        for g in range(G):
            grid(w, g)
    group = order // group_size  # (I,) group of each column, in rounding order
    W = w.astype(np.float64)[:, order].copy()
    codes = np.zeros((O, I), dtype=np.uint8)
    for j0 in range(0, I, group_size):
        j1 = j0 + group_size
        if lazy:
            grid(W, j0 // group_size)
        block = W[:, j0:j1]  # (O, gs), updated in place
        err = np.zeros_like(block)
        for j in range(group_size):
            s, b = scales[:, group[j0 + j]], biases[:, group[j0 + j]]
            q = np.clip(np.round((block[:, j] - b) / s), 0, maxq)
            codes[:, j0 + j] = q
            e = (block[:, j] - (q * s + b)) / U[j0 + j, j0 + j]  # (O,)
            block[:, j + 1 :] -= np.outer(e, U[j0 + j, j0 + j + 1 : j1])
            err[:, j] = e
        W[:, j1:] -= err @ U[j0:j1, j1:]
    unpermuted = np.zeros_like(codes)
    unpermuted[:, order] = codes
    return Quantized(unpermuted, scales.astype(np.float32), biases.astype(np.float32), bits, group_size)


# --- running the model on calibration texts ---------------------------------------------------


class _Stop(Exception):
    pass


class _Recorder(nn.Module):
    """Stands in for a Linear while its inputs are collected."""

    def __init__(self, inner: nn.Module, sink: Callable[[mx.array], None]):
        super().__init__()
        self.inner = inner
        self._sink = sink

    def __call__(self, x: mx.array) -> mx.array:
        self._sink(x)
        return self.inner(x)


def get_module(model: nn.Module, path: str) -> nn.Module:
    obj = model
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    *parents, name = path.split(".")
    obj = model
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    if isinstance(obj, list):
        obj[int(name)] = new
    else:
        obj[name] = new


@dataclass
class CalibrationBatch:
    input_ids: mx.array  # (B, L)
    attention_mask: mx.array  # (B, L)
    real: np.ndarray  # (B * L,) bool: which positions are real tokens
    token_type_ids: mx.array | None = None  # (B, L)


def make_batches(text_encoder: TextEncoder, texts: Sequence[str], max_length: int, side: str, batch_size: int = 32) -> list[CalibrationBatch]:
    """Length-sorted padded batches of ``texts``; texts over ``max_length`` tokens are cut, silently
    (calibration only needs realistic inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        seqs = text_encoder.encode(list(texts), max_length)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = []
    for start in range(0, len(order), batch_size):
        b = text_encoder.pad([seqs[i] for i in order[start : start + batch_size]], side)
        types = None if b.token_type_ids is None else mx.array(b.token_type_ids)
        out.append(CalibrationBatch(mx.array(b.input_ids), mx.array(b.attention_mask), b.attention_mask.reshape(-1) != 0, types))
    return out


def _stage(path: str, role: str | None) -> tuple[str, str]:
    """Linears that read the same input share one Hessian: q/k/v, gate/up."""
    parent = path.rsplit(".", 1)[0]
    if role in ("attention_qk", "attention_value"):
        return parent, "attention_in"
    if role == "mlp_in":
        return parent, "mlp_in"
    return path, role or ""


def transformer_layers(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """Module path prefix and list of the transformer blocks (BERT ``encoder.layer``, Qwen3 ``layers``)."""
    if "encoder" in model and "layer" in model["encoder"]:
        return "encoder.layer", model["encoder"]["layer"]
    return "layers", model["layers"]


class _Capture(nn.Module):
    """Stands in for the first block: keeps its arguments and stops the forward."""

    def __init__(self, inner: nn.Module, sink: list):
        super().__init__()
        self.inner = inner
        self._sink = sink

    def __call__(self, *args):
        self._sink.append(args)
        raise _Stop


def _token_weights(b: CalibrationBatch) -> np.ndarray:
    """Each text weighs the same in ``H``, whatever its length: 1 / length per real token."""
    mask = np.array(b.attention_mask).astype(np.float64)  # (B, L)
    return (mask / mask.sum(1, keepdims=True)).reshape(-1)[b.real]


def gptq(
    model: nn.Module,
    params: dict[str, dict],
    batches: list[CalibrationBatch],
    role: Callable[[str], str | None],
    damp: float = 0.01,
    log: Callable[[str], None] | None = None,
    act_order: bool = False,
    compensate: bool = False,
    ridge: float = 0.1,
    rounded: dict[str, mx.array] | None = None,
    dtype: mx.Dtype = mx.float16,
) -> dict[str, Quantized]:
    """GPTQ the Linears in ``params`` (``{path: {"bits", "group_size"}}``) inside the transformer
    blocks, block by block in forward order; returns what was rounded (other modules are left alone).

    Each block's inputs come from the blocks before it, already rounded; inside a block, the inputs
    of a Linear come from the block with its earlier Linears rounded. The model is left holding the
    dequantized weights (fp32 Linears) of what was rounded. ``damp``: added to the diagonal of ``H``,
    as a fraction of its mean. ``act_order``: see :func:`gptq_matrix`.

    ``compensate``: before rounding, each Linear's weight and bias are refitted by least squares so
    that, fed the inputs of the partly rounded model, it reproduces the float model's outputs
    (``W' = W C H^-1`` with ``C`` the float/rounded input cross-covariance), which absorbs part of
    the error of everything rounded before it.

    ``rounded``: ``{path: weight}`` of modules outside the blocks already rounded (the token table);
    the blocks are calibrated on their outputs, while the float outputs the refit aims at come from
    the weights the model held. The model is left holding ``rounded``'s weights.

    ``dtype``: what the checkpoint stores scales and biases in (float16 or bfloat16).
    """
    prefix, layers = transformer_layers(model)
    float_inputs = _block_inputs(model, layers, batches)
    for path, value in (rounded or {}).items():
        get_module(model, path).weight = value
    inputs = _block_inputs(model, layers, batches) if rounded else list(float_inputs)
    weights = [_token_weights(b) for b in batches]

    out: dict[str, Quantized] = {}
    for i, layer in enumerate(layers):
        here = f"{prefix}.{i}."
        local = {p[len(here) :]: p for p in params if p.startswith(here) and isinstance(get_module(model, p), nn.Linear)}
        stages: dict[tuple[str, str], list[str]] = {}
        for sub in _call_order(layer, list(local), inputs[0]):
            stages.setdefault(_stage(sub, role(local[sub])), []).append(sub)
        float_params = tree_map(lambda a: a, layer.parameters()) if compensate else None
        for members in stages.values():
            dim = get_module(layer, members[0]).weight.shape[1]
            xs_float = _stage_inputs(layer, members[0], float_inputs, batches, float_params) if compensate else None
            xs = _stage_inputs(layer, members[0], inputs, batches)
            H, C = _second_moments(xs, xs_float, weights)
            Hx = H[:dim, :dim]
            hdiag = np.diag(Hx)
            perm = np.argsort(-hdiag, kind="stable") if act_order else None
            U = _inverse_factor(Hx if perm is None else Hx[perm][:, perm], damp)
            for sub in members:
                m = get_module(layer, sub)
                p = params[local[sub]]
                w = np.array(m.weight.astype(mx.float32)).astype(np.float64)
                if compensate:
                    w, bias = _compensated(w, m.get("bias"), H, C, ridge)
                    if bias is not None:
                        m.bias = mx.array(bias.astype(np.float32))
                q = gptq_matrix(w, U, p["bits"], p["group_size"], hdiag, perm, dtype)
                out[local[sub]] = q
                m.weight = mx.array(q.dequantize())
            if log:
                log(f"gptq {', '.join(local[s] for s in members)}")
        if compensate:
            quantized_params = tree_map(lambda a: a, layer.parameters())
            layer.update(float_params)
            float_inputs = _next_inputs(layer, float_inputs)
            layer.update(quantized_params)
        inputs = _next_inputs(layer, inputs)
    return out


def _next_inputs(layer: nn.Module, inputs: list[tuple]) -> list[tuple]:
    """The next block's arguments: ``layer``'s outputs in place of the hidden states."""
    out = [(layer(*args),) + tuple(args[1:]) for args in inputs]
    mx.eval([args[0] for args in out])
    return out


def _call_order(layer: nn.Module, subs: list[str], args: tuple) -> list[str]:
    """The Linears ``subs`` of ``layer`` in the order one forward pass on ``args`` calls them."""
    order: list[str] = []
    for sub in subs:
        inner = get_module(layer, sub)
        set_module(layer, sub, _Recorder(inner, lambda x, sub=sub: order.append(sub) if sub not in order else None))
    try:
        mx.eval(layer(*args))
    finally:
        for sub in subs:
            set_module(layer, sub, get_module(layer, sub).inner)
    return order


def _second_moments(
    xs: list[mx.array], xs_float: list[mx.array] | None, weights: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``H = X^T W X`` of a Linear's inputs ``xs`` (per batch, (tokens, I)) with a column of ones
    appended for the bias, each token weighted by ``weights``; ``C = Xf^T W X`` against the float
    model's inputs ``xs_float`` (zeros without them). Both (I + 1, I + 1), float64."""
    dim = xs[0].shape[1]
    H = mx.zeros((dim + 1, dim + 1))
    C = mx.zeros((dim + 1, dim + 1))
    for k, w in enumerate(weights):
        sw = mx.sqrt(mx.array(w, dtype=mx.float32))[:, None]
        x = mx.concatenate([xs[k], mx.ones((xs[k].shape[0], 1))], axis=1) * sw  # (tokens, I + 1)
        H = H + x.T @ x
        if xs_float is not None:
            xf = mx.concatenate([xs_float[k], mx.ones((xs[k].shape[0], 1))], axis=1) * sw
            C = C + xf.T @ x
        mx.eval(H, C)
    return np.array(H, dtype=np.float64), np.array(C, dtype=np.float64)


def _block_inputs(model: nn.Module, layers: list[nn.Module], batches: list[CalibrationBatch]) -> list[tuple]:
    """The arguments the first block receives, per batch."""
    inputs: list[tuple] = []
    saved = layers[0]
    layers[0] = _Capture(saved, inputs)
    try:
        for b in batches:
            try:
                model(b.input_ids, b.attention_mask, b.token_type_ids)
            except _Stop:
                pass
    finally:
        layers[0] = saved
    mx.eval([a for args in inputs for a in args])
    return inputs


def _stage_inputs(layer: nn.Module, sub: str, inputs: list[tuple], batches: list[CalibrationBatch], params=None) -> list[mx.array]:
    """The inputs (real tokens, I) of the Linear ``sub`` of ``layer`` per batch (with ``params`` loaded
    into the layer for the duration, when given)."""
    saved = tree_map(lambda a: a, layer.parameters()) if params is not None else None
    if params is not None:
        layer.update(params)
    head = get_module(layer, sub)
    dim = head.weight.shape[1]
    seen: list[mx.array] = []

    def sink(x: mx.array) -> None:
        seen.append(x.astype(mx.float32).reshape(-1, dim))
        raise _Stop

    set_module(layer, sub, _Recorder(head, sink))
    out = []
    try:
        for args, b in zip(inputs, batches):
            seen.clear()
            try:
                layer(*args)
            except _Stop:
                pass
            out.append(seen[0][mx.array(np.flatnonzero(b.real))])  # (tokens, I)
            mx.eval(out[-1])
    finally:
        set_module(layer, sub, head)
        if saved is not None:
            layer.update(saved)
    return out


def _compensated(w: np.ndarray, bias: mx.array | None, H: np.ndarray, C: np.ndarray, ridge: float):
    """Least-squares ``[W', b']`` with ``[W', b'] [x_q; 1] ~= [W, b] [x_f; 1]`` over the calibration
    tokens; ``H``, ``C`` (I + 1, I + 1) are the weighted sums of ``[x_q;1][x_q;1]^T`` and
    ``[x_f;1][x_q;1]^T``; a ridge term ``ridge * mean(diag H) |W' - W|^2`` keeps directions the
    calibration inputs hardly span at W. Without a bias the constant column is left out."""
    I = w.shape[1]
    keep = I + 1 if bias is not None else I
    lam = ridge * np.mean(np.diag(H)[:I])
    Hd = H[:keep, :keep].copy()
    Hd[np.arange(I), np.arange(I)] += lam
    full = np.concatenate([w, np.array(bias, dtype=np.float64)[:, None]], axis=1) if bias is not None else w
    target = full @ C[:keep, :keep]  # (O, keep)
    target[:, :I] += lam * w  # the damping pulls toward W, not toward zero
    solved = np.linalg.solve(Hd, target.T).T  # Hd is symmetric
    return (solved[:, :I], solved[:, I]) if bias is not None else (solved, None)


# --- token table: rounding weighted by what a row's error does to the pooled embedding --------
#
# A table has no inputs to collect, but the error of row r moves the embedding of every text that
# contains token r through the network: to second order, by e^T (sum_t J_t^T J_t) e over the
# occurrences t of r, where J_t is the Jacobian of the normalized pooled embedding with respect to
# the table output at t. That sum is a Hessian over the table's columns, so each row can be rounded
# with GPTQ like a Linear's. It is estimated on the float model with random probes g
# (E[J^T g g^T J] = J^T J), all of a batch's probes in one backward pass. Tokens of different scripts are used by different
# contexts, so rows share the estimate of their script (CJK, Cyrillic, Latin, other); the most
# frequent rows, and the tokens the tokenizer adds to every text, get their own, blended with it.

SCRIPTS = ("cjk", "cyrillic", "latin", "other")


# CJK punctuation and kana, CJK ideographs (extension A and the main block), Hangul, full-width forms
_CJK = ((0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xFF00, 0xFFEF))


def _script(text: str) -> str:
    for ch in text:
        o = ord(ch)
        if any(lo <= o <= hi for lo, hi in _CJK):
            return "cjk"
        if 0x0400 <= o <= 0x052F:
            return "cyrillic"
    return "latin" if any(c.isalpha() for c in text) else "other"


def token_scripts(tokenizer: Tokenizer, rows: int) -> np.ndarray:
    """Index into :data:`SCRIPTS` of each of the table's ``rows`` (rows past the vocabulary: "other")."""
    n = min(rows, tokenizer.get_vocab_size())
    texts = tokenizer.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    index = {s: k for k, s in enumerate(SCRIPTS)}
    out = np.full(rows, index["other"], dtype=np.int32)
    out[:n] = [index[_script(t)] for t in texts]
    return out


@dataclass
class TableSensitivity:
    """Probe estimates of ``sum_t J_t^T J_t`` (D, D) per script, and per row for the rows in ``rows``."""

    scripts: np.ndarray  # (V,) index into SCRIPTS
    script_h: np.ndarray  # (len(SCRIPTS), D, D)
    script_n: np.ndarray  # (len(SCRIPTS),) occurrences seen
    rows: dict[int, tuple[np.ndarray, int]]  # row -> ((D, D) sum, occurrences)

    def hessian(self, row: int | None = None, script: int | None = None, prior: float = 16.0) -> np.ndarray:
        """Mean per occurrence, each level shrunk toward the one above it (all rows -> script -> row)
        with the weight of ``prior`` occurrences, so rare scripts and rows fall back smoothly."""
        total = self.script_h.sum(0) / max(self.script_n.sum(), 1)
        if row is not None:
            script = int(self.scripts[row])
        if script is None:
            return total
        h = (self.script_h[script] + prior * total) / (self.script_n[script] + prior)
        if row is None or row not in self.rows:
            return h
        h_row, n = self.rows[row]
        return (h_row + prior * h) / (n + prior)


class _Shifted(nn.Module):
    """Stands in for a table: adds the current probe offset (B, L, D) to what it looks up."""

    def __init__(self, inner: nn.Module, offset: Callable[[], mx.array]):
        super().__init__()
        self.inner = inner
        self._offset = offset

    def __call__(self, ids: mx.array) -> mx.array:
        return self.inner(ids) + self._offset()


PROBE_TOKENS = 8192  # padded tokens per backward pass of table_sensitivity's probes


def table_sensitivity(
    model: nn.Module,
    path: str,
    batches: list[CalibrationBatch],
    pool: Callable[[mx.array, mx.array], mx.array],
    scripts: np.ndarray,
    own_rows: Sequence[int] = (),
    max_rows: int = 256,
    probes: int | None = 8,
    seed: int = 0,
) -> TableSensitivity:
    """Estimate :class:`TableSensitivity` for the table at ``path`` in ``model`` on ``batches``
    (``pool``: the model's pooling; the embedding is L2-normalized after it).

    ``own_rows`` (the tokens the tokenizer adds to every text) always get their own estimate; so do
    the ``max_rows`` rows seen most often (at least twice). One backward pass per batch, its
    ``probes`` random directions stacked as copies of the batch; ``probes=None`` takes every axis of
    the embedding once instead (exact, D copies: for small models and tests).
    """
    from .models import kernels

    table = get_module(model, path)
    D = table.weight.shape[1]
    P = D if probes is None else probes
    counts = np.bincount(np.concatenate([np.array(b.input_ids).reshape(-1)[b.real] for b in batches]), minlength=len(scripts))
    counts[list(own_rows)] = 0
    frequent = [int(r) for r in np.argsort(-counts, kind="stable")[:max_rows] if counts[r] >= 2]
    tracked = sorted(set(frequent) | {int(r) for r in own_rows})
    script_h = np.zeros((len(SCRIPTS), D, D))
    script_n = np.zeros(len(SCRIPTS))
    rows = {r: [np.zeros((D, D)), 0] for r in tracked}
    rng = np.random.default_rng(seed)
    offset: list[mx.array] = []
    set_module(model, path, _Shifted(table, lambda: offset[0]))

    types: list[mx.array | None] = [None]

    def probe(delta: mx.array, ids: mx.array, mask: mx.array, g: mx.array) -> mx.array:
        offset[:] = [delta]
        y = pool(model(ids, mask, types[0]), mask)  # (B, D)
        return (g * y / mx.linalg.norm(y, axis=-1, keepdims=True)).sum()

    grad = mx.grad(probe)
    try:
        with kernels.suspended("differentiating"):
            for b in batches:
                B, L = b.input_ids.shape
                ids = np.array(b.input_ids).reshape(-1)[b.real]  # (T,)
                # the probes run as copies of the batch: (P * B, L), one backward pass
                if probes is None:  # every axis once: exact, P = D
                    g = np.repeat(np.eye(D, dtype=np.float32), B, axis=0)
                else:
                    g = rng.standard_normal((P * B, D)).astype(np.float32) / np.sqrt(P)
                # as many copies per backward pass as PROBE_TOKENS allows: its activations, attention included,
                # are what a conversion's memory peaks on (8 copies of 32 x 256 tokens: 6 GB for MiniLM)
                copies = max(1, min(P, PROBE_TOKENS // (B * L)))
                v = np.concatenate([_probe_pass(grad, b, types, g[p * B : (p + copies) * B]) for p in range(0, P, copies)])
                v = v.reshape(P, B * L, D)[:, b.real].transpose(1, 0, 2).astype(np.float64)  # (T, P, D): sum_p v v^T ~= J^T J
                for k in range(len(SCRIPTS)):
                    sel = v[scripts[ids] == k].reshape(-1, D)
                    script_h[k] += sel.T @ sel
                    script_n[k] += np.count_nonzero(scripts[ids] == k)
                order = np.argsort(ids, kind="stable")
                present, starts, n = np.unique(ids[order], return_index=True, return_counts=True)
                for r, start, count in zip(present, starts, n):
                    if int(r) in rows:
                        sel = v[order[start : start + count]].reshape(-1, D)
                        rows[int(r)][0] += sel.T @ sel
                        rows[int(r)][1] += int(count)
    finally:
        set_module(model, path, table)
    return TableSensitivity(scripts, script_h, script_n, {r: (h, n) for r, (h, n) in rows.items() if n})


def _probe_pass(grad: Callable, b: CalibrationBatch, types: list, g: np.ndarray) -> np.ndarray:
    """One backward pass over copies of the batch, one per probe in ``g`` ((copies * B, D), probe-major):
    the gradient, (copies * B, L, D)."""
    B, L = b.input_ids.shape
    copies, D = len(g) // B, g.shape[1]
    ids, mask = mx.tile(b.input_ids, (copies, 1)), mx.tile(b.attention_mask, (copies, 1))
    types[0] = None if b.token_type_ids is None else mx.tile(b.token_type_ids, (copies, 1))
    return np.array(grad(mx.zeros((copies * B, L, D)), ids, mask, mx.array(g)))


def gptq_table(
    w: np.ndarray,
    sensitivity: TableSensitivity,
    bits: int,
    group_size: int,
    damp: float = 0.01,
    chunk: int = 8192,
    dtype: mx.Dtype = mx.float16,
) -> Quantized:
    """GPTQ each row of the table ``w`` (V, D) under its :meth:`TableSensitivity.hessian`, columns by
    decreasing sensitivity (rows of one script share a Hessian and go ``chunk`` rows at a time).

    Each row is rounded twice, its groups' clipping chosen with the columns weighted by the
    Hessian's diagonal and unweighted, and keeps the one with the smaller error ``e^T H e``: a
    shared Hessian weighs a rare row's columns only roughly, and the weighted clipping alone left
    a few rows far off (MiniLM, table alone: the worst of 400 one-word texts at 0.970-0.990 cosine
    over three probe draws, 0.989-0.994 with the choice; mean loss over 283 texts -4 to -7 %)."""
    V, D = w.shape
    codes = np.zeros((V, D), dtype=np.uint8)
    scales = np.zeros((V, D // group_size), dtype=np.float32)
    biases = np.zeros_like(scales)

    def put(rows: np.ndarray, H: np.ndarray) -> None:
        hdiag = np.diag(H)
        perm = np.argsort(-hdiag, kind="stable")
        U = _inverse_factor(H[perm][:, perm], damp)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            target = w[part].astype(np.float64)
            tries = [gptq_matrix(target, U, bits, group_size, weight, perm, dtype) for weight in (hdiag, None)]
            errors = [np.einsum("rd,de,re->r", e, H, e) for e in (q.dequantize() - target for q in tries)]
            second = (errors[1] < errors[0])[:, None]  # (R, 1)
            codes[part], scales[part], biases[part] = (
                np.where(second, getattr(tries[1], name), getattr(tries[0], name)) for name in ("codes", "scales", "biases")
            )

    own = np.array(sorted(sensitivity.rows), dtype=np.int64)
    for k in range(len(SCRIPTS)):
        members = np.flatnonzero(sensitivity.scripts == k)
        members = members[~np.isin(members, own)]
        if len(members):
            put(members, sensitivity.hessian(script=k))
    for r in own:
        put(np.array([r]), sensitivity.hessian(row=int(r)))
    return Quantized(codes, scales, biases, bits, group_size)
