"""Text embeddings in pure MLX: ``mlx_embed.load("minilm").encode(["hello"])``.

``load(model)`` takes a registry alias (``qwen3-0.6b``, ``minilm``, ``bge-small``; see ``REGISTRY``), a
Hugging Face Hub id, or a local folder, and returns an :class:`Embedder`:

- ``encode(texts)``: a ``str`` gives a 1-D float32 numpy array, a list ``(n, dim)``, in input order;
  L2-normalized as the model's sentence-transformers files say (the registry models: yes).
- ``encode_query(texts, task=None)`` / ``encode_document(texts)``: with the model's prompts (Qwen3's
  ``Instruct: {task}\\nQuery:``, bge's query prefix); use them for retrieval.
- Texts over ``max_length`` tokens are cut with a :class:`TruncationWarning` giving the count, or raise
  ``ValueError`` with ``truncate=False``. Bad input raises ``TypeError`` / ``ValueError`` naming the
  text and the fix; missing weights raise :class:`ModelNotFoundError` naming the download command.

``convert(src, dst)`` quantizes a full-precision model to the mlx-community layout (see its recipes).
The command line is ``mlx-embed`` (``mlx-embed --help``).
"""

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
