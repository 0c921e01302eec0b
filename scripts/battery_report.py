"""Run the similarity battery for a model, print per-category results, and (``--write``) record the
model's measured capabilities and margin in tests/battery/capabilities.json.

    python scripts/battery_report.py --model minilm [--write]

The margin rule: half the smallest gap (cos(anchor, positive) - max cos(anchor, negative)) measured
over the categories the model passes, rounded down to 0.01. A category is recorded as "pass" only if
every case in it ranks the positive first.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.battery.harness import CATEGORIES, HERE, load_cases, score  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="registry alias, Hub id or folder")
    parser.add_argument("--name", help="key in capabilities.json (default: the registry alias)")
    parser.add_argument("--write", action="store_true", help="record the measurement in capabilities.json")
    args = parser.parse_args()

    import mlx_embed

    embedder = mlx_embed.load(args.model)
    results = score(embedder.encode, load_cases())
    measured = {}
    print(f"{embedder.spec.alias} ({embedder.path})")
    print(f"{'category':<13} {'cases':>5} {'ranked':>7} {'min gap':>8} {'median':>8}")
    for cat in CATEGORIES:
        gaps = np.array([r.gap for r in results if r.category == cat])
        ok = bool((gaps > 0).all())
        measured[cat] = {"expect": "pass" if ok else "fail", "ranked": int((gaps > 0).sum()), "cases": len(gaps),
                         "min_gap": round(float(gaps.min()), 4), "median_gap": round(float(np.median(gaps)), 4)}
        print(f"{cat:<13} {len(gaps):>5} {int((gaps > 0).sum()):>4}/{len(gaps):<2} {gaps.min():>+8.3f} {np.median(gaps):>+8.3f}")
    passing = [m["min_gap"] for m in measured.values() if m["expect"] == "pass"]
    margin = math.floor(50 * min(passing)) / 100 if passing else 0.0
    print(f"margin (half the smallest passing gap, floored to 0.01): {margin}")
    if args.write:
        path = HERE / "capabilities.json"
        caps = json.loads(path.read_text())
        caps[args.name or embedder.spec.alias] = {
            "measured": True,
            "source": f"scripts/battery_report.py on {date.today().isoformat()}, weights {embedder.source}",
            "margin": margin,
            "categories": measured,
        }
        path.write_text(json.dumps(caps, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
