"""Scoring for the similarity battery: ranking relations, not absolute cut-offs."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CATEGORIES = ("en", "ru", "zh", "xling-ru-en", "xling-ru-zh", "xling-en-zh", "code-xlang", "code-impl", "code-nl")


ENV = {"qwen3-0.6b": "MLX_EMBED_QWEN3_PATH", "minilm": "MLX_EMBED_MINILM_PATH", "bge-small": "MLX_EMBED_BGE_PATH"}


def load_battery_model(alias_or_path: str):
    """The model the battery runs and battery_report.py measures, the same way: for a registry alias the
    folder its ENV variable names, else its packaged float32 copy (MiniLM: what its expectations were
    measured on; a 4-bit copy in the HF cache ranks some cases differently), else the HF cache; always
    computing in float32 (a GPU's default for a 4-bit checkpoint is 16-bit). Offline: no download."""
    import mlx_embed
    from mlx_embed.loading import package_folder

    source = os.environ.get(ENV.get(alias_or_path, ""), "") or package_folder(alias_or_path) or alias_or_path
    return mlx_embed.load(source, local_files_only=True, dtype="float32")


def load_cases() -> list[dict]:
    return json.loads((HERE / "cases.json").read_text())


def load_capabilities() -> dict:
    return json.loads((HERE / "capabilities.json").read_text())


@dataclass(frozen=True)
class CaseResult:
    id: str
    category: str
    positive: float  # cos(anchor, positive)
    best_negative: float  # max cos(anchor, negative)

    @property
    def gap(self) -> float:
        return self.positive - self.best_negative


def score(encode: Callable[[list[str]], np.ndarray], cases: list[dict]) -> list[CaseResult]:
    """Embed every text of every case once (one batch) and score each case."""
    texts = sorted({t for c in cases for t in (c["anchor"], c["positive"], *c["negatives"])})
    index = {t: i for i, t in enumerate(texts)}
    vectors = encode(texts)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    results = []
    for c in cases:
        a = vectors[index[c["anchor"]]]
        pos = float(a @ vectors[index[c["positive"]]])
        neg = max(float(a @ vectors[index[n]]) for n in c["negatives"])
        results.append(CaseResult(c["id"], c["category"], pos, neg))
    return results


def lexical_encoder(features: str) -> Callable[[list[str]], np.ndarray]:
    """Count vectors of ``"words"`` (lower-cased, identifiers split at ``_`` and camelCase, each CJK
    ideograph a word, as Chinese has no spaces) or ``"trigrams"`` (characters): a scorer with surface
    overlap and no meaning."""

    def feats(text: str) -> list[str]:
        if features == "words":
            pattern = r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z][a-z]*|[^\W_]+"
            return [w.lower() for w in re.findall(pattern, re.sub(r"([a-z])([A-Z])", r"\1 \2", text))]
        text = text.lower()
        return [text[i : i + 3] for i in range(len(text) - 2)]

    def encode(texts: list[str]) -> np.ndarray:
        counts = [Counter(feats(t)) for t in texts]
        vocab = {f: i for i, f in enumerate(sorted({f for c in counts for f in c}))}
        out = np.zeros((len(texts), len(vocab) + 1))
        out[:, -1] = 1e-6  # no overlap scores ~0, not NaN
        for row, c in zip(out, counts):
            for f, n in c.items():
                row[vocab[f]] = n
        return out

    return encode


def category_passes(results: list[CaseResult], category: str, margin: float) -> bool:
    """A category passes when every case ranks its positive above every negative by more than ``margin``."""
    return all(r.gap > margin for r in results if r.category == category)
