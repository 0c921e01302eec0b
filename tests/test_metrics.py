"""Exact tests for mlx_embed.eval.metrics (hand-computed values + agreement
with pytrec_eval and ranx)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from mlx_embed.eval.metrics import (
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

from .reference import INSTALL

L2, L3, L4, L5, L6 = (math.log2(x) for x in (2, 3, 4, 5, 6))
approx = pytest.approx
PYTREC = "needs pytrec_eval (pytrec-eval-terrier): " + INSTALL


# --------------------------------------------------------------------------
# Hand-computed single-query values
# --------------------------------------------------------------------------

# Case A: relevant docs at ranks 1 and 3, |rel| = 2.
A_RANKED = ["a", "b", "c", "d", "e"]
A_REL = {"a", "c"}


def test_case_a_precision():
    assert precision_at_k(A_RANKED, A_REL, 1) == approx(1.0)  # 1 hit / 1
    assert precision_at_k(A_RANKED, A_REL, 2) == approx(0.5)  # 1 hit / 2
    assert precision_at_k(A_RANKED, A_REL, 3) == approx(2 / 3)  # 2 hits / 3
    assert precision_at_k(A_RANKED, A_REL, 5) == approx(0.4)  # 2 hits / 5
    # k beyond the list: trec_eval P_10 still divides by 10.
    assert precision_at_k(A_RANKED, A_REL, 10) == approx(0.2)  # 2 / 10


def test_case_a_recall():
    assert recall_at_k(A_RANKED, A_REL, 1) == approx(0.5)  # 1 of 2
    assert recall_at_k(A_RANKED, A_REL, 2) == approx(0.5)  # 1 of 2
    assert recall_at_k(A_RANKED, A_REL, 3) == approx(1.0)  # 2 of 2
    assert recall_at_k(A_RANKED, A_REL, 10) == approx(1.0)


def test_case_a_mrr():
    for k in (1, 3, 10):
        assert mrr_at_k(A_RANKED, A_REL, k) == approx(1.0)  # first hit at rank 1


def test_case_a_ndcg():
    # k=1: DCG = 1/log2(2) = 1, IDCG over min(1,2)=1 doc = 1.
    assert ndcg_at_k(A_RANKED, A_REL, 1) == approx(1.0)
    # k=2: DCG = 1 (rank 2 "b" not relevant); IDCG = 1 + 1/log2(3).
    assert ndcg_at_k(A_RANKED, A_REL, 2) == approx(1.0 / (1 + 1 / L3))
    # k=3: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) ~= 1.6309.
    expected = (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3)
    assert expected == approx(0.919720, abs=1e-6)
    assert ndcg_at_k(A_RANKED, A_REL, 3) == approx(expected)
    # Larger k adds no relevant docs and IDCG stays over min(k, 2) = 2 docs.
    assert ndcg_at_k(A_RANKED, A_REL, 10) == approx(expected)


def test_case_a_map():
    # k=1: precision at the relevant rank 1 is 1/1; divided by |rel| = 2.
    assert map_at_k(A_RANKED, A_REL, 1) == approx(0.5)
    # k=3: (P@1 + P@3) / 2 = (1 + 2/3) / 2 = 5/6.
    assert map_at_k(A_RANKED, A_REL, 3) == approx(5 / 6)
    assert map_at_k(A_RANKED, A_REL, 10) == approx(5 / 6)


# Case B: relevant at ranks 3 and 5, plus one relevant doc never retrieved.
B_RANKED = ["x", "y", "r1", "z", "r2"]
B_REL = {"r1", "r2", "r3"}


def test_case_b_no_relevant_in_top_k():
    for fn in (precision_at_k, recall_at_k, mrr_at_k, ndcg_at_k, map_at_k):
        assert fn(B_RANKED, B_REL, 1) == 0.0
        assert fn(B_RANKED, B_REL, 2) == 0.0


def test_case_b_values():
    assert precision_at_k(B_RANKED, B_REL, 5) == approx(2 / 5)
    assert recall_at_k(B_RANKED, B_REL, 3) == approx(1 / 3)  # 1 of 3
    assert recall_at_k(B_RANKED, B_REL, 5) == approx(2 / 3)  # 2 of 3
    assert mrr_at_k(B_RANKED, B_REL, 3) == approx(1 / 3)  # first hit at rank 3
    assert mrr_at_k(B_RANKED, B_REL, 5) == approx(1 / 3)
    # nDCG@5: DCG = 1/log2(4) + 1/log2(6); IDCG over min(5,3)=3 docs
    #         = 1/log2(2) + 1/log2(3) + 1/log2(4).
    assert ndcg_at_k(B_RANKED, B_REL, 5) == approx((1 / L4 + 1 / L6) / (1 / L2 + 1 / L3 + 1 / L4))
    # nDCG@3: DCG = 1/log2(4) = 0.5; IDCG over 3 docs as above.
    assert ndcg_at_k(B_RANKED, B_REL, 3) == approx(0.5 / (1 / L2 + 1 / L3 + 1 / L4))
    # MAP@5: (P@3 + P@5) / |rel| = (1/3 + 2/5) / 3 = 11/45.
    assert map_at_k(B_RANKED, B_REL, 5) == approx(11 / 45)
    # MAP@3: (1/3) / 3 = 1/9 -- divided by |rel| = 3, not by min(k, |rel|).
    assert map_at_k(B_RANKED, B_REL, 3) == approx(1 / 9)


def test_map_divides_by_total_relevant_not_min_k():
    # 3 relevant docs, one at rank 1: pytrec_eval map_cut_1 = 1/3 (not 1/1).
    assert map_at_k(["a", "b"], {"a", "c", "d"}, 1) == approx(1 / 3)


def test_k_larger_than_ranked_list():
    ranked, rel = ["a", "b"], {"b"}
    assert precision_at_k(ranked, rel, 10) == approx(0.1)  # 1 / 10
    assert recall_at_k(ranked, rel, 10) == approx(1.0)
    assert mrr_at_k(ranked, rel, 10) == approx(0.5)  # rank 2
    assert ndcg_at_k(ranked, rel, 10) == approx(1 / L3)  # (1/log2(3)) / (1/log2(2))
    assert map_at_k(ranked, rel, 10) == approx(0.5)  # (1/2) / 1


def test_perfect_ranking_scores_one():
    ranked, rel = ["a", "b", "c", "x"], {"a", "b", "c"}
    for k in (1, 2, 3):
        assert ndcg_at_k(ranked, rel, k) == approx(1.0)
        assert precision_at_k(ranked, rel, k) == approx(1.0)
    assert map_at_k(ranked, rel, 3) == approx(1.0)  # (1 + 1 + 1) / 3
    assert map_at_k(ranked, rel, 2) == approx(2 / 3)  # (1 + 1) / 3
    # nDCG@4 also 1: IDCG over min(4, 3) = 3 docs.
    assert ndcg_at_k(ranked, rel, 4) == approx(1.0)


def test_empty_inputs():
    for fn in (precision_at_k, recall_at_k, mrr_at_k, ndcg_at_k, map_at_k):
        assert fn([], {"a"}, 5) == 0.0
        assert fn(["a", "b"], set(), 5) == 0.0  # no relevant docs -> 0.0


def test_invalid_arguments():
    for fn in (precision_at_k, recall_at_k, mrr_at_k, ndcg_at_k, map_at_k):
        with pytest.raises(ValueError, match="k must be >= 1, got 0"):
            fn(["a"], {"a"}, 0)
        with pytest.raises(TypeError, match="k must be an int, got float"):
            fn(["a"], {"a"}, 1.5)
        with pytest.raises(ValueError, match="duplicate document ids"):
            fn(["a", "a"], {"a"}, 2)


# --------------------------------------------------------------------------
# Ordering, evaluate_run, rank
# --------------------------------------------------------------------------


def test_sort_doc_scores_ties_by_doc_id_descending():
    scores = {"a": 1.0, "b": 1.0, "c": 2.0, "d10": 0.5, "d9": 0.5, "d2": 0.5}
    # score desc; ties by id desc in string order: "d9" > "d2" > "d10".
    assert sort_doc_scores(scores) == ["c", "b", "a", "d9", "d2", "d10"]
    with pytest.raises(ValueError, match="NaN score for document 'a'"):
        sort_doc_scores({"a": float("nan")})


def test_evaluate_run_hand_computed():
    run = {
        "q1": {"a": 0.9, "b": 0.8, "c": 0.7},  # ranking a, b, c
        "q2": {"a": 0.1, "b": 0.2, "c": 0.3},  # ranking c, b, a
        "q_extra": {"a": 1.0},  # not in qrels -> ignored
    }
    qrels = {
        "q1": {"a": 1, "c": 0},  # relevant {a}: first
        "q2": {"a": 1, "b": 2, "x": 0},  # relevant {a, b}: ranks 3 and 2
        "q_zero": {"a": 0},  # only non-relevant labels -> skipped
    }
    m = evaluate_run(run, qrels, ks=(1, 3))
    assert set(m) == {f"{n}@{k}" for n in ("P", "R", "MRR", "nDCG", "MAP") for k in (1, 3)}
    # q1: P@1 = 1, q2: P@1 = 0 -> mean 0.5
    assert m["P@1"] == approx(0.5)
    # q1: P@3 = 1/3, q2: P@3 = 2/3 -> mean 0.5
    assert m["P@3"] == approx(0.5)
    # q1: R@3 = 1, q2: R@3 = 1
    assert m["R@3"] == approx(1.0)
    # q1: MRR = 1, q2: first relevant "b" at rank 2 -> 1/2; mean 3/4
    assert m["MRR@3"] == approx(0.75)
    assert m["MRR@1"] == approx(0.5)
    # q2 nDCG@3, labels as gains: DCG = 2/log2(3) + 1/log2(4); IDCG = 2/log2(2) + 1/log2(3)
    q2_ndcg = (2 / L3 + 1 / L4) / (2 + 1 / L3)
    assert m["nDCG@3"] == approx((1.0 + q2_ndcg) / 2)
    # q2 MAP@3: (P@2 + P@3) / 2 = (1/2 + 2/3) / 2 = 7/12; q1 = 1
    assert m["MAP@3"] == approx((1.0 + 7 / 12) / 2)
    per_q = per_query_metrics(run, qrels, ks=(3,))
    assert set(per_q) == {"q1", "q2"}
    assert per_q["q2"]["MAP@3"] == approx(7 / 12)


def test_evaluate_run_query_missing_from_run_counts_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {"a": 1.0, "b": 0.5}}
    m = evaluate_run(run, qrels, ks=(1,))
    assert m["P@1"] == approx(0.5)  # (1 + 0) / 2
    assert m["MRR@1"] == approx(0.5)


def test_evaluate_run_ties_use_doc_id_descending():
    # All scores tie -> order is c, b, a; relevant "a" ends up at rank 3.
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    m = evaluate_run(run, {"q": {"a": 1}}, ks=(1, 3))
    assert m["MRR@3"] == approx(1 / 3)
    assert m["P@1"] == 0.0


def test_evaluate_run_errors():
    with pytest.raises(ValueError, match="no query with a relevant document"):
        evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 0}})
    with pytest.raises(ValueError, match="ks must contain at least one cut-off"):
        evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, ks=())
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, ks=(0,))


def test_rank_builds_run_with_tie_rule():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    doc_ids = ["d1", "d2", "d3", "d10"]
    run = rank(scores, doc_ids, ["q1", "q2"])
    assert list(run) == ["q1", "q2"]
    # q1: d2 (0.9), then d3/d10 tie (0.5) -> "d3" > "d10", then d1
    assert list(run["q1"]) == ["d2", "d3", "d10", "d1"]
    assert run["q1"]["d2"] == approx(0.9)
    assert all(isinstance(v, float) for v in run["q1"].values())
    # q2: d1/d2/d3 tie -> d3, d2, d1; then d10
    assert list(run["q2"]) == ["d3", "d2", "d1", "d10"]
    for qid in run:
        assert list(run[qid]) == sort_doc_scores(run[qid])
    top = rank(scores, doc_ids, ["q1", "q2"], top_k=2)
    assert list(top["q1"]) == ["d2", "d3"]
    assert list(top["q2"]) == ["d3", "d2"]
    assert len(rank(scores, doc_ids, ["q1", "q2"], top_k=100)["q1"]) == 4


def test_rank_validates_input():
    with pytest.raises(ValueError, match=r"scores must be 2-D \(n_queries, n_docs\), got shape \(3,\)"):
        rank(np.zeros(3), ["a", "b", "c"], ["q"])
    with pytest.raises(ValueError, match="got 2 doc ids for 3 score columns"):
        rank(np.zeros((1, 3)), ["a", "b"], ["q"])
    with pytest.raises(ValueError, match="got 1 query ids for 2 score rows"):
        rank(np.zeros((2, 3)), ["a", "b", "c"], ["q"])
    with pytest.raises(ValueError, match="doc_ids must be unique"):
        rank(np.zeros((1, 2)), ["a", "a"], ["q"])
    with pytest.raises(ValueError, match="query_ids must be unique"):
        rank(np.zeros((2, 2)), ["a", "b"], ["q", "q"])
    with pytest.raises(ValueError, match="scores contain NaN"):
        rank(np.array([[0.0, np.nan]]), ["a", "b"], ["q"])
    with pytest.raises(TypeError, match="scores must be real numbers"):
        rank(np.array([["x", "y"]]), ["a", "b"], ["q"])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        rank(np.zeros((1, 2)), ["a", "b"], ["q"], top_k=0)


def test_graded_ndcg_uses_the_labels_as_gains():
    # DCG = 1/log2(2) + 3/log2(4) = 2.5; ideal order c, a: IDCG = 3/log2(2) + 1/log2(3)
    qrels = {"a": 1, "b": 0, "c": 3}
    assert ndcg_at_k(["a", "b", "c"], qrels, 3) == approx(2.5 / (3 + 1 / L3))
    assert ndcg_at_k(["a", "b", "c"], {"a", "c"}, 3) == approx((1 + 1 / L4) / (1 + 1 / L3))  # ids: binary
    # the other metrics read a mapping as its docs labelled >= 1
    assert recall_at_k(["b", "x"], qrels, 2) == 0.0 and map_at_k(["c", "a"], qrels, 2) == approx(1.0)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: recall_at_k(["d01"], "d01", 1), TypeError, "not a single string"),
        (lambda: recall_at_k("d01", {"d01"}, 1), TypeError, "ranked must be a sequence"),
        (lambda: ndcg_at_k(["a"], {"a": None}, 1), TypeError, "label of document 'a' must be a number"),
        (lambda: ndcg_at_k(["a"], {"a": "1"}, 1), TypeError, "label of document 'a' must be a number"),
        (lambda: ndcg_at_k(["a"], {"a": True}, 1), TypeError, "label of document 'a' must be a number"),
        (lambda: ndcg_at_k(["a"], {"a": float("inf"), "b": 1}, 2), ValueError, "label of document 'a' is inf: labels must be finite"),
        (lambda: ndcg_at_k(["a"], {"a": np.float32("-inf")}, 1), ValueError, "label of document 'a' is -inf"),
        (lambda: ndcg_at_k(["a"], {"a": float("nan")}, 1), ValueError, "label of document 'a' is nan"),
        (lambda: evaluate_run({"q": ["a"]}, {"q": {"a": 1}}), TypeError, "got list"),
        (lambda: evaluate_run({"q": {"a": None}}, {"q": {"a": 1}}), TypeError, "score of document 'a' must be a number"),
        (lambda: evaluate_run({"q": {"a": "nan"}}, {"q": {"a": 1}}), TypeError, "score of document 'a' must be a number"),
        (lambda: evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, ks=5), TypeError, "ks must be an iterable"),
        (lambda: evaluate_run({"q": {"a": 1.0}}, {"q": ["a"]}), TypeError, r"qrels\['q'\] must map doc ids to labels"),
    ],
)
def test_bad_inputs_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_ranked_may_be_any_iterable():
    assert mrr_at_k(iter(["x", "a", "c"]), {"a"}, 3) == approx(0.5)
    assert ndcg_at_k(np.array(["a", "x"]), {"a"}, 2) == approx(1.0)


# --------------------------------------------------------------------------
# Agreement with pytrec_eval and ranx on random runs
# --------------------------------------------------------------------------

KS = (1, 3, 5, 10, 20)


def _random_case(seed: int = 1234, n_queries: int = 50, ties: bool = False, graded: bool = False):
    """Random run/qrels.  Every query has >= 1 relevant doc and appears in the run.

    Without ``ties`` all scores within a query are distinct.  Doc ids are not
    zero-padded ("d9" vs "d10") so string order differs from numeric order.
    With ``graded`` the relevant docs carry labels 1-3.
    """
    rng = random.Random(seed)
    pool = [f"d{i}" for i in range(1, 41)]
    run, qrels = {}, {}
    for qi in range(n_queries):
        qid = f"q{qi}"
        retrieved = rng.sample(pool, rng.randint(1, 30))
        if ties:
            scores = [rng.randint(0, 4) / 4 for _ in retrieved]
        else:
            scores = rng.sample(range(10_000), len(retrieved))
            scores = [s / 1000.0 for s in scores]
        run[qid] = dict(zip(retrieved, scores))
        relevant = rng.sample(pool, rng.randint(1, 6))
        judged = {d: rng.randint(1, 3) if graded else 1 for d in relevant}
        for d in rng.sample(pool, rng.randint(0, 5)):
            judged.setdefault(d, 0)
        qrels[qid] = judged
    return run, qrels


def _pytrec_per_query(pytrec_eval, run, qrels):
    measures = {f"{m}.{','.join(map(str, KS))}" for m in ("P", "recall", "ndcg_cut", "map_cut")}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures)
    res = evaluator.evaluate(run)
    out = {q: {} for q in res}
    for q, r in res.items():
        for k in KS:
            out[q][f"P@{k}"] = r[f"P_{k}"]
            out[q][f"R@{k}"] = r[f"recall_{k}"]
            out[q][f"nDCG@{k}"] = r[f"ndcg_cut_{k}"]
            out[q][f"MAP@{k}"] = r[f"map_cut_{k}"]
    # MRR@k: trec_eval's recip_rank on the run cut to its top k documents.
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    for k in KS:
        cut = {q: {d: docs[d] for d in sort_doc_scores(docs)[:k]} for q, docs in run.items()}
        for q, r in rr.evaluate(cut).items():
            out[q][f"MRR@{k}"] = r["recip_rank"]
    return out


def _assert_per_query_equal(ours, theirs):
    assert set(ours) == set(theirs)
    for q in ours:
        for key, value in ours[q].items():
            assert value == approx(theirs[q][key], abs=1e-9), (q, key)


@pytest.mark.parametrize("ties,graded", [(False, False), (True, False), (True, True)], ids=["tie-free", "with-ties", "graded"])
def test_agrees_with_pytrec_eval(ties, graded):
    pytrec_eval = pytest.importorskip("pytrec_eval", reason=PYTREC)
    run, qrels = _random_case(seed=7 if ties else 1234, ties=ties, graded=graded)
    ours = per_query_metrics(run, qrels, KS)
    theirs = _pytrec_per_query(pytrec_eval, run, qrels)
    _assert_per_query_equal(ours, theirs)
    means = evaluate_run(run, qrels, KS)
    for key, value in means.items():
        assert value == approx(np.mean([theirs[q][key] for q in theirs]), abs=1e-9)


def test_rank_then_evaluate_agrees_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval", reason=PYTREC)
    rng = np.random.default_rng(0)
    # Coarse float32 scores so plenty of ties occur.
    scores = (rng.integers(0, 8, size=(20, 25)) / 8).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(25)]
    query_ids = [f"q{i}" for i in range(20)]
    qrels = {q: {doc_ids[j]: 1 for j in rng.choice(25, size=3, replace=False)} for q in query_ids}
    run = rank(scores, doc_ids, query_ids)
    ours = per_query_metrics(run, qrels, KS)
    theirs = _pytrec_per_query(pytrec_eval, run, qrels)
    _assert_per_query_equal(ours, theirs)
    # Truncating with rank(top_k=10) keeps every metric at k <= 10 unchanged.
    top = per_query_metrics(rank(scores, doc_ids, query_ids, top_k=10), qrels, (1, 3, 5, 10))
    for q in top:
        for key, value in top[q].items():
            assert value == approx(ours[q][key])


# ranx is run in a child process with NUMBA_DISABLE_JIT=1: its metrics are
# numba-compiled, and a cold JIT compile takes ~30 s, while the same Python
# code run uncompiled takes ~2 s for this small input.  The child keeps the
# setting from leaking into this process.
_RANX_CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import ranx
data = json.load(sys.stdin)
run, qrels = ranx.Run(data["run"]), ranx.Qrels(data["qrels"])
means = ranx.evaluate(qrels, run, data["metrics"])
per_query = {m: {q: float(v) for q, v in scores.items()} for m, scores in run.scores.items()}
json.dump({"means": {m: float(v) for m, v in means.items()}, "per_query": per_query}, sys.stdout)
"""


