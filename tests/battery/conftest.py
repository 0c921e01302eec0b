"""Which models the battery runs: every registry model whose weights are on this machine, loaded by
``harness.load_battery_model`` (the same way scripts/battery_report.py measures them). Qwen3 and
bge-small run when their weights are in the HF cache (`hf download <hub id>`) or in a folder named by
MLX_EMBED_QWEN3_PATH / MLX_EMBED_BGE_PATH (MLX_EMBED_MINILM_PATH for MiniLM).
"""

from __future__ import annotations

import pytest

from mlx_embed import ModelNotFoundError, registry

from .harness import ENV, load_battery_model

_missing: set[str] = set()


def battery_embedder(alias: str):
    """A freshly loaded model for ``alias`` (the caller keeps its scores, not the model: Qwen3 holds about
    1.9 GB on Linux CPU), or a pytest skip that says how to provide its weights."""
    if alias not in _missing:
        try:
            return load_battery_model(alias)
        except ModelNotFoundError:
            _missing.add(alias)
    spec = registry.get(alias)
    pytest.skip(f"{alias} weights not found: `hf download {spec.hub_id}` or set {ENV[alias]}=/path/to/folder")
