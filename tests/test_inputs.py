"""Bad input gets a named error; edge inputs get well-defined results."""

import json
import warnings
from collections import UserString

import numpy as np
import pytest

import mlx_embed
from mlx_embed import TruncationWarning, tokenize

from .conftest import TEXTS
from .reference import NEEDS_SENTENCE_TRANSFORMERS, NEEDS_TRANSFORMERS


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return mlx_embed.load(minilm_path)


def test_single_string_gives_1d_and_list_gives_2d(minilm):
    assert minilm.encode("hello").shape == (384,)
    assert minilm.encode(["hello", "world"]).shape == (2, 384)
    assert minilm.encode("hello").dtype == np.float32


def test_empty_list_gives_zero_rows(minilm):
    out = minilm.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_empty_string_gives_a_unit_vector(minilm):
    v = minilm.encode("")
    assert np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5


@pytest.mark.parametrize("bad,index", [(["ok", 3], 1), (["ok", "fine", None], 2), ([b"bytes"], 0)])
def test_non_str_element_names_its_index(minilm, bad, index):
    with pytest.raises(TypeError, match=rf"texts\[{index}\]"):
        minilm.encode(bad)


@pytest.mark.parametrize("bad", [3, None, b"bytes", np.array([["x"]]), np.array("x")])
def test_wrong_container_type(minilm, bad):
    with pytest.raises(TypeError, match="str or a list of str"):
        minilm.encode(bad)


@pytest.mark.parametrize("bad", [b"hi", bytearray(b"hi"), memoryview(b"hi"), [b"hi"], [memoryview(b"hi")]])
def test_bytes_are_refused_with_the_decode_fix(minilm, bad):
    """A memoryview was read as a list of ints ("texts[0] is int"); bytes named no fix."""
    with pytest.raises(TypeError, match=r"(got|texts\[0\] is) (bytes|bytearray|memoryview).*decode"):
        minilm.encode(bad)


@pytest.mark.parametrize("bad,match", [(UserString("hi"), r"^texts is a UserString.*str\(texts\)"),
                                       (["ok", UserString("hi")], r"^texts\[1\] is UserString.*str\(texts\[1\]\)")])
def test_user_strings_are_refused_with_the_str_fix(minilm, bad, match):
    """A UserString is a Sequence: it was read as a list of one-character UserStrings ("texts[0] is UserString")."""
    with pytest.raises(TypeError, match=match):
        minilm.encode(bad)


@pytest.mark.parametrize("bad,fix", [({"a": 1}, r"list\(d.values\(\)\)"), ({"a", "b"}, r"sorted\(s\)"), (frozenset("ab"), "sorted")])
def test_unordered_containers_are_refused_because_rows_follow_the_input_order(minilm, bad, fix):
    with pytest.raises(TypeError, match=f"must be ordered.*{fix}"):
        minilm.encode(bad)


def test_ordered_containers_give_the_rows_of_the_same_list(minilm):
    from collections import deque

    texts = ["first text", "a second, longer text", "third"]
    expected = minilm.encode(texts)
    for given in (deque(texts), dict.fromkeys(texts).keys(), {i: t for i, t in enumerate(texts)}.values()):
        np.testing.assert_array_equal(minilm.encode(given), expected)
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        minilm.encode(range(3))
    with pytest.raises(TypeError, match=r"texts\[0\] is tuple"):
        minilm.encode({"a": "b"}.items())


def test_errors_about_a_single_text_name_the_text_not_an_index(minilm):
    with pytest.raises(ValueError, match=r"^text is not valid Unicode"):
        minilm.encode("bad \ud800 surrogate")


class _SeriesLike:
    """What encode() needs of a pandas Series: ``ndim`` and ``tolist()``."""

    ndim = 1

    def __init__(self, items):
        self.items = items

    def tolist(self):
        return list(self.items)


