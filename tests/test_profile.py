"""The profiler's figures are real: file sizes, RSS growth with model size, schema, swap."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

import mlx_embed
from mlx_embed import cli
from mlx_embed.profile import MIN_QUERIES, PROFILE_SCHEMA, latency_summary, profile

WORKLOAD = ["How do I reset my password?", "Как сбросить пароль?", "如何重置密码？", "def f(x): return x + 1"]


def random_bert_folder(folder: Path, tokenizer_from: Path, *, hidden: int, layers: int, intermediate: int) -> Path:
    """A random-weight BERT in Hugging Face layout with MiniLM's tokenizer and pooling files."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_embed.models import bert

    config = {
        "model_type": "bert", "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
        "intermediate_size": intermediate, "vocab_size": 30522, "max_position_embeddings": 512,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    }
    folder.mkdir(parents=True, exist_ok=True)
    mx.random.seed(0)
    model = bert.Model(bert.ModelArgs.from_dict(config))
    model.set_dtype(mx.float32)
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json"):
        shutil.copy(tokenizer_from / name, folder / name)
    shutil.copytree(tokenizer_from / "1_Pooling", folder / "1_Pooling", dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory, minilm_path) -> Path:
    return random_bert_folder(tmp_path_factory.mktemp("small-bert"), minilm_path, hidden=64, layers=2, intermediate=128)


def _validate(doc, schema: dict, where: str = "$") -> list[str]:
    """The JSON Schema keywords PROFILE_SCHEMA uses (type, const, enum, required, properties,
    additionalProperties, items, minItems, minimum); returns the violations."""
    errors: list[str] = []
    types = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int}
    if "type" in schema:
        expected = types[schema["type"]]
        if not isinstance(doc, expected) or isinstance(doc, bool):
            return [f"{where}: expected {schema['type']}, got {type(doc).__name__}"]
    if "const" in schema and doc != schema["const"]:
        errors.append(f"{where}: expected {schema['const']!r}")
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{where}: {doc!r} not in {schema['enum']}")
    if "minimum" in schema and doc < schema["minimum"]:
        errors.append(f"{where}: {doc} < {schema['minimum']}")
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                errors.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        for key, value in doc.items():
            if key in props:
                errors += _validate(value, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected key {key!r}")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(doc):
            errors += _validate(item, schema.get("items", {}), f"{where}[{i}]")
    return errors


@pytest.fixture(scope="module")
def timed_report(tmp_path_factory, minilm_path, small_bert) -> tuple[dict, float]:
    """The report, and the wall-clock seconds the whole profile() call took, timed here."""
    texts = tmp_path_factory.mktemp("workload") / "texts.txt"
    texts.write_text("\n".join(WORKLOAD) + "\n", encoding="utf-8")
    start = time.perf_counter()
    got = profile([str(small_bert), str(minilm_path)], texts=texts, batch_size=4, queries=MIN_QUERIES)
    return got, time.perf_counter() - start


@pytest.fixture(scope="module")
def report(timed_report) -> dict:
    return timed_report[0]


def _swap_total() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("SwapTotal:"))


def _no_swap() -> bool:
    return _swap_total() == 0


def test_report_validates_against_its_schema(report):
    assert _validate(json.loads(json.dumps(report)), PROFILE_SCHEMA) == []


def test_validator_catches_violations(report):
    broken = json.loads(json.dumps(report))
    del broken["models"][0]["rss_bytes"]["after_load"]
    broken["models"][1]["latency_ms"]["p50"] = "fast"
    broken["backend"]["extra"] = 1
    errors = _validate(broken, PROFILE_SCHEMA)
    assert len(errors) == 3, errors


def test_weights_bytes_are_the_file_sizes(report, small_bert, minilm_path):
    import mlx.core as mx

    for row, folder in zip(report["models"], (small_bert, minilm_path)):
        files = sorted(folder.glob("*.safetensors"))
        assert row["weights_bytes"] == sum(os.path.getsize(f) for f in files)
        arrays = {k: v for f in files for k, v in mx.load(str(f)).items() if not k.endswith("position_ids")}
        assert row["parameters"] == sum(v.size for v in arrays.values())
        assert row["bits_per_weight"] == pytest.approx(32.0, abs=0.01)  # both are float32 checkpoints


