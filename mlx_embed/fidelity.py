"""How faithful a converted model's embeddings are to its full-precision source."""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._messages import caller_stacklevel
from .eval.metrics import cosine_scores
from .samples import SAMPLE_TEXTS
from .tokenize import TruncationWarning

if TYPE_CHECKING:
    from .embedder import Embedder


@dataclass(frozen=True)
class FidelityReport:
    n_texts: int
    cosine_min: float
    cosine_mean: float
    cosine_p5: float
    spearman: float  # rank correlation of all pairwise similarities, candidate vs reference
    topk_agreement: float | None = None  # mean |top-k(candidate) ∩ top-k(reference)| / k on the bundled corpora
    topk: int | None = None
    per_text: tuple[float, ...] = ()
    worst_text: str = ""
    settings_differ: tuple[str, ...] = ()  # how the two models embed, where that differs (spec_differences, tokenizer_differences)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        line = (
            f"fidelity on {self.n_texts} texts: cosine min {self.cosine_min:.5f} mean {self.cosine_mean:.5f} "
            f"p5 {self.cosine_p5:.5f}; pairwise-similarity Spearman {self.spearman:.5f}"
        )
        if self.topk_agreement is not None:
            line += f"; top-{self.topk} retrieval agreement {self.topk_agreement:.3f}"
        if self.worst_text:
            shown = self.worst_text if len(self.worst_text) <= 40 else self.worst_text[:37] + "..."
            line += f"; worst text {shown!r}"
        if self.settings_differ:
            line += f"\nsettings differ (reference vs candidate): {'; '.join(self.settings_differ)}"
        return line


# what decides how a model turns texts into vectors, besides its weights
_SETTINGS = ("pooling", "normalize", "max_length", "lowercase", "include_prompt", "document_prompt", "default_prompt", "end_token", "padding_side")


def spec_differences(reference: Embedder, candidate: Embedder) -> tuple[str, ...]:
    """``"name: reference value vs candidate value"`` for each setting of the two Embedders' specs that
    differs (the query prompt as ``encode_query`` fills it in)."""
    a, b = reference.spec, candidate.spec
    pairs = [(name, getattr(a, name), getattr(b, name)) for name in _SETTINGS]
    pairs.append(("query_prompt", a.format_query_prompt(), b.format_query_prompt()))
    return tuple(f"{name}: {x!r} vs {y!r}" for name, x, y in pairs if x != y)


def tokenizer_differences(reference: Embedder, candidate: Embedder, texts: list[str]) -> tuple[str, ...]:
    """How the two models' tokenizers differ on ``texts``: vocabulary size, and how many texts get other token
    ids (each cut to the shorter max_length). Empty for stand-ins without a ``text_encoder``."""
    a, b = (getattr(m, "text_encoder", None) for m in (reference, candidate))
    if a is None or b is None:
        return ()
    said = []
    sizes = a.tokenizer.get_vocab_size(), b.tokenizer.get_vocab_size()
    if sizes[0] != sizes[1]:
        said.append(f"tokenizer vocabulary: {sizes[0]} vs {sizes[1]} tokens")
    length = min(reference.max_length, candidate.max_length)
    differ = sum(x != y for x, y in zip(a.tokenize(texts, length)[0], b.tokenize(texts, length)[0]))
    if differ:
        said.append(f"token ids: {differ} of the {len(texts)} texts tokenized differently")
    return tuple(said)


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # average ranks of ties
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("spearman: the similarities hold inf or NaN")
    ra, rb = _rank(a), _rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")  # undefined for constant similarities (scipy.stats.spearmanr: nan too)
    return float(np.corrcoef(ra, rb)[0, 1])


def per_text_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def _corpora_for(k: object) -> list:
    """The bundled retrieval corpora, once ``k`` is known to be a number of top documents each of them has."""
    from .eval.corpora import list_corpora, load_corpus

    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an int >= 1 (the number of top documents compared), got {k!r}")
    corpora = [load_corpus(name) for name in list_corpora()]
    smallest = min(corpora, key=lambda c: len(c.doc_texts))
    if k > len(smallest.doc_texts):
        raise ValueError(f"k={k} is more than the {len(smallest.doc_texts)} documents of the {smallest.name!r} "
                         f"corpus: pass k <= {len(smallest.doc_texts)}")
    return corpora


def topk_agreement(reference: Embedder, candidate: Embedder, k: int = 5) -> float:
    """Mean overlap of the top-k documents per query (by cosine) on the bundled retrieval corpora."""
    corpora, k = _corpora_for(k), int(k)
    return _agreement(_top_k(reference, corpora, k), _top_k(candidate, corpora, k), k)