class _Column:
    """An ordered collection that is neither a Sequence nor an Iterator (a dataset column, say): only
    ``__iter__`` and ``__len__``."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


@pytest.mark.parametrize("make", [np.array, _SeriesLike, lambda t: (x for x in t), iter, _Column],
                         ids=["ndarray", "series", "generator", "iterator", "iterable"])
def test_array_series_and_iterators_of_str_are_accepted(minilm, make):
    texts = ["hello there", "Как дела?"]
    np.testing.assert_array_equal(minilm.encode(make(texts)), minilm.encode(texts))


@pytest.mark.parametrize("make", [lambda t: np.array(t, dtype=object), _SeriesLike, iter, _Column])
def test_non_str_items_of_arrays_and_iterators_name_their_index(minilm, make):
    with pytest.raises(TypeError, match=r"texts\[1\] is int, not str"):
        minilm.encode(make(["ok", 3]))


def test_lone_surrogate_names_the_text_and_says_not_unicode(minilm):
    with pytest.raises(ValueError, match=r"texts\[1\] is not valid Unicode.*UTF-8"):
        minilm.encode(["fine", "x\ud800y"])
    with pytest.raises(ValueError, match=r"prompt is not valid Unicode"):
        minilm.encode("fine", prompt="\udc80: ")


@pytest.mark.parametrize("name", ["truncate", "show_progress"])
@pytest.mark.parametrize("value", [None, "no", 1])
def test_flags_must_be_real_bools(minilm, name, value):
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        minilm.encode("x", **{name: value})


@pytest.mark.parametrize("value", ["no", 1])
def test_normalize_must_be_a_bool_or_none(minilm, value):
    with pytest.raises(TypeError, match="normalize must be True, False or None"):
        minilm.encode("x", normalize=value)


def test_numpy_integers_are_accepted_for_dim_and_batch_size(minilm):
    np.testing.assert_array_equal(minilm.encode("x", dim=np.int64(384), batch_size=np.int32(4)), minilm.encode("x"))
    with pytest.raises(TypeError, match="dim must be an int, got bool"):
        minilm.encode("x", dim=True)


def test_task_must_be_a_non_empty_str():
    from mlx_embed import registry

    spec = registry.get("qwen3-0.6b")
    with pytest.raises(TypeError, match="task must be a str or None, got int"):
        spec.format_query_prompt(123)
    with pytest.raises(ValueError, match="task must not be empty"):
        spec.format_query_prompt("")
    with pytest.raises(ValueError, match=r"task='use \{task\}' holds the placeholder"):
        spec.format_query_prompt("use {task}")
    with pytest.raises(ValueError, match="minilm takes no task instruction"):  # not a placeholder error
        registry.get("minilm").format_query_prompt("use {task}")
    with pytest.raises(ValueError, match="minilm takes no task instruction: leave task out"):  # not "task=None for the default task"
        registry.get("minilm").format_query_prompt("")


@pytest.mark.parametrize("method", ["encode_query", "encode_document"])
def test_query_and_document_refuse_a_prompt(minilm, method):
    with pytest.raises(TypeError, match=rf"{method}\(\) sets the prompt itself.*encode\(texts, prompt="):
        getattr(minilm, method)("a", prompt="x")


@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
def test_truncation_warning_points_at_the_callers_line(minilm, method):
    with pytest.warns(TruncationWarning) as caught:
        getattr(minilm, method)(["word " * 400])
    assert [w.filename for w in caught] == [__file__]


LONG_TEXT = "\n".join(TEXTS) * 40  # about 30,000 characters, 8,000+ tokens: spaces, newlines, CJK, code


@pytest.mark.parametrize("model", ["minilm", "qwen3"])
def test_long_text_from_a_prefix_gives_the_ids_and_embedding_of_the_whole(minilm, tiny_qwen3_hf, monkeypatch, model):
    """Long texts are tokenized from a prefix; the ids and the embedding are those of the whole text."""
    embedder = minilm if model == "minilm" else mlx_embed.load(tiny_qwen3_hf)
    texts = [LONG_TEXT, "short", "中" * 3000, LONG_TEXT[7:] + " end"]
    monkeypatch.setattr(tokenize, "LONG_TEXT_CHARS_PER_TOKEN", 10**6)  # every text whole
    slow_ids, slow_cut = embedder.text_encoder.tokenize(texts, 128)
    with pytest.warns(TruncationWarning, match=r"3 of 4 texts.*longest \d+ tokens"):
        slow = embedder.encode(texts, max_length=128)
    monkeypatch.setattr(tokenize, "LONG_TEXT_CHARS_PER_TOKEN", 8)  # over 1,024 characters from a prefix
    fast_ids, cut = embedder.text_encoder.tokenize(texts, 128)
    assert fast_ids == slow_ids
    assert isinstance(cut[0], tokenize.AtLeast) and 256 < cut[0] < slow_cut[0]
    assert isinstance(cut[2], tokenize.AtLeast) and 256 < cut[2] < slow_cut[2]  # no whitespace: cut anywhere
    with pytest.warns(TruncationWarning, match=r"3 of 4 texts.*longest at least \d+ tokens"):
        fast = embedder.encode(texts, max_length=128)
    np.testing.assert_array_equal(fast, slow)


def test_a_huge_text_is_cut_without_tokenizing_all_of_it(minilm):
    text = "lorem ipsum dolor " * 120_000  # 2.16 million characters
    assert len(text) > tokenize.LONG_TEXT_CHARS_PER_TOKEN * minilm.max_length
    with pytest.warns(TruncationWarning, match="longest at least"):
        vector = minilm.encode(text)
    with pytest.warns(TruncationWarning, match=r"longest \d+ tokens"):
        np.testing.assert_array_equal(vector, minilm.encode("lorem ipsum dolor " * 200))
    with pytest.raises(ValueError, match=r"longest at least \d+ tokens"):
        minilm.encode(text, truncate=False)


def test_too_long_is_truncated_with_one_warning_and_a_count(minilm):
    texts = ["word " * 400, "short", "token " * 300]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = minilm.encode(texts)
    ours = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(ours) == 1
    assert "2 of 3 texts" in str(ours[0].message) and "max_length=256" in str(ours[0].message)
    # truncation keeps the first 254 word pieces plus [CLS]/[SEP], like sentence-transformers
    head = minilm.encode(" ".join(["word"] * 254))
    assert float(out[0] @ head) > 0.99999


def test_too_long_raises_when_truncate_false(minilm):
    with pytest.raises(ValueError, match="longer than max_length=256"):
        minilm.encode(["word " * 400], truncate=False)


def test_max_length_beyond_positions_is_refused(minilm):
    with pytest.raises(ValueError, match="512 positions"):
        minilm.encode("x", max_length=1024)


def test_dim_not_allowed_for_non_matryoshka_model(minilm):
    with pytest.raises(ValueError, match="384 only"):
        minilm.encode("x", dim=128)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": "8"}, TypeError, "batch_size must be an int, got str"),
    ({"max_batch_tokens": 2.0}, TypeError, "max_batch_tokens must be an int, got float"),
    ({"prompt": 5}, TypeError, "prompt must be a str or None, got int"),
    ({"dim": 1.5}, TypeError, "dim must be an int, got float"),
])
def test_bad_arguments(minilm, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        minilm.encode(["x"], **kwargs)


def test_qwen3_matryoshka_dims(tiny_qwen3_hf):
    from mlx_embed import registry

    qwen = mlx_embed.load(tiny_qwen3_hf)
    full = qwen.encode(["a b c", "hello"], normalize=False)
    short = qwen.encode(["a b c", "hello"], dim=32)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-6)
    spec = registry.get("qwen3-0.6b")
    assert spec.check_dim(32) == 32 and spec.check_dim(1024) == 1024
    with pytest.raises(ValueError, match="from 32 to 1024"):
        spec.check_dim(16)


def test_chunks_hold_at_most_512_texts_and_a_million_characters(monkeypatch):
    from mlx_embed.embedder import chunk_starts

    assert (mlx_embed.embedder.ENCODE_CHUNK, mlx_embed.embedder.ENCODE_CHUNK_CHARS) == (512, 1_000_000)
    assert chunk_starts([], 8192) == [] and chunk_starts(["a"] * 1100, 8192) == [0, 512, 1024]
    # 40 documents of 30,001 characters: 33 x 30,001 = 990,033 fit, a 34th would not
    assert chunk_starts(["d" * 30_001] * 40, 8192) == [0, 33]
    # past 64 characters a token of max_length a text is tokenized from a prefix: at 256 tokens 16,384 characters
    # of each count, 61 x 16,384 = 999,424
    assert chunk_starts(["d" * 100_000] * 70, 256) == [0, 61]
    assert chunk_starts(["a", "d" * 2_000_000, "b"], 32768) == [0, 1, 2]  # 2,000,000 > 1,000,000: alone
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK_CHARS", 6)
    assert chunk_starts(["abc", "def", "ghi", "0123456789", "z"], 8192) == [0, 2, 3, 4]


def test_long_documents_are_tokenized_a_million_characters_at_a_time(minilm, monkeypatch):
    """512 long documents at a time held 0.45-1.4 GB of tokenizer output at Qwen3's 8,192 tokens."""
    seen = []
    tokenize = minilm.text_encoder.tokenize
    monkeypatch.setattr(minilm.text_encoder, "tokenize", lambda texts, n: seen.append(sum(map(len, texts))) or tokenize(texts, n))
    # 30,011-30,012 characters, under 64 x 512 (whole, not from a prefix): 33 to a chunk
    docs = [f"document {i} " + "word " * 6_000 for i in range(40)]
    with pytest.warns(TruncationWarning, match="40 of 40 texts"):
        vectors = minilm.encode(docs, max_length=512)
    chunks = [n for n in seen if n > 1_000]  # leave out the prompt checks' one-text calls
    assert chunks == [sum(map(len, docs[:33])), sum(map(len, docs[33:]))]
    with pytest.warns(TruncationWarning):
        np.testing.assert_allclose(vectors[35], minilm.encode(docs[35], max_length=512), atol=1e-6)


