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


def test_command_synopses_list_every_flag_of_every_command():
    """The README's command block names each `mlx-embed` command and exactly the flags its parser takes."""
    from mlx_embed.cli import build_parser

    after = (ROOT / "README.md").read_text().split("<!-- commands -->\n", 1)[1]
    block = re.match(r"```text\n(.*?)\n```", after, re.S).group(1)
    documented: dict[str, set[str]] = {}
    command = None
    for line in block.splitlines():
        line = line.split("  #", 1)[0]
        if line.startswith("mlx-embed "):
            command = line.split()[1]
            documented[command] = set()
        elif not line.startswith(" "):
            command = None
        if command:
            documented[command] |= set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.replace(f"mlx-embed {command}", "")))
    subparsers = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(documented) == set(subparsers)
    for name, parser in subparsers.items():
        flags = {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}
        assert documented[name] == flags, name
