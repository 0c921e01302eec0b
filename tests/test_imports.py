"""mlx_embed is pure MLX: importing it pulls in none of the reference stacks (they are test extras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "mlx_lm", "sentence_transformers", "scipy", "pandas", "sklearn")

_CHILD = """
import json, sys
import {module}
print(json.dumps({{"loaded": sorted(m for m in {heavy!r} if m in sys.modules), "file": {module}.__file__}}))
"""


@pytest.mark.parametrize("module", ["mlx_embed", "mlx_embed.cli"])
def test_import_pulls_in_no_torch_transformers_or_mlx_lm(module):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(module=module, heavy=HEAVY)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).resolve().is_relative_to(ROOT / "mlx_embed")  # this checkout, not another install
    assert got["loaded"] == [], f"import {module} loaded {got['loaded']}"


_USE = """
import json, sys
import mlx_embed
from mlx_embed import cli
cli.build_parser()  # imports what every subcommand needs: eval, profile, fit, conversion
vectors = mlx_embed.load({folder!r}).encode(["a text", "another one"])
print(json.dumps({{"loaded": sorted(m for m in {heavy!r} if m in sys.modules), "shape": list(vectors.shape)}}))
"""


def test_loading_encoding_and_the_cli_parser_pull_in_no_reference_stack(tiny_bert_hf):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", _USE.format(folder=str(tiny_bert_hf), heavy=HEAVY)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["shape"][0] == 2 and got["loaded"] == [], got


def test_version_matches_the_installed_metadata():
    from importlib.metadata import version

    import mlx_embed

    assert mlx_embed.__version__ == version("mlx-embed")  # pyproject.toml's, as installed
