"""Text embeddings in pure MLX: ``mlx_embed.load("minilm").encode(["hello"])``."""

from __future__ import annotations

from . import _blas

_blas.interpose()  # before the first `import mlx.core`; see _blas for why and how to turn it off

from .api import load  # noqa: E402
from .conversion import convert  # noqa: E402
from .embedder import Embedder  # noqa: E402
from .loading import ModelNotFoundError  # noqa: E402
from .registry import REGISTRY, ModelSpec  # noqa: E402
from .tokenize import TruncationWarning  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load", "convert", "Embedder", "ModelSpec", "REGISTRY", "ModelNotFoundError", "TruncationWarning"]