def test_rss_grows_with_the_model(report):
    small, large = report["models"]
    for row in (small, large):
        rss = row["rss_bytes"]
        assert rss["after_load"] > rss["before_load"] > rss["before_import"] > 0
        # The loaded float32 weights are resident: RSS grew by at least their size.
        assert rss["load_delta"] >= row["resident_weight_bytes"]
        assert rss["peak_encode"] >= rss["after_load"] and rss["peak_load"] >= rss["after_load"]
    assert large["resident_weight_bytes"] > 5 * small["resident_weight_bytes"]
    assert large["rss_bytes"]["load_delta"] > small["rss_bytes"]["load_delta"] + 0.5 * (
        large["resident_weight_bytes"] - small["resident_weight_bytes"]
    )


def test_mlx_memory_holds_the_weights_and_encoding_peaks_above_them(report):
    """Both models are float32 files whose tensors MLX holds as they are (the unused pooler and the file
    header aside: under 1 %; an allocator's rounding adds a little); encoding allocates activations on top, so its peak is above what stays."""
    for row in report["models"]:
        m = row["mlx_bytes"]
        assert 0.97 * row["weights_bytes"] <= m["active_after_load"] <= 1.03 * row["weights_bytes"], (m, row["weights_bytes"])
        assert m["peak_load"] >= m["active_after_load"]
        assert m["active_after_encode"] >= m["active_after_load"]
        assert m["peak_encode"] > m["active_after_encode"], m


def test_latency_summary_by_hand():
    """1..20 ms in any order: the median lies between the 10th and 11th (10.5); p95 at rank 0.95 x 19 = 18.05,
    between 19 and 20 (19.05), as numpy's default (linear) interpolation places it."""
    values = [float(v) for v in (7, 20, 1, 13, 2, 19, 3, 18, 4, 17, 5, 16, 6, 15, 8, 14, 9, 12, 10, 11)]
    assert latency_summary(values) == {"queries": 20, "p50": 10.5, "p95": pytest.approx(19.05), "mean": 10.5, "max": 20.0}
    assert latency_summary([3.0]) == {"queries": 1, "p50": 3.0, "p95": 3.0, "mean": 3.0, "max": 3.0}


def test_swap_fields_present(report):
    for row in report["models"]:
        swap = row["swap_bytes"]
        assert swap["delta"] == swap["used_after"] - swap["used_before"]
        if sys.platform.startswith("linux"):  # the kernel's own figure
            assert swap["total"] == _swap_total() and 0 <= swap["used_before"] <= swap["total"]
            if _no_swap():
                assert swap == {"total": 0, "used_before": 0, "used_after": 0, "delta": 0}


