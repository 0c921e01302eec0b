"""README.md stays true: its model table is the registry's, and CI runs its test command."""

import re
import shlex
import subprocess
from pathlib import Path

from mlx_embed.registry import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_model_table_matches_registry():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- model-table -->\n", 1)[1].split("\n<!-- /model-table -->", 1)[0]
    assert table == markdown_table()


def _readme_test_block() -> str:
    """The ```bash block that follows <!-- test-command --> in README.md, parsed here in Python."""
    readme = (ROOT / "README.md").read_text()
    after = readme.split("<!-- test-command -->\n", 1)[1]
    match = re.match(r"\s*```bash\n(.*?)\n```", after, re.S)
    assert match, "no ```bash block right after <!-- test-command --> in README.md"
    return match.group(1)


def test_ci_runs_the_readme_test_command():
    """.ci/run's own extraction (its `cmd=$(awk ...)` line, run here as CI runs it) gives the README block."""
    script = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in script.splitlines() if line.startswith("cmd=$(awk ")]
    assert len(lines) == 1, lines
    extracted = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", lines[0] + '\nprintf "%s" "$cmd"'],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    block = _readme_test_block()
    assert extracted == block
    assert "python -m pytest" in block
    # .ci/run executes what it extracted
    assert 'bash -euo pipefail -c "$cmd"' in script
    assert shlex.split(block)  # one well-formed shell line