def _ranx(run: dict, qrels: dict, metrics: list[str]) -> dict:
    """ranx's figures, computed in a child process with numba's compiler off (compiling its kernels in the
    test process took 90 s and stays resident)."""
    pytest.importorskip("ranx", reason="needs ranx: " + INSTALL)
    proc = subprocess.run(
        [sys.executable, "-c", _RANX_CHILD],
        input=json.dumps({"run": run, "qrels": qrels, "metrics": metrics}),
        capture_output=True,
        text=True,
        env=dict(os.environ, NUMBA_DISABLE_JIT="1"),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_agrees_with_ranx(graded):
    run, qrels = _random_case(seed=99, ties=False, graded=graded)
    ours = per_query_metrics(run, qrels, KS)
    names = {"P": "precision", "R": "recall", "MRR": "mrr", "nDCG": "ndcg", "MAP": "map"}
    metrics = [f"{v}@{k}" for v in names.values() for k in KS]
    result = _ranx(run, qrels, metrics)
    per_q, means = result["per_query"], result["means"]
    for ours_name, ranx_name in names.items():
        for k in KS:
            key = f"{ours_name}@{k}"
            for q in ours:
                assert ours[q][key] == approx(per_q[f"{ranx_name}@{k}"][q], abs=1e-9), (q, key)
    ours_mean = evaluate_run(run, qrels, KS)
    for ours_name, ranx_name in names.items():
        for k in KS:
            assert ours_mean[f"{ours_name}@{k}"] == approx(means[f"{ranx_name}@{k}"], abs=1e-9)


def test_fractional_labels_are_not_relevant():
    """trec_eval's relevance_level 1: a label of 0.5 is judged but not relevant (hand-computed)."""
    qrels = {"a": 0.5, "b": 1}
    assert precision_at_k(["a", "b"], qrels, 2) == 0.5
    assert recall_at_k(["a"], qrels, 1) == 0.0
    assert mrr_at_k(["a", "b"], qrels, 2) == 0.5
    assert map_at_k(["a", "b"], qrels, 2) == 0.5
    assert ndcg_at_k(["a", "b"], qrels, 2) == pytest.approx(1 / math.log2(3))  # gain 0 at rank 1, 1 at rank 2


def test_fractional_labels_count_as_their_integer_part_in_every_metric_as_in_ranx():
    cases = [
        ({"a": 0.5, "b": 1}, ["a", "b"]),
        ({"a": 1.5, "b": 1}, ["b", "a"]),
        ({"a": 2.7, "b": 1.2, "c": 0.9}, ["c", "b", "a"]),
    ]
    functions = {"ndcg@3": ndcg_at_k, "precision@3": precision_at_k, "recall@3": recall_at_k,
                 "mrr@3": mrr_at_k, "map@3": map_at_k}
    for qrels, ranked in cases:
        run = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
        expected = _ranx({"q": run}, {"q": qrels}, list(functions))["means"]
        for name, fn in functions.items():
            assert fn(ranked, qrels, 3) == pytest.approx(expected[name], abs=1e-12), (qrels, name)


def test_integer_ids_in_qrels_match_the_string_ids_of_rank():
    """rank() gives string ids (as trec_eval reads them); qrels written with integer ids must still match them.
    Both queries rank their one relevant doc first, so every metric is 1 (integer-vs-string keys gave 0)."""
    run = rank(np.array([[0.9, 0.1], [0.2, 0.8]]), [10, 20], [1, 2])
    qrels = {1: {10: 1}, 2: {20: 1}}
    scores = per_query_metrics(run, qrels, ks=(1,))
    assert set(scores) == {"1", "2"}
    for metrics in scores.values():
        assert metrics == {"P@1": 1.0, "R@1": 1.0, "MRR@1": 1.0, "nDCG@1": 1.0, "MAP@1": 1.0}
    assert evaluate_run(run, qrels, ks=(1,))["nDCG@1"] == 1.0
