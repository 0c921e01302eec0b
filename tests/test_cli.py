"""``mlx-embed`` subcommands on the real all-MiniLM-L6-v2, checked against sentence-transformers, and
user errors reported as one ``mlx-embed: error: ...`` line with exit status 2."""

import argparse
import json
import os
import re
import shutil

import numpy as np
import pytest

from mlx_embed import fidelity
from mlx_embed.cli import DEMO_TEXTS, build_parser, main
from mlx_embed.conversion import RECIPES
from mlx_embed.registry import REGISTRY
from mlx_embed.samples import SAMPLE_TEXTS

from .reference import NEEDS_SCIPY, NEEDS_SENTENCE_TRANSFORMERS, reference_embed, torch_model

TEXTS = ["A man is eating food.", "Someone is having a meal.", "Кошка спит на подоконнике.", "git rebase -i HEAD~3"]


@pytest.fixture(scope="module")
def reference(minilm_path) -> np.ndarray:
    """sentence-transformers' own normalized embeddings of TEXTS."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    return st.SentenceTransformer(str(minilm_path), device="cpu").encode(TEXTS, normalize_embeddings=True)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def matrix(out: str, n: int) -> np.ndarray:
    rows = out.strip().splitlines()[-n:]
    return np.array([[float(x) for x in row.split()[-n:]] for row in rows])


def test_similarity_matrix_matches_sentence_transformers(capsys, minilm_path, reference):
    rc, out, _ = run(capsys, "similarity", *TEXTS, "--model", minilm_path)
    assert rc == 0 and "dim: 384" in out
    np.testing.assert_allclose(matrix(out, len(TEXTS)), reference @ reference.T, atol=5.1e-4)  # printed to 3 decimals


def test_similarity_defaults_to_minilm_and_built_in_sentences(capsys):
    rc, out, _ = run(capsys, "similarity")
    sims = matrix(out, len(DEMO_TEXTS))
    assert rc == 0 and out.startswith("model: minilm") and sims.shape == (5, 5)
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-3)
    assert sims[0, 1] > 0.5 > sims[0, 4]  # eating food ~ having a meal, not ~ password reset


def test_embed_json_matches_sentence_transformers(capsys, minilm_path, reference):
    rc, out, _ = run(capsys, "embed", *TEXTS, "--model", minilm_path)
    vectors = np.array(json.loads(out))
    assert rc == 0 and vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)


def test_embed_input_file_to_npy_appends_the_suffix_and_prints_the_real_path(capsys, minilm_path, reference, tmp_path):
    (tmp_path / "in.txt").write_bytes("\r\n".join(TEXTS).encode() + b"\r\n")
    rc, _, err = run(capsys, "embed", "--input", tmp_path / "in.txt", "--output", tmp_path / "vectors", "--model", minilm_path)
    written = tmp_path / "vectors.npy"
    assert rc == 0 and f"wrote ({len(TEXTS)}, 384) float32 to {written} (model " in err
    assert "fp32 weights, source: folder)" in err and "mlx_embed:" not in err  # no progress when stderr is no terminal
    np.testing.assert_allclose(np.load(written), reference, atol=1e-4)


def test_embed_input_rows_are_the_lines_wc_counts_and_blank_lines_are_warned_about(capsys, minilm_path, tmp_path):
    """Only \n (or \r\n) ends a line: a lone \r stays inside its text, so row i is line i; blank lines keep their row."""
    (tmp_path / "in.txt").write_bytes(b"hello world\r\n\r\nthird\rstill third\n  \n")
    rc, out, err = run(capsys, "embed", "--input", tmp_path / "in.txt", "--model", minilm_path)
    vectors = np.array(json.loads(out))
    assert rc == 0 and vectors.shape == (4, 384)
    assert "warning: 2 of 4 lines are blank (line 2, 4): each still gets a row" in err
    import mlx_embed

    expected = mlx_embed.load(minilm_path).encode(["hello world", "", "third\rstill third", "  "])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    rc, _, err = run(capsys, "embed", "", "x", "--model", minilm_path)  # no file, no lines
    assert rc == 0 and "blank" not in err


def test_pooling_flag_for_a_folder_without_pooling_config(capsys, minilm_path, reference, tmp_path):
    for item in minilm_path.iterdir():
        if item.name not in ("1_Pooling", "modules.json"):
            os.symlink(item, tmp_path / item.name)
    rc, _, err = run(capsys, "embed", "hello", "--model", tmp_path)
    assert rc == 2 and "pooling=" in err and "--pooling mean" in err
    rc, out, _ = run(capsys, "embed", *TEXTS, "--model", tmp_path, "--pooling", "mean")
    vectors = np.array(json.loads(out))  # no modules.json, so no Normalize module: raw mean-pooled vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    assert norms.min() > 1.5
    np.testing.assert_allclose(vectors / norms, reference, atol=1e-4)
    rc, out, _ = run(capsys, "similarity", *TEXTS, "--model", tmp_path, "--pooling", "mean")
    np.testing.assert_allclose(matrix(out, len(TEXTS)), reference @ reference.T, atol=5.1e-4)


def test_models_lists_the_registry(capsys):
    rc, out, _ = run(capsys, "models")
    assert rc == 0
    for spec in REGISTRY.values():
        assert any(line.split()[:4] == [spec.alias, ",".join(spec.languages), spec.pooling, str(spec.dim)]
                   and spec.hub_id in line for line in out.splitlines())
    # the model cards: Qwen3-Embedding is multilingual, the two BERTs English
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["multilingual", "en", "en"]
    # Qwen3-Embedding's card: "MRL Support ... from 32 to 1024"; the BERTs only their full size
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["32..1024", "384", "384"]
    # the model cards' sizes: "Number of Parameters: 0.6B", all-MiniLM-L6-v2 22.7M, bge-small-en-v1.5 33.4M
    assert [line.split()[6] for line in out.splitlines()[1:]] == ["595.8M", "22.7M", "33.4M"]


def test_similarity_columns_line_up_with_wide_characters(capsys, tiny_bert_hf):
    """Each index in the header stands over its column; a CJK label (two terminal columns a character) is
    padded and shortened by the columns it takes."""
    import unicodedata

    def columns(text):  # a combining mark takes no column of its own
        return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    texts = ["東京は日本の首都です。" * 3, "hello", "a much longer English sentence that will be shortened",
             "ＡＢＣ１２３" * 4,  # fullwidth forms (east_asian_width "F") take two columns too
             "cafe\u0301 re\u0301sume\u0301",  # combining accents shifted the row left
             "two\nlines \x1b[31mred"]  # a newline split the row; the escape sequence reached the terminal
    rc, out, _ = run(capsys, "similarity", *texts, "--model", tiny_bert_hf, "--pooling", "mean")
    header, *rows = out.splitlines()[1:]
    assert len(rows) == len(texts) and "\x1b" not in out and "two\\nlines \\x1b[31mred" in out
    ends = [columns(header[: m.end()]) for m in re.finditer(r"\d+", header)]
    for row in rows:
        assert [columns(row[: m.end()]) for m in re.finditer(r"-?\d\.\d{3}", row)] == ends
        label = row[3:].split("  ")[0]
        assert columns(label) <= 32


def test_interrupt_is_one_line(capsys, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) ends with one line and the shell's status for it, 128 + SIGINT."""
    import mlx_embed

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlx_embed, "load", interrupted)
    rc, out, err = run(capsys, "embed", "hello")
    assert rc == 130 and out == "" and err.strip() == "mlx-embed: interrupted"


