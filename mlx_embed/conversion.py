"""Convert a Hugging Face / sentence-transformers folder into the mlx-community layout.

Output: ``model.safetensors`` (MLX names; Qwen3 keys under ``model.`` as mlx-lm saves them),
``config.json`` with a ``quantization`` block (``group_size``, ``bits``, ``mode`` and per-module
overrides, as mlx-lm reads them), and the tokenizer and sentence-transformers files of the source,
written by :mod:`mlx_embed.saving`.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import loading, saving
from ._messages import caller_stacklevel
from .api import DTYPES, text_encoder_for
from .models import ARCHITECTURES
from .pooling import POOLERS
from .tokenize import TextEncoder, read_json

if TYPE_CHECKING:
    from .fidelity import FidelityReport

BITS = (4, 6, 8, 16, 32)
GROUP_SIZES = (32, 64, 128)
Choice = dict | bool | None  # what a recipe says about one module


def module_role(path: str) -> str | None:
    """What a Linear / Embedding does, from BERT (Hugging Face names) or Qwen3 (mlx-lm names) paths."""
    name = path.rsplit(".", 1)[-1]
    if name in ("word_embeddings", "embed_tokens"):
        return "token_embedding"
    if name == "position_embeddings":
        return "position_embedding"
    if name == "token_type_embeddings":
        return "token_type_embedding"
    if name in ("query", "key", "q_proj", "k_proj"):
        return "attention_qk"
    if name in ("value", "v_proj"):
        return "attention_value"
    if path.endswith("attention.output.dense") or name == "o_proj":
        return "attention_output"
    if path.endswith("intermediate.dense") or name in ("gate_proj", "up_proj"):
        return "mlp_in"
    if path.endswith("output.dense") or name == "down_proj":
        return "mlp_out"
    return None


@dataclass(frozen=True)
class Recipe:
    """Per-module precision and how weights are rounded onto the affine grid.

    ``choose(path, module, n_layers)`` returns None (the converter's default bits / group size),
    False (keep the module in float) or ``{"bits", "group_size"}``. ``rounding`` is ``"nearest"``
    (``mx.quantize``, what mlx-community checkpoints use), ``"mse"`` (per-group scale and bias
    fitted to minimise the squared error of the stored values) or ``"gptq"`` (the token table
    first, with :func:`mlx_embed.calibrate.gptq_table`, its first token's error moved into position
    0's row; then the Linears in the transformer blocks with :func:`mlx_embed.calibrate.gptq` on
    :data:`~mlx_embed.calibration_texts.CALIBRATION_TEXTS`, fed the rounded table, their float biases
    refitted with them; other tables as ``"mse"``); all write the same file format. With any
    rounding, a BERT model's end token ([SEP]) hands its table error to a float token-type row of
    its own when the recipe keeps token types in float (:func:`_end_token_type`).
    """

    choose: Callable[[str, nn.Module, int], Choice]
    rounding: str = "nearest"
    description: str = ""


def _layer_index(path: str) -> int | None:
    found = re.search(r"\.(\d+)\.", path)
    return int(found.group(1)) if found else None


def _by_role(table: dict[str, tuple[int, int] | bool]) -> Callable[[str, nn.Module, int], Choice]:
    """A recipe from ``{role: (bits, group_size) | False}``; ``"role@first"`` / ``"role@last"`` /
    ``"role@<i>"`` keys override the role in the first / last / i-th transformer layer (``i < 0``
    counts from the last, as in Python)."""

    def choose(path: str, module: nn.Module, n_layers: int) -> Choice:
        role, index = module_role(path), _layer_index(path)
        keys = [role]
        if index is not None:
            where = {0: "first", n_layers - 1: "last"}.get(index)
            keys = [f"{role}@{index}", f"{role}@{index - n_layers}"] + ([f"{role}@{where}"] if where else []) + [role]
        value = next((table[k] for k in keys if k in table), None)
        if value is None or value is False:
            return value
        bits, group_size = value
        return {"bits": bits, "group_size": group_size}

    return choose


# Chosen by measurement on the real all-MiniLM-L6-v2 with GPTQ rounding (scripts/quant_table.py;
# sensitivity notes in the README). The MLP input projection costs most per bit; the last layer
# carries most of the mean loss, layers 2-4 most of the loss on one-word texts. ``compact``'s
# per-layer bits for the attention value / output projections (counted from the last layer) were
# picked by a greedy search over per-(layer, role) measurements scored on 740 texts (now part of the
# calibration set), then checked on the README's sample. GPTQ's choices follow the last bits of the
# float forward passes, so each recipe was converted again from copies of the source with 1e-6
# relative weight noise (what another BLAS or a GPU changes). With [CLS]'s and [SEP]'s table errors
# moved into float rows and the table rounded first, the sample's worst text (one word) moves by
# about 0.001 between such draws and its loss is mostly the Linears': ``compact`` 0.9941-0.9951 over
# six draws (two machines); ``faithful``, ``compact`` with a 5-bit token table, 0.9956-0.9966 over five (before
# those steps: 0.9915-0.9944 and 0.9942-0.9968; then a 4-bit table at group 64: 0.9924-0.9953,
# group 32: 0.9948-0.9957). token_type_embeddings (768 weights, added to every token) stay float;
# position embeddings (0.9% of the weights) at 8 bits.
COMPACT: dict[str, tuple[int, int] | bool] = {
    "token_embedding": (4, 128),
    "position_embedding": (8, 64),
    "token_type_embedding": False,
    "attention_qk": (5, 128),
    "attention_value": (5, 128),
    "attention_output": (5, 128),
    "mlp_in": (6, 128),
    "mlp_out": (5, 64),
    "attention_value@-4": (6, 128),
    "attention_value@-3": (6, 128),
    "attention_output@-3": (6, 128),
    "attention_value@-2": (6, 64),
    "attention_output@-2": (6, 128),
    "attention_value@-1": (6, 128),
    "attention_output@-1": (6, 64),
    "mlp_in@-1": (5, 64),
}
FAITHFUL: dict[str, tuple[int, int] | bool] = {**COMPACT, "token_embedding": (5, 128)}
# Memory for the token-table rows that get a sensitivity estimate of their own (D x D float64 each):
# 227 rows for MiniLM / bge (D = 384), 32 for Qwen3-0.6B (D = 1024).
TABLE_HESSIAN_BYTES = 1 << 28
TABLE_PROBES = 8  # random directions per calibration text
# The Linears' GPTQ improves with more calibration texts (MiniLM, Linears alone: mean 1 - cosine
# over the 283 evaluation texts -24 % from 229 to 969 texts); the table's sensitivity, at 0.3 s a
# text on 2 CPU cores (one backward pass with TABLE_PROBES copies of it), gains less (table alone:
# -7 % from 243 to 969 texts, for 3x the time), so it takes an evenly spaced subset of at most
# TABLE_TEXTS texts.
TABLE_TEXTS = 256
# GPTQ settings (mlx_embed.calibrate.gptq): 1% damping, columns by decreasing input energy, each
# Linear refitted first to undo the error of what was rounded before it (ridge 1.0 x mean diag H).
GPTQ_OPTIONS = {"damp": 0.01, "act_order": True, "compensate": True, "ridge": 1.0}
RECIPES: dict[str, Recipe] = {
    "uniform": Recipe(
        lambda path, module, n_layers: None, "nearest", "every Linear and Embedding at --bits / --group-size (the mlx-community layout)"
    ),
    "faithful": Recipe(
        _by_role(FAITHFUL), "gptq", "compact with a 5-bit token table: per-text cosine >= 0.995 to fp32 on MiniLM (5.52 bits per weight)"
    ),
    "compact": Recipe(
        _by_role(COMPACT), "gptq", "mixed 4-8-bit with GPTQ at <= 5 bits per weight, the best measured there (MiniLM: cosine min 0.994-0.995)"
    ),
}
ROUNDINGS = ("nearest", "mse", "gptq")
DEFAULT_BITS, DEFAULT_GROUP_SIZE = 4, 64  # mlx-community's layout


@dataclass(frozen=True)
class Calibration:
    """What data-aware rounding needs to run the model on the calibration texts."""

    text_encoder: TextEncoder
    padding_side: str = "right"
    max_length: int = 512
    pooling: str = "mean"
    end_row: int | None = None  # the end token's table row: the converter moves its error into a float type row


def _quantizable(module: nn.Module, group_size: int) -> bool:
    return isinstance(module, (nn.Linear, nn.Embedding)) and module.weight.shape[-1] % group_size == 0


def _stored(x: mx.array, dtype: mx.Dtype) -> mx.array:
    return x.astype(dtype).astype(mx.float32)


def _codes(g: mx.array, scales: mx.array, biases: mx.array, bits: int) -> mx.array:
    return mx.clip(mx.round((g - biases[..., None]) / scales[..., None]), 0, 2**bits - 1)  # (R, G, gs)


def _pack(codes: mx.array, bits: int) -> mx.array:
    """MLX's layout: each row a little-endian bit stream of ``bits``-wide codes in uint32 words."""
    R, n = codes.shape
    q = codes.astype(mx.uint32)
    stream = (q[..., None] >> mx.arange(bits, dtype=mx.uint32)) & 1  # (R, n, bits)
    stream = stream.reshape(R, n * bits // 32, 32)
    return (stream << mx.arange(32, dtype=mx.uint32)).sum(axis=-1).astype(mx.uint32)  # (R, n * bits / 32)


def mse_quantize(
    w: mx.array,
    bits: int,
    group_size: int,
    shrinks=(0.85, 0.9, 0.95, 1.0),
    iters: int = 4,
    dtype: mx.Dtype = mx.float16,
) -> tuple[mx.array, mx.array, mx.array]:
    """Affine quantization like ``mx.quantize`` (same packed weight, scales and biases in ``dtype``),
    with each group's scale and bias chosen to minimise the squared error of what is stored.

    Candidates per group: ``mx.quantize``'s own, and for each clipping ratio in ``shrinks`` a range
    refined by alternating least squares (codes for the current stored scale/bias, then the
    least-squares scale/bias for those codes). The best candidate per group is kept, so the error is
    never above ``mx.quantize``'s. No data is needed.
    """
    rows, cols = w.shape
    step = max(1, (1 << 22) // cols)  # rows at a time: 4 M weights, a few float32 copies of 16 MiB each
    packed, all_scales, all_biases = [], [], []
    for r0 in range(0, rows, step):
        chunk = w[r0 : r0 + step].astype(mx.float32)
        g = chunk.reshape(chunk.shape[0], -1, group_size)  # (R, G, gs)
        _, s, b = mx.quantize(chunk, group_size, bits)
        best_s, best_b = _stored(s, dtype), _stored(b, dtype)
        best_err = mx.square(_codes(g, best_s, best_b, bits) * best_s[..., None] + best_b[..., None] - g).sum(-1)
        lo, hi = g.min(-1), g.max(-1)  # (R, G)
        mean_w = g.mean(-1)  # (R, G)
        for shrink in shrinks:
            half = (hi - lo) * (shrink / 2)
            s, b = 2 * half / (2**bits - 1), (hi + lo) / 2 - half
            for it in range(iters + 1):
                s_st, b_st = _stored(mx.maximum(s, 1e-7), dtype), _stored(b, dtype)
                q = _codes(g, s_st, b_st, bits)
                if it == iters:
                    break
                dq = q - q.mean(-1, keepdims=True)
                var = mx.square(dq).sum(-1)
                s = mx.where(var > 0, (dq * g).sum(-1) / mx.maximum(var, 1e-30), s_st)
                b = mean_w - s * q.mean(-1)
            err = mx.square(q * s_st[..., None] + b_st[..., None] - g).sum(-1)
            better = err < best_err
            best_err = mx.where(better, err, best_err)
            best_s, best_b = mx.where(better, s_st, best_s), mx.where(better, b_st, best_b)
            mx.eval(best_err, best_s, best_b)
        codes = _codes(g, best_s, best_b, bits).reshape(chunk.shape)
        packed.append(_pack(codes, bits))
        all_scales.append(best_s.astype(dtype))
        all_biases.append(best_b.astype(dtype))
        mx.eval(packed[-1], all_scales[-1], all_biases[-1])
    return mx.concatenate(packed), mx.concatenate(all_scales), mx.concatenate(all_biases)


def _gptq_rounded(
    model: nn.Module, chosen: dict[str, dict], calibration: Calibration, log: Callable[[str], None] | None, dtype: mx.Dtype
) -> dict:
    """GPTQ the token table, then the chosen Linears of the blocks on the calibration texts (the
    model keeps float weights; position 0's row takes the first token's table error).

    The table is rounded first and the Linears are calibrated on its rounded rows, so that each
    Linear's refit (``compensate``) absorbs part of the table's error too (MiniLM ``compact``, two
    draws: mean over the 283 texts +0.0002, "ok" +0.0002 / +0.0006). Rows whose error later moves
    into a float row ([CLS] into position 0, the end token into its token type) enter as float."""
    from . import calibrate
    from .calibration_texts import CALIBRATION_TEXTS

    def batches_of(texts):
        return calibrate.make_batches(calibration.text_encoder, texts, calibration.max_length, calibration.padding_side)

    batches = batches_of(CALIBRATION_TEXTS)
    paths = {module_role(path): path for path, m in model.named_modules() if isinstance(m, nn.Embedding)}
    token_path, position_path = paths.get("token_embedding"), paths.get("position_embedding")
    added = calibration.text_encoder.encode([""], calibration.max_length)[0]  # what every text gets
    first = {int(v) for b in batches for v in np.array(b.input_ids)[:, 0]}
    fixed_first = added[0] if added and first == {added[0]} and position_path is not None else None  # BERT's [CLS]
    exact = [r for r in (fixed_first, calibration.end_row) if r is not None]
    rounded, table_q = {}, None
    if token_path in chosen:
        table = calibrate.get_module(model, token_path)
        scripts = calibrate.token_scripts(calibration.text_encoder.tokenizer, table.weight.shape[0])
        max_rows = max(16, min(256, TABLE_HESSIAN_BYTES // (8 * table.weight.shape[1] ** 2)))
        subset = CALIBRATION_TEXTS[:: -(-len(CALIBRATION_TEXTS) // TABLE_TEXTS)]
        sensitivity = calibrate.table_sensitivity(
            model, token_path, batches_of(subset), POOLERS[calibration.pooling], scripts, added, max_rows, TABLE_PROBES
        )
        if log:
            log(f"table sensitivity: {len(sensitivity.rows)} rows of their own")
        w = np.array(table.weight.astype(mx.float32))  # (V, D)
        table_q = calibrate.gptq_table(
            w, sensitivity, chosen[token_path]["bits"], chosen[token_path]["group_size"], dtype=dtype
        )
        rows = table_q.dequantize()
        rows[exact] = w[exact]
        rounded[token_path] = mx.array(rows)
    done = calibrate.gptq(model, chosen, batches, module_role, log=log, rounded=rounded, dtype=dtype, **GPTQ_OPTIONS)
    if table_q is not None:
        table.weight = mx.array(w)
        done[token_path] = table_q
        if fixed_first is not None:
            # The token every text starts with always sits at position 0: that position's row takes
            # its rounding error, so the pair adds up as in the float model.
            positions = calibrate.get_module(model, position_path)
            error = w[fixed_first] - table_q.dequantize(rows=[fixed_first])[0]
            positions.weight = mx.concatenate([positions.weight[:1] + mx.array(error)[None], positions.weight[1:]])
    return done


def _end_token(folder: Path, model: nn.Module, recipe: str) -> tuple[int, int, dict] | None:
    """``(token id, its token type, tokenizer.json)`` when the tokenizer ends every single text with
    one special token (BERT's [SEP]) and ``recipe`` keeps the model's token-type table in float
    while it quantizes the token table; else None."""
    embeddings = getattr(model, "embeddings", None)
    if embeddings is None or not hasattr(embeddings, "token_type_embeddings"):
        return None
    choose, n_layers = RECIPES[recipe].choose, model.args.num_hidden_layers
    if choose("embeddings.token_type_embeddings", embeddings.token_type_embeddings, n_layers) is not False:
        return None
    if choose("embeddings.word_embeddings", embeddings.word_embeddings, n_layers) is False:
        return None
    tokenizer_json = read_json(folder / "tokenizer.json")
    post = tokenizer_json.get("post_processor") if isinstance(tokenizer_json, dict) else None
    if not isinstance(post, dict) or post.get("type") != "TemplateProcessing":
        return None
    single = post.get("single", [])
    last = single[-1].get("SpecialToken") if single else None
    ids = post.get("special_tokens", {}).get(last["id"], {}).get("ids", []) if last else []
    if sum("Sequence" in item for item in single) != 1 or len(ids) != 1:
        return None
    return ids[0], last["type_id"], tokenizer_json


def _end_token_type(model: nn.Module, end: tuple[int, int, dict], float_row: np.ndarray) -> dict | None:
    """Give the end token a token type of its own whose float row carries the end token's rounding
    error, so that the two add up as in the float model; returns the tokenizer.json that marks it.

    Every text holds the end token ([SEP]), so its rounding error reaches every embedding, and most
    on short texts: in MiniLM at 4-bit g128, three large entries widen its groups and its relative
    error (0.24) is twice the median row's. Like [CLS] into position 0's row, the error moves into a
    float row, here a new token type (stock BERT adds ``token_type_embeddings[type_ids]`` to every
    token); the tokenizer's single-text template gives [SEP] that type, pairs keep theirs. A loader
    that ignores the tokenizer's type ids gets the rounded row, as before. Skipped when the type
    table is quantized (``uniform``) or the token table is not.
    """
    token_id, end_type, tokenizer_json = end
    table, types = model.embeddings.word_embeddings, model.embeddings.token_type_embeddings
    if not isinstance(table, nn.QuantizedEmbedding) or isinstance(types, nn.QuantizedEmbedding):
        return None
    rounded = mx.dequantize(
        table.weight[token_id : token_id + 1],
        table.scales[token_id : token_id + 1],
        table.biases[token_id : token_id + 1],
        group_size=table.group_size,
        bits=table.bits,
    )[0].astype(mx.float32)
    row = types.weight[end_type].astype(mx.float32) + mx.array(float_row) - rounded  # (D,)
    types.weight = mx.concatenate([types.weight, row.astype(types.weight.dtype)[None]])
    tokenizer_json = json.loads(json.dumps(tokenizer_json))
    tokenizer_json["post_processor"]["single"][-1]["SpecialToken"]["type_id"] = types.weight.shape[0] - 1
    return tokenizer_json


def quantize_model(
    model: nn.Module,
    bits: int,
    group_size: int,
    recipe: str = "uniform",
    rounding: str | None = None,
    calibration: Calibration | None = None,
    log: Callable[[str], None] | None = None,
    dtype: mx.Dtype = mx.float16,
) -> dict:
    """Quantize in place; return the per-module overrides (keys are this model's module paths).

    ``rounding`` overrides the recipe's (``"nearest"``, ``"mse"`` or ``"gptq"``); ``"gptq"`` needs
    ``calibration``. ``dtype`` (float16 or bfloat16) is what scales and biases will be stored in:
    ``"mse"`` and ``"gptq"`` choose them among its values.
    """
    rounding = _check_recipe(recipe, rounding)
    if rounding == "gptq" and calibration is None:
        raise ValueError("rounding='gptq' runs the model on calibration texts: pass calibration=Calibration(...)")
    choose = RECIPES[recipe].choose
    n_layers = model.args.num_hidden_layers
    overrides: dict[str, dict | bool] = {}
    chosen: dict[str, dict] = {}
    unfit: dict[str, tuple[int, int]] = {}  # {path: (input size, group size)} left in float by their size
    defaulted = False  # whether the recipe leaves any layer to bits / group_size
    for path, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            continue
        choice = choose(path, module, n_layers)
        defaulted |= choice is None
        params = {"bits": bits, "group_size": group_size}
        if choice is False:
            if _quantizable(module, group_size):
                overrides[path] = False
            continue
        if isinstance(choice, dict):
            params.update(choice)
        if not _quantizable(module, params["group_size"]):
            unfit[path] = (module.weight.shape[-1], params["group_size"], params["bits"])
            continue
        if params != {"bits": bits, "group_size": group_size}:
            overrides[path] = params
        chosen[path] = params
    changed = [f"{k}={v}" for k, v, default in (("bits", bits, DEFAULT_BITS), ("group_size", group_size, DEFAULT_GROUP_SIZE)) if v != default]
    if changed and not defaulted:
        warnings.warn(
            f"the {recipe} recipe sets every layer's bits and group size, so {' and '.join(changed)} changes only "
            "config.json's default entry, not the weights: drop it, or use recipe 'uniform' to quantize at it",
            UserWarning, stacklevel=caller_stacklevel(),
        )
    if unfit:
        (first, (size, gs, b)), more = next(iter(unfit.items())), len(unfit) - 1
        fits = [g for g in (32, 64, 128) if all(n % g == 0 for n, _, _ in unfit.values())]
        fix = (f"group size {' or '.join(map(str, fits))} quantizes them" if fits
               else "no group size MLX offers (32, 64, 128) divides their input sizes")
        if recipe != "uniform" and fits:
            fix = f"the {recipe} recipe sets their group size; `--recipe uniform` with {fix}"
        if not chosen:  # a folder with a quantization block and no quantized weights would not load
            raise ValueError(
                f"no layer can be quantized: every input size is no multiple of the group size ({first}: {size} "
                f"inputs for {b}-bit group size {gs}); {fix}, or bits=16 stores float weights"
            )
        warnings.warn(
            f"{len(unfit)} layer(s) stay in float: their input size is no multiple of the group size "
            f"({first}: {size} inputs for {b}-bit group size {gs}{f', and {more} more' if more else ''}); {fix}",
            UserWarning, stacklevel=caller_stacklevel(),
        )

    if rounding == "nearest":
        nn.quantize(model, group_size=group_size, bits=bits, class_predicate=lambda path, m: chosen.get(path, False))
        return overrides
    done = _gptq_rounded(model, chosen, calibration, log, dtype) if rounding == "gptq" else {}
    data_free = {  # "mse"; with "gptq", the other tables (and any Linear outside the blocks)
        path: mse_quantize(m.weight, chosen[path]["bits"], chosen[path]["group_size"], dtype=dtype)
        for path, m in model.named_modules()
        if path in chosen and path not in done
    }
    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=lambda path, m: chosen.get(path, False))
    for path, m in model.named_modules():
        if path in done:
            q = done[path]
            m.weight = _pack(mx.array(q.codes), q.bits)
            m.scales = mx.array(q.scales).astype(dtype)
            m.biases = mx.array(q.biases).astype(dtype)
        elif path in data_free:
            m.weight, m.scales, m.biases = data_free[path]
    return overrides


DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def _half_dtype(weights: dict[str, mx.array]) -> mx.Dtype:
    """bfloat16 for a source stored in bfloat16, else float16.

    Models trained in bfloat16 can carry activations past float16's 65504 (Qwen's maintainers on
    Qwen2 in float16: NaN after layer 1), and a GPU computes in the checkpoint's dtype; mlx-lm
    keeps the source's dtype too. float16 holds 3 more mantissa bits for everything else."""
    floating = {v.dtype for v in weights.values() if mx.issubdtype(v.dtype, mx.floating)}
    return mx.bfloat16 if mx.bfloat16 in floating else mx.float16


def _choice(name: str, value, choices: tuple[int, ...]) -> int:
    """``value`` as a plain int (a numpy integer from a sweep is one), when it is one of ``choices``."""
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if integral and int(value) in choices:
        return int(value)
    kind = "" if integral else f" ({type(value).__name__}; give an int)"
    raise ValueError(f"{name}={value!r} is not supported{kind}; choose one of {choices}")


def _check_options(bits: int, group_size: int, recipe: str, rounding: str | None) -> tuple[int, int, str | None]:
    """(bits, group_size, the rounding ``convert`` uses: the recipe's unless given, None for float weights),
    once the options are checked."""
    bits, group_size = _choice("bits", bits, BITS), _choice("group_size", group_size, GROUP_SIZES)
    chosen = _check_recipe(recipe, rounding)
    if bits >= 16 and (recipe != "uniform" or rounding is not None or group_size != DEFAULT_GROUP_SIZE):
        ignored = [(k, v) for k, v in (("recipe", recipe), ("rounding", rounding)) if v not in (None, "uniform")]
        ignored += [("group_size", group_size)] if group_size != DEFAULT_GROUP_SIZE else []
        raise ValueError(
            f"bits={bits} stores float weights, so {' and '.join(f'{k}={v!r}' for k, v in ignored)} would be ignored: "
            f"give bits <= {max(b for b in BITS if b < 16)} to quantize, or drop {' and '.join(k for k, _ in ignored)} to store floats"
        )
    return bits, group_size, None if bits >= 16 else chosen


def _check_recipe(recipe: str, rounding: str | None) -> str:
    """The rounding to use: ``rounding``, else the recipe's."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}. Known recipes: {', '.join(RECIPES)}")
    if rounding is not None and rounding not in ROUNDINGS:
        raise ValueError(f"Unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    return rounding or RECIPES[recipe].rounding


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    bits: int = DEFAULT_BITS,
    group_size: int = DEFAULT_GROUP_SIZE,
    recipe: str = "uniform",
    rounding: str | None = None,
    report: bool = True,
    overwrite: bool = False,
    pooling: str | None = None,
) -> FidelityReport | None:
    """Convert ``src`` (folder, alias or Hub id of a full-precision model) into ``dst``. A registry
    alias or mlx-community id (a quantized checkpoint) converts from the model's full-precision
    upstream: ``minilm`` from ``sentence-transformers/all-MiniLM-L6-v2``.

    Returns a :class:`~mlx_embed.fidelity.FidelityReport` of ``dst`` against ``src`` (``report=True``),
    else None. ``bits`` 16 / 32 store 16-bit (see below) / float32 weights without quantization. ``recipe``
    (see :data:`RECIPES`) picks per-module bits and the rounding; ``bits`` / ``group_size`` are the
    defaults for modules the recipe leaves alone. ``rounding`` overrides the recipe's.

    16-bit values (weights at ``bits=16``; else scales, biases, norms and float tables) are
    bfloat16 when the source stores bfloat16, else float16 (as mlx-community's BERT files).
    """
    bits, group_size, rounding = _check_options(bits, group_size, recipe, rounding)
    for name, value in (("report", report), ("overwrite", overwrite)):
        if not isinstance(value, (bool, np.bool_)):  # overwrite="no" must not replace a folder
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if isinstance(dst, (str, os.PathLike)) and not os.fspath(dst).strip():
        raise ValueError(f"the destination is {os.fspath(dst)!r}: give the folder to write the converted model to")
    resolved = loading.resolve(loading.full_precision(src))
    config = loading.read_config(resolved.path)
    if loading.quantization_config(config):
        raise ValueError(f"{resolved.path} is already quantized: convert from the full-precision model")
    spec = loading.spec_for(resolved, config, pooling)  # fails early on unknown pooling
    dst = Path(dst).expanduser()
    if dst.resolve() == resolved.path.resolve():
        raise ValueError(f"{dst} is the source folder: converting in place would overwrite its weights; pick another folder")
    saving.check_destination(dst, overwrite, resolved.path)
    if loading.hides_a_registry_name(dst):
        warnings.warn(
            f"{dst} is also the name of a registry model: load({os.fspath(dst)!r}) run in {Path.cwd()} will load this "
            f"folder, not the registry's (a folder comes first); pick another name, e.g. {dst.name}-{bits}bit",
            UserWarning, stacklevel=caller_stacklevel(),
        )

    source_weights = loading.load_weights(resolved.path)
    half = _half_dtype(source_weights)
    try:
        model = loading.build_model(config, source_weights)
    except ValueError as err:  # the config and the weights disagree: say whose
        raise ValueError(f"{resolved.path}: {err}") from None
    encoder = text_encoder_for(resolved.path, spec, config)  # a tokenizer load() would refuse stops it here
    del source_weights
    model.set_dtype(half if bits == 16 else mx.float32)
    out_config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    if out_config.get("model_type") == "qwen3":  # no LM head is written (sanitize drops one): stock loaders then build none
        out_config["tie_word_embeddings"] = True
    tokenizer_json = None  # rewritten when the end token gets a token type of its own
    if bits <= 8:
        calibration = None
        end = _end_token(resolved.path, model, recipe)
        if rounding == "gptq":
            end_row = None if end is None else end[0]
            calibration = Calibration(encoder, spec.padding_side, spec.max_length, spec.pooling, end_row)
        end_float = None if end is None else np.array(model.embeddings.word_embeddings.weight[end[0]].astype(mx.float32))
        overrides = quantize_model(model, bits, group_size, recipe, rounding, calibration, dtype=half)
        tokenizer_json = None if end is None else _end_token_type(model, end, end_float)
        if tokenizer_json is not None:
            out_config["type_vocab_size"] = model.embeddings.token_type_embeddings.weight.shape[0]
        model.set_dtype(half)
        quant = {"group_size": group_size, "bits": bits, "mode": "affine"}
        quant.update({ARCHITECTURES[config["model_type"]].SAVE_PREFIX + path: value for path, value in overrides.items()})
        out_config["quantization"] = quant
        out_config["quantization_config"] = quant
    out_config["torch_dtype"] = out_config["dtype"] = DTYPE_NAMES[mx.float32 if bits == 32 else half]
    out_config["mlx_embed"] = {
        "recipe": recipe if bits <= 8 else None,
        "rounding": rounding,
        "source": resolved.name if resolved.source == "folder" else spec.upstream_id or resolved.name,
    }
    hub_id = None if resolved.source == "folder" else out_config["mlx_embed"]["source"]
    saving.save_folder(dst, resolved.path, model, out_config, tokenizer_json, spec, hub_id)

    if not report:
        return None
    from .api import load
    from .fidelity import compare

    reference = load(resolved.path, pooling=spec.pooling)
    return compare(reference, load(dst))
