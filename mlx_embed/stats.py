"""What a checkpoint costs, read from its files: parameters, bytes on disk, bits per weight."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ._messages import REFETCH

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class CheckpointStats:
    parameters: int  # parameters of the float model the checkpoint stores (quantized ones counted unpacked)
    weights_bytes: int  # sum of the *.safetensors file sizes
    bits_per_weight: float  # 8 * tensor bytes (weights, scales, biases, norms, embeddings) / parameters


def quantization_config(config: dict) -> dict | None:
    """A checkpoint's MLX quantization block (mlx-lm writes it as ``quantization`` and again as
    ``quantization_config``), or None for float weights."""
    quant = config.get("quantization") or config.get("quantization_config")
    if not quant:
        return None
    if not isinstance(quant, dict):
        raise ValueError(f"quantization is {quant!r}, not an object with bits, group_size and mode: {REFETCH}")
    if "quant_method" in quant:
        raise ValueError(
            f"the weights are quantized with {quant['quant_method']!r} (a transformers format), which MLX does not "
            "read: use the full-precision model, or convert that to MLX (`mlx-embed convert SRC DST`)"
        )
    for where, entry in [("quantization", quant)] + [(f"quantization[{k!r}]", v) for k, v in quant.items() if isinstance(v, dict)]:
        for key, kind in (("bits", int), ("group_size", int), ("mode", str)):
            value = entry.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ValueError(f"{where}.{key} is {value!r}, not {'an int' if kind is int else 'a string'}: {REFETCH}")
            if kind is int and value is not None and value < 1:  # MLX divides by group_size: SIGFPE at 0
                raise ValueError(f"{where}.{key} is {value!r}, not a positive int: {REFETCH}")
    return quant


WEIGHT_INDEX = "model.safetensors.index.json"


def weight_files(folder: Path) -> list[Path]:
    """The files holding ``folder``'s tensors: the shards its ``model.safetensors.index.json`` lists, present
    or not (other ``*.safetensors`` beside them, such as another revision's shards, are not the model's), else
    every ``*.safetensors`` in it but hidden ones, with any shard their ``-of-N`` names imply, present or not."""
    from .tokenize import read_json

    index = read_json(folder / WEIGHT_INDEX)
    if not isinstance(index.get("weight_map"), dict):  # pathlib: [ ] in the folder's own name are no pattern;
        # hidden files are not weights (macOS writes ._model.safetensors beside the file on exFAT and SMB)
        found = [f for f in folder.glob("*.safetensors") if not f.name.startswith(".")]
        return sorted(set(found) | {folder / name for f in found for name in _sibling_shards(f.name)})
    names = set(index["weight_map"].values())
    bad = [n for n in names if not isinstance(n, str) or not n or Path(n).name != n]
    if bad:
        raise ValueError(f"{folder / WEIGHT_INDEX} maps weights to {bad[0]!r}, not a file name in the folder: {REFETCH}")
    return [folder / n for n in sorted(names)]


MAX_SHARDS = 10_000  # a name claiming more is taken as it is (no sibling named missing)
_SHARD = re.compile(r"(.+)-(\d+)-of-(\d+)\.safetensors")


def _sibling_shards(name: str) -> list[str]:
    """Every shard a sharded file's name implies (``model-00001-of-00002.safetensors``: both), else none."""
    m = _SHARD.fullmatch(name)
    if m is None or len(m.group(2)) != len(m.group(3)) or int(m.group(3)) > MAX_SHARDS:
        return []
    width, total = len(m.group(3)), int(m.group(3))
    return [f"{m.group(1)}-{i:0{width}d}-of-{m.group(3)}.safetensors" for i in range(1, total + 1)]


