"""Retrieval metrics with trec_eval / pytrec_eval / BEIR definitions.

Pure Python + NumPy; importing this module never imports MLX.

Conventions
-----------
All per-query functions take ``ranked`` (document ids, best first), ``relevant``
and a cut-off ``k >= 1``.  ``relevant`` is either a collection of the ids judged
relevant (a set is fastest) or one query's qrels, ``{doc id: label}``.  Duplicate
ids within the top ``k`` raise ``ValueError``.  Only the first ``k`` entries of
``ranked`` are looked at.  ``ranked`` may be shorter than ``k``; missing
positions simply count as non-relevant.  As in trec_eval (``relevance_level``
1), a label ``>= 1`` means relevant for P, R, MRR and MAP and labels ``<= 0``
mean judged non-relevant; nDCG uses the labels themselves as gains (graded, like
pytrec_eval's ``ndcg_cut`` and ranx's ``ndcg``), which for 0/1 labels is binary
nDCG.  Labels are integers there (pytrec_eval refuses others); a fractional label
counts as its integer part, as ranx stores it: 0.5 is judged non-relevant with gain 0
in every metric, 1.5 is relevant with gain 1.

With ``hits@k`` = number of relevant docs among the top ``k`` and
``R`` = number of relevant docs for the query (``|relevant|``):

``P@k`` (trec_eval ``P_k``)
    ``hits@k / k``.  The denominator is always ``k``, even when fewer than
    ``k`` documents were retrieved.
``R@k`` (trec_eval ``recall_k``)
    ``hits@k / R``.
``MRR@k`` (trec_eval ``recip_rank`` computed on the run cut at ``k``; ranx ``mrr@k``)
    ``1 / rank`` of the first relevant document within the top ``k``
    (ranks start at 1), else 0.
``nDCG@k`` (trec_eval ``ndcg_cut_k``)
    ``DCG@k / IDCG@k`` with ``DCG@k = sum_{i <= k} gain(d_i) / log2(i + 1)``,
    ``gain`` the label where it is positive (1 for a collection of ids), else 0,
    and ``IDCG@k`` the same sum over the ``k`` largest gains (the ideal ranking).
``MAP@k`` (trec_eval ``map_cut_k``; ranx ``map@k``)
    ``(sum_{i <= k, d_i relevant} P@i) / R``.  The denominator is the *total*
    number of relevant documents ``R``, **not** ``min(k, R)``: with three
    relevant docs and a relevant doc at rank 1, ``MAP@1 = 1/3``.  This was
    checked against pytrec_eval-terrier 0.5.11 and ranx 0.3.21, which agree.

Queries without relevant documents
    Every per-query function returns ``0.0`` when ``relevant`` is empty (this
    is also what pytrec_eval reports for a query whose qrels contain only
    non-relevant judgements).  :func:`evaluate_run` *skips* such queries when
    averaging, just as it ignores queries absent from the qrels: their metrics
    are undefined (``R = 0``).  trec_eval counts them as zeros (a query whose
    qrels hold only labels ``<= 0``; with ``-c`` also one in the qrels with no
    label at all), and so does BEIR, which averages pytrec_eval's per-query
    output: on such qrels our means are higher.  The bundled corpora refuse
    queries without a relevant document, so ``mlx-embed eval`` never meets one.

Queries missing from the run
    A query that has relevant documents in the qrels but no entry (or an
    empty entry) in the run is evaluated as an empty ranking and scores 0 on
    every metric.  This matches ``trec_eval -c`` and ranx with
    ``make_comparable=True``.  (pytrec_eval only reports queries present in
    the run, so averaging its output silently drops them.)

Ordering and ties
    A run maps ``query id -> {doc id: score}``.  Documents are ordered by
    score descending and ties are broken by doc id *descending* in plain
    string order (``"d9"`` before ``"d10"``, ``"b"`` before ``"a"``).  That is
    trec_eval's rule (score desc, then docno desc by ``strcmp``), so runs
    with tied scores give the same numbers as pytrec_eval; Python's code-point
    order equals ``strcmp`` byte order on UTF-8.  The given rank field of a
    TREC run plays no role, exactly as in trec_eval.  :func:`rank` uses the same
    rule when it truncates to ``top_k``.  Scores are compared as given (float64
    for Python floats), as trec_eval 10 does; trec_eval 9 and pytrec_eval store
    them as float32, so scores closer than float32 resolves tie there and may
    rank differently (our runs hold float32 cosines, so they agree).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "precision_at_k",
    "recall_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "map_at_k",
    "sort_doc_scores",
    "per_query_metrics",
    "evaluate_run",
    "rank",
    "cosine_scores",
    "METRIC_NAMES",
]

#: Metric name prefixes used in the keys returned by :func:`evaluate_run`.
METRIC_NAMES = ("P", "R", "MRR", "nDCG", "MAP")


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _top_k(ranked: Iterable[str], k: int) -> list[str]:
    if isinstance(ranked, (str, bytes)):
        raise TypeError("ranked must be a sequence of document ids, not a single string")
    top = list(ranked[:k]) if isinstance(ranked, Sequence) else list(itertools.islice(ranked, k))
    if len(set(top)) != len(top):
        raise ValueError("ranked list contains duplicate document ids")
    return top


def _label(doc: str, label) -> float:
    """The label's integer part (ranx's int64 labels; trec_eval's are integers)."""
    if isinstance(label, (str, bytes, bool)) or not isinstance(label, (int, float, np.integer, np.floating)):
        raise TypeError(f"the relevance label of document {doc!r} must be a number, got {label!r}")
    if not math.isfinite(label):  # an infinite gain would make nDCG inf / inf
        raise ValueError(f"the relevance label of document {doc!r} is {label}: labels must be finite numbers")
    return float(math.trunc(label))