def test_machine_backend_and_workload(report):
    if sys.platform.startswith("linux"):
        assert report["machine"]["ram_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert report["backend"]["name"] == "cpu"  # MLX on Linux here has no GPU backend
    import mlx.core as mx

    assert report["backend"]["mlx_version"] == mx.__version__
    assert report["workload"]["texts"] == len(WORKLOAD)
    for row in report["models"]:
        t, lat = row["throughput"], row["latency_ms"]
        assert t["texts"] == len(WORKLOAD)
        assert t["tokens"] > t["texts"]  # each text has several tokens plus [CLS]/[SEP]
        assert lat["queries"] == MIN_QUERIES and lat["p50"] <= lat["p95"] <= lat["max"]
        assert lat["mean"] <= lat["max"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_machine_counts_the_cpus_the_process_may_use():
    """A process limited to one CPU (a container's cpuset, taskset) reported the host's os.cpu_count(), while its
    streams and BLAS threads count the one CPU; the host's count is given beside it."""
    import subprocess

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from mlx_embed import profile; "
            "m = profile.machine_info(); print(m['cpu_count'], m['host_cpu_count'], profile._cpu_text(m))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    host = os.cpu_count()
    text = "1 CPU" + (f" (of {host} on the host)" if host > 1 else "")
    assert proc.stdout.strip().split(maxsplit=2) == ["1", str(host), text]


def test_times_fit_in_the_outer_wall_clock(timed_report):
    """Every figure is seconds (latencies ms) of work done inside the profile() call the test timed:
    together they fit in its wall clock, and so do the encode times the rates imply."""
    report, elapsed = timed_report
    total = 0.0
    for row in report["models"]:
        t, lat = row["throughput"], row["latency_ms"]
        for rate, count in (("texts_per_s", "texts"), ("tokens_per_s", "tokens")):
            assert t[count] / t[rate] <= elapsed, (rate, t, elapsed)
        total += row["import_s"] + row["load_cold_s"] + row["load_warm_s"] + t["warmup_s"] + t["seconds"]
        total += lat["mean"] * lat["queries"] / 1000
    assert total <= elapsed, (total, elapsed)


def test_cli_table_and_json(small_bert, capsys, tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("hello\nworld\n", encoding="utf-8")
    assert cli.main(["profile", "--model", str(small_bert), "--texts", str(texts), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert _validate(doc, PROFILE_SCHEMA) == [] and doc["models"][0]["throughput"]["texts"] == 2


@pytest.mark.parametrize("streams,batches,largest", [("0", 3, 9), ("2", 7, 4), ("3", 9, 3)])
def test_the_batches_encode_ran_are_reported(small_bert, capsys, tmp_path, monkeypatch, streams, batches, largest):
    """On CPU encode caps a batch at 1,024 padded tokens: 25 texts of 104 tokens ([CLS], 102 x "a", [SEP]; a
    length the fused path pads no further) at --batch-size 32 run inline as 9 + 9 + 7; with n worker streams
    each batch takes 1/n of the cap and of the batch size (2: 512 // 104 = 4 texts, six batches and one of 1;
    3: 341 // 104 = 3). The report said 9 + 9 + 7 while encode ran 4-text batches on two streams."""
    monkeypatch.setenv("MLX_EMBED_CPU_STREAMS", streams)  # read when the measuring process imports mlx_embed
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(["a " * 102] * 25) + "\n", encoding="utf-8")
    assert cli.main(["profile", "--model", str(small_bert), "--texts", str(texts), "--batch-size", "32", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    t = doc["models"][0]["throughput"]
    assert (t["tokens"], t["max_batch_tokens"], t["batches"], t["largest_batch"]) == (2600, 1024, batches, largest)
    assert t["streams"] == max(1, int(streams))
    # The rates are the timed pass's texts and tokens over its seconds (not its batches, nor the warm-up too).
    assert t["texts_per_s"] == pytest.approx(25 / t["seconds"]) and t["tokens_per_s"] == pytest.approx(2600 / t["seconds"])
    from mlx_embed.profile import format_report

    for seconds, noted in ((0.4, True), (2.0, False)):  # a pass shorter than a second is noise, and is said so
        t["seconds"] = seconds
        assert ("note: the timed pass took under 1 s for " + str(small_bert) in format_report(doc)) == noted
    assert cli.main(["profile", "--model", str(small_bert), "--texts", str(texts), "--batch-size", "32"]) == 0
    table = capsys.readouterr().out
    assert "encode also caps a batch at 1024 padded tokens" in table and "batches (most texts)" in table
    assert f" {batches} ({largest}) " in table
    assert ("shared by" in table) == (int(streams) > 1)
    assert (f"shared by {streams} batches that run at once" in table) == (int(streams) > 1)


def test_the_batches_are_planned_per_chunk_of_texts_as_encode_tokenizes(small_bert, capsys, tmp_path, monkeypatch):
    """encode tokenizes and batches 512 texts at a time: 600 texts of 104 tokens on three streams (3 to a batch:
    1,024 // 3 = 341 tokens) run 171 + 30 = 201 batches (512 = 170 x 3 + 2, 88 = 29 x 3 + 1), not 600 / 3 = 200."""
    monkeypatch.setenv("MLX_EMBED_CPU_STREAMS", "3")
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(["a " * 102] * 600) + "\n", encoding="utf-8")
    assert cli.main(["profile", "--model", str(small_bert), "--texts", str(texts), "--batch-size", "32", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["models"][0]["throughput"]
    assert (t["texts"], t["batches"], t["largest_batch"], t["streams"]) == (600, 201, 3, 3)


def test_encode_runs_the_batches_its_streams_share(small_bert, monkeypatch):
    """What encode itself runs, seen by the padding step: the hand counts of the test above."""
    from mlx_embed import embedder as module

    model = mlx_embed.load(small_bert)
    # 6 short texts at batch_size=3 on two streams: each stream takes ceil(3 / 2) = 2 of a batch
    for streams, texts, batch_size, expected in (
        (0, ["a " * 102] * 25, 32, [9, 9, 7]), (2, ["a " * 102] * 25, 32, [4] * 6 + [1]), (2, ["hello world"] * 6, 3, [2, 2, 2]),
    ):
        monkeypatch.setattr(module, "CPU_STREAMS", streams)
        sizes = []
        real_pad = module.Embedder._pad
        monkeypatch.setattr(module.Embedder, "_pad", lambda self, seqs: sizes.append(len(seqs)) or real_pad(self, seqs))
        model.encode(texts, batch_size=batch_size)
        monkeypatch.undo()
        assert sorted(sizes, reverse=True) == expected


def test_tokens_count_the_default_prompt_encode_adds(small_bert, capsys, tmp_path):
    """A folder whose sentence-transformers files name a default prompt gets it before every text; the
    throughput's token count (checked with the tokenizer itself) includes it."""
    import shutil

    from tokenizers import Tokenizer

    folder = tmp_path / "with-prompt"
    shutil.copytree(small_bert, folder)
    prompt = "Represent this technical passage for retrieval: "
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"doc": prompt}, "default_prompt_name": "doc"}))
    texts = tmp_path / "t.txt"
    texts.write_text("hello\nworld wide web\n", encoding="utf-8")
    assert cli.main(["profile", "--model", str(folder), "--texts", str(texts), "--json"]) == 0
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    expected = sum(len(tokenizer.encode(prompt + t).ids) for t in ("hello", "world wide web"))
    assert json.loads(capsys.readouterr().out)["models"][0]["throughput"]["tokens"] == expected


def test_texts_files_are_read_line_by_line(tmp_path):
    """As ``embed --input``: lines end at \\n or \\r\\n only, a byte-order mark is no text, blank lines are
    dropped; a folder or a file that is not UTF-8 is named."""
    from mlx_embed.profile import read_texts

    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffone\r\ntwo\x0cstill two\u2028and two\n\n  \nthree".encode())
    assert read_texts(path) == ["one", "two\x0cstill two\u2028and two", "three"]
    path.write_bytes("\ufeff\n".encode())
    with pytest.raises(ValueError, match="has no non-empty lines"):
        read_texts(path)
    with pytest.raises(FileNotFoundError, match="--texts .* is a directory"):
        read_texts(tmp_path)
    path.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="--texts .*t.txt is not UTF-8 text"):
        read_texts(path)


def test_bad_input_is_named(small_bert, tmp_path, capsys):
    with pytest.raises(ValueError, match="queries must be an int >= 20"):
        profile([str(small_bert)], queries=5)
    with pytest.raises(FileNotFoundError, match="one text per line"):
        profile([str(small_bert)], texts=tmp_path / "missing.txt")
    assert cli.main(["profile", "--model", "no-such-model"]) == 2
    assert "Unknown model 'no-such-model'" in capsys.readouterr().err


def test_a_failed_model_keeps_the_others(small_bert, capsys, tmp_path):
    """With several models, one that cannot be measured (a damaged folder; a child stopped by --timeout) is
    named on stderr with its reason and the others are still reported; a mistyped name fails before any
    model is measured."""
    texts = tmp_path / "t.txt"
    texts.write_text("hello\nworld\n", encoding="utf-8")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    argv = ["profile", "--model", str(small_bert), "--model", str(damaged), "--texts", str(texts)]
    assert cli.main([*argv, "--json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert _validate(doc, PROFILE_SCHEMA) == []
    assert [r["path"] for r in doc["models"]] == [str(small_bert)]
    assert [f["model"] for f in doc["failed"]] == [str(damaged)] and "config.json" in doc["failed"][0]["error"]
    assert f"{damaged} failed: " in captured.err
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert str(small_bert) in captured.out and str(damaged) not in captured.out and f"{damaged} failed" in captured.err

    assert cli.main(["profile", "--model", str(small_bert), "--model", str(small_bert), "--texts", str(texts),
                     "--timeout", "0.01"]) == 1
    err = capsys.readouterr().err
    assert "every model failed" in err and err.count("without finishing") == err.count("pass a larger --timeout") == 2
    assert cli.main(["profile", "--model", str(small_bert), "--texts", str(texts), "--timeout", "0.01"]) == 1
    assert capsys.readouterr().err.rstrip().endswith("; pass a larger --timeout")  # one model alone, too
    assert cli.main(["profile", "--model", str(small_bert), "--model", "no-such-model", "--timeout", "0.01"]) == 2
    assert "Unknown model 'no-such-model'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["profile", "--model", str(small_bert), "--timeout", "0"])
    assert "argument --timeout: must be a finite number > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["profile", "--model", str(small_bert), "--timeout", "inf"])
    assert "argument --timeout: must be a finite number > 0, got 'inf'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0 and <= 1e"):
        profile([str(small_bert)], timeout=1e10)


def test_children_read_the_texts_the_parent_read(small_bert, tmp_path, monkeypatch):
    """The children get a copy of --texts (a pipe can be read once): every text as read_texts gives it,
    also one that ends in a lone \r (it was dropped as half of a \r\n)."""
    from mlx_embed import profile as profile_module
    from mlx_embed.profile import read_texts

    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa\rb\r\r\nline two\u2028x\n\n  \nend\r".encode())
    seen = []

    def child(module, args, timeout=None):
        seen.append(read_texts(args[args.index("--texts") + 1]))
        raise profile_module.ChildFailed("stopped by the test")

    monkeypatch.setattr(profile_module, "run_child", child)
    with pytest.raises(profile_module.NothingMeasured, match="stopped by the test") as err:
        profile([str(small_bert)], texts=path)
    assert [f["model"] for f in err.value.failed] == [str(small_bert)] and err.value.workload["texts"] == len(seen[0])
    assert seen == [read_texts(path)] and seen[0][-1] == "end\r"


def test_texts_may_come_from_a_pipe(small_bert, capsys, tmp_path):
    """A FIFO (a shell's process substitution) can be read once; the children still get every text."""
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("one\ntwo\nthree\n", encoding="utf-8"), daemon=True)
    writer.start()
    rc = cli.main(["profile", "--model", str(small_bert), "--texts", str(fifo), "--json"])
    if writer.is_alive():  # the FIFO was never opened for reading: unblock the writer
        fifo.read_text()
    writer.join()
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["throughput"]["texts"] == 3


def test_one_model_that_cannot_be_measured_exits_1_as_one_of_several_does(capsys, damaged_bert):
    """README: a model that cannot be measured (a damaged folder) is named with exit status 1; alone it gave 2."""
    assert cli.main(["profile", "--model", str(damaged_bert)]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors is not a readable safetensors file" in err and "Traceback" not in err
    # --json still prints the report a script reads: no model measured, the failure named (it printed nothing)
    assert cli.main(["profile", "--model", str(damaged_bert), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert _validate(doc, PROFILE_SCHEMA) == []
    assert doc["models"] == [] and [f["model"] for f in doc["failed"]] == [str(damaged_bert)]
    assert "not a readable safetensors file" in doc["failed"][0]["error"] and doc["machine"]["cpu_count"] >= 1
