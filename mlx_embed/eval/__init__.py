"""Retrieval evaluation helpers: trec_eval-compatible metrics and bundled corpora.

Import-light: nothing here imports MLX (only NumPy and the standard library).
"""

from .corpora import Corpus, list_corpora, load_corpus
from .metrics import (
    evaluate_run,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    precision_at_k,
    rank,
    recall_at_k,
    sort_doc_scores,
)

__all__ = [
    "Corpus",
    "list_corpora",
    "load_corpus",
    "evaluate_run",
    "per_query_metrics",
    "rank",
    "sort_doc_scores",
    "precision_at_k",
    "recall_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "map_at_k",
]