def test_chunked_encode_warns_once_with_the_total_count(minilm, monkeypatch):
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 2)
    texts = ["word " * 400, "short", "fine", "token " * 300, "x"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        minilm.encode(texts)
    ours = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(ours) == 1 and "2 of 5 texts" in str(ours[0].message)


LONG = "word " * 400


@pytest.mark.parametrize("texts,refusal", [
    (["short", "fine", "x", "y", LONG], r"1 of 5 texts .*first at index 4"),  # three chunks
    (["short", "fine", "x", LONG], r"1 of 4 texts .*first at index 3"),  # two
    ([LONG, "fine", "x", "y", LONG], r"2 of 5 texts .*first at index 0"),  # the first chunk counts too
])
def test_chunked_encode_refuses_a_too_long_text_before_embedding_anything(minilm, monkeypatch, texts, refusal):
    """A too-long text in the last chunk is refused before the first chunk is embedded (it was found
    only after embedding every chunk before it: 12 s of wasted work for 4,096 texts here)."""
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 2)

    def no_embedding(*args, **kwargs):
        raise AssertionError("embedded texts before refusing")

    monkeypatch.setattr(minilm, "_embed_batches", no_embedding)
    with pytest.raises(ValueError, match=refusal):
        minilm.encode(texts, truncate=False)


NAN_WEIGHT = r"weights hold inf / NaN \(e.g. 'encoder.layer.0.intermediate.dense.weight'\)"


@pytest.mark.parametrize("dtype,cause,advice", [("float16", "large", "dtype='float32'"), ("float32", "nan", NAN_WEIGHT),
                                                ("float16", "nan", NAN_WEIGHT)])
def test_inf_or_nan_embeddings_raise_with_the_cause_instead_of_being_returned(tiny_bert_hf, dtype, cause, advice):
    """A first MLP that reaches 1e5 overflows float16 (max 65504) but not float32; a NaN weight
    breaks any dtype, and is named (in float16 it was blamed on overflow). Either way encode names the
    problem rather than returning NaN vectors."""
    import mlx.core as mx

    texts = ["fine", "another text", "a third, longer text than the others"] * 20  # several batches

    def broken(dtype):
        embedder = mlx_embed.load(tiny_bert_hf, dtype=dtype)
        dense = embedder.model.encoder.layer[0].intermediate.dense
        if cause == "large":  # +-30000: finite in float16 (x 1e5 made them inf there: broken, not overflowing)
            dense.weight = mx.where(dense.weight >= 0, 30000.0, -30000.0).astype(dense.weight.dtype)
        else:
            dense.weight = mx.where(mx.arange(dense.weight.shape[1]) == 0, mx.array(float("nan")), dense.weight)
        return embedder

    embedder = broken(dtype)
    if cause == "large":  # the advice holds: the same weights in float32 give finite vectors
        assert np.isfinite(broken("float32").encode(texts)).all()
    with pytest.raises(FloatingPointError, match=rf"inf / NaN embeddings for \d+ text\(s\).*{advice}"):
        embedder.encode(texts, batch_size=8)


def test_weights_of_zeros_raise_instead_of_returning_zero_vectors(tiny_bert_hf, tmp_path):
    """A weights file zeroed on disk loaded, and every text embedded to the zero vector: cosine 0 to
    everything in an index, without a word."""
    import shutil

    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "zeros"
    shutil.copytree(tiny_bert_hf, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: np.zeros_like(v) for k, v in tensors.items()}, str(folder / "model.safetensors"))
    with pytest.raises(FloatingPointError, match=r"all-zero embeddings for 2 text\(s\).*weights are zeros or broken"):
        mlx_embed.load(folder).encode(["one", "two"])
    assert (mlx_embed.load(tiny_bert_hf).encode(["one", "two"]) != 0).any(axis=1).all()


def test_a_long_text_without_whitespace_is_tokenized_from_a_prefix(minilm, monkeypatch):
    """A long CJK text has no whitespace to cut at; only a prefix is tokenized, and the kept tokens are
    those of a short text holding exactly them."""
    seen: list[int] = []
    real = minilm.text_encoder._encode
    monkeypatch.setattr(minilm.text_encoder, "_encode", lambda texts, n: seen.extend(map(len, texts)) or real(texts, n))
    for text, short in (("字" * 200_000, "字" * 254), ("标题 " + "字" * 200_000, "标题 " + "字" * 252)):  # 256 tokens
        seen.clear()
        with pytest.warns(TruncationWarning, match="1 of 1 texts"):
            vector = minilm.encode(text)
        assert max(seen) < len(text) // 10  # an early space is no place to cut
        np.testing.assert_allclose(vector, minilm.encode(short), atol=1e-6)