def test_input_from_a_pipe_and_an_empty_file(capsys, tiny_bert_hf, tmp_path):
    """Process substitution (a FIFO) is read as a file; /dev/null gives no rows and says so."""
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("one\ntwo\n", encoding="utf-8"), daemon=True)
    writer.start()
    rc, out, err = run(capsys, "embed", "--input", fifo, "--model", tiny_bert_hf, "--pooling", "mean")
    if writer.is_alive():  # the FIFO was never opened for reading: unblock the writer
        fifo.read_text()
    writer.join()
    expected = run(capsys, "embed", "one", "two", "--model", tiny_bert_hf, "--pooling", "mean")[1]
    assert rc == 0 and json.loads(out) == json.loads(expected)
    rc, out, err = run(capsys, "embed", "--input", os.devnull, "--model", tiny_bert_hf, "--pooling", "mean")
    assert rc == 0 and json.loads(out) == [] and f"--input {os.devnull} has no lines" in err


def test_fidelity_warns_when_the_reference_is_quantized(capsys, monkeypatch, tiny_bert_hf, tiny_bert_4bit):
    """Arguments swapped: the 4-bit model given as the reference is named, with the order to use."""
    monkeypatch.setattr(fidelity, "_corpora_for", lambda k: [])
    rc, out, err = run(capsys, "fidelity", tiny_bert_4bit, tiny_bert_hf, "--pooling", "mean")
    assert rc == 0 and f"the reference {tiny_bert_4bit} is quantized (4-bit)" in err
    rc, out, err = run(capsys, "fidelity", tiny_bert_hf, tiny_bert_4bit, "--pooling", "mean")
    assert rc == 0 and "is quantized" not in err