def safetensors_header(path: Path) -> dict:
    """``{name: {"dtype", "shape", "data_offsets"}}`` from a safetensors file's header; ValueError naming the
    file and the fix where the header cannot be read or the data does not match it (a truncated file)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = f.read(8)
        n = struct.unpack("<Q", start)[0] if len(start) == 8 else None
        try:
            header = json.loads(f.read(n)) if n is not None and n <= size - 8 else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
    if not isinstance(header, dict):
        raise _unreadable(path, "its header is cut off or is not JSON")
    header.pop("__metadata__", None)
    try:
        end = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise _unreadable(path, "its header lists no data offsets") from None
    if 8 + n + end > size:  # bytes past the data are no harm: MLX reads such a file
        raise _unreadable(path, f"{size - 8 - n:,} bytes of tensor data where its header lists {end:,}")
    return header


def _unreadable(path: Path, what: str) -> ValueError:
    from ._messages import damaged_file_fix

    return ValueError(f"{path} is not a readable safetensors file ({what}); {damaged_file_fix(path)}")


def tensor_headers(files: list[Path]) -> dict[str, dict]:
    """``{name: {"dtype", "shape", ...}}`` over the safetensors ``files``, read from their headers only."""
    tensors: dict[str, dict] = {}
    for f in files:
        tensors.update(safetensors_header(f))
    return tensors


def checkpoint_stats(folder: str | os.PathLike, config: dict | None = None) -> CheckpointStats:
    """``config``: the checkpoint's config (its group sizes) when ``folder`` has no config.json yet."""
    folder = Path(folder)
    files = [f for f in weight_files(folder) if f.is_file()]
    if not files:
        raise FileNotFoundError(f"No *.safetensors in {folder}")
    if config is None:
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    quant = quantization_config(config) or {}
    tensors = tensor_headers(files)
    params = tensor_bytes = 0
    for key, info in tensors.items():
        if key.endswith("position_ids"):  # a buffer saved by old transformers, not a weight
            continue
        n = math.prod(info["shape"])
        tensor_bytes += n * _DTYPE_BYTES[info["dtype"]]
        if key.endswith((".scales", ".biases")):
            continue
        base = key.removesuffix(".weight")
        if key.endswith(".weight") and f"{base}.scales" in tensors:
            override = quant.get(base)
            group_size = (override if isinstance(override, dict) else quant).get("group_size", 64)
            scales = tensors[f"{base}.scales"]["shape"]
            n = scales[0] * scales[-1] * group_size if len(scales) == 2 else n
        params += n
    return CheckpointStats(params, sum(f.stat().st_size for f in files), 8 * tensor_bytes / params)


def weight_format(config: dict, float_dtype: str | None = None) -> str:
    """How a checkpoint stores its weights: ``"4-bit"``, ``"mixed 4/8-bit"`` (per-layer bits), or for an
    unquantized one its float type (``"fp32"``, ``"fp16"``, ``"bf16"``): ``float_dtype`` as read from its
    files, else the config's ``torch_dtype``, else fp32."""
    quant = quantization_config(config)
    if quant:
        bits = {quant.get("bits", 4)} | {v["bits"] for v in quant.values() if isinstance(v, dict) and "bits" in v}
        return f"{bits.pop()}-bit" if len(bits) == 1 else "mixed " + "/".join(str(b) for b in sorted(bits)) + "-bit"
    name = str(float_dtype or config.get("torch_dtype") or config.get("dtype") or "float32").lower()
    return {"f32": "fp32", "float32": "fp32", "f16": "fp16", "float16": "fp16", "bf16": "bf16", "bfloat16": "bf16"}.get(name, name)


def files_float_dtype(folder: Path | None) -> str | None:
    """The float type holding most of the values in ``folder``'s safetensors files (``"F32"``, ...), or None."""
    if folder is None:
        return None
    counts: dict[str, int] = {}
    for info in tensor_headers([f for f in weight_files(folder) if f.is_file()]).values():
        if info["dtype"] in ("F32", "F16", "BF16"):
            counts[info["dtype"]] = counts.get(info["dtype"], 0) + math.prod(info["shape"])
    return max(counts, key=counts.__getitem__) if counts else None
