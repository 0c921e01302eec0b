"""Encoder architectures, one file each. A model maps token ids and a mask to hidden states ``(B, L, D)``."""

from . import bert, qwen3

ARCHITECTURES = {"bert": bert, "qwen3": qwen3}
