"""README.md stays true: its model table is the registry's, and CI runs its test command."""

from pathlib import Path

from mlx_embed.registry import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_model_table_matches_registry():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- model-table -->\n", 1)[1].split("\n<!-- /model-table -->", 1)[0]
    assert table == markdown_table()


def test_ci_runs_the_readme_test_command():
    assert "<!-- test-command -->" in (ROOT / "README.md").read_text()
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
