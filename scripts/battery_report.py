"""Run the similarity battery for a model, print per-category results, and (``--write``) record the
model's measured capabilities in tests/battery/capabilities.json.

    python scripts/battery_report.py --model minilm [--engine sentence-transformers]
                                     [--write [--accept-failures]]

``--engine sentence-transformers`` scores the same folder with sentence-transformers (float32, torch CPU) instead
of mlx_embed, for a model whose folder it can load (a full-precision one, such as MiniLM's packaged copy): the
expectations it records then come from the reference implementation, not from the code the battery tests.

A category is recorded as "pass" only if every case in it ranks the positive first; its margin is
half its smallest gap (cos(anchor, positive) - max cos(anchor, negative)), rounded down to 0.01. A
failing category records the ids of the cases it ranked by a gap above 0.02 (a gap that survives
another BLAS or a GPU), which the tests then require it to keep ranking: those very cases, since a
count of them would be met by chance (a random model ranks 1 in 1 + negatives). ``--write`` refuses to record a failure in a category the
model was expected to pass unless ``--accept-failures`` says so.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.battery.harness import CATEGORIES, ENV, HERE, load_battery_model, load_cases, score  # noqa: E402

CLEAR_GAP = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--model", required=True, help="registry alias, Hub id or folder")
    parser.add_argument("--name", help="key in capabilities.json: a registry alias the tests check (default: the model's)")
    parser.add_argument("--write", action="store_true", help="record the measurement in capabilities.json")
    parser.add_argument("--engine", choices=("mlx_embed", "sentence-transformers"), default="mlx_embed",
                        help="what embeds the cases (default mlx_embed); sentence-transformers needs a "
                        "full-precision folder")
    parser.add_argument(
        "--accept-failures", action="store_true", help="with --write: record failures in categories expected to pass"
    )
    args = parser.parse_args()

    from mlx_embed import registry
    from mlx_embed.loading import PACKAGED, package_folder

    try:
        embedder = load_battery_model(args.model)  # the weights and dtype the battery runs, offline
    except (ValueError, OSError) as err:
        from mlx_embed import ModelNotFoundError

        repo = re.search(r"Weights for '([^']+)'", str(err))
        if not isinstance(err, ModelNotFoundError) or repo is None:  # not a download that is missing: a folder's own error
            parser.error(str(err))
        parser.error(f"{str(err).split(' Fix: ')[0].rstrip('.')}. The battery runs offline: give --model a folder, or "
                     f"download the model once with network (`hf download {repo.group(1)}`)")
    spec = registry.find(args.model)
    packaged_as = next((a for a in PACKAGED if package_folder(a) == embedder.path), None)  # the package's folder
    alias = spec.alias if spec else packaged_as or embedder.spec.alias
    packaged = alias in PACKAGED and package_folder(alias) == embedder.path
    name = args.name or alias
    if args.write and name not in ENV:  # the tests check these keys only: another would be recorded and never read
        parser.error(f"--write records the battery for {name!r}, which the tests do not check: they read "
                     f"{', '.join(ENV)}; pass --name with the one these weights are")
    weights = f"package:{PACKAGED[alias][1]}" if packaged else f"{embedder.source} {embedder.path}"
    encode, engine = embedder.encode, f"mlx_embed, {embedder!r}"
    if args.engine == "sentence-transformers":
        encode, engine = _sentence_transformers(embedder.path)
    results = score(encode, load_cases())
    measured = {}
    print(f"{alias} ({embedder.path}, {engine})")
    print(f"{'category':<13} {'cases':>5} {'ranked':>7} {'min gap':>8} {'median':>8}")
    for cat in CATEGORIES:
        gaps = np.array([r.gap for r in results if r.category == cat])
        ok = bool((gaps > 0).all())
        measured[cat] = {"expect": "pass" if ok else "fail", "ranked": int((gaps > 0).sum()), "cases": len(gaps),
                         "min_gap": round(float(gaps.min()), 4), "median_gap": round(float(np.median(gaps)), 4)}
        if ok:
            measured[cat]["margin"] = math.floor(50 * float(gaps.min())) / 100
        else:
            measured[cat]["keeps"] = [r.id for r in results if r.category == cat and r.gap > CLEAR_GAP]
        kept = f"margin {measured[cat]['margin']}" if ok else f"keeps {len(measured[cat]['keeps'])}"
        print(f"{cat:<13} {len(gaps):>5} {int((gaps > 0).sum()):>4}/{len(gaps):<2} {gaps.min():>+8.3f} {np.median(gaps):>+8.3f}  {kept}")
    if args.write:
        path = HERE / "capabilities.json"
        caps = json.loads(path.read_text())
        before = caps.get(name, {}).get("categories", {})
        lost = [c for c in CATEGORIES if before.get(c, {}).get("expect") == "pass" and measured[c]["expect"] == "fail"]
        if lost and not args.accept_failures:
            print(
                f"not written: {name} was expected to pass {', '.join(lost)} and now fails there; "
                "check the cases and the model, then rerun with --accept-failures to record it",
                file=sys.stderr,
            )
            return 1
        caps[name] = {
            "measured": True,
            "source": f"scripts/battery_report.py --engine {args.engine} on {date.today().isoformat()}, "
            f"weights {weights}",
            "categories": measured,
        }
        path.write_text(json.dumps(caps, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
    return 0


def _sentence_transformers(folder) -> tuple:
    """``(encode, description)``: sentence-transformers on ``folder``, float32 on the CPU."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        sys.exit("battery_report.py: --engine sentence-transformers needs it: pip install -e '.[test]'")
    try:
        model = SentenceTransformer(str(folder), device="cpu")
    except Exception as err:  # a 4-bit MLX folder, say
        sys.exit(f"battery_report.py: sentence-transformers cannot load {folder} ({type(err).__name__}: {err}); "
                 "--engine sentence-transformers needs a full-precision sentence-transformers folder")
    version = sys.modules["sentence_transformers"].__version__

    def encode(texts: list[str]):
        return model.encode(texts, batch_size=32, normalize_embeddings=True)

    return encode, f"sentence-transformers {version}"


if __name__ == "__main__":
    sys.exit(main())