def _top_k(model: Embedder, corpora: list, k: int) -> list[np.ndarray]:
    """Per corpus, each query's top-``k`` documents by cosine: ``(Q, k)`` indices."""
    tops = []
    for corpus in corpora:
        scores = cosine_scores(model.encode_query(corpus.query_texts), model.encode_document(corpus.doc_texts))  # (Q, N)
        tops.append(np.argsort(-scores, axis=1, kind="stable")[:, :k])
    return tops


def _agreement(reference: list[np.ndarray], candidate: list[np.ndarray], k: int) -> float:
    return float(np.mean([len(set(r) & set(c)) / k for ref, cand in zip(reference, candidate) for r, c in zip(ref, cand)]))


@contextlib.contextmanager
def _truncations() -> Iterator[list[TruncationWarning]]:
    """Collect the ``TruncationWarning``s raised inside (other warnings pass through as they were raised)."""
    cut: list[TruncationWarning] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield cut
    for w in caught:
        if isinstance(w.message, TruncationWarning):
            cut.append(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _warn_truncated(models: dict[str, Embedder], cut: dict[str, tuple[list, list]], n_texts: int, n_retrieval: int) -> None:
    """One warning for the texts cut while comparing (``cut``: per model, the sample's warnings and the
    retrieval corpora's), in place of one per encode call."""
    counts = {name: [sum(w.truncated for w in ws) for ws in pair] for name, pair in cut.items()}
    if not any(map(any, counts.values())):
        return
    said = []
    for name, (sample, retrieval) in counts.items():
        line = f"{sample} of the {n_texts} texts" + (f" and {retrieval} of the {n_retrieval} retrieval texts" if n_retrieval else "")
        said.append(f"{line} for the {name} (max_length={models[name].max_length})")
    warnings.warn(
        TruncationWarning(
            f"texts longer than max_length were truncated while comparing: {'; '.join(said)}; the report compares "
            "the embeddings of the truncated texts",
            max(map(sum, counts.values())), n_texts + n_retrieval,
        ),
        stacklevel=caller_stacklevel(),
    )


def compare(reference: Embedder, candidate: Embedder, texts: Sequence[str] = SAMPLE_TEXTS, *, retrieval_k: int | None = 5) -> FidelityReport:
    """Compare two Embedders on ``texts`` (and, with ``retrieval_k``, on the bundled retrieval corpora).
    Texts either model truncates are named in one ``TruncationWarning``."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if len(texts) < 2:
        raise ValueError(f"compare needs at least 2 texts (the Spearman correlation is over pairs), got {len(texts)}")
    corpora = _corpora_for(retrieval_k) if retrieval_k is not None else []
    k = int(retrieval_k or 0)
    models = {"reference": reference, "candidate": candidate}
    vectors, sample_cut, retrieval_cut, tops = {}, {}, {}, {}
    for name, model in models.items():
        with _truncations() as sample_cut[name]:
            vectors[name] = model.encode(texts)
    ref, cand = vectors["reference"], vectors["candidate"]
    if ref.shape[1] != cand.shape[1]:
        raise ValueError(
            f"the two models give vectors of different sizes ({ref.shape[1]} and {cand.shape[1]}): "
            "compare a converted model with the model it was converted from"
        )
    for name, model in models.items():
        with _truncations() as retrieval_cut[name]:
            tops[name] = _top_k(model, corpora, k)
    cut = {name: (sample_cut[name], retrieval_cut[name]) for name in models}
    n_retrieval = sum(len(c.query_texts) + len(c.doc_texts) for c in corpora)
    _warn_truncated(models, cut, len(texts), n_retrieval)
    cos = per_text_cosine(ref, cand)
    iu = np.triu_indices(len(texts), k=1)
    agreement = _agreement(tops["reference"], tops["candidate"], k) if corpora else None
    return FidelityReport(
        n_texts=len(texts),
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        cosine_p5=float(np.percentile(cos, 5)),
        spearman=spearman(cosine_scores(ref, ref)[iu], cosine_scores(cand, cand)[iu]),
        topk_agreement=agreement,
        topk=int(retrieval_k) if agreement is not None else None,
        per_text=tuple(float(c) for c in cos),
        worst_text=texts[int(np.argmin(cos))],
        settings_differ=spec_differences(reference, candidate) + tokenizer_differences(reference, candidate, texts),
    )