def test_normalization_follows_the_folders_sentence_transformers_modules(tiny_bert_hf, tmp_path):
    """Without a Normalize module (a dot-product model) vectors stay unnormalized, as in
    sentence-transformers; with one they are unit length. normalize= overrides either way."""
    import json
    import shutil

    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    folder = tmp_path / "dot"
    shutil.copytree(tiny_bert_hf, folder)
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (folder / "modules.json").write_text(json.dumps(modules))
    texts = ["hello world", "a second, longer text", "Как дела?"]
    ours = mlx_embed.load(folder).encode(texts)
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(texts)
    assert np.abs(np.linalg.norm(theirs, axis=1) - 1).max() > 0.1
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(mlx_embed.load(folder).encode(texts, normalize=True), axis=1), 1, atol=1e-6)
    normed = mlx_embed.load(tiny_bert_hf)
    np.testing.assert_allclose(np.linalg.norm(normed.encode(texts), axis=1), 1, atol=1e-6)
    assert np.abs(np.linalg.norm(normed.encode(texts, normalize=False), axis=1) - 1).max() > 0.1


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_bad_stream_count_in_the_environment_warns_and_falls_back(value):
    """-1 ran without worker streams and said nothing."""
    import subprocess
    import sys

    code = "import warnings; warnings.simplefilter('always'); import mlx_embed.embedder as e; print(e.CPU_STREAMS)"
    env = {**__import__("os").environ, "MLX_EMBED_CPU_STREAMS": value}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert f"MLX_EMBED_CPU_STREAMS={value!r} is not an integer >= 0" in proc.stderr
    assert int(proc.stdout.split()[-1]) >= 1


@pytest.mark.parametrize("value,on,warned", [("false", False, False), ("OFF", False, False), ("0", False, False),
                                             ("true", True, False), ("maybe", True, True)])
