"""The eval runner wires embeddings to metrics correctly: a perfect retriever scores perfectly."""

import json

import numpy as np
import pytest

from mlx_embed.cli import main
from mlx_embed.eval import load_corpus
from mlx_embed.eval.runner import evaluate

from .reference import INSTALL


class Oracle:
    """Documents are one-hot; each query is the normalized sum of its relevant documents."""

    def __init__(self, corpus):
        self.doc_index = {text: i for i, (_, text) in enumerate(corpus.documents)}
        self.ids = {d: i for i, (d, _) in enumerate(corpus.documents)}
        self.rel = {text: corpus.qrels[q] for q, text in corpus.queries}

    def encode_document(self, texts):
        return np.eye(len(self.doc_index), dtype=np.float32)[[self.doc_index[t] for t in texts]]

    def encode_query(self, texts):
        out = np.zeros((len(texts), len(self.doc_index)), dtype=np.float32)
        for row, t in enumerate(texts):
            for d in self.rel[t]:
                out[row, self.ids[d]] = 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_perfect_retriever_gets_perfect_scores():
    corpus = load_corpus("en")
    m = evaluate(Oracle(corpus), corpus, ks=(1, 5))
    n_rel = np.array([len(corpus.qrels[q]) for q, _ in corpus.queries])
    assert m["MRR@5"] == 1.0 and m["nDCG@5"] == 1.0 and m["R@5"] == 1.0 and m["MAP@5"] == 1.0
    assert abs(m["P@5"] - np.mean(np.minimum(n_rel, 5) / 5)) < 1e-12
    assert abs(m["R@1"] - np.mean(1 / n_rel)) < 1e-12


class UnequalOracle(Oracle):
    """The oracle's documents at lengths 1, 2, 3, ... plus a shared direction: ranked by dot product the
    long irrelevant documents win; ranked by cosine (sentence-transformers' default) the ranking is perfect."""

    def encode_document(self, texts):
        docs = super().encode_document(texts)
        docs = docs + 0.5 / np.sqrt(docs.shape[1])  # (N, N): every document shares the all-ones direction
        return docs * np.arange(1, len(texts) + 1, dtype=np.float32)[:, None]


def test_documents_are_ranked_by_cosine_whatever_their_length():
    corpus = load_corpus("en")
    m = evaluate(UnequalOracle(corpus), corpus, ks=(1, 5))
    assert m["MRR@5"] == 1.0 and m["nDCG@5"] == 1.0 and m["R@5"] == 1.0


