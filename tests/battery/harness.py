"""Scoring for the similarity battery: ranking relations, not absolute cut-offs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CATEGORIES = ("en", "ru", "zh", "xling-ru-en", "xling-ru-zh", "xling-en-zh", "code-xlang", "code-impl", "code-nl")


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


def category_passes(results: list[CaseResult], category: str, margin: float) -> bool:
    """A category passes when every case ranks its positive above every negative by more than ``margin``."""
    return all(r.gap > margin for r in results if r.category == category)
