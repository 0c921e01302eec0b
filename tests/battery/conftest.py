"""Which models the battery runs: every registry model whose weights are on this machine, loaded by
``harness.load_battery_model`` (the same way scripts/battery_report.py measures them). Qwen3 and
bge-small run when their weights are in the HF cache (`hf download <hub id>`) or in a folder named by
MLX_EMBED_QWEN3_PATH / MLX_EMBED_BGE_PATH (MLX_EMBED_MINILM_PATH for MiniLM).
"""

from __future__ import annotations

import pytest

from mlx_embed import ModelNotFoundError, registry

from .harness import ENV, load_battery_model

_loaded: dict = {}


def battery_embedder(alias: str):
    """The loaded model for ``alias``, or a pytest skip that says how to provide its weights."""
    if alias not in _loaded:
        try:
            _loaded[alias] = load_battery_model(alias)
        except ModelNotFoundError:
            _loaded[alias] = None
    if _loaded[alias] is None:
        spec = registry.get(alias)
        pytest.skip(
            f"{alias} weights not found: `hf download {spec.hub_id}` or set {ENV[alias]}=/path/to/folder"
        )
    return _loaded[alias]