def test_the_fast_switch_reads_the_usual_spellings_and_warns_on_others(value, on, warned):
    """MLX_EMBED_FAST=false left the fused kernels on without a word."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('always'); import mlx_embed.models.kernels as k; "
            "print(k._disabled_reason is None or 'disabled by' not in k._disabled_reason)")
    env = {**__import__("os").environ, "MLX_EMBED_FAST": value}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.split()[-1] == str(on)
    assert (f"MLX_EMBED_FAST={value!r} is neither 0 nor 1" in proc.stderr) == warned


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_streams_follow_the_cpus_this_process_may_use():
    """A process limited to one CPU (a container's cpuset, taskset) ran two streams, counted from the host's
    os.cpu_count() (as were the OpenBLAS threads per stream, which now use the same count)."""
    import os
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import mlx_embed.embedder as e; "
            "print(e.CPU_STREAMS)")
    env = {k: v for k, v in os.environ.items() if k != "MLX_EMBED_CPU_STREAMS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert (proc.returncode, proc.stdout.split()) == (0, ["1"]), proc.stderr[-1000:]


def test_text_of_exactly_max_length_tokens_is_not_cut(minilm_path):
    """256 tokens (counted by transformers' tokenizer, [CLS] and [SEP] included) fit MiniLM's 256: no
    warning, and the vector is sentence-transformers' (whose limit is the same 256), last word included."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    st = pytest.importorskip("sentence_transformers", reason=NEEDS_SENTENCE_TRANSFORMERS)
    text = "word " * 253 + "zebra"
    assert len(transformers.AutoTokenizer.from_pretrained(str(minilm_path))(text)["input_ids"]) == 256
    model = mlx_embed.load(minilm_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict = model.encode([text, "short"], truncate=False)
        ours = model.encode([text, "short"])
    reference = st.SentenceTransformer(str(minilm_path), device="cpu")
    assert reference.max_seq_length == 256
    np.testing.assert_allclose(ours, reference.encode([text, "short"]), atol=1e-5)
    np.testing.assert_array_equal(strict, ours)
    assert np.abs(ours[0] - model.encode("word " * 253)).max() > 1e-3  # a cut before "zebra" would show above


def test_truncation_message_counts_the_longest_and_names_the_first(minilm_path, monkeypatch):
    """The last text is tokenized from a prefix (3,600 characters, over 62 x 32) and so recorded first; the message
    still names the lowest index, and the longest count comes from the whole text (transformers' count)."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    long_a, long_b = "word " * 300, "lorem ipsum " * 300
    n_a = len(transformers.AutoTokenizer.from_pretrained(str(minilm_path))(long_a)["input_ids"])
    assert n_a == 302
    monkeypatch.setattr(tokenize, "LONG_TEXT_CHARS_PER_TOKEN", 62)
    model = mlx_embed.load(minilm_path)
    with pytest.raises(ValueError, match=rf"2 of 4 texts .*first at index 1, longest at least {n_a} tokens"):
        model.encode(["ok", long_a, "fine", long_b], max_length=32, truncate=False)


def test_inputs_a_dataframe_user_passes_get_errors_that_name_the_fix(tiny_bert_hf):
    model = mlx_embed.load(tiny_bert_hf)
    with pytest.raises(TypeError, match=r"got a 2-D ndarray of shape \(2, 1\): flatten it first"):
        model.encode(np.array([["a"], ["b"]]))
    with pytest.raises(TypeError, match=r"texts\[1\] is NaN \(a missing value"):
        model.encode(np.array(["a", float("nan")], dtype=object))
    with pytest.raises(TypeError, match=r"texts\[1\] is NaN \(a missing value"):
        model.encode(["a", np.float32("nan")])
    with pytest.raises(TypeError, match=r"texts\[1\] is None \(a missing value.*drop or fill"):
        model.encode(["a", None])
    pd = pytest.importorskip("pandas", reason="pandas: pd.NA")
    with pytest.raises(TypeError, match=r"texts\[1\] is pd.NA \(a missing value.*drop or fill"):
        model.encode(pd.Series(["a", pd.NA], dtype="string"))
    with pytest.raises(TypeError, match=r"texts\[1\] is pd.NaT \(a missing value.*drop or fill"):
        model.encode(["a", pd.NaT])
    with pytest.raises(TypeError, match=r"encode_document\(\) takes no task"):
        model.encode_document("a", task="Find code")
    texts = iter(["a", "b"])
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(texts, batch_size=0)
    with pytest.raises(TypeError, match="prompt must be a str"):
        model.encode(texts, prompt=5)
    assert model.encode(texts).shape[0] == 2  # the bad call did not use up the iterator
    with pytest.raises(ValueError, match="surrogatepass"):
        model.encode("\ud83d\ude00")
    escaped = "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # the advice, followed
    np.testing.assert_array_equal(model.encode(escaped), model.encode("😀"))


@pytest.mark.parametrize("fused", [True, False])
def test_a_text_with_no_tokens_is_refused_by_index(tiny_bert_hf, tmp_path, monkeypatch, fused):
    """A tokenizer without [CLS]/[SEP] turns "" into zero tokens: nothing to pool (sentence-transformers
    returns a zero vector). It was a ZeroDivisionError in the fused kernel, a FloatingPointError blaming
    the checkpoint, or silent zeros."""
    import json
    import shutil

    from mlx_embed.models import kernels

    if not fused:
        monkeypatch.setattr(kernels, "_disabled_reason", "test")
    folder = tmp_path / "bare"
    shutil.copytree(tiny_bert_hf, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    model = mlx_embed.load(folder)
    assert model.encode(["hello"]).shape == (1, model.dim)
    for texts, index in ((["hello", "  "], 1), ([""], 0), (["a"] * 3 + [""], 3)):
        with pytest.raises(ValueError, match=rf"texts\[{index}\] gives no tokens.*drop or fill"):
            model.encode(texts)
    assert np.isfinite(model.encode(["hello", "world"])).all()
    embedded = []  # after the first chunk of 512 texts too, the refusal comes before any text is embedded
    forward = model._embed_batches
    monkeypatch.setattr(model, "_embed_batches", lambda *a, **k: embedded.append(1) or forward(*a, **k))
    for truncate in (True, False):
        for empty in (" ", "\u200b"):  # a zero-width space is no blank to str.strip(), and no token either
            with pytest.raises(ValueError, match=r"texts\[1100\] gives no tokens"):
                model.encode(["hello"] * 1100 + [empty], truncate=truncate)
    assert embedded == []


@pytest.mark.parametrize(
    "method,kwargs,hint",
    [
        ("encode", {"normalize_embeddings": False}, "leave normalize out: its default"),
        ("encode", {"normalize_embeddings": True}, "use normalize=True"),
        ("encode", {"show_progress_bar": True}, "use show_progress="),
        ("encode", {"convert_to_tensor": True}, r"mx.array\(result\)"),
        ("encode", {"task": "x"}, r"encode_query\(texts, task=...\)"),
        ("encode_query", {"truncate_dim": 64}, "use dim="),
        ("encode_document", {"prompt_name": "query"}, "encode_query"),
        ("encode", {"batchsize": 8}, "it takes prompt, batch_size"),
        ("encode_document", {"normalize_embeddings": True, "batchsize": 3}, "use normalize=True; it takes batch_size"),
    ],
)
def test_sentence_transformers_keywords_name_ours(minilm, method, kwargs, hint):
    with pytest.raises(TypeError, match=rf"{method}\(\) got unexpected keyword argument.*{hint}"):
        getattr(minilm, method)("a text", **kwargs)


@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
@pytest.mark.parametrize("name", ["sentences", "inputs"])
def test_texts_under_sentence_transformers_names_get_a_hint(minilm, method, name):
    """sentence-transformers' encode takes ``sentences=`` (``inputs=`` in 6.x): Python's own error said
    "missing 1 required positional argument: 'texts'"."""
    with pytest.raises(TypeError, match=rf"'{name}' \({name}: pass the texts as the first argument"):
        getattr(minilm, method)(**{name: ["a text"]})
    with pytest.raises(TypeError, match=rf"{method}\(\) needs the texts to embed"):
        getattr(minilm, method)()


def test_a_prompt_template_is_refused_not_embedded_literally(tiny_qwen3_hf):
    qwen = mlx_embed.load(tiny_qwen3_hf)
    with pytest.raises(ValueError, match=r"template.*encode_query\(texts, task=...\)"):
        qwen.encode("what is x?", prompt=qwen.spec.query_prompt)
    with pytest.raises(ValueError, match=r"task is not valid Unicode: surrogates not allowed at character 5"):
        qwen.encode_query("what is x?", task="Find \ud800 docs")


def test_encode_document_takes_task_none_as_no_task(minilm):
    np.testing.assert_array_equal(minilm.encode_document("a passage", task=None), minilm.encode_document("a passage"))
    with pytest.raises(TypeError, match="takes no task"):
        minilm.encode_document("a passage", task="retrieve")


def test_load_takes_mx_dtypes_and_repr_shows_the_compute_dtype(minilm_path):
    import mlx.core as mx

    half = mlx_embed.load(minilm_path, dtype=mx.float16)
    assert half.dtype == mx.float16 and "dtype='float16'" in repr(half) and "weights='fp32'" in repr(half)
    with pytest.raises(ValueError, match="dtype must be one of float32, float16, bfloat16"):
        mlx_embed.load(minilm_path, dtype=mx.int8)
    with pytest.raises(TypeError, match="dtype must be a str.*got int 16"):
        mlx_embed.load(minilm_path, dtype=16)
    assert mlx_embed.load(minilm_path, dtype=np.float16).dtype == mx.float16


def test_a_max_length_the_special_tokens_fill_is_refused(minilm):
    # [CLS] and [SEP] take both places of max_length=2: no text token would be left, all texts one vector
    with pytest.raises(ValueError, match=r"max_length=2 leaves no room for the text: the special tokens already take 2"):
        minilm.encode(["apple", "quantum physics"], max_length=2)
    with pytest.warns(TruncationWarning, match="1 of 2 texts"):
        v = minilm.encode(["apple", "quantum physics"], max_length=3)  # [CLS] apple [SEP] / [CLS] quantum [SEP]
    np.testing.assert_allclose(v, minilm.encode(["apple", "quantum"]), atol=1e-6)


def test_a_prompt_that_fills_max_length_is_refused_not_every_text_one_vector(minilm, tiny_qwen3_hf):
    prompt = "word " * 20  # 20 tokens
    with pytest.raises(ValueError, match=r"the special tokens and the prompt already take 22 tokens.*max_length > 22"):
        minilm.encode(["apple", "quantum physics"], prompt=prompt, max_length=22)
    with pytest.warns(TruncationWarning, match="1 of 2 texts"):
        v = minilm.encode(["apple", "quantum physics"], prompt=prompt, max_length=23)
    assert v[0] @ v[1] < 0.9999  # each keeps its first token
    qwen = mlx_embed.load(tiny_qwen3_hf)
    n = len(qwen.text_encoder.tokenizer.encode(qwen.spec.format_query_prompt()).ids)
    with pytest.raises(ValueError, match=rf"the special tokens and the model's prompt already take {n} tokens\. "
                       rf"Use max_length > {n}, or a shorter task$"):
        qwen.encode_query(["how do I reset my password", "best pizza in Naples"], max_length=n)
    with pytest.raises(ValueError, match=r"and the prompt already take \d+ tokens\. Use max_length > \d+, or a shorter prompt$"):
        qwen.encode(["a"], prompt="word " * 20, max_length=8)
    # a prompt as long as the position table: no max_length the model takes would help (it advised max_length > 602)
    with pytest.raises(ValueError, match=r"the prompt already take 602 tokens\. The model takes at most 512 tokens: "
                       r"use a shorter prompt$"):
        minilm.encode("hi", prompt="word " * 600, max_length=512)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):  # the plain checks come first
        minilm.encode(["a"], batch_size=0, max_length=2)


def test_a_query_prompt_without_a_task_that_fills_max_length_points_to_what_encode_query_takes(tiny_bert_hf, tmp_path):
    """encode_query refuses both prompt= and (without {task}) task=, which the message used to suggest."""
    import shutil

    folder = tmp_path / "bge-like"
    shutil.copytree(tiny_bert_hf, folder)
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "Represent this sentence for searching relevant passages: "}}))
    model = mlx_embed.load(folder)
    with pytest.raises(ValueError, match=r"the model's prompt already take 10 tokens\. Use max_length > 10, or "
                       r"encode\(texts, prompt=\.\.\.\) with a shorter prompt$"):
        model.encode_query("a", max_length=8)


def test_a_prompt_ending_in_a_space_leaves_room_where_the_space_merges_into_the_text(tiny_qwen3_hf):
    """A byte-level BPE tokenizes a trailing space alone ("Ġ") but joins it to the text's first word ("Ġapple"):
    at the prompt's own length the texts still differ, one token shorter they do not."""
    qwen = mlx_embed.load(tiny_qwen3_hf)
    texts = ["apple pie", "zebra crossing"]
    ids = qwen.text_encoder.tokenize(["query: "], 10_000)[0][0]
    assert qwen.text_encoder.tokenizer.id_to_token(ids[-2]) == "Ġ"  # the space alone, then <|endoftext|>
    with pytest.warns(TruncationWarning):
        v = qwen.encode(texts, prompt="query: ", max_length=len(ids))
    assert v[0] @ v[1] < 0.9999
    with pytest.raises(ValueError, match="leaves no room for the text"):
        qwen.encode(texts, prompt="query: ", max_length=len(ids) - 1)


def test_show_progress_counts_texts_on_stderr_and_ends_the_line(minilm, capsys):
    minilm.encode(["a", "b c", "d e f"], show_progress=True, batch_size=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    steps = captured.err.split("\r")
    assert steps[-1] == "mlx_embed: 3/3 texts\n" and "mlx_embed: 1/3 texts" in steps
    minilm.encode(["a"], show_progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("prompt", ["🔎", "search ☃", "x" * 120])
def test_a_prompt_ending_in_an_unknown_word_leaves_room_below_max_length(minilm, prompt):
    """WordPiece keeps a prompt's last word [UNK] whatever letter follows it: that is no sign of a full max_length."""
    v = minilm.encode(["apple pie", "quantum physics"], prompt=prompt)
    assert v[0] @ v[1] < 0.99


@pytest.mark.parametrize("text, max_length", [
    ("x" * 160 + "." + "0123456789" * 100, 16),
    ("ACGT" * 200, 4),
    ("x°" * 40 + "😀", 4),  # symbols sit inside a BERT word
    ("xyz\u00ad" * 40, 8),  # the normalizer deletes a soft hyphen, joining the letters around it
    ("y" * 160 + "." + "x°" * 1024, 16),
    ("xyz\x0c" * 40, 8),  # and a form feed (pdftotext's page break): Python's whitespace, BERT's control
    ("xyz\x0b" * 40, 8),
    ("xyz\x1f" * 40, 8),
    ("xyz\x85" * 40, 8),
], ids=["digits", "dna", "symbols", "soft-hyphen", "symbols-after-a-break", "form-feed", "vertical-tab",
        "unit-separator", "next-line"])
def test_a_long_run_of_letters_is_never_cut_inside_for_a_prefix(minilm, monkeypatch, text, max_length):
    """WordPiece makes a word over 100 characters one [UNK] but a 95-character piece of it many tokens: a prefix
    cut inside it changed the kept ids and reported a text that fits as cut."""
    monkeypatch.setattr(tokenize, "LONG_TEXT_CHARS_PER_TOKEN", 1)
    ids, cut = minilm.text_encoder.tokenize([text], max_length)
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    hf = transformers.AutoTokenizer.from_pretrained(str(minilm.path))(text)["input_ids"]
    assert ids == [hf] and cut == {} and len(hf) <= max_length


def test_every_character_taken_for_a_word_break_ends_a_word_for_the_bert_tokenizer(minilm):
    """Checked against the tokenizer itself over the BMP and the CJK extension planes: the break set keeps no
    character that the normalizer deletes (a form feed), that ``tokenizers``' older Unicode tables do not call
    punctuation (U+2E43), or that its CJK table leaves out (U+2B820-2B91F, which Google's BERT splits)."""
    breaks = tokenize._word_break(cjk=True)
    chars = [chr(c) for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF and breaks.fullmatch(chr(c))]
    assert len(chars) > 20_000 and breaks.fullmatch("\U0002B920") and breaks.fullmatch("\U0002B81F")
    tk = minilm.text_encoder.tokenizer
    joined = [c for c, e in zip(chars, tk.encode_batch([f"abc{c}def" for c in chars], add_special_tokens=False))
              if e.tokens[0] != "abc" or e.tokens[-1] != "def"]
    assert joined == []


def test_cjk_sits_inside_a_word_where_the_normalizer_does_not_split_it(minilm, monkeypatch):
    """With ``handle_chinese_chars`` off, "x中文中文..." is one word over 100 characters: one [UNK], not pieces."""
    from tokenizers import Tokenizer, normalizers

    tk = Tokenizer.from_str(minilm.text_encoder.tokenizer.to_str())
    tk.normalizer = normalizers.BertNormalizer(handle_chinese_chars=False, lowercase=True)
    encoder = tokenize.TextEncoder(tk)
    text = "x" + "中文" * 200
    monkeypatch.setattr(tokenize, "LONG_TEXT_CHARS_PER_TOKEN", 1)
    assert encoder.tokenize([text], 4) == ([tk.encode(text).ids], {})
    assert tk.encode(text).tokens == ["[CLS]", "[UNK]", "[SEP]"]


def test_a_long_run_without_a_boundary_is_cut_anywhere_for_a_byte_level_bpe(tiny_qwen3_hf):
    """Only WordPiece collapses a long word to one [UNK]; a BPE's ids of a 4 MB run come from a prefix."""
    qwen = mlx_embed.load(tiny_qwen3_hf)
    text = "ACGT" * 1_000_000
    ids, cut = qwen.text_encoder.tokenize([text], 64)
    assert isinstance(cut[0], tokenize.AtLeast) and cut[0] > 128
    assert ids == qwen.text_encoder.tokenize([text[:20_000]], 64)[0]


def _random_bert_text(rng) -> str:
    """Segments that stress BERT's word splitting: long runs of letters (with marks, symbols, characters
    the normalizer deletes or expands), whitespace runs of every kind, punctuation, CJK, special tokens."""
    letters = ["abcdef0123456789", "éèêàç", "e\u0301a\u0308", "жзийклмн", "αβγδ", "°™", "İß", "x\u00ady", "\U0001f600",
               "x\x0cy", "x\x1cy", "⹃", "ا", "x\ufffdy", "x\u166dy", "x\u1fefy", "\u2260\u226e", "ǅﬁẞ", "\u200d\ufe0f",
               "e\u0301\u0301\u0308", "\U0001d400\U0001d41a\U0001f680", "x\U000e0041\U000e0020", "a\U00020000\U0002a700",
               "\U0001f1fa\U0001f1f8\U0001f3fd", "\u200b\u0301\u0316\x00\ufffd\x01", "a\U0001d165\u0301\u0316\u200b\u0315"]
    spaces = [" ", "\t", "\n", "\r\n", "\u3000", "\xa0", "\u2028", " \x0b ", " \x0c", "\x85", " \u200b", "\u0301\u0301 "]
    marks = [".", ",", "«", "—", "[SEP]", "[CLS]", "中文", "は", "한"]
    parts = []
    for _ in range(rng.integers(1, 12)):
        kind = rng.integers(3)
        if kind == 0:
            alphabet = letters[rng.integers(len(letters))]
            parts.append("".join(rng.choice(list(alphabet), size=int(rng.integers(1, 400)))))
        elif kind == 1:
            parts.append("".join(rng.choice(spaces, size=int(rng.integers(1, 40)))))
        else:
            parts.append(marks[rng.integers(len(marks))])
    return "".join(parts)


@pytest.mark.parametrize("setting", ["minilm", "cased", "no-clean-text", "no-cjk-split", "lowercase-first"])
def test_a_squeezed_text_has_the_ids_of_the_text(minilm, setting):
    """Whitespace runs as one space and words over 100 letters as 101 x's: the same WordPiece ids, checked
    against the tokenizer itself on random texts, under each normalizer setting a BERT folder can have."""
    from tokenizers import Tokenizer, normalizers

    tk = Tokenizer.from_str(minilm.text_encoder.tokenizer.to_str())
    if setting == "lowercase-first":  # how do_lower_case reaches a tokenizer.json without it
        tk.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.BertNormalizer(lowercase=False)])
    elif setting != "minilm":
        options = {"cased": dict(lowercase=False, strip_accents=False), "no-clean-text": dict(clean_text=False),
                   "no-cjk-split": dict(handle_chinese_chars=False)}[setting]
        tk.normalizer = normalizers.BertNormalizer(**{"lowercase": True, **options})
    squeeze = tokenize.Squeezer.for_tokenizer(tk)
    rng = np.random.default_rng(0)
    texts = [_random_bert_text(rng) for _ in range(1500)]
    squeezed = [squeeze(t) for t in texts]
    assert sum(len(s) < len(t) for s, t in zip(squeezed, texts)) > 1000  # most were squeezed
    want = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
    got = [e.ids for e in tk.encode_batch(squeezed, add_special_tokens=False)]
    assert [t for t, a, b in zip(texts, want, got) if a != b] == []


@pytest.mark.parametrize("setting", ["minilm", "no-clean-text", "cased-strip-accents"])
def test_squeezing_keeps_the_order_of_the_marks_the_normalizer_keeps(minilm, setting):
    """A run of deleted characters shrinks to one that stops canonical reordering where the run holds one. The
    first class-0 character did not do: a zero-width space is deleted before NFD and U+0F73 decomposes into
    marks, so from [ZWSP, CGJ] the joiner that held two surviving marks in place was dropped and their ids came
    out swapped. Checked on a vocabulary holding every normalized character (c and ##c), where [UNK] cannot hide
    an order."""
    from tokenizers import Tokenizer, normalizers

    tk = Tokenizer.from_str(minilm.text_encoder.tokenizer.to_str())
    if setting != "minilm":
        options = {"no-clean-text": dict(clean_text=False, lowercase=True),
                   "cased-strip-accents": dict(lowercase=False, strip_accents=True)}[setting]
        tk.normalizer = normalizers.BertNormalizer(**options)
    marks = "\u0301\u0316\u0315\u0334\u05b0\u0e38\u302a\u0345\u302e\u302f\u1b44\U0001d165"
    blockers = "\u034f\u180b\u0f73\u0f75"
    deleted = "\u200b\ufeff\u00ad\x00\x01\ue000\ufffd\U000e0041"
    alphabet = list("ab" + marks + blockers + deleted + "  \u3000\t中İß한")
    rng = np.random.default_rng(1)
    texts = ["a\u302e\u200b\u034f\u1b44", "a\u302e\u0f73\u034f\u1b44"]
    texts += ["".join(rng.choice(alphabet, size=int(rng.integers(1, 40)))) for _ in range(3000)]
    data = json.loads(tk.to_str())
    vocab = data["model"]["vocab"]
    for c in sorted({c for t in texts for c in tk.normalizer.normalize_str(t)} - set(" \t")):
        for token in (c, "##" + c):
            vocab.setdefault(token, len(vocab))
    tk = Tokenizer.from_str(json.dumps(data))
    squeeze = tokenize.Squeezer.for_tokenizer(tk)
    squeezed = [squeeze(t) for t in texts]
    assert sum(len(q) < len(t) for q, t in zip(squeezed, texts)) > 1000
    want = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
    got = [e.ids for e in tk.encode_batch(squeezed, add_special_tokens=False)]
    assert [t for t, a, b in zip(texts, want, got) if a != b] == []


def test_no_squeezing_where_an_added_token_or_the_normalizer_could_see_a_difference(minilm):
    """An added token that starts or ends with a letter ("Mr.") could be cut out of, or formed by, a squeezed
    run; NFKC turns "⑴" into "(1)" after the letters were counted."""
    from tokenizers import AddedToken, Tokenizer, normalizers

    def tokenizer():
        return Tokenizer.from_str(minilm.text_encoder.tokenizer.to_str())

    assert tokenize.Squeezer.for_tokenizer(tokenizer()) is not None
    for token in ("Mr.", "eos>", "<x", "[" + "a" * 101 + "]", "<a b>"):
        tk = tokenizer()
        tk.add_tokens([AddedToken(token)])
        assert tokenize.Squeezer.for_tokenizer(tk) is None, token
    for token in ("\U0001f917", "<x>\U0001d400", "\u200b", "<x>\u200d", "\u2060<x>"):  # an emoji, a silent character
        tk = tokenizer()
        tk.add_special_tokens([token])
        assert tokenize.Squeezer.for_tokenizer(tk) is None, token
    tk = tokenizer()
    tk.add_special_tokens(["<|sep|>"])
    assert tokenize.Squeezer.for_tokenizer(tk) is not None
    tk = tokenizer()
    tk.normalizer = normalizers.Sequence([normalizers.NFKC(), tk.normalizer])
    assert tokenize.Squeezer.for_tokenizer(tk) is None


def test_a_long_text_with_few_tokens_is_squeezed_before_it_is_tokenized(minilm, monkeypatch):
    """A text that starts with a long run of hex digits, of spaces, of emoji (past the BMP) or of letters with
    accents that strip_accents drops has no prefix with enough tokens; it used to be tokenized whole (8-10 MB:
    3-10 s and +0.5-1 GB). The tokenizer now sees it squeezed. So also for characters the normalizer deletes
    (10 M zero-width spaces: +1.1 GB)."""
    seen = []
    encode_batch = minilm.text_encoder.tokenizer.encode_batch
    monkeypatch.setattr(minilm.text_encoder, "tokenizer", _Spy(minilm.text_encoder.tokenizer, seen))
    texts = ["0123456789abcdef" * 20_000 + " and then words", " \n" * 100_000 + "hello world", "x" * 99 + " " * 300_000,
             "\U0001f600" * 300_000 + " smile", "e\u0301\u0301" * 100_000 + " zalgo", "a\u0301" * 60 + " " + "b" * 99,
             # characters the normalizer deletes: zero-width space, NUL, U+FFFD, a combining accent, alone or between
             "\u200b" * 300_000, " \u200b" * 150_000 + " hi", "\x00\ufffd" * 150_000, "a" + "\u0301" * 300_000 + "b"]
    ids, cut = minilm.text_encoder.tokenize(texts, 256)
    assert max(seen) <= 16 * 256  # the first prefix as it is, then squeezed ones, never the 300,000 characters
    assert ids == [e.ids for e in encode_batch(texts)] and cut == {}


def test_past_its_budget_of_astral_characters_the_squeezer_stays_exact(minilm, monkeypatch):
    """A character past the BMP that the squeezer has not asked the tokenizer about ends a run: the words
    around it are squeezed only as far as they are known to be letters, and the ids stay the tokenizer's."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_str(minilm.text_encoder.tokenizer.to_str())
    monkeypatch.setattr(tokenize.Squeezer, "MAX_ASTRAL", 3)
    squeeze = tokenize.Squeezer.for_tokenizer(tk)
    emoji = [chr(0x1F600 + i) for i in range(8)]
    texts = ["a" * 60 + "".join(emoji) * 20 + "b" * 120, "".join(emoji) * 30 + " end", "\U0001d400" * 150 + " x"]
    squeezed = [squeeze(t) for t in texts]
    assert len(squeeze._astral) == 3
    assert [e.ids for e in tk.encode_batch(squeezed, add_special_tokens=False)] == [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]


class _Spy:
    """A tokenizer that records the length of every text it tokenizes."""

    def __init__(self, tokenizer, seen: list[int]):
        self._tokenizer, self._seen = tokenizer, seen

    def encode_batch(self, texts, **kwargs):
        self._seen.extend(len(t) for t in texts)
        return self._tokenizer.encode_batch(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_an_embedder_is_not_pickled_but_says_to_load_in_each_worker(tiny_bert_hf):
    """multiprocessing (spawn), pickle and deepcopy failed with "cannot pickle '_thread.lock' object"."""
    import copy
    import pickle

    embedder = mlx_embed.load(tiny_bert_hf, pooling="mean")
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match=r"cannot be pickled or copied .*load the model in each worker process"):
            attempt(embedder)


def test_sentence_transformers_attributes_name_ours_and_setting_one_is_refused(tiny_bert_hf):
    """``model.max_seq_length = 128`` silently set an attribute that encode never reads."""
    embedder = mlx_embed.load(tiny_bert_hf, pooling="mean")
    text = " ".join(["word"] * 40)
    full = len(embedder.text_encoder.encode([text], 1 << 30)[0])
    with pytest.raises(AttributeError, match=r"max_seq_length cannot be set: pass encode\(\.\.\., max_length=N\)"):
        embedder.max_seq_length = 8
    with pytest.raises(AttributeError, match=r"max_length cannot be set: .*encode\(\.\.\., max_length=N\)"):
        embedder.max_length = 8
    with pytest.raises(AttributeError, match=r"'similarity' \(a sentence-transformers name\).*a @ b\.T"):
        embedder.similarity
    with pytest.raises(AttributeError, match=r"get_sentence_embedding_dimension.*model\.dim"):
        embedder.get_sentence_embedding_dimension()
    with pytest.raises(AttributeError, match=r"'device' \(a sentence-transformers name\).*mx\.set_default_device"):
        embedder.device
    with pytest.raises(AttributeError, match=r"device cannot be set: MLX picks the device"):
        embedder.device = "cuda"
    with pytest.raises(AttributeError, match=r"dim cannot be set: .*encode\(\.\.\., dim=N\)"):
        embedder.dim = 32
    with pytest.raises(AttributeError, match=r"'tokenizer' \(a sentence-transformers name\).*text_encoder\.tokenizer"):
        embedder.tokenizer
    assert not hasattr(embedder, "no_such_attribute")
    embedder.user_tag = "kept"  # other attributes stay settable
    assert embedder.user_tag == "kept"
    with pytest.warns(mlx_embed.TruncationWarning, match=rf"1 of 1 texts .*{full}"):
        embedder.encode(text, max_length=8)  # the per-call limit the messages point to works
