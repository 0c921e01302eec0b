"""RSS over a long encode: 100,000 short texts through MiniLM, with the RSS printed as it goes.

    python scripts/rss_soak.py [--model minilm] [--texts 100000] [--chunk 1000] [--batch-size 32]

Texts are generated deterministically (seeded) and encoded ``--chunk`` at a time, the way an indexer
feeds a corpus (one ``encode`` call over all 100,000 would also hold the 100,000 x dim output and the
token ids of every text, which grow with the corpus by design). RSS is sampled every 5 ms (and read
from the kernel's high-water mark on Linux).

The bound: RSS when the run starts (after load, and after one tokenizer pass over the texts to find the
longest) plus one batch's working set: the RSS growth of encoding one batch of the ``--batch-size``
longest texts, inline, from the RSS right before that encode (on the CPU backend ``encode`` splits each
batch over its streams, so they hold one batch's texts and tokens together). The run passes if its
peak RSS stays within that bound + 10%.

``--high-water MiB`` overrides ``mlx_embed.embedder.CACHE_HIGH_WATER`` (MLX's cache is cleared after a
batch when it holds more than this; 0: after every batch; -1: never) and ``--cache-limit MiB`` calls
``mx.set_cache_limit``, to compare cache policies.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlx_embed  # noqa: E402  (before mlx.core: it may interpose OpenBLAS)
import mlx.core as mx  # noqa: E402
from mlx_embed import embedder as embedder_module  # noqa: E402
from mlx_embed.cli import at_least  # noqa: E402
from mlx_embed.profile import PeakSampler, rss  # noqa: E402

MIB = 1024**2
WORDS = (
    "the of and to in is for on with as by at from it this that be are was not or an which have has "
    "user password account reset login error server request file memory cache batch model vector index "
    "search query document answer question price order customer report data table value time date city "
    "train airport ticket hotel weather rain music film book school teacher student doctor hospital "
    "пароль сервер файл поиск запрос ответ город поезд погода книга 密码 服务器 文件 搜索 查询 城市 天气 "
    "def return import class self print select from where join null true false for while if else"
).split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short texts (3 to 24 words) drawn from a fixed mixed EN/RU/ZH/code word list."""
    rng = random.Random(seed)
    return [f"{i}: " + " ".join(rng.choices(WORDS, k=rng.randint(3, 24))) for i in range(n)]


def megabytes(never: bool):
    """An argparse ``type``: a finite number of MiB >= 0, or -1 where ``never``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= 0 or never and value == -1)):
            raise argparse.ArgumentTypeError(f"must be a number of MiB >= 0{' or -1 (never)' if never else ''}, got {text!r}")
        return value

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", type=at_least(1), default=100_000)
    parser.add_argument("--chunk", type=at_least(1), default=1000, help="texts per encode() call")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--report-every", type=at_least(1), default=5000, help="print a line every this many texts")
    parser.add_argument("--high-water", type=megabytes(never=True), help="MiB; overrides embedder.CACHE_HIGH_WATER (0: every batch, -1: never)")
    parser.add_argument("--cache-limit", type=megabytes(never=False), help="MiB; mx.set_cache_limit before the run")
    args = parser.parse_args()

    if args.high_water is not None:
        embedder_module.CACHE_HIGH_WATER = float("inf") if args.high_water < 0 else int(args.high_water * MIB)
    if args.cache_limit is not None:
        mx.set_cache_limit(int(args.cache_limit * MIB))
    texts = make_texts(args.texts)

    before_load = rss()
    model = mlx_embed.load(args.model)
    mx.eval(model.model.parameters())
    load_rss = rss()
    lengths = [  # a chunk at a time: the tokenizer's Encoding objects of 100,000 texts take hundreds of MB
        len(s) for i in range(0, len(texts), args.chunk) for s in model.text_encoder.encode(texts[i : i + args.chunk], model.max_length)
    ]
    longest = sorted(range(len(texts)), key=lambda i: -lengths[i])[: args.batch_size]
    batch = [texts[i] for i in longest]
    streams, embedder_module.CPU_STREAMS = embedder_module.CPU_STREAMS, 0  # one batch, on one stream
    start_rss = rss()
    with PeakSampler() as one:
        model.encode(batch, batch_size=args.batch_size)
    embedder_module.CPU_STREAMS = streams
    batch_ws = one.peak - start_rss
    bound = start_rss + batch_ws
    policy = embedder_module.CACHE_HIGH_WATER
    print(f"model {model.spec.alias} ({model.path}); {args.texts} texts of {min(lengths)}-{max(lengths)} tokens "
          f"(mean {sum(lengths) / len(lengths):.1f}), chunks of {args.chunk}, batch {args.batch_size}")
    limit = mx.set_cache_limit(0)
    mx.set_cache_limit(limit)
    print(f"cache policy: clear when MLX cache > {policy / MIB:.0f} MiB; MLX cache limit {limit / MIB:.0f} MiB")
    print(f"RSS before load {before_load / MIB:.1f} MiB, after load {load_rss / MIB:.1f} MiB, at the start of the run "
          f"{start_rss / MIB:.1f} MiB; one batch's working set {batch_ws / MIB:.1f} MiB -> bound {bound / MIB:.1f} MiB "
          f"(+10%: {1.1 * bound / MIB:.1f} MiB)")
    print(f"{'texts':>8} {'seconds':>8} {'texts/s':>8} {'RSS MiB':>8} {'peak MiB':>9} {'MLX active':>10} {'MLX cache':>9}")

    start = time.perf_counter()
    done = 0
    checksum = 0.0
    with PeakSampler(record=0.25) as run:
        while done < len(texts):
            chunk = texts[done : done + args.chunk]
            vectors = model.encode(chunk, batch_size=args.batch_size)
            checksum += float(vectors[:, 0].sum())
            done += len(chunk)
            if done % args.report_every < args.chunk or done == len(texts):
                elapsed, now = time.perf_counter() - start, rss()  # the sampler's peak is up to 5 ms old
                print(f"{done:>8} {elapsed:>8.1f} {done / elapsed:>8.1f} {now / MIB:>8.1f} {max(run.peak, now) / MIB:>9.1f} "
                      f"{mx.get_active_memory() / MIB:>10.1f} {mx.get_cache_memory() / MIB:>9.1f}", flush=True)
    peak = run.peak
    samples = [r for _, r in run.samples]
    tenth = max(1, len(samples) // 10)
    first, last = samples[:tenth], samples[-tenth:]
    ok = peak <= 1.1 * bound
    print(f"peak RSS {peak / MIB:.1f} MiB = start + {(peak - start_rss) / MIB:.1f} MiB; bound {bound / MIB:.1f} MiB: "
          f"{100 * (peak / bound - 1):+.1f}% -> {'within' if ok else 'OVER'} the bound + 10%")
    print(f"mean RSS over the first / last tenth of the run: {sum(first) / len(first) / MIB:.1f} / "
          f"{sum(last) / len(last) / MIB:.1f} MiB ({len(samples)} samples); checksum {checksum:.4f}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, TypeError, OSError) as err:  # a model that does not load: the library's message says why
        sys.exit(f"rss_soak: error: {err}")
