"""Convert a Hugging Face / sentence-transformers folder into the mlx-community layout.

Output: ``model.safetensors`` (MLX names; Qwen3 keys under ``model.`` as mlx-lm saves them),
``config.json`` with a ``quantization`` block (``group_size``, ``bits``, ``mode`` and per-module
overrides, as mlx-lm reads them), and the tokenizer and sentence-transformers files of the source.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from . import loading

BITS = (4, 6, 8, 16, 32)
GROUP_SIZES = (32, 64, 128)
COPY_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
COPY_DIRS = ("1_Pooling",)
SAVE_PREFIX = {"qwen3": "model.", "bert": ""}

# A recipe maps (module path, module, n_layers) to a per-module override: None keeps the default
# bits/group size, False keeps the module unquantized, a dict sets {"bits", "group_size"}.
Recipe = Callable[[str, nn.Module, int], "dict | bool | None"]
RECIPES: dict[str, Recipe] = {"uniform": lambda path, module, n_layers: None}


def _quantizable(module: nn.Module, group_size: int) -> bool:
    return isinstance(module, (nn.Linear, nn.Embedding)) and module.weight.shape[-1] % group_size == 0


def quantize_model(model: nn.Module, bits: int, group_size: int, recipe: str = "uniform") -> dict:
    """Quantize in place; return the per-module overrides (keys are this model's module paths)."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}. Known recipes: {', '.join(RECIPES)}")
    choose = RECIPES[recipe]
    n_layers = model.args.num_hidden_layers
    overrides: dict[str, dict | bool] = {}

    def predicate(path: str, module: nn.Module):
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            return False
        choice = choose(path, module, n_layers)
        params = {"bits": bits, "group_size": group_size}
        if choice is False:
            if _quantizable(module, group_size):
                overrides[path] = False
            return False
        if isinstance(choice, dict):
            params.update(choice)
        if not _quantizable(module, params["group_size"]):
            return False
        if params != {"bits": bits, "group_size": group_size}:
            overrides[path] = params
        return params

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    return overrides


def bits_per_weight(model: nn.Module) -> float:
    """Stored bits (weights, scales, biases, norms) per parameter of the float model."""
    stored = n_params = 0
    for _, m in model.named_modules():
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            n_params += m.scales.size * m.group_size
            n_params += m.bias.size if "bias" in m else 0
            stored += sum(v.nbytes for _, v in tree_flatten(m.parameters()))
    quantized_keys = {
        f"{name}.{k}"
        for name, m in model.named_modules()
        if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))
        for k, _ in tree_flatten(m.parameters())
    }
    for key, v in tree_flatten(model.parameters()):
        if key not in quantized_keys:
            n_params += v.size
            stored += v.nbytes
    return 8 * stored / n_params


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    bits: int = 4,
    group_size: int = 64,
    recipe: str = "uniform",
    report: bool = True,
    overwrite: bool = False,
    pooling: str | None = None,
):
    """Convert ``src`` (folder, alias or Hub id of a full-precision model) into ``dst``.

    Returns a :class:`~mlx_embed.fidelity.FidelityReport` of ``dst`` against ``src`` (``report=True``),
    else None. ``bits`` 16 / 32 store float16 / float32 weights without quantization.
    """
    if bits not in BITS:
        raise ValueError(f"bits={bits!r} is not supported; choose one of {BITS}")
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group_size={group_size!r} is not supported; choose one of {GROUP_SIZES}")
    resolved = loading.resolve(src)
    config = loading.read_config(resolved.path)
    if loading.quantization_config(config):
        raise ValueError(f"{resolved.path} is already quantized: convert from the full-precision model")
    spec = loading.spec_for(resolved, config, pooling)  # fails early on unknown pooling
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True (--overwrite) or pick another folder")
    dst.mkdir(parents=True, exist_ok=True)

    model = loading.build_model(config, loading.load_weights(resolved.path))
    model.set_dtype(mx.float16 if bits == 16 else mx.float32)
    out_config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    if bits <= 8:
        overrides = quantize_model(model, bits, group_size, recipe)
        model.set_dtype(mx.float16)  # scales, biases and norms in fp16, as mlx-community stores them
        prefix = SAVE_PREFIX[config["model_type"]]
        quant = {"group_size": group_size, "bits": bits, "mode": "affine"}
        quant.update({prefix + path: value for path, value in overrides.items()})
        out_config["quantization"] = quant
        out_config["quantization_config"] = quant
    out_config["torch_dtype"] = out_config["dtype"] = "float16" if bits == 16 else "float32"
    out_config["mlx_embed"] = {"bits_per_weight": round(bits_per_weight(model), 4), "recipe": recipe, "source": spec.upstream_id or resolved.name}

    prefix = SAVE_PREFIX[config["model_type"]]
    weights = {prefix + k: v for k, v in tree_flatten(model.parameters())}
    mx.save_safetensors(str(dst / "model.safetensors"), weights, metadata={"format": "mlx"})
    (dst / "config.json").write_text(json.dumps(out_config, indent=2, ensure_ascii=False) + "\n")
    for name in COPY_FILES:
        if (resolved.path / name).exists():
            shutil.copy2(resolved.path / name, dst / name)
    for name in COPY_DIRS:
        if (resolved.path / name).is_dir():
            shutil.copytree(resolved.path / name, dst / name, dirs_exist_ok=True)

    if not report:
        return None
    from .api import load
    from .fidelity import compare

    reference = load(resolved.path, pooling=spec.pooling)
    converted = load(dst, pooling=spec.pooling)
    return compare(reference, converted)
