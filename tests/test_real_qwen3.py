"""The real Qwen3-Embedding-0.6B, when its weights are on this machine.

Run with the weights in the Hugging Face cache (`hf download
mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ`, or Qwen/Qwen3-Embedding-0.6B) or in a folder named by
MLX_EMBED_QWEN3_PATH=/path/to/folder.
"""

import os

import numpy as np
import pytest

import mlx_embed

HOW = (
    "needs real Qwen3-Embedding-0.6B weights: `hf download mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ` "
    "(HF cache) or MLX_EMBED_QWEN3_PATH=/path/to/folder"
)


def _find():
    folder = os.environ.get("MLX_EMBED_QWEN3_PATH")
    if folder:
        return folder
    for repo in ("mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ", "Qwen/Qwen3-Embedding-0.6B"):
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(repo, local_files_only=True)
        except Exception:  # noqa: BLE001 - not cached
            continue
    return None


@pytest.fixture(scope="module")
def qwen3():
    path = _find()
    if path is None:
        pytest.skip(HOW)
    return mlx_embed.load(path, dtype="float32")  # a GPU would otherwise compute in the checkpoint's bf16 / fp16


@pytest.mark.slow
def test_model_card_scores(qwen3):
    """The scores published on the Qwen3-Embedding-0.6B model card (bf16 weights; 4-bit DWQ within 0.05)."""
    queries = qwen3.encode_query(["What is the capital of China?", "Explain gravity"])
    docs = qwen3.encode_document(
        [
            "The capital of China is Beijing.",
            "Gravity is a force that attracts two bodies towards each other. It gives weight to physical "
            "objects and is responsible for the movement of planets around the sun.",
        ]
    )
    card = np.array([[0.7645568251609802, 0.14142508804798126], [0.13549736142158508, 0.5999549627304077]])
    scores = queries @ docs.T
    tol = 0.05 if "quantization" in qwen3.config else 2e-3
    np.testing.assert_allclose(scores, card, atol=tol)
