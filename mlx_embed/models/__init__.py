"""Encoder architectures, one file each. A model maps token ids and a mask to hidden states ``(B, L, D)``."""

from . import bert, qwen3

ARCHITECTURES = {"bert": bert, "qwen3": qwen3}


def max_positions(config: dict) -> int:
    """The positions a model takes: ``max_position_embeddings``, else its architecture's default, as
    transformers' config classes give it (BERT 512, Qwen3 32,768)."""
    arch = ARCHITECTURES.get(config.get("model_type"), bert)
    return config.get("max_position_embeddings") or arch.ModelArgs.max_position_embeddings
