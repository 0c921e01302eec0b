"""Which embedding models fit a RAM budget (an 8 GB Mac, say), with what batch size and input length.

    python scripts/memory_fit.py [--ram 8GB] [--alongside 2.5GB] [--reserve 2GB] [--model M ...]
                                 [--backend metal] [--json]
    python scripts/memory_fit.py --calibrate [--model M ...]

The same report as ``mlx-embed fit`` (see ``mlx_embed/fit.py`` for the model of memory and the
verdicts). ``--calibrate`` measures the runtime constants of ``mlx_embed.fit.RUNTIME`` (import RSS,
load overhead, first-encode overhead) on the models given (default: MiniLM, the model whose weights every
machine here has, and a 4-bit and 8-bit conversion of it made in a temporary folder), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlx_embed import fit  # noqa: E402
from mlx_embed.profile import ChildFailed  # noqa: E402


def _calibrate(models: list[str] | None, as_json: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="mlx_embed_calibrate_") as tmp:
        if not models:
            import mlx_embed

            models = ["minilm"]
            for bits in (8, 4):
                dst = Path(tmp) / f"minilm-{bits}bit"
                mlx_embed.convert("minilm", dst, bits=bits, report=False)
                models.append(str(dst))
        rows = fit.calibrate(models)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    mib = 1024**2
    print(f"{'model':<32} {'import RSS':>10} {'resident':>9} {'held at load':>12} {'tokenizer':>9} {'hub':>5} "
          f"{'load overhead':>13} {'encode overhead':>15}  (MiB)")
    for r in rows:
        print(f"{r['model'][-32:]:<32} {r['import_rss'] / mib:>10.1f} {r['resident_weight_bytes'] / mib:>9.1f} "
              f"{r['load_peak_weight_bytes'] / mib:>12.1f} {r['tokenizer_bytes'] / mib:>9.1f} {r['hub_import'] / mib:>5.1f} "
              f"{r['load_overhead'] / mib:>13.1f} {r['encode_overhead'] / mib:>15.1f}")
    for key in ("import_rss", "load_overhead", "encode_overhead"):
        value = statistics.median(r[key] for r in rows)
        print(f"median {key}: {value / mib:.1f} MiB (fit.RUNTIME[{key!r}] = {fit.RUNTIME[key] / mib:.1f} MiB)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fit.add_arguments(parser)
    parser.add_argument("--calibrate", action="store_true", help="measure the runtime constants instead")
    args = parser.parse_args()
    try:
        if args.calibrate:
            return _calibrate(args.model, args.json)
        return fit.run(args)
    except (ValueError, TypeError, OSError) as err:  # as mlx-embed fit reports them
        print(f"memory_fit: error: {err}", file=sys.stderr)
        return 2
    except ChildFailed as err:
        print(f"memory_fit: error: measuring failed ({err.reason}); calibrate on other models, "
              "or check the memory left on this machine", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
