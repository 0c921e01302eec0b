"""mlx_embed.fidelity against scipy and hand-computed values, on fixed fake embedders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlx_embed import REGISTRY
from mlx_embed.fidelity import compare, per_text_cosine, spearman

from .reference import NEEDS_SCIPY


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy_with_ties(seed):
    stats = pytest.importorskip("scipy.stats", reason=NEEDS_SCIPY)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=40).astype(float)  # 40 values out of 6: many ties
    b = a + rng.integers(-3, 4, size=40)  # correlated, with ties of its own
    assert len(np.unique(a)) < len(a) and len(np.unique(b)) < len(b)
    expected = stats.spearmanr(a, b).statistic
    assert spearman(a, b) == pytest.approx(expected, abs=1e-12)


def test_spearman_of_constant_similarities_is_nan_like_scipy():
    import warnings

    stats = pytest.importorskip("scipy.stats", reason=NEEDS_SCIPY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(stats.spearmanr([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]).statistic)
        warnings.simplefilter("error")
        assert math.isnan(spearman([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]))


def test_spearman_refuses_nan():
    with pytest.raises(ValueError, match="inf or NaN"):
        spearman([1, float("nan"), 3], [1, 2, 3])


def test_spearman_hand_values():
    # ranks of a: 1, 2.5, 2.5, 4 (average for the tie); of b: 4, 3, 2, 1 -> Pearson of the ranks
    a, b = np.array([1.0, 2.0, 2.0, 3.0]), np.array([4.0, 3.0, 2.0, 1.0])
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([4, 3, 2, 1])
    da, db = ra - ra.mean(), rb - rb.mean()
    assert spearman(a, b) == pytest.approx((da @ db) / math.sqrt((da @ da) * (db @ db)), abs=1e-12)
    assert spearman(a, b) == pytest.approx(-4.5 / math.sqrt(4.5 * 5), abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)  # ranks only, not values


def test_per_text_cosine_hand_values():
    a = np.array([[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]])
    b = np.array([[4.0, 3.0], [0.0, 5.0], [-1.0, -1.0]])
    # (12 + 12) / (5 * 5); orthogonal; opposite
    np.testing.assert_allclose(per_text_cosine(a, b), [24 / 25, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(per_text_cosine(10 * a, b), [24 / 25, 0.0, -1.0], atol=1e-12)  # scale-free


TEXTS = ["alpha", "beta", "gamma", "delta"]
REFERENCE = {
    "alpha": [1.0, 0.0, 0.0],
    "beta": [0.0, 1.0, 0.0],
    "gamma": [0.0, 0.0, 1.0],
    "delta": [1.0, 1.0, 0.0],
}
# cosine to the reference: alpha 1 (scaled), beta 3/5, gamma 1/sqrt(2), delta 1
CANDIDATE = {
    "alpha": [2.0, 0.0, 0.0],
    "beta": [0.0, 3.0, 4.0],
    "gamma": [0.0, 1.0, 1.0],
    "delta": [1.0, 1.0, 0.0],
}


class Fixed:
    """An embedder whose encode() looks each text up in a table (and records what it was asked)."""

    spec = REGISTRY["minilm"]

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_compare_on_fixed_embedders():
    ref, cand = Fixed(REFERENCE), Fixed(CANDIDATE)
    report = compare(ref, cand, TEXTS, retrieval_k=None)
    assert ref.calls == [TEXTS] and cand.calls == [TEXTS]
    expected = [1.0, 0.6, 1 / math.sqrt(2), 1.0]
    assert report.n_texts == 4
    np.testing.assert_allclose(report.per_text, expected, atol=1e-6)
    assert report.cosine_min == pytest.approx(0.6, abs=1e-6)
    assert report.worst_text == "beta"
    assert report.cosine_mean == pytest.approx(sum(expected) / 4, abs=1e-6)
    # 5th percentile, linear interpolation over the sorted cosines 0.6, 0.7071, 1, 1: position 0.05 * 3
    assert report.cosine_p5 == pytest.approx(0.6 + 0.15 * (1 / math.sqrt(2) - 0.6), abs=1e-6)
    assert report.topk_agreement is None and report.topk is None
    assert "worst text 'beta'" in report.summary()


def test_compare_spearman_of_pairwise_similarities():
    """Pairwise similarities are cosines (sentence-transformers' default), not dot products: CANDIDATE's
    vectors are not unit length, so dot products would rank the pairs differently (0, 0, 2, 7, 3, 1)."""
    stats = pytest.importorskip("scipy.stats", reason=NEEDS_SCIPY)
    report = compare(Fixed(REFERENCE), Fixed(CANDIDATE), TEXTS, retrieval_k=None)
    r2 = 1 / math.sqrt(2)
    # pairs (alpha, beta), (alpha, gamma), (alpha, delta), (beta, gamma), (beta, delta), (gamma, delta)
    ref_sims = [0, 0, r2, 0, r2, 0]
    cand_sims = [0, 0, r2, 7 / (5 * math.sqrt(2)), 3 / (5 * math.sqrt(2)), 1 / 2]
    assert report.spearman == pytest.approx(stats.spearmanr(ref_sims, cand_sims).statistic, abs=1e-6)


def test_identical_embedders_are_perfectly_faithful():
    report = compare(Fixed(REFERENCE), Fixed(REFERENCE), TEXTS, retrieval_k=None)
    assert report.cosine_min == pytest.approx(1.0, abs=1e-6) and report.spearman == pytest.approx(1.0)


class _Fixed:
    """An Embedder stand-in: fixed vectors, queries encoded with a prompt that plain ``encode`` lacks."""

    spec = REGISTRY["minilm"]

    def __init__(self, queries: dict, plain: dict):
        self.queries, self.plain = queries, plain

    def encode(self, texts):
        return np.array([self.plain[t] for t in texts], float)

    def encode_query(self, texts):
        return np.array([self.queries[t] for t in texts], float)

    def encode_document(self, texts):
        return self.encode(texts)


def test_topk_agreement_hand_computed(monkeypatch):
    """Documents are one-hot, so a query's scores are its vector. Top-2: q1 {d1,d2} vs {d1,d2} -> 1,
    q2 {d5,d4} vs {d3,d5} -> 1/2; mean 0.75. Without the query prompt both models would rank {d3,d4}
    and {d1,d2} instead, and ascending order or reference-vs-reference would give 0.5 or 1."""
    from mlx_embed import fidelity
    from mlx_embed.eval import corpora

    names = "ABCDE"
    corpus = corpora.Corpus(name="toy", language="en", description="",
                            documents=[(f"d{i + 1}", n) for i, n in enumerate(names)],
                            queries=[("q1", "qa"), ("q2", "qb")], qrels={"q1": {"d1": 1}, "q2": {"d5": 1}})
    monkeypatch.setattr(corpora, "list_corpora", lambda: ["toy"])
    monkeypatch.setattr(corpora, "load_corpus", lambda name: corpus)
    docs = {n: np.eye(5)[i].tolist() for i, n in enumerate(names)}
    ref = _Fixed({"qa": [5, 4, 3, 2, 1], "qb": [1, 2, 3, 4, 5]}, {**docs, "qa": [0, 0, 1, 1, 0], "qb": [0, 0, 1, 1, 0]})
    cand = _Fixed({"qa": [5, 4, 1, 2, 3], "qb": [1, 3, 5, 2, 4]}, {**docs, "qa": [1, 1, 0, 0, 0], "qb": [1, 1, 0, 0, 0]})
    assert fidelity.topk_agreement(ref, cand, k=2) == pytest.approx(0.75)
    assert fidelity.compare(ref, cand, list(names), retrieval_k=2).topk_agreement == pytest.approx(0.75)
    # Documents of unequal length (a model without Normalize): ranked by cosine, the figure stays 0.75;
    # by dot product both models would put d2 and d4 (length 3) on top, agreeing fully (1.0).
    for model in (ref, cand):
        for i, n in enumerate(names):
            model.plain[n] = (np.eye(5)[i] * (3 if i % 2 else 1)).tolist()
    assert fidelity.topk_agreement(ref, cand, k=2) == pytest.approx(0.75)


def test_every_setting_that_changes_the_vectors_is_reported():
    """Each setting in which two models can embed differently, changed alone, is named (dropping one from
    the list hid, e.g., a conversion that lost lowercasing)."""
    import dataclasses

    from mlx_embed.fidelity import spec_differences

    base = REGISTRY["minilm"]
    changes = {"pooling": "cls", "normalize": False, "max_length": 128, "lowercase": True, "include_prompt": False,
               "document_prompt": "passage: ", "default_prompt": "query: ", "end_token": "[SEP]",
               "padding_side": "left", "query_prompt": "query: "}

    class Model:
        def __init__(self, spec):
            self.spec = spec

    for name, value in changes.items():
        assert getattr(base, name) != value
        got = spec_differences(Model(base), Model(dataclasses.replace(base, **{name: value})))
        assert got == (f"{name}: {getattr(base, name)!r} vs {value!r}",), name


def test_compare_reads_a_generator_once():
    """A generator of texts is read once: encoding it twice gave the candidate nothing to encode."""
    report = compare(Fixed(REFERENCE), Fixed(CANDIDATE), (t for t in TEXTS), retrieval_k=None)
    assert report.n_texts == 4 and report.worst_text == "beta"
    assert report.cosine_min == pytest.approx(0.6, abs=1e-6)


@pytest.mark.parametrize("texts", [["alpha"], [], "alpha"])
def test_compare_needs_two_texts(texts):
    with pytest.raises(ValueError, match=r"at least 2 texts \(the Spearman correlation is over pairs\)"):
        compare(Fixed(REFERENCE), Fixed(REFERENCE), texts, retrieval_k=None)


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "5"])
def test_retrieval_k_must_be_a_positive_int(k):
    from mlx_embed import fidelity

    with pytest.raises(ValueError, match=r"k must be an int >= 1"):
        compare(Fixed(REFERENCE), Fixed(CANDIDATE), TEXTS, retrieval_k=k)
    with pytest.raises(ValueError, match=r"k must be an int >= 1"):
        fidelity.topk_agreement(Fixed(REFERENCE), Fixed(CANDIDATE), k=k)


def test_k_beyond_a_corpus_is_refused_with_the_largest_valid_k():
    """Top-k of a corpus with fewer than k documents compares whole corpora (agreement 1 by construction)."""
    from mlx_embed import fidelity
    from mlx_embed.eval.corpora import list_corpora, load_corpus

    smallest = min(len(load_corpus(n).doc_texts) for n in list_corpora())
    refused = rf"k={smallest + 1} is more than the {smallest} documents .* pass k <= {smallest}"
    with pytest.raises(ValueError, match=refused):
        fidelity.topk_agreement(Fixed(REFERENCE), Fixed(CANDIDATE), k=smallest + 1)
    ref = Fixed(REFERENCE)
    with pytest.raises(ValueError, match=refused):
        compare(ref, Fixed(CANDIDATE), TEXTS, retrieval_k=smallest + 1)
    assert ref.calls == []  # refused before the sample was encoded


def test_numpy_integer_k_is_taken(monkeypatch):
    from mlx_embed import fidelity

    monkeypatch.setattr(fidelity, "_top_k", lambda model, corpora, k: [np.arange(k)[None]])
    report = compare(Fixed(REFERENCE), Fixed(CANDIDATE), TEXTS, retrieval_k=np.int64(3))
    assert report.topk == 3 and type(report.topk) is int


def test_compare_names_truncated_texts_once(minilm_path, tmp_path):
    """Texts a model cuts are named in one warning with each model's count (here from the tokenizer itself), not
    in one warning per encode call."""
    import json
    import shutil
    import warnings

    import mlx_embed
    from tokenizers import Tokenizer

    short = tmp_path / "short"
    shutil.copytree(minilm_path, short)
    config = json.loads((short / "sentence_bert_config.json").read_text())
    (short / "sentence_bert_config.json").write_text(json.dumps(dict(config, max_seq_length=8)))
    texts = ["a cat", "the quick brown fox jumps over the lazy dog", "one two three four five six seven eight nine"]
    tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    over = sum(len(tok.encode(t).ids) > 8 for t in texts)
    assert over == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(mlx_embed.load(short), mlx_embed.load(minilm_path), texts, retrieval_k=None)
    cut = [w for w in caught if issubclass(w.category, mlx_embed.TruncationWarning)]
    assert len(cut) == 1, [str(w.message) for w in caught]
    assert f"{over} of the 3 texts for the reference (max_length=8); 0 of the 3 texts for the candidate (max_length=256)" in str(cut[0].message)
    assert cut[0].filename == __file__ and (cut[0].message.truncated, cut[0].message.total) == (over, 3)
    # the retrieval corpora's texts count too (here the candidate cuts only those over 256 tokens)
    from mlx_embed.eval.corpora import list_corpora, load_corpus

    corpus_texts = [t for name in list_corpora() for c in [load_corpus(name)] for t in (*c.query_texts, *c.doc_texts)]
    lengths = [len(ids) for ids in (e.ids for e in tok.encode_batch(corpus_texts))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(mlx_embed.load(short), mlx_embed.load(minilm_path), texts)
    cut = [w.message for w in caught if issubclass(w.category, mlx_embed.TruncationWarning)]
    short_cut, long_cut = sum(n > 8 for n in lengths), sum(n > 256 for n in lengths)
    assert len(cut) == 1 and (cut[0].truncated, cut[0].total) == (over + short_cut, 3 + len(corpus_texts))
    assert (f"{over} of the 3 texts and {short_cut} of the {len(corpus_texts)} retrieval texts for the reference (max_length=8); "
            f"0 of the 3 texts and {long_cut} of the {len(corpus_texts)} retrieval texts for the candidate") in str(cut[0])


def test_another_tokenizer_is_reported(minilm_path, tmp_path):
    """Two models whose tokenizers give other ids (here "the" and "cat" swap ids in the candidate's vocabulary)
    are said to differ there: the report alone read like a weight problem."""
    import json
    import shutil

    import mlx_embed

    swapped = tmp_path / "swapped"
    shutil.copytree(minilm_path, swapped)
    tok = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["the"], vocab["cat"] = vocab["cat"], vocab["the"]
    (swapped / "tokenizer.json").write_text(json.dumps(tok))
    texts = ["the cat sat", "a dog ran", "one cat", "on a mat"]
    report = compare(mlx_embed.load(minilm_path), mlx_embed.load(swapped), texts, retrieval_k=None)
    assert report.settings_differ == ("token ids: 2 of the 4 texts tokenized differently",)
    assert "settings differ (reference vs candidate): token ids: 2 of the 4 texts" in report.summary()
    assert compare(mlx_embed.load(minilm_path), mlx_embed.load(minilm_path), texts, retrieval_k=None).settings_differ == ()
