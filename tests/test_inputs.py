"""Bad input gets a named error; edge inputs get well-defined results."""

import warnings

import numpy as np
import pytest

import mlx_embed
from mlx_embed import TruncationWarning


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


@pytest.mark.parametrize("bad", [3, None, {"a": 1}, np.array(["x"])])
def test_wrong_container_type(minilm, bad):
    with pytest.raises(TypeError, match="str or a list of str"):
        minilm.encode(bad)


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


@pytest.mark.parametrize("kwargs,exc", [({"batch_size": 0}, ValueError), ({"batch_size": "8"}, TypeError), ({"prompt": 5}, TypeError), ({"dim": 1.5}, TypeError)])
def test_bad_arguments(minilm, kwargs, exc):
    with pytest.raises(exc):
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


def test_chunked_encode_warns_once_with_the_total_count(minilm, monkeypatch):
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 2)
    texts = ["word " * 400, "short", "fine", "token " * 300, "x"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        minilm.encode(texts)
    ours = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(ours) == 1 and "2 of 5 texts" in str(ours[0].message)


def test_chunked_encode_raises_at_the_first_too_long_text_with_its_index(minilm, monkeypatch):
    monkeypatch.setattr(mlx_embed.embedder, "ENCODE_CHUNK", 2)
    texts = ["short", "fine", "x", "word " * 400, "y"]
    with pytest.raises(ValueError, match=r"1 of the first 4 of 5 texts .*first at index 3"):
        minilm.encode(texts, truncate=False)