def test_eval_cli_json(tiny_bert_hf, capsys):
    """The CLI's figures are trec_eval's (pytrec_eval) on the same model's query-document cosines."""
    pytrec_eval = pytest.importorskip("pytrec_eval", reason=f"needs pytrec_eval (pytrec-eval-terrier): {INSTALL}")
    import mlx_embed

    assert main(["eval", "--model", str(tiny_bert_hf), "--corpus", "code", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["dim"] == 64 and set(rows[0]["results"]) == {"code"}
    got = rows[0]["results"]["code"]

    corpus = load_corpus("code")
    model = mlx_embed.load(tiny_bert_hf)
    docs = model.encode_document([text for _, text in corpus.documents])
    queries = model.encode_query([text for _, text in corpus.queries])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    scores = queries @ docs.T  # cosine in float32, as the runner ranks: near-ties fall the same way
    doc_ids = [d for d, _ in corpus.documents]
    run = {q: {d: float(s) for d, s in zip(doc_ids, scores[i])} for i, (q, _) in enumerate(corpus.queries)}
    measures = {"ndcg_cut_5", "P_5", "recall_5"}
    per_query = pytrec_eval.RelevanceEvaluator(corpus.qrels, measures).evaluate(run)
    assert len(per_query) == len(corpus.queries)
    expected = {key: np.mean([r[m] for r in per_query.values()]) for key, m in
                (("nDCG@5", "ndcg_cut_5"), ("P@5", "P_5"), ("R@5", "recall_5"))}
    assert 0 < expected["nDCG@5"] < 1  # random weights: neither a perfect nor an empty ranking
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_tables_keep_their_columns_with_any_model_name():
    """A '|' in a name would split a Markdown cell; CJK takes two terminal columns; k past a corpus is said."""
    from mlx_embed.eval.runner import ModelRow, format_tables

    metrics = {"encode_s": 0.1, "P@50": 0.02, "R@50": 1.0, "MRR@10": 0.9, "nDCG@50": 0.8}
    rows = [ModelRow(name, 384, 22_600_000, 12.8, 0.1, {"code": metrics}, weights="4-bit") for name in ("a|b", "模型", "minilm")]
    markdown = format_tables(rows, 50, markdown=True).splitlines()
    assert [line.count(" | ") for line in markdown if line.startswith("| ")] == [10] * 4
    text = format_tables(rows, 50).splitlines()
    assert "k = 50 is more than its documents" in text[0] and "P@50 is at most its relevant documents / 50" in text[0]
    starts = {line.index("384") + sum(1 for c in line[: line.index("384")] if ord(c) > 0x2E80) for line in text[2:5]}
    assert len(starts) == 1 and all(line == line.rstrip() for line in text)


def test_tables_say_which_weights_were_scored(tiny_bert_hf, tiny_bert_4bit, capsys):
    """Each row names its weights as the files store them (float32 tensors; a 4-bit quantization block),
    and the models' sources follow the tables."""
    import json as json_

    from safetensors import safe_open

    assert main(["eval", "--model", str(tiny_bert_hf), "--model", str(tiny_bert_4bit), "--corpus", "code"]) == 0
    out = capsys.readouterr().out
    with safe_open(str(next(tiny_bert_hf.glob("*.safetensors"))), "numpy") as f:
        assert {f.get_tensor(k).dtype.name for k in f.keys()} == {"float32"}
    assert json_.loads((tiny_bert_4bit / "config.json").read_text())["quantization"]["bits"] == 4
    cells = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith(str(tiny_bert_hf.parent))}
    assert cells == {str(tiny_bert_hf): "fp32", str(tiny_bert_4bit): "4-bit"}
    tail = out[out.index("loaded from:"):]
    assert f"{tiny_bert_hf}: folder ({tiny_bert_hf})" in tail and f"{tiny_bert_4bit}: folder ({tiny_bert_4bit})" in tail


def test_a_model_that_does_not_load_is_named_and_the_others_still_scored(tiny_bert_hf, damaged_bert, capsys):
    """It ended the run (exit 2, nothing printed) after the models before it had been scored."""
    damaged = damaged_bert
    assert main(["eval", "--model", str(tiny_bert_hf), "--model", str(damaged), "--corpus", "code", "--json"]) == 1
    out, err = capsys.readouterr()
    assert [row["model"] for row in json.loads(out)] == [str(tiny_bert_hf)]
    assert f"mlx-embed eval: {damaged} was not scored: " in err and "not a readable safetensors file" in err
    assert main(["eval", "--model", str(damaged), "--corpus", "code"]) == 1  # alone too, as profile
    out, err = capsys.readouterr()
    assert out == "" and f"mlx-embed eval: {damaged} was not scored: " in err and "Traceback" not in err


def test_plot_names_the_corpora_it_shows(tmp_path, monkeypatch):
    """The plot of one --corpus says which, not "bundled corpora" as if all four were in it."""
    pytest.importorskip("matplotlib", reason="the plot extra: pip install 'mlx-embed[plot]'")
    import matplotlib.axes

    from mlx_embed.eval.runner import ModelRow, plot

    titles = []
    set_title = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, label, *a, **kw: titles.append(label) or set_title(self, label, *a, **kw))
    metrics = {"encode_s": 0.1, "P@5": 0.2, "R@5": 0.9, "MRR@10": 0.9, "nDCG@5": 0.8}
    plot([ModelRow("minilm", 384, 22_600_000, 12.8, 0.1, {"en": metrics})], 5, str(tmp_path / "q.png"))
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    assert titles == ["retrieval quality vs size (bundled corpora: en)"]
