"""Reference implementations for parity tests: numpy dequantization and transformers models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Skip reasons that name the fix (the README's install line).
INSTALL = "pip install torch==2.13.0 && pip install -e '.[test]'"
NEEDS_TORCH = f"needs torch: {INSTALL}"
NEEDS_TRANSFORMERS = f"needs transformers: {INSTALL}"
NEEDS_SENTENCE_TRANSFORMERS = f"needs sentence-transformers: {INSTALL}"
NEEDS_SCIPY = f"needs scipy: {INSTALL}"


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """Integers from MLX's packing: a little-endian bit stream of ``bits``-wide values in uint32 words."""
    stream = np.unpackbits(packed.astype("<u4").view(np.uint8), axis=-1, bitorder="little")  # (..., 32 * words)
    stream = stream.reshape(*packed.shape[:-1], -1, bits)
    return (stream.astype(np.int64) << np.arange(bits)).sum(-1)


def dequantize(packed: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group_size: int) -> np.ndarray:
    q = unpack(packed, bits).astype(np.float64)  # (out, in)
    out, n = q.shape
    q = q.reshape(out, n // group_size, group_size)
    w = q * scales.astype(np.float64)[..., None] + biases.astype(np.float64)[..., None]
    return w.reshape(out, n).astype(np.float32)


def dequantized_state_dict(folder: Path) -> tuple[dict, dict]:
    """(config without quantization, {HF key: fp32 numpy}) from an mlx-community style folder."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    quant = config.pop("quantization", None) or {}
    config.pop("quantization_config", None)
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):  # numpy has no bfloat16: widen it in torch
        tensors.update({k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in load_file(str(f)).items()})
    out = {}
    for key, value in tensors.items():
        if key.endswith((".scales", ".biases")):
            continue
        base = key[: -len(".weight")] if key.endswith(".weight") else None
        if base is not None and f"{base}.scales" in tensors:
            params = quant.get(base) if isinstance(quant.get(base), dict) else quant
            value = dequantize(value, tensors[f"{base}.scales"], tensors[f"{base}.biases"], params["bits"], params["group_size"])
        out[key.removeprefix("model.")] = value.astype(np.float32)
    return config, out


def torch_model(folder: Path):
    """A transformers BertModel / Qwen3Model in fp32 with the folder's (dequantized) weights."""
    import torch
    import transformers

    config, state = dequantized_state_dict(folder)
    if config["model_type"] == "bert":
        cfg = transformers.BertConfig(**{k: v for k, v in config.items() if k not in ("architectures",)})
        model = transformers.BertModel(cfg, add_pooling_layer=False)
    else:
        cfg = transformers.Qwen3Config(**{k: v for k, v in config.items() if k not in ("architectures",)})
        model = transformers.Qwen3Model(cfg)
    cfg._attn_implementation = "eager"
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.startswith("pooler.") and not k.endswith("position_ids")]
    assert not missing and not unexpected, (missing, unexpected)
    return model.float().eval()


def last_token_pool(last_hidden_states, attention_mask):
    """Qwen3-Embedding's official pooling (from its README)."""
    import torch

    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    sequence_lengths = attention_mask.sum(dim=1) - 1
    batch_size = last_hidden_states.shape[0]
    return last_hidden_states[torch.arange(batch_size, device=last_hidden_states.device), sequence_lengths]


def reference_embed(
    model, input_ids: np.ndarray, attention_mask: np.ndarray, pooling: str, token_type_ids: np.ndarray | None = None
) -> np.ndarray:
    """Pooled, L2-normalized reference embeddings from a transformers model."""
    import torch

    ids = torch.from_numpy(input_ids.astype(np.int64))
    mask = torch.from_numpy(attention_mask.astype(np.int64))
    extra = {} if token_type_ids is None else {"token_type_ids": torch.from_numpy(token_type_ids.astype(np.int64))}
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, **extra).last_hidden_state
        if pooling == "cls":
            pooled = hidden[:, 0]
        elif pooling == "mean":
            m = mask.unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        else:
            pooled = last_token_pool(hidden, mask)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return pooled.numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)
