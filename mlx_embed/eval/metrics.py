"""Binary-relevance retrieval metrics with trec_eval / pytrec_eval / BEIR definitions.

Pure Python + NumPy; importing this module never imports MLX.

Conventions
-----------
All per-query functions take ``ranked`` (document ids, best first), ``relevant``
(the ids judged relevant for the query; a set is fastest, and note that a qrels
dict would be read as its keys, 0-labelled ones included) and a cut-off
``k >= 1``.  Duplicate ids within the top ``k`` raise ``ValueError``.  Only the
first ``k`` entries of ``ranked`` are looked at.  ``ranked`` may be shorter
than ``k``; missing positions simply count as non-relevant.  Relevance is
binary: in :func:`evaluate_run` a qrels label ``>= 1`` means relevant and
labels ``<= 0`` mean judged non-relevant (trec_eval's default
``relevance_level`` of 1).  Graded labels are *binarised*, so for qrels with
labels above 1 our nDCG deliberately differs from pytrec_eval's graded
``ndcg_cut``.

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
``nDCG@k`` (trec_eval ``ndcg_cut_k`` with 0/1 labels)
    ``DCG@k / IDCG@k`` with ``DCG@k = sum_{i <= k, d_i relevant} 1 / log2(i + 1)``
    and ``IDCG@k = sum_{i=1}^{min(k, R)} 1 / log2(i + 1)`` (the ideal ranking
    puts all relevant docs first).
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
    are undefined (``R = 0``).  Note that BEIR averages pytrec_eval's
    per-query output, so on qrels containing queries with only 0-labels BEIR
    counts them as zeros while we leave them out.

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
    rule when it truncates to ``top_k``.
"""

from __future__ import annotations

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


def _top_k(ranked: Sequence[str], k: int) -> Sequence[str]:
    top = ranked[:k]
    if len(set(top)) != len(top):
        raise ValueError("ranked list contains duplicate document ids")
    return top


def _as_set(relevant: Collection[str]) -> frozenset:
    return relevant if isinstance(relevant, (set, frozenset)) else frozenset(relevant)


def precision_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """``P@k = hits in top k / k`` (trec_eval ``P_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    hits = sum(1 for d in _top_k(ranked, k) if d in rel)
    return hits / k


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """``R@k = hits in top k / |relevant|`` (trec_eval ``recall_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    hits = sum(1 for d in _top_k(ranked, k) if d in rel)
    return hits / len(rel)


def mrr_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Reciprocal rank of the first relevant doc within the top ``k``, else 0."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    for i, d in enumerate(_top_k(ranked, k), start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Binary nDCG@k with ``1/log2(rank+1)`` discount (trec_eval ``ndcg_cut_k``)."""
    k = _check_k(k)
    rel = _as_set(relevant)
    if not rel:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(_top_k(ranked, k), start=1) if d in rel)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(rel)) + 1))
    return dcg / idcg


def map_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
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
    for d, s in doc_scores.items():
        if isinstance(s, (float, np.floating)) and math.isnan(s):
            raise ValueError(f"NaN score for document {d!r}")
    # Two stable sorts: secondary key (doc id desc) first, then primary key.
    ids = sorted(doc_scores, reverse=True)
    ids.sort(key=lambda d: float(doc_scores[d]), reverse=True)
    return ids


def _normalise_ks(ks: Iterable[int]) -> tuple[int, ...]:
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

    Returns ``{query_id: {"P@k": .., "R@k": .., "MRR@k": .., "nDCG@k": .., "MAP@k": ..}}``.
    Queries missing from ``run`` are scored as empty rankings (all zeros);
    queries in ``run`` but not in ``qrels`` and queries whose qrels hold no
    label ``>= 1`` are left out.
    """
    ks = _normalise_ks(ks)
    out: dict[str, dict[str, float]] = {}
    for qid, judgements in qrels.items():
        relevant = frozenset(d for d, r in judgements.items() if r >= 1)
        if not relevant:
            continue
        ranked = sort_doc_scores(run.get(qid, {}))
        row: dict[str, float] = {}
        for name, fn in _FUNCS.items():
            for k in ks:
                row[f"{name}@{k}"] = fn(ranked, relevant, k)
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
