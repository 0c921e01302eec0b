"""The scripts README tells users to run: bad arguments give one line naming the problem before anything runs."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("bench.py", ["--texts", "0"], "argument --texts: must be an integer >= 1, got '0'"),
        ("bench.py", ["--queries", "0"], "argument --queries: must be an integer >= 1"),
        ("bench.py", ["--repeats", "0"], "argument --repeats: must be an integer >= 1"),
        ("bench.py", ["--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
        ("bench.py", ["--model-dir", "/nonexistent"], "--model-dir /nonexistent: not a Hugging Face folder"),
        ("bench.py", ["--engines", "mlx-embeddings", "--peer-python", "/nonexistent/python"], "no such program"),
        ("bench.py", ["--json", "/nonexistent/x.json"], "--json /nonexistent/x.json: no such folder"),
        ("bench.py", ["--json", str(SCRIPTS)], "is a folder: give a file name (or --json - for stdout)"),  # was: after the run
        ("rss_soak.py", ["--high-water", "inf"], "argument --high-water: must be a number of MiB >= 0 or -1 (never)"),
        ("rss_soak.py", ["--high-water", "nan"], "argument --high-water: must be a number of MiB >= 0 or -1"),
        ("rss_soak.py", ["--cache-limit", "-1"], "argument --cache-limit: must be a number of MiB >= 0, got '-1'"),
        ("battery_report.py", ["--model", "nosuch"], "Unknown model 'nosuch'"),
        ("bench.py", ["--peer-texts", "-1"], "--peer-texts must be >= 0"),
        ("quant_table.py", ["--rows", "nosuch"], "--rows nosuch matches no row; the rows are: fp32; "),
        ("quant_table.py", ["--draws", "-1"], "--draws must be >= 0"),
        ("bench.py", ["--engines", ""], "--engines names no engine; choose from"),  # was: an empty table, exit 1
    ],
)
def test_bad_arguments_are_named_before_anything_runs(script, args, message):
    """Before: tracebacks (ZeroDivisionError, StatisticsError, FileNotFoundError after the whole run), exit 0
    with every engine failed, or a table header alone for rows that matched nothing."""
    proc = _run(script, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after argparse's usage lines
    assert last.startswith(f"{script}: error: ") and message in last


def test_battery_report_help_describes_it_whole():
    out = _run("battery_report.py", "--help").stdout
    assert "record the model's measured capabilities in tests/battery/capabilities.json" in " ".join(out.split())


def test_bench_children_load_no_mlx_before_their_engine():
    """A measuring child of bench.py (sentence-transformers, mlx-embeddings) imported mlx_embed through the argument
    parsing, loading MLX and OpenBLAS into the peer's process (+15 MiB of its RSS, MLX's BLAS swapped)."""
    code = ("import runpy, sys; sys.argv = ['bench.py', '--child', '/nonexistent/spec.json']\n"
            f"try: runpy.run_path({str(SCRIPTS / 'bench.py')!r}, run_name='__main__')\n"
            "except FileNotFoundError: pass\n"
            "print('mlx.core' in sys.modules, 'mlx_embed' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr[-2000:]


def test_battery_write_refuses_a_key_the_tests_never_read(tiny_bert_hf):
    """A folder's --write was recorded under its folder name, which no battery test reads; refused before the run."""
    proc = _run("battery_report.py", "--model", str(tiny_bert_hf), "--write")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"--write records the battery for '{tiny_bert_hf.name}', which the tests do not check" in proc.stderr
    assert "category" not in proc.stdout  # before scoring


def test_bench_converts_again_for_another_source(tiny_bert_hf, tiny_qwen3_hf, tmp_path):
    """--work-dir kept the 4-bit folder of the first --model-dir and benchmarked it for the next one (a crash when
    the widths differed, the wrong model's figures when not)."""
    import json
    import runpy

    bench = runpy.run_path(str(SCRIPTS / "bench.py"))
    first = bench["prepare_folder"]("mlx_embed-4bit", sys.executable, tiny_bert_hf, tmp_path)
    assert json.loads((first / "config.json").read_text())["model_type"] == "bert"
    again = bench["prepare_folder"]("mlx_embed-4bit", sys.executable, tiny_qwen3_hf, tmp_path)
    assert again == first and json.loads((again / "config.json").read_text())["model_type"] == "qwen3"


def test_battery_report_gives_a_folder_its_own_error():
    """A folder without config.json was told to `hf download /path/to/folder`, as if weights were missing."""
    proc = _run("battery_report.py", "--model", str(SCRIPTS))
    assert proc.returncode == 2 and "scripts has no config.json: it is not a Hugging Face / MLX model folder" in proc.stderr
    assert "hf download" not in proc.stderr