def _gains(relevant: Collection[str] | Mapping[str, float]) -> dict[str, float]:
    """``{doc id: gain}``: 1 for each id of a collection; a qrels mapping's positive labels."""
    if isinstance(relevant, (str, bytes)):
        raise TypeError("relevant must be a collection of document ids or a {doc id: label} mapping, not a single string")
    if isinstance(relevant, Mapping):
        return {d: g for d, g in ((d, _label(d, v)) for d, v in relevant.items()) if g > 0}
    return dict.fromkeys(relevant, 1.0)


def _as_set(relevant: Collection[str] | Mapping[str, float]) -> frozenset:
    """The relevant ids: a collection's, or a mapping's with label >= 1 (trec_eval's relevance_level)."""
    if isinstance(relevant, (set, frozenset)):
        return relevant
    return frozenset(d for d, g in _gains(relevant).items() if g >= 1)


def precision_at_k(ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int) -> float:
    """``P@k = hits in top k / k`` (trec_eval ``P_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    hits = sum(1 for d in _top_k(ranked, k) if d in rel)
    return hits / k


def recall_at_k(ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int) -> float:
    """``R@k = hits in top k / |relevant|`` (trec_eval ``recall_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    hits = sum(1 for d in _top_k(ranked, k) if d in rel)
    return hits / len(rel)


def mrr_at_k(ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int) -> float:
    """Reciprocal rank of the first relevant doc within the top ``k``, else 0."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    for i, d in enumerate(_top_k(ranked, k), start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int) -> float:
    """nDCG@k with ``1/log2(rank+1)`` discount and the labels as gains (trec_eval ``ndcg_cut_k``)."""
    return _ndcg(ranked, _gains(relevant), _check_k(k))


def _ndcg(ranked: Sequence[str], gains: dict[str, float], k: int) -> float:
    if not any(g >= 1 for g in gains.values()):
        return 0.0
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 1) for i, d in enumerate(_top_k(ranked, k), start=1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg


def map_at_k(ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int) -> float:
    """Average precision cut at ``k``, divided by ``|relevant|`` (trec_eval ``map_cut_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    hits = 0
    total = 0.0
    for i, d in enumerate(_top_k(ranked, k), start=1):
        if d in rel:
            hits += 1
            total += hits / i
    return total / len(rel)


_FUNCS = {
    "P": precision_at_k,
    "R": recall_at_k,
    "MRR": mrr_at_k,
    "nDCG": ndcg_at_k,
    "MAP": map_at_k,
}


def sort_doc_scores(doc_scores: Mapping[str, float]) -> list[str]:
    """Doc ids ordered by score descending, ties broken by doc id descending.

    This is trec_eval's ordering rule, see the module docstring.
    """
    if not isinstance(doc_scores, Mapping):
        raise TypeError(f"a run maps each query to {{doc id: score}}, got {type(doc_scores).__name__}")
    for d, s in doc_scores.items():
        if isinstance(s, (str, bytes, bool)) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise TypeError(f"the score of document {d!r} must be a number, got {s!r}")
        if math.isnan(s):
            raise ValueError(f"NaN score for document {d!r}")
    # Two stable sorts: secondary key (doc id desc) first, then primary key.
    ids = sorted(doc_scores, reverse=True)
    ids.sort(key=lambda d: float(doc_scores[d]), reverse=True)
    return ids


def _normalise_ks(ks: Iterable[int]) -> tuple[int, ...]:
    if not isinstance(ks, Iterable) or isinstance(ks, (str, bytes)):
        raise TypeError(f"ks must be an iterable of cut-offs such as (1, 5, 10), got {ks!r}")
    out = tuple(_check_k(k) for k in ks)
    if not out:
        raise ValueError("ks must contain at least one cut-off")
    return tuple(sorted(set(out)))


def per_query_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Iterable[int] = (1, 3, 5, 10),
) -> dict[str, dict[str, float]]:
    """Metrics for every query that has at least one relevant doc in ``qrels``.

    Ids compare as strings (as in trec_eval and :func:`rank`), so integer ids in ``qrels`` match ``rank``'s run.
    Returns ``{str(query_id): {"P@k": .., "R@k": .., "MRR@k": .., "nDCG@k": .., "MAP@k": ..}}``.
    Queries missing from ``run`` are scored as empty rankings (all zeros);
    queries in ``run`` but not in ``qrels`` and queries whose qrels hold no
    label ``>= 1`` are left out.
    """
    ks = _normalise_ks(ks)
    run = {str(q): {str(d): v for d, v in docs.items()} if isinstance(docs, Mapping) else docs
           for q, docs in run.items()}  # ids compare as strings, as in trec_eval and rank()
    out: dict[str, dict[str, float]] = {}
    for qid, judgements in qrels.items():
        if not isinstance(judgements, Mapping):
            raise TypeError(f"qrels[{qid!r}] must map doc ids to labels, got {type(judgements).__name__}")
        qid = str(qid)
        gains = _gains({str(d): g for d, g in judgements.items()})
        relevant = frozenset(d for d, g in gains.items() if g >= 1)
        if not relevant:
            continue
        ranked = sort_doc_scores(run.get(qid, {}))
        row: dict[str, float] = {}
        for name, fn in _FUNCS.items():
            for k in ks:
                row[f"{name}@{k}"] = _ndcg(ranked, gains, k) if name == "nDCG" else fn(ranked, relevant, k)
        out[qid] = row
    return out


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Iterable[int] = (1, 3, 5, 10),
) -> dict[str, float]:
    """Mean of each metric over the queries that have relevant docs in ``qrels``.

    Keys are ``"P@k"``, ``"R@k"``, ``"MRR@k"``, ``"nDCG@k"`` and ``"MAP@k"`` for
    every ``k`` in ``ks``.  See the module docstring for the exact definitions
    and for how ties, missing queries and queries without relevant docs are
    handled.  Raises ``ValueError`` if no query has a relevant document.
    """
    ks = _normalise_ks(ks)
    per_query = per_query_metrics(run, qrels, ks)
    if not per_query:
        raise ValueError("qrels contain no query with a relevant document (label >= 1)")
    n = len(per_query)
    keys = [f"{name}@{k}" for name in METRIC_NAMES for k in ks]
    return {key: math.fsum(row[key] for row in per_query.values()) / n for key in keys}