def test_fidelity_figures_equal_an_independent_computation(capsys, minilm_path, minilm_4bit, monkeypatch):
    """`fidelity SRC 4BIT --json` against the same figures computed here from sentence-transformers (fp32) and
    transformers on numpy-dequantized 4-bit weights, tokenized by sentence-transformers' tokenizer."""
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    stats = pytest.importorskip("scipy.stats", reason=NEEDS_SCIPY)
    monkeypatch.setattr(fidelity, "_corpora_for", lambda k: [])  # the bundled corpora take long on CPU
    rc, out, _ = run(capsys, "fidelity", minilm_path, minilm_4bit, "--json")
    report = json.loads(out)
    source = st.SentenceTransformer(str(minilm_path), device="cpu")
    ref = source.encode(SAMPLE_TEXTS, normalize_embeddings=True)
    batch = source.tokenizer(SAMPLE_TEXTS, padding=True, truncation=True, max_length=256, return_tensors="np")
    cand = reference_embed(torch_model(minilm_4bit), batch["input_ids"], batch["attention_mask"], "mean")
    cos = (ref * cand).sum(1)
    iu = np.triu_indices(len(SAMPLE_TEXTS), 1)
    spearman = stats.spearmanr((ref @ ref.T)[iu], (cand @ cand.T)[iu]).statistic
    assert rc == 0 and report["n_texts"] == len(SAMPLE_TEXTS) and 0.8 < cos.min() < 0.99
    assert report["cosine_min"] == pytest.approx(cos.min(), abs=1e-4)
    assert report["cosine_mean"] == pytest.approx(cos.mean(), abs=1e-5)
    assert report["cosine_p5"] == pytest.approx(np.percentile(cos, 5), abs=1e-4)
    assert report["spearman"] == pytest.approx(spearman, abs=1e-3)
    assert report["worst_text"] == SAMPLE_TEXTS[int(np.argmin(cos))]


