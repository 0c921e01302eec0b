"""Small retrieval corpora bundled with mlx_embed (package data, no download).

Each corpus lives in ``mlx_embed/eval/data/<name>.json`` with the layout::

    {"name": ..., "language": ..., "description": ...,
     "documents": [{"id": "d01", "text": ...}, ...],
     "queries":   [{"id": "q01", "text": ..., "relevant": ["d03", ...]}, ...]}

The texts and relevance judgements were written by hand for this project.
Relevance is binary: every listed document is relevant (label 1), every other
document is non-relevant.  Importing this module does not import MLX.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["Corpus", "list_corpora", "load_corpus"]

_PACKAGE = "mlx_embed.eval"
_DATA_DIR = "data"


@dataclass(frozen=True)
class Corpus:
    """A bundled retrieval corpus.

    ``documents`` and ``queries`` are ``(id, text)`` pairs in file order;
    ``qrels`` maps each query id to ``{doc_id: 1}`` for its relevant documents,
    the format :func:`mlx_embed.eval.metrics.evaluate_run` expects.
    """

    name: str
    language: str
    description: str
    documents: list[tuple[str, str]]
    queries: list[tuple[str, str]]
    qrels: dict[str, dict[str, int]]

    @property
    def doc_ids(self) -> list[str]:
        return [d for d, _ in self.documents]

    @property
    def doc_texts(self) -> list[str]:
        return [t for _, t in self.documents]

    @property
    def query_ids(self) -> list[str]:
        return [q for q, _ in self.queries]

    @property
    def query_texts(self) -> list[str]:
        return [t for _, t in self.queries]


def _data_dir():
    return resources.files(_PACKAGE).joinpath(_DATA_DIR)


def list_corpora() -> list[str]:
    """Names of the bundled corpora, sorted (e.g. ``["code", "en", "ru", "zh"]``)."""
    names = [
        entry.name[: -len(".json")]
        for entry in _data_dir().iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    ]
    return sorted(names)


def _parse(name: str, raw: dict) -> Corpus:
    def fail(msg: str) -> ValueError:
        return ValueError(f"bundled corpus {name!r} is malformed: {msg}")

    try:
        documents = [(str(d["id"]), str(d["text"])) for d in raw["documents"]]
        queries = [(str(q["id"]), str(q["text"])) for q in raw["queries"]]
        relevant = {str(q["id"]): [str(r) for r in q["relevant"]] for q in raw["queries"]}
        language = str(raw["language"])
        description = str(raw.get("description", ""))
    except (KeyError, TypeError) as exc:
        raise fail(f"missing or invalid field ({exc!r})") from exc

    doc_ids = [d for d, _ in documents]
    if len(set(doc_ids)) != len(doc_ids):
        raise fail("duplicate document ids")
    if len(relevant) != len(queries):
        raise fail("duplicate query ids")
    known = set(doc_ids)
    qrels: dict[str, dict[str, int]] = {}
    for qid, rel in relevant.items():
        if not rel:
            raise fail(f"query {qid!r} has no relevant documents")
        unknown = [r for r in rel if r not in known]
        if unknown:
            raise fail(f"query {qid!r} lists unknown documents {unknown}")
        if len(set(rel)) != len(rel):
            raise fail(f"query {qid!r} lists a relevant document twice")
        qrels[qid] = {r: 1 for r in rel}
    return Corpus(
        name=str(raw.get("name", name)),
        language=language,
        description=description,
        documents=documents,
        queries=queries,
        qrels=qrels,
    )


def load_corpus(name: str) -> Corpus:
    """Load a bundled corpus by name; see :func:`list_corpora` for valid names."""
    valid = list_corpora()
    if name not in valid:
        raise ValueError(f"unknown corpus {name!r}; valid names: {', '.join(valid)}")
    text = _data_dir().joinpath(f"{name}.json").read_text(encoding="utf-8")
    return _parse(name, json.loads(text))