def cosine_scores(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """``(Q, N)`` cosine similarities: sentence-transformers' default score, whether or not a model
    normalizes its own vectors (a folder without a ``Normalize`` module does not)."""
    queries = np.asarray(queries, dtype=np.float32)
    docs = np.asarray(docs, dtype=np.float32)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)  # (Q, D)
    docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)  # (N, D)
    return queries @ docs.T  # (Q, N)


def rank(
    scores: np.ndarray,
    doc_ids: Sequence[str],
    query_ids: Sequence[str],
    top_k: int | None = None,
) -> dict[str, dict[str, float]]:
    """Turn a ``(n_queries, n_docs)`` score matrix into a run dict.

    ``run[query_ids[i]][doc_ids[j]] = float(scores[i, j])``.  With ``top_k``,
    only the ``top_k`` best docs per query are kept, chosen with the same rule
    as :func:`sort_doc_scores` (score desc, then doc id desc), so truncating
    never changes the metrics at cut-offs ``<= top_k``.  The dicts are filled
    best first.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_queries, n_docs), got shape {scores.shape}")
    n_q, n_d = scores.shape
    doc_ids = [str(d) for d in doc_ids]
    query_ids = [str(q) for q in query_ids]
    if len(query_ids) != n_q:
        raise ValueError(f"got {len(query_ids)} query ids for {n_q} score rows")
    if len(doc_ids) != n_d:
        raise ValueError(f"got {len(doc_ids)} doc ids for {n_d} score columns")
    if len(set(doc_ids)) != n_d:
        raise ValueError("doc_ids must be unique")
    if len(set(query_ids)) != n_q:
        raise ValueError("query_ids must be unique")
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    scores = scores.astype(np.float64, copy=False)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if top_k is None:
        top_k = n_d
    else:
        top_k = min(_check_k(top_k), n_d)

    # Position of every doc id in descending string order: 0 = largest id.
    desc_pos = np.empty(n_d, dtype=np.int64)
    desc_pos[np.array(sorted(range(n_d), key=doc_ids.__getitem__, reverse=True), dtype=np.int64)] = np.arange(n_d)
    run: dict[str, dict[str, float]] = {}
    for i, qid in enumerate(query_ids):
        row = scores[i]
        # lexsort: last key is primary -> score desc, then doc id desc.
        order = np.lexsort((desc_pos, -row))[:top_k]
        run[qid] = {doc_ids[j]: float(row[j]) for j in order}
    return run
