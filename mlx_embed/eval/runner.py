"""``mlx-embed eval``: retrieval quality of one or more models on the bundled corpora.

One table per corpus, a row per model: its weights (``4-bit``, ``fp32``, ...), dim, parameters, size on
disk, load and encode time, P@k, R@k, MRR@10, nDCG@k (and MAP@k in ``--json``); then where each model was
loaded from, so an alias says whether its 4-bit checkpoint or a full-precision copy was scored.
``--plot FILE.png`` (plot extra) draws nDCG@k against size.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mlx_embed.textfile import terminal_width

from .corpora import Corpus, list_corpora, load_corpus
from .metrics import cosine_scores, evaluate_run, rank


@dataclass
class ModelRow:
    model: str
    dim: int
    parameters: int
    size_mb: float
    load_s: float
    results: dict[str, dict] = field(default_factory=dict)  # corpus -> {"encode_s": .., metrics..}
    weights: str = ""  # stats.weight_format: "4-bit", "mixed 4/5/6/8-bit", "fp32", ...
    source: str = ""  # Embedder.source: where the files came from


def evaluate(embedder, corpus: Corpus, ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict[str, float]:
    """Metrics (mean over queries) and encode time of ``embedder`` on ``corpus``."""
    start = time.perf_counter()
    docs = embedder.encode_document(corpus.doc_texts)
    queries = embedder.encode_query(corpus.query_texts)
    encode_s = time.perf_counter() - start
    scores = cosine_scores(queries, docs)  # (Q, N)
    run = rank(scores, corpus.doc_ids, corpus.query_ids)
    return {"encode_s": encode_s, **evaluate_run(run, corpus.qrels, ks)}


def run_models(
    models: list[str], corpora: list[str], k: int = 5, failed: dict[str, str] | None = None
) -> list[ModelRow]:
    """A row per model; with ``failed``, a model that does not load is put there (name -> why) and the others
    are still scored, else its error propagates."""
    import mlx_embed
    from mlx_embed.stats import checkpoint_stats, files_float_dtype, weight_format

    ks = tuple(sorted({1, 3, k, 10}))
    rows = []
    for name in models:
        start = time.perf_counter()
        try:
            embedder = mlx_embed.load(name)
        except (ValueError, OSError) as err:
            if failed is None:
                raise
            failed[name] = str(err)
            continue
        load_s = time.perf_counter() - start
        stats = checkpoint_stats(embedder.path)
        weights = weight_format(embedder.config, files_float_dtype(embedder.path))
        row = ModelRow(
            name, embedder.dim, stats.parameters, stats.weights_bytes / 1e6, load_s,
            weights=weights, source=f"{embedder.source} ({embedder.path})",
        )
        for corpus in corpora:
            row.results[corpus] = evaluate(embedder, load_corpus(corpus), ks)
        rows.append(row)
    return rows


def format_tables(rows: list[ModelRow], k: int, markdown: bool = False) -> str:
    cols = ["model", "weights", "dim", "params", "size MB", "load s", "encode s", f"P@{k}", f"R@{k}", "MRR@10", f"nDCG@{k}"]
    out = []
    for corpus in rows[0].results:
        body = [
            [
                r.model, r.weights, str(r.dim), f"{r.parameters / 1e6:.1f}M", f"{r.size_mb:.1f}", f"{r.load_s:.2f}",
                f"{r.results[corpus]['encode_s']:.2f}",
                *(f"{r.results[corpus][m]:.3f}" for m in (f"P@{k}", f"R@{k}", "MRR@10", f"nDCG@{k}")),
            ]
            for r in rows
        ]
        c = load_corpus(corpus)
        title = f"{corpus} ({c.language}): {len(c.documents)} documents, {len(c.queries)} queries"
        if k > len(c.documents):
            title += (f"; k = {k} is more than its documents, so R@{k} counts every relevant one "
                      f"and P@{k} is at most its relevant documents / {k} (trec_eval's P_k)")
        if markdown:
            out.append(f"**{title}**\n\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
            out += ["| " + " | ".join(x.replace("|", "\\|") for x in line) + " |" for line in body]
        else:
            widths = [max(terminal_width(x) for x in col) for col in zip(cols, *body)]
            out.append(title)
            out += ["  ".join(x + " " * (w - terminal_width(x)) for x, w in zip(line, widths)).rstrip() for line in [cols, *body]]
        out.append("")
    sources = [f"{r.model}: {r.source}" for r in rows if r.source]
    if sources:
        out += ["loaded from:", *(f"- {line}" if markdown else f"  {line}" for line in sources), ""]
    return "\n".join(out)


def plot(rows: list[ModelRow], k: int, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ValueError("--plot needs matplotlib: pip install 'mlx-embed[plot]'") from err
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colors = {corpus: f"C{i}" for i, corpus in enumerate(rows[0].results)}
    markers = "os^Dvp*hX"
    for i, r in enumerate(rows):
        marker = markers[i % len(markers)]
        for corpus, values in r.results.items():
            ax.plot(r.size_mb, values[f"nDCG@{k}"], marker, color=colors[corpus], markerfacecolor="none", markersize=8)
        mean = float(np.mean([v[f"nDCG@{k}"] for v in r.results.values()]))
        name = Path(r.model).name if "/" in r.model and Path(r.model).exists() else r.model
        ax.plot(r.size_mb, mean, marker, color="black", markersize=9, label=f"{name[:40]} (mean)")
    for corpus, color in colors.items():
        ax.plot([], [], "o", color=color, markerfacecolor="none", label=corpus)
    ax.set_xscale("log")
    ax.set_xlabel("weights on disk (MB)")
    ax.set_ylabel(f"nDCG@{k}")
    ax.set_title(f"retrieval quality vs size (bundled corpora: {', '.join(rows[0].results)})")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")


def add_arguments(parser) -> None:
    from mlx_embed.cli import at_least

    parser.add_argument("--model", action="append", required=True, help="alias, Hub id or folder; repeatable")
    parser.add_argument("--corpus", action="append", choices=list_corpora(), help="default: all")
    parser.add_argument("-k", type=at_least(1), default=5, help="cut-off of P@k, R@k and nDCG@k (MRR is @10); default 5")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print every metric at k = 1, 3, 10 and -k as JSON")
    out.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--plot", metavar="PNG", help="write quality vs size to this PNG (plot extra)")


def run(args) -> int:
    from mlx_embed.loading import resolve_all
    from mlx_embed.textfile import check_writable

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if args.plot:
        target = Path(args.plot)
        if target.is_dir() or target.suffix.lower() != ".png":
            example = target / "ndcg.png" if target.is_dir() else target.with_suffix(".png").name
            what = "is a folder" if target.is_dir() else "does not end in .png"
            raise ValueError(f"--plot {args.plot} {what}: give a file name ending in .png, e.g. {example}")
        check_writable(target.resolve(), f"--plot {args.plot}")
        try:
            import matplotlib  # noqa: F401
        except ImportError as err:
            raise ValueError("--plot needs matplotlib: pip install 'mlx-embed[plot]'") from err
    resolve_all(args.model)
    failed: dict[str, str] = {}
    rows = run_models(args.model, args.corpus or list_corpora(), args.k, failed)
    if args.json:
        json.dump([asdict(r) for r in rows], sys.stdout, indent=2)
        print()
    elif rows:
        print(format_tables(rows, args.k, markdown=args.markdown))
    if args.plot and rows:
        plot(rows, args.k, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    for name, why in failed.items():
        print(f"mlx-embed eval: {name} was not scored: {why}", file=sys.stderr)
    return 1 if failed else 0