@pytest.fixture
def broken(tmp_path, minilm_path):
    """Paths for the error cases: a folder, a Latin-1 file, a model folder with garbage weights, a read-only
    folder, a FIFO with a reader (so that writing to it fails the test rather than hanging it)."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "latin.txt").write_bytes("café\n".encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes("café\n".encode("utf-16"))  # with its byte-order mark, as Windows writes it
    (tmp_path / "utf16le.txt").write_bytes("hello\nworld\n".encode("utf-16-le"))  # without one: valid UTF-8, NULs
    (tmp_path / "utf16le_accents.txt").write_bytes("héllo\nwörld\n".encode("utf-16-le"))  # not UTF-8 either
    (tmp_path / "late_latin.txt").write_bytes(b"hello world\n" * 10000 + "café\n".encode("latin-1"))  # past a read buffer
    (tmp_path / "bom_latin.txt").write_bytes(b"\xef\xbb\xbfhello\n" + "wörld\n".encode("latin-1"))  # the offset counts the BOM
    os.symlink(tmp_path / "nowhere" / "t.npy", tmp_path / "dangling.npy")
    (tmp_path / "file").write_text("x")
    (tmp_path / "readonly").mkdir(mode=0o555)
    os.mkfifo(tmp_path / "fifo.npy")
    reader = os.open(tmp_path / "fifo.npy", os.O_RDONLY | os.O_NONBLOCK)
    (tmp_path / "garbage").mkdir()
    shutil.copy(minilm_path / "config.json", tmp_path / "garbage" / "config.json")
    (tmp_path / "garbage" / "model.safetensors").write_bytes(b"\x00" * 100)
    yield tmp_path
    os.close(reader)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["embed"], "give TEXTS or --input FILE: there is nothing to embed"),
        (["embed", "a", "--input", "{tmp}/latin.txt"], "give TEXTS or --input FILE, not both"),
        (["embed", "--input", "{tmp}/dir"], "--input {tmp}/dir is a directory"),
        (["embed", "--input", "{tmp}/missing.txt"], "--input {tmp}/missing.txt does not exist"),
        (["embed", "--input", "{tmp}/latin.txt"], "--input {tmp}/latin.txt is not UTF-8 text"),
        (["embed", "--input", "{tmp}/latin.txt"], "convert it, e.g. `iconv -f latin1 -t utf-8`"),
        (["embed", "--input", "{tmp}/utf16.txt"], "convert it, e.g. `iconv -f utf-16 -t utf-8`"),
        (["embed", "--input", "{tmp}/utf16le.txt"], "line 1 holds a NUL character, as UTF-16 without a byte-order mark does: convert it, e.g. `iconv -f utf-16le -t utf-8`"),
        (["embed", "a", "--output", "{tmp}/dangling.npy"], "--output {tmp}/dangling.npy: the folder {tmp}/nowhere does not exist"),
        (["embed", "a", "--output", "/dev/null"], "--output /dev/null is a device: give a file name, or --output - for stdout"),
        (["embed", "a", "--output", "/dev/stderr"], "--output /dev/stderr is a device"),  # was: /dev/stderr.npy, a new file in /dev
        (["embed", "a", "--output", "{tmp}/newdir/"], "--output {tmp}/newdir/ names a folder, which does not exist"),  # was: newdir.npy
        (["embed", "--input", "{tmp}/late_latin.txt"], "(byte 0xe9 at offset 120003, line 10001: invalid continuation byte)"),
        (["embed", "--input", "{tmp}/utf16le_accents.txt"], "line 1 holds a NUL character, as UTF-16 without a byte-order mark does"),
        (["embed", "--input", "{tmp}/bom_latin.txt"], "(byte 0xf6 at offset 10, line 2: invalid start byte)"),
        (["embed", "a", "--output", "{tmp}/file/"], "--output {tmp}/file/ names a folder, but {tmp}/file is a file: drop the trailing /"),
        (["embed", "ok", "caf\udce9"], "TEXT 2 is not UTF-8 (byte 0xe9 at character 3): give UTF-8 text"),  # Latin-1 bytes
        (["similarity", "caf\udce9", "x"], "TEXT 1 is not UTF-8 (byte 0xe9 at character 3)"),
        (["embed", "a", "--output", "{tmp}/dir"], "--output {tmp}/dir is a directory: give a file name"),
        (["embed", "a", "--output", "{tmp}/nowhere/x.npy"], "the folder {tmp}/nowhere does not exist"),
        (["embed", "a", "--dim", "128", "--model", "{minilm}"], "--dim=128 is not allowed"),
        (["embed", "a", "--max-length", "9999", "--model", "{minilm}"], "--max-length=9999 exceeds what model can encode (512 positions); use --max-length <= 512"),
        (["embed", "a", "--output", "{tmp}/readonly/x.npy"], "--output {tmp}/readonly/x.npy: cannot write to the folder {tmp}/readonly (permission denied)"),
        (["embed", "a", "--output", ""], "--output is empty"),
        (["embed", "a", "--output", "{tmp}/fifo.npy"], "--output {tmp}/fifo.npy is not a regular file"),
        (["embed", "a", "--model", "{tmp}/dim=3"], "Unknown model '{tmp}/dim=3' (no such folder)"),  # a path keeps its text
        (["embed", "a", "--output", "{tmp}/nowhere/dim=3.npy"], "--output {tmp}/nowhere/dim=3.npy: the folder"),
        (["embed", "a", "--prompt", "use max_length=9 {{task}}"], "--prompt='use max_length=9 {{task}}' is a template"),  # echoed as given
        (["embed", "a", "--prompt", "{{task}}"], "use --kind query --task '...' for the model's query instruction"),
        (["embed", "a", "--kind", "query", "--task", " ", "--model", "{tiny_qwen}"], "--task must not be empty: leave --task out for the model's default task"),
        (["eval", "--model", "{tmp}/nope", "--plot", "{tmp}/readonly/x.png"], "cannot write to the folder {tmp}/readonly"),
        (["convert", "{minilm}", "{tmp}/readonly/new"], "cannot write the converted model to {tmp}/readonly/new: {tmp}/readonly refuses new files"),
        (["eval", "--model", "{minilm}", "--model", "{tmp}/nope", "--corpus", "code"], "(no such folder)"),  # before scoring any
        (["similarity", "--model", "{tmp}/garbage", "--pooling", "mean"], "model.safetensors is not a readable safetensors file"),
        (["similarity", "--model", "{tmp}/nope"], "(no such folder)"),
        (["similarity", "--model", "{tmp}/file"], "{tmp}/file is a file, not a model folder"),
        (["fidelity", "{tmp}/dir", "{minilm}"], "{tmp}/dir has no config.json"),
        (["convert", "{minilm}", "{tmp}/file"], "destination {tmp}/file is a file"),
        (["convert", "{minilm}", "{tmp}/garbage"], "exists and is not empty; pass --overwrite or pick another folder"),
        (["eval", "--model", "{tmp}/nope", "--plot", "{tmp}/nowhere/x.png"], "the folder {tmp}/nowhere does not exist"),
        (["eval", "--model", "{tmp}/nope", "--plot", "{tmp}/out"], "--plot {tmp}/out does not end in .png: give a file name ending in .png, e.g. out.png"),
        (["eval", "--model", "{tmp}/nope", "--plot", "{tmp}/dir"], "give a file name ending in .png, e.g. {tmp}/dir/ndcg.png"),
        (["eval", "--model", "{tmp}/nope", "--plot", "{tmp}/dir.png"], "--plot {tmp}/dir.png is a folder: give a file name"),
        (["embed", "a", "--task", "Find code"], "--task is for queries: add --kind query"),
        (["convert", "{minilm}", "{tmp}/new", "--bits", "16", "--recipe", "faithful"], "--bits=16 stores float weights, so --recipe='faithful' would be ignored: give --bits <= 8 to quantize"),
        (["convert", "{minilm}", "{tmp}/new", "--bits", "16", "--rounding", "nearest"], "so --rounding='nearest' would be ignored: give --bits <= 8 to quantize, or drop --rounding to store floats"),
        (["convert", "{minilm}", "{tmp}/new", "--bits", "16", "--rounding", "gptq", "--recipe", "compact"],
         "so --recipe='compact' and --rounding='gptq' would be ignored: give --bits <= 8 to quantize, or drop --recipe and --rounding to store floats"),
        (["convert", "{minilm}", "{tmp}/new", "--bits", "16", "--group-size", "32"], "--bits=16 stores float weights, so --group-size=32 would be ignored"),  # was: silent
        (["convert", "{minilm}", "{tmp}/new", "--bits", "32", "--recipe", "compact", "--group-size", "128"],
         "so --recipe='compact' and --group-size=128 would be ignored: give --bits <= 8 to quantize, or drop --recipe and --group-size to store floats"),
        (["convert", "{minilm}", ""], "the destination is '': give the folder to write the converted model to"),  # was: the current folder
        (["profile", "--model", "{minilm}", "--texts", "{tmp}/file", "--repeat", "3"], "--repeat copies the built-in sample, so it does nothing with --texts"),
        (["embed", "a", "--model", "org/nosuch"], "or pass a local folder: --model /path/to/folder"),
        (["similarity", "--model", "org/nosuch"], "or give the path of a local folder"),
        (["fidelity", "{minilm}", "{tiny_qwen}"], "vectors of different sizes (384 and 64)"),
        (["fit", "--ram", "8", "--estimate-only"], "'8' reads as 8 bytes: write the unit, e.g. 8GB"),
    ],
)
def test_user_errors_are_one_line_without_traceback(capsys, broken, minilm_path, tiny_qwen3_hf, argv, message):
    fill = {"tmp": broken, "minilm": minilm_path, "tiny_qwen": tiny_qwen3_hf}
    if any("readonly" in a for a in argv) and not os.access(broken / "readonly", os.W_OK):
        pass
    elif any("readonly" in a for a in argv):  # root may write anywhere; sysfs refuses even root new files
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys: no folder refuses writing")
        argv = [a.replace("{tmp}/readonly", "/sys/kernel") for a in argv]
        message = message.replace("{tmp}/readonly", "/sys/kernel")
    rc, out, err = run(capsys, *[a.format(**fill) for a in argv])
    assert rc == 2 and out == ""
    assert err.startswith("mlx-embed: error: ") and message.format(**fill) in err and "Traceback" not in err


def test_broken_weights_are_an_error_line_not_a_traceback(capsys, tiny_bert_hf, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "nan"
    shutil.copytree(tiny_bert_hf, folder)
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k in weights if k.endswith("intermediate.dense.weight"))
    weights[key][:, 0] = np.nan
    save_file(weights, str(folder / "model.safetensors"))
    rc, out, err = run(capsys, "embed", "a few words", "--model", str(folder))
    assert rc == 2 and out == ""
    assert err.startswith("mlx-embed: error: ") and "weights hold inf / NaN (e.g. 'encoder.layer.0.intermediate.dense.weight')" in err and "Traceback" not in err


def test_every_argument_has_help_and_recipes_are_listed():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("similarity", "embed", "convert", "fidelity"):
        for action in sub.choices[name]._actions:
            assert action.help, f"{name} {action.dest} has no help"
    recipe = next(a for a in sub.choices["convert"]._actions if a.dest == "recipe")
    assert recipe.choices == list(RECIPES)
    for name in ("similarity", "embed"):
        pooling = next(a for a in sub.choices[name]._actions if a.dest == "pooling")
        assert tuple(pooling.choices) == ("mean", "cls", "last_token")


def test_input_file_byte_order_mark_and_stdin(capsys, tiny_qwen3_hf, tmp_path, monkeypatch):
    """A byte-level BPE tokenizes a byte-order mark (Windows editors write one): it is not text."""
    import io

    (tmp_path / "bom.txt").write_bytes("\ufeffhow do I reset my password?\nsecond line\n".encode("utf-8"))
    expected = json.loads(run(capsys, "embed", "how do I reset my password?", "second line", "--model", tiny_qwen3_hf)[1])
    rc, out, _ = run(capsys, "embed", "--input", tmp_path / "bom.txt", "--model", tiny_qwen3_hf)
    assert rc == 0 and np.abs(np.array(json.loads(out)) - expected).max() < 1e-6
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfhow do I reset my password?\r\nsecond line\r\n")))
    rc, out, _ = run(capsys, "embed", "--input", "-", "--model", tiny_qwen3_hf)
    assert rc == 0 and np.abs(np.array(json.loads(out)) - expected).max() < 1e-6


def test_stdin_keeps_a_lone_carriage_return_inside_its_line(capsys, monkeypatch):
    """Row i is line i as ``wc -l`` counts (newlines only): a lone \\r is text, on stdin as in a file."""
    import io

    from mlx_embed.textfile import read_lines

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"third\rstill third\r\nnext\n")))
    assert read_lines("-", "--input") == ["third\rstill third", "next"]
    # only one line end goes: a \r before it, or a last line's own final \r, stays text
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a\r\r\nb\r")))
    assert read_lines("-", "--input") == ["a\r", "b\r"]


def test_an_output_that_exists_is_left_as_it_is_when_the_run_fails(capsys, tmp_path):
    """The output is checked for writing before any work, without emptying it: a run that then fails (an
    unknown model) leaves the earlier results in place."""
    out = tmp_path / "vectors.npy"
    out.write_text("earlier results")
    rc, _, err = run(capsys, "embed", "hello", "--output", out, "--model", "no-such-model")
    assert rc == 2 and "Unknown model 'no-such-model'" in err
    assert out.read_text() == "earlier results"


@pytest.mark.parametrize("minimum,kind,given,ok", [(1, int, "1", True), (2, int, "2", True), (2, int, "1", False),
                                                   (0, float, "0", False), (0, float, "0.5", True), (1, int, "1.0", False)])
def test_number_flags_take_their_bound(minimum, kind, given, ok):
    """``--batch-size 1`` and ``--max-length 2`` are the ">= N" of their help text."""
    from mlx_embed.cli import at_least

    if ok:
        assert at_least(minimum, kind)(given) == kind(given)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            at_least(minimum, kind)(given)


def test_embed_passes_its_batch_size_on(capsys, monkeypatch, tiny_bert_hf):
    """--batch-size is the memory control: it reaches encode (the vectors alone would not show it)."""
    from mlx_embed.embedder import Embedder

    seen, encode = [], Embedder.encode
    monkeypatch.setattr(Embedder, "encode", lambda self, texts, **kw: seen.append(kw["batch_size"]) or encode(self, texts, **kw))
    rc, _, _ = run(capsys, "embed", "a", "b", "c", "--model", tiny_bert_hf, "--pooling", "mean", "--batch-size", "1")
    assert rc == 0 and seen == [1]


def test_truncation_is_a_warning_line_with_flags_that_exist(capsys, minilm_path, tmp_path):
    long = "word " * 300
    (tmp_path / "texts.txt").write_text(f"hi\n{long}\n{long}\n")
    rc, _, err = run(capsys, "embed", "--input", tmp_path / "texts.txt", "--model", minilm_path, "--no-truncate")
    assert rc == 2 and "2 of 3 texts are longer than --max-length=256 tokens (first on line 2, " in err  # was: "at index 1"
    rc, _, err = run(capsys, "embed", "hi", long, "--model", minilm_path, "--no-truncate")
    assert rc == 2 and "(first is TEXT 2, " in err
    rc, out, err = run(capsys, "similarity", long, "hi", "--model", minilm_path)
    assert rc == 0 and "mlx-embed: warning: 1 of 2 texts were longer" in err and "truncate" not in err.split("truncated")[-1]
    rc, out, err = run(capsys, "embed", long, "--model", minilm_path)
    assert rc == 0 and "mlx-embed: warning: 1 of 1 texts were longer than --max-length=256" in err
    assert "Pass --no-truncate to fail instead" in err and "truncate=False" not in err
    rc, out, err = run(capsys, "embed", long, "--model", minilm_path, "--no-truncate")
    assert rc == 2 and out == "" and "longer than --max-length=256" in err
    assert "Drop --no-truncate to cut them, give a larger --max-length" in err and "truncate=True" not in err
    rc, out, err = run(capsys, "embed", long, "--model", minilm_path, "--max-length", "512")
    assert rc == 0 and err == ""


@pytest.mark.parametrize("texts,reader,shown", [(200, "head -c 20", "[["), (1, "true", "")])
def test_a_closed_pipe_ends_quietly(tiny_bert_hf, minilm_path, texts, reader, shown):
    """The reader stops early (`| head -c 20`) or reads nothing (`| true`): no error line, exit status 0,
    whether a write fails (MiniLM's output is past the 8 KiB stdout buffer) or only the flush at the end
    (one small vector of the tiny model)."""
    import subprocess
    import sys

    model = minilm_path if texts > 1 else tiny_bert_hf
    command = (f"set -o pipefail; env -u PYTHONUNBUFFERED {sys.executable} -m mlx_embed.cli embed "
               f"{' '.join(['hello'] * texts)} --model {model} | {reader}")
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert (proc.returncode, proc.stdout[:2]) == (0, shown), proc.stderr
    # no error line; a library's own notice (a deprecation, OpenBLAS's thread count) is not this test's business
    assert not re.search(r"Traceback|Error|Exception ignored|mlx-embed", proc.stderr), proc.stderr


def test_npy_on_stdout_at_a_closed_pipe_a_redirect_and_no_stdout(tiny_bert_hf, tmp_path):
    """``--output - | head -c 100`` ended with exit 2 and "requested and 0 written" (numpy's tofile at a closed pipe
    raises no BrokenPipeError); ``--output /dev/stdout > f.npy`` wrote a new file /dev/stdout.npy and left f.npy
    empty; with stdout closed (``>&-``) the JSON was written into None after the work, a traceback."""
    import subprocess
    import sys

    (tmp_path / "texts.txt").write_text("hello world\n" * 1000)  # 1000 x 64 float32: past a pipe's 64 KiB
    embed = f"{sys.executable} -m mlx_embed.cli embed --model {tiny_bert_hf} --pooling mean"

    def shell(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(f"set -o pipefail; {command}", shell=True, capture_output=True, timeout=120,
                              executable="/bin/bash", cwd=tmp_path)

    proc = shell(f"{embed} --input texts.txt --output - | head -c 100 > /dev/null")
    assert proc.returncode == 0 and b"error" not in proc.stderr, proc.stderr
    proc = shell(f"{embed} hello world --output /dev/stdout > f.npy")
    assert proc.returncode == 0, proc.stderr
    vectors = np.load(tmp_path / "f.npy")
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    proc = shell(f"{embed} hello >&-")
    assert proc.returncode == 2 and b"stdout is closed" in proc.stderr and b"Traceback" not in proc.stderr
    proc = shell(f"{embed} --input - <&-")
    assert proc.returncode == 2 and b"stdin, which is closed" in proc.stderr and b"Traceback" not in proc.stderr


def test_embed_prompt_of_your_own(capsys, minilm_path):
    expected = json.loads(run(capsys, "embed", "query: hello", "--model", minilm_path)[1])
    rc, out, _ = run(capsys, "embed", "hello", "--prompt", "query: ", "--model", minilm_path)
    assert rc == 0 and json.loads(out) == expected
    rc, _, err = run(capsys, "embed", "hello", "--kind", "query", "--task", "x", "--model", minilm_path)
    assert rc == 2 and "takes no task instruction: leave --task out, or use --kind plain --prompt '...' instead" in err
    rc, _, err = run(capsys, "embed", "hello", "--kind", "query", "--prompt", "q: ", "--model", minilm_path)
    assert rc == 2 and "--kind query uses the model's query prompt" in err


@pytest.mark.parametrize("argv,kind", [(["--bits", "16"], "16-bit floats"), (["--bits", "4"], "uniform 4-bit g64")])
def test_convert_says_what_it_wrote(capsys, tiny_bert_hf, tmp_path, argv, kind):
    """A float conversion said "(uniform)", a recipe it did not apply (its config.json says recipe null)."""
    rc, out, err = run(capsys, "convert", str(tiny_bert_hf), str(tmp_path / "out"), "--no-report", *argv)
    assert rc == 0 and f"bits per weight ({kind})" in out


def test_eval_finds_every_model_before_scoring_any(capsys, monkeypatch, minilm_path, tmp_path):
    """A mistyped second --model failed only after the first was loaded and scored (minutes for Qwen3)."""
    import mlx_embed

    loaded = []
    monkeypatch.setattr(mlx_embed, "load", lambda *a, **k: loaded.append(a) or pytest.fail("loaded a model"))
    rc, out, err = run(capsys, "eval", "--model", minilm_path, "--model", tmp_path / "nope", "--corpus", "code")
    assert rc == 2 and out == "" and "(no such folder)" in err and loaded == []


def test_output_dash_writes_the_npy_to_stdout(tiny_bert_hf, capsys):
    """``--output -`` wrote a file named ``-.npy``; it is stdout, as ``--input -`` is stdin."""
    import subprocess
    import sys

    expected = json.loads(run(capsys, "embed", "hello", "world", "--model", tiny_bert_hf, "--pooling", "mean")[1])
    reader = "import io, sys, numpy as np; print(np.load(io.BytesIO(sys.stdin.buffer.read())).tolist())"
    command = (f"{sys.executable} -m mlx_embed.cli embed hello world --model {tiny_bert_hf} --pooling mean --output - "
               f"| {sys.executable} -c '{reader}'")
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash",
                          cwd=tiny_bert_hf.parent)
    assert proc.returncode == 0, proc.stderr
    assert np.abs(np.array(eval(proc.stdout)) - expected).max() < 1e-6
    assert "to stdout" in proc.stderr and not (tiny_bert_hf.parent / "-.npy").exists()


def test_revision_picks_a_cached_snapshot_and_the_advice_names_the_flags_each_command_has(capsys, tiny_bert_hf, tmp_path, monkeypatch):
    """A snapshot downloaded with `hf download ID --revision SHA` (no refs/main) is loaded by embed and similarity
    with --revision SHA; their advice names that flag, and fit, which has none, names the snapshot's folder."""
    import huggingface_hub.constants as c

    sha = "b" * 40
    snapshot = tmp_path / "cache" / "models--org--tiny" / "snapshots" / sha
    shutil.copytree(tiny_bert_hf, snapshot)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc, out, err = run(capsys, "embed", "--model", "org/tiny", "--pooling", "mean", "a b")
    assert rc == 2 and f"Fix: pass --revision='{sha}', or load the snapshot's folder {snapshot}" in err, err
    rc, out, _ = run(capsys, "embed", "--model", "org/tiny", "--revision", sha, "--pooling", "mean", "a b", "c")
    rc_folder, from_folder, _ = run(capsys, "embed", "--model", snapshot, "--pooling", "mean", "a b", "c")
    assert rc == rc_folder == 0 and json.loads(out) == json.loads(from_folder)
    rc, out, _ = run(capsys, "similarity", "--model", "org/tiny", "--revision", sha, "--pooling", "mean", "a b", "c")
    assert rc == 0 and f"source: hf-cache ({snapshot})" in out
    rc, _, err = run(capsys, "similarity", "--model", tiny_bert_hf, "--revision", "v2", "a")
    assert rc == 2 and "--revision='v2' picks a version on the Hub" in err and "drop --revision, or pass the Hub id" in err, err
    rc, _, err = run(capsys, "fit", "--ram", "8GB", "--model", "org/tiny", "--estimate-only")
    assert rc == 2 and f"Fix: pass the snapshot's folder {snapshot}" in err and "revision=" not in err, err


def test_a_version_in_the_model_name_is_advised_in_each_commands_own_terms(capsys, tmp_path):
    rc, _, err = run(capsys, "embed", "--model", "org/x@v2", "a")
    assert rc == 2 and "for a version, pass --revision='v2'" in err, err
    rc, _, err = run(capsys, "eval", "--model", "org/x@v2")
    assert rc == 2 and "for a version, download it with `--revision 'v2'` and pass the snapshot's folder" in err, err
    assert "revision=" not in err
    named = tmp_path / "drop model.txt"  # "drop <flag name>" is advice only where a sentence ends there, not in a path
    rc, _, err = run(capsys, "embed", "--input", named)
    assert rc == 2 and str(named) in err, err
