"""BERT encoder (all-MiniLM-L6-v2, bge-small-en-v1.5) with Hugging Face ``BertModel`` parameter names."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from . import kernels
from .activations import gelu


_TF_NAMES = {"gamma": "weight", "beta": "bias"}  # LayerNorm parameters as the TensorFlow port named them
SAVE_PREFIX = ""  # checkpoint keys are this module's names (transformers' BertModel layout)


@dataclass
class ModelArgs:
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    position_embedding_type: str = "absolute"

    @classmethod
    def from_dict(cls, params: dict) -> "ModelArgs":
        if params.get("hidden_act", "gelu") not in ("gelu", "gelu_python"):  # both transformers' erf GELU
            raise ValueError(f"BERT with hidden_act={params['hidden_act']!r} is not supported (only 'gelu')")
        if params.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("Only absolute position embeddings are supported for BERT")
        if params.get("is_decoder") or params.get("add_cross_attention"):  # transformers then masks causally
            raise ValueError("BERT as a decoder (is_decoder / add_cross_attention: true) is not supported")
        args = cls(**{k: v for k, v in params.items() if k in inspect.signature(cls).parameters})
        eps = args.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(f"layer_norm_eps is {eps}, expected a number >= 0: correct config.json or re-download the model")
        if args.hidden_size % args.num_attention_heads:
            raise ValueError(
                f"hidden_size={args.hidden_size} is not a multiple of num_attention_heads={args.num_attention_heads}: "
                "correct config.json or re-download the model"
            )
        return args


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array) -> mx.array:
        positions = mx.arange(input_ids.shape[1])[None]  # (1, L)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )  # (B, L, D)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.num_attention_heads
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        B, L, D = x.shape
        H = self.n_heads
        q, k, v = (
            proj(x).reshape(B, L, H, D // H).transpose(0, 2, 1, 3)  # (B, H, L, Dh)
            for proj in (self.query, self.key, self.value)
        )
        out = kernels.attend(q, k, v, (D // H) ** -0.5, mask)  # (B, H, L, Dh)
        return out.transpose(0, 2, 1, 3).reshape(B, L, D)


class Output(nn.Module):
    """Projection, dropout-free residual and LayerNorm (HF ``BertSelfOutput`` and ``BertOutput``)."""

    def __init__(self, in_dim: int, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(in_dim, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, h: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = SelfAttention(args)
        self.output = Output(args.hidden_size, args)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)

    def __call__(self, x: mx.array) -> mx.array:
        return gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = Output(args.intermediate_size, args)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        h = self.attention(x, mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = [Layer(args) for _ in range(args.num_hidden_layers)]


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.encoder = Encoder(args)

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array,
        token_type_ids: mx.array | None = None,
    ) -> mx.array:
        """``input_ids``, ``attention_mask``: (B, L), right-padded. Returns hidden states (B, L, D)."""
        for x in self.layerwise(input_ids, attention_mask, token_type_ids):
            pass
        return x

    def layerwise(
        self,
        input_ids: mx.array,
        attention_mask: mx.array,
        token_type_ids: mx.array | None = None,
    ) -> Iterator[mx.array]:
        """The (lazy) hidden states (B, L, D) after the embeddings and after each layer; the last is
        the output. Lets a caller evaluate several batches a layer at a time on different streams."""
        if token_type_ids is None:
            token_type_ids = mx.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        yield x
        for layer in self.encoder.layer:
            x = layer(x, attention_mask)  # (B, L): padding keys are never attended
            yield x

    @staticmethod
    def sanitize(weights: dict) -> dict:
        """Map checkpoint keys to this module's names.

        ``bert.`` prefixes come from ``Bert*For*`` heads; ``position_ids`` is a buffer, not a weight;
        the pooler and MLM heads are never used, since embeddings pool the hidden states. Checkpoints
        from the original TensorFlow port name LayerNorm parameters ``gamma`` / ``beta`` (transformers
        renames them when loading).
        """
        out = {}
        for key, value in weights.items():
            key = key.removeprefix("bert.")
            if key.startswith(("pooler.", "cls.")) or key.endswith("position_ids"):
                continue
            stem, _, leaf = key.rpartition(".")
            if stem.endswith("LayerNorm") and leaf in _TF_NAMES:
                key = f"{stem}.{_TF_NAMES[leaf]}"
            out[key] = value
        return out
