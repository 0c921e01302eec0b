"""Qwen3 decoder used as an encoder (Qwen3-Embedding), with mlx-lm / Hugging Face parameter names."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from . import kernels
from .activations import silu_mul

SAVE_PREFIX = "model."  # mlx-lm's layout (Qwen3ForCausalLM keys), which sanitize() strips on load


@dataclass
class ModelArgs:
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    rms_norm_eps: float = 1e-6
    head_dim: int | None = 128  # transformers' Qwen3Config default, whatever hidden_size / num_attention_heads is
    rope_theta: float = 10_000.0  # transformers' Qwen3Config default (Qwen3-Embedding's config says 1e6)
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = True

    @classmethod
    def from_dict(cls, params: dict) -> "ModelArgs":
        params = dict(params)
        for key in ("rope_parameters", "rope_scaling"):
            if params.get(key) is not None and not isinstance(params[key], dict):
                raise ValueError(f"{key} is {params[key]!r}, expected an object (or null): correct config.json or re-download the model")
        rope = params.get("rope_parameters") or params.get("rope_scaling") or {}  # transformers >= 5 keeps rope_theta here
        if params.get("rope_theta") is None and "rope_theta" in rope:
            params["rope_theta"] = rope["rope_theta"]
        scaling = params.get("rope_scaling") or {}
        for r in (rope, scaling):
            if r.get("rope_type", r.get("type", "default")) != "default":
                raise ValueError(f"Qwen3 with RoPE scaling {r} is not supported")
        sliding = _sliding_layers(params)
        if sliding:
            raise ValueError(f"Qwen3 with sliding-window attention (use_sliding_window: true; layers {sliding}) is not supported")
        if params.get("hidden_act", "silu") not in ("silu", "swish"):  # transformers' names for one function
            raise ValueError(f"Qwen3 with hidden_act={params['hidden_act']!r} is not supported (only 'silu')")
        if params.get("attention_bias"):
            raise ValueError("Qwen3 with attention_bias: true is not supported (Qwen3's projections have no bias)")
        args = cls(**{k: v for k, v in params.items() if k in inspect.signature(cls).parameters})
        for key in ("rms_norm_eps", "rope_theta"):
            value = getattr(args, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{key} is {getattr(args, key)!r}, expected a number > 0: correct config.json or re-download the model")
        if args.head_dim is None:  # "head_dim": null, where transformers' attention falls back to this
            args.head_dim = args.hidden_size // args.num_attention_heads
        if args.num_attention_heads % args.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={args.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={args.num_key_value_heads}: correct config.json or re-download the model"
            )
        return args


def _sliding_layers(params: dict) -> list[int]:
    """The layers transformers' Qwen3 runs with a sliding window: those ``layer_types`` marks (by default the
    ones from ``max_window_layers`` on), and none unless ``use_sliding_window`` and a ``sliding_window`` are set."""
    if not params.get("use_sliding_window") or params.get("sliding_window", 4096) is None:
        return []
    n = params.get("num_hidden_layers", 0)
    types = params.get("layer_types") or [
        "sliding_attention" if i >= params.get("max_window_layers", 28) else "full_attention" for i in range(n)
    ]
    return [i for i, kind in enumerate(types) if kind == "sliding_attention"]


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.num_attention_heads
        self.n_kv_heads = args.num_key_value_heads
        self.head_dim = head_dim = args.head_dim
        self.rope_theta = args.rope_theta
        self.q_proj = nn.Linear(args.hidden_size, self.n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(args.hidden_size, self.n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(args.hidden_size, self.n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * head_dim, args.hidden_size, bias=False)
        self.q_norm = nn.RMSNorm(head_dim, eps=args.rms_norm_eps)
        self.k_norm = nn.RMSNorm(head_dim, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        B, L, _ = x.shape
        Dh = self.head_dim
        q = self.q_norm(self.q_proj(x).reshape(B, L, self.n_heads, Dh)).transpose(0, 2, 1, 3)  # (B, H, L, Dh)
        k = self.k_norm(self.k_proj(x).reshape(B, L, self.n_kv_heads, Dh)).transpose(0, 2, 1, 3)  # (B, Hkv, L, Dh)
        v = self.v_proj(x).reshape(B, L, self.n_kv_heads, Dh).transpose(0, 2, 1, 3)  # (B, Hkv, L, Dh)
        # Positions 0..L-1 for every row, also when left-padded: RoPE scores depend only on i - j.
        q = mx.fast.rope(q, Dh, traditional=False, base=self.rope_theta, scale=1.0, offset=0)
        k = mx.fast.rope(k, Dh, traditional=False, base=self.rope_theta, scale=1.0, offset=0)
        out = kernels.attend(q, k, v, Dh**-0.5, mask, causal=True)  # (B, H, L, Dh)
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


class MLP(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.up_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.down_proj = nn.Linear(args.intermediate_size, args.hidden_size, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(silu_mul(self.gate_proj(x), self.up_proj(x)))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = Attention(args)
        self.mlp = MLP(args)
        self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x), mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [TransformerBlock(args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(
        self, input_ids: mx.array, attention_mask: mx.array, token_type_ids: mx.array | None = None
    ) -> mx.array:
        """``input_ids``, ``attention_mask``: (B, L), left- or right-padded. Returns final normed hidden (B, L, D)."""
        for x in self.layerwise(input_ids, attention_mask, token_type_ids):
            pass
        return x

    def layerwise(
        self, input_ids: mx.array, attention_mask: mx.array, token_type_ids: mx.array | None = None
    ) -> Iterator[mx.array]:
        """The (lazy) hidden states (B, L, D) after the embeddings and after each layer; the last is
        the final normed output. Lets a caller evaluate batches a layer at a time on different streams."""
        x = self.embed_tokens(input_ids)  # (B, L, D)
        yield x
        for layer in self.layers:
            x = layer(x, attention_mask)  # (B, L): attend makes the causal mask a query block at a time
            yield x
        yield self.norm(x)

    @staticmethod
    def sanitize(weights: dict) -> dict:
        """Map checkpoint keys to this module's names.

        mlx-lm saves ``Qwen3ForCausalLM``-shaped checkpoints (``model.`` prefix, maybe ``lm_head``);
        ``Qwen3Model.save_pretrained`` saves without the prefix. The LM head is never used here, and
        older transformers checkpoints store the rotary ``inv_freq`` buffer, which this model computes.
        """
        out = {}
        for key, value in weights.items():
            key = key.removeprefix("model.")
            if key.startswith("lm_head") or "rotary_emb" in key:
                continue
            out[key] = value
        return out
