"""Structure checks for the bundled retrieval corpora (no model needed)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from mlx_embed.eval.corpora import Corpus, list_corpora, load_corpus
from mlx_embed.eval.metrics import evaluate_run

EXPECTED = {"en", "ru", "zh", "code"}
CJK = re.compile(r"[\u4e00-\u9fff]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def test_list_corpora():
    names = list_corpora()
    assert set(names) >= EXPECTED
    assert names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_corpus("klingon")
    msg = str(info.value)
    assert "klingon" in msg
    for name in EXPECTED:
        assert name in msg
    with pytest.raises(ValueError):
        load_corpus("../en")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_raw_json_layout(name):
    raw = json.loads(resources.files("mlx_embed.eval").joinpath("data", f"{name}.json").read_text("utf-8"))
    assert set(raw) == {"name", "language", "description", "documents", "queries"}
    assert raw["name"] == name
    assert raw["description"].strip()
    for d in raw["documents"]:
        assert set(d) == {"id", "text"}
        assert re.fullmatch(r"d\d{2,}", d["id"])
    for q in raw["queries"]:
        assert set(q) == {"id", "text", "relevant"}
        assert re.fullmatch(r"q\d{2,}", q["id"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_structure(name):
    c = load_corpus(name)
    assert isinstance(c, Corpus)
    assert c.name == name
    assert len(c.documents) >= 30
    assert len(c.queries) >= 15

    doc_ids = c.doc_ids
    query_ids = c.query_ids
    assert len(set(doc_ids)) == len(doc_ids)
    assert len(set(query_ids)) == len(query_ids)
    assert all(t.strip() for t in c.doc_texts)
    assert all(t.strip() for t in c.query_texts)
    assert len(set(c.doc_texts)) == len(c.doc_texts)
    assert len(set(c.query_texts)) == len(c.query_texts)

    assert set(c.qrels) == set(query_ids)
    for qid, rel in c.qrels.items():
        assert 1 <= len(rel) <= 3, qid
        assert set(rel) <= set(doc_ids), qid
        assert all(v == 1 for v in rel.values())
    # Some queries have more than one relevant doc.
    assert any(len(rel) > 1 for rel in c.qrels.values())


def test_languages_are_plausible():
    en, ru, zh, code = (load_corpus(n) for n in ("en", "ru", "zh", "code"))
    assert (en.language, ru.language, zh.language, code.language) == ("en", "ru", "zh", "code")

    for _, text in en.documents + en.queries:
        assert not CJK.search(text) and not CYRILLIC.search(text)
        assert LATIN_WORD.search(text)
    for _, text in ru.documents + ru.queries:
        cyr = len(CYRILLIC.findall(text))
        letters = sum(ch.isalpha() for ch in text)
        assert cyr / letters > 0.8, text
    for _, text in zh.documents + zh.queries:
        han = len(CJK.findall(text))
        letters = sum(ch.isalpha() for ch in text)
        assert han / letters > 0.7, text
    # Code docs look like code; code queries are English prose.
    code_markers = re.compile(r"[(){}\[\]=;|$*]|\s--?\w|\bSELECT\b|\bdef\b|\bfunc\b")
    for _, text in code.documents:
        assert code_markers.search(text), text
    for _, text in code.queries:
        assert not CJK.search(text) and not CYRILLIC.search(text)
        assert len(text.split()) >= 3, text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_oracle_run_scores_perfectly(name):
    # A run that ranks exactly the relevant docs first must score 1 on
    # nDCG / MRR / R@k for k >= max relevant count (sanity check of qrels format).
    c = load_corpus(name)
    run = {}
    for qid in c.query_ids:
        rel = c.qrels[qid]
        run[qid] = {d: (2.0 if d in rel else 1.0) for d in c.doc_ids}
    m = evaluate_run(run, c.qrels, ks=(3, 10))
    assert m["nDCG@3"] == pytest.approx(1.0)
    assert m["MRR@10"] == pytest.approx(1.0)
    assert m["R@3"] == pytest.approx(1.0)
    assert m["MAP@10"] == pytest.approx(1.0)


def test_corpus_is_frozen():
    c = load_corpus("en")
    with pytest.raises(AttributeError):
        c.name = "other"  # type: ignore[misc]
    # Separate loads do not share mutable state.
    c.qrels["q01"]["dXX"] = 1
    assert "dXX" not in load_corpus("en").qrels["q01"]


# --------------------------------------------------------------------------
# Similarity battery file (tests/battery/cases.json): structure only
# --------------------------------------------------------------------------

BATTERY = Path(__file__).parent / "battery" / "cases.json"
CATEGORY_MIN = {
    "en": 10,
    "ru": 10,
    "zh": 10,
    "xling-ru-en": 7,
    "xling-ru-zh": 7,
    "xling-en-zh": 7,
    "code-xlang": 8,
    "code-impl": 6,
    "code-nl": 8,
}
SCRIPT = {"en": "latin", "ru": "cyrillic", "zh": "han"}


def _script(text: str) -> str:
    if CJK.search(text):
        return "han"
    if CYRILLIC.search(text):
        return "cyrillic"
    return "latin"


def test_battery_cases_structure():
    cases = json.loads(BATTERY.read_text(encoding="utf-8"))
    assert len(cases) >= 70
    ids = [c["id"] for c in cases]
    assert len(set(ids)) == len(ids)
    counts: dict[str, int] = {}
    for c in cases:
        assert set(c) == {"id", "category", "anchor", "positive", "negatives"}, c["id"]
        assert c["category"] in CATEGORY_MIN, c["id"]
        assert c["id"].startswith(c["category"] + "-"), c["id"]
        counts[c["category"]] = counts.get(c["category"], 0) + 1
        texts = [c["anchor"], c["positive"], *c["negatives"]]
        assert 2 <= len(c["negatives"]) <= 3, c["id"]
        assert all(isinstance(t, str) and t.strip() for t in texts), c["id"]
        assert len(set(texts)) == len(texts), c["id"]

        cat = c["category"]
        if cat in SCRIPT:
            assert {_script(t) for t in texts} == {SCRIPT[cat]}, c["id"]
        elif cat.startswith("xling-"):
            src, dst = cat.split("-")[1:]
            assert _script(c["anchor"]) == SCRIPT[src], c["id"]
            # positive and negatives share the target language
            assert {_script(t) for t in [c["positive"], *c["negatives"]]} == {SCRIPT[dst]}, c["id"]
        elif cat == "code-nl":
            assert "\n" not in c["anchor"] and len(c["anchor"].split()) >= 4, c["id"]
            assert "\n" in c["positive"] or ";" in c["positive"] or "-" in c["positive"], c["id"]
    for cat, minimum in CATEGORY_MIN.items():
        assert counts.get(cat, 0) >= minimum, (cat, counts.get(cat, 0))


def test_a_relevant_document_listed_twice_is_a_malformed_corpus():
    """A repeated id would be merged silently, so the JSON's judgement count would not be what it says."""
    from mlx_embed.eval.corpora import _parse

    raw = {"language": "en", "description": "", "documents": [{"id": "d01", "text": "a"}, {"id": "d02", "text": "b"}],
           "queries": [{"id": "q01", "text": "c", "relevant": ["d01", "d01"]}]}
    with pytest.raises(ValueError, match="'x' is malformed: query 'q01' lists a relevant document twice"):
        _parse("x", raw)
