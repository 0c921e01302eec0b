"""Tokenization against transformers' tokenizers and the Qwen3-Embedding end-of-text rule."""

import re

import numpy as np
import pytest

from mlx_embed.tokenize import TextEncoder, load_tokenizer

from .conftest import TEXTS, train_qwen_like_tokenizer
from .reference import NEEDS_TRANSFORMERS


def test_bert_ids_match_transformers(minilm_path):
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    reference = transformers.AutoTokenizer.from_pretrained(str(minilm_path))
    ours = TextEncoder(load_tokenizer(minilm_path))
    texts = TEXTS + ["word " * 300]
    expected = reference(texts, truncation=True, max_length=256)["input_ids"]
    with pytest.warns(UserWarning, match="1 of 13"):
        got = ours.encode(texts, 256)
    assert got == expected


def test_vocab_txt_fallback_matches_tokenizer_json(minilm_path, tmp_path):
    import shutil

    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_path / name, tmp_path / name)
    a = TextEncoder(load_tokenizer(minilm_path)).encode(TEXTS, 256)
    b = TextEncoder(load_tokenizer(tmp_path)).encode(TEXTS, 256)
    assert a == b


def test_end_token_appended_only_when_missing():
    with_eos = TextEncoder(train_qwen_like_tokenizer(append_eos=True), end_token="<|endoftext|>")
    without = TextEncoder(train_qwen_like_tokenizer(append_eos=False), end_token="<|endoftext|>")
    eos = with_eos.end_id
    a, b = with_eos.encode(TEXTS, 512), without.encode(TEXTS, 512)
    assert a == b
    assert all(seq[-1] == eos and seq.count(eos) == 1 for seq in a)
    assert a[TEXTS.index("")] == [eos]


def test_end_token_survives_truncation():
    for append in (True, False):
        enc = TextEncoder(train_qwen_like_tokenizer(append_eos=append), end_token="<|endoftext|>")
        with pytest.warns(UserWarning, match="1 of 1 texts were longer than max_length=16 tokens"):
            ids = enc.encode(["many words here " * 50], 16)
        assert len(ids[0]) == 16 and ids[0][-1] == enc.end_id


def test_missing_end_token_is_an_error(minilm_path):
    with pytest.raises(ValueError, match=re.escape("The tokenizer has no '<|endoftext|>' token")):
        TextEncoder(load_tokenizer(minilm_path), end_token="<|endoftext|>")


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_sides(side, minilm_path):
    enc = TextEncoder(load_tokenizer(minilm_path))
    batch = enc.pad([[1, 2, 3], [4]], side)
    if side == "right":
        np.testing.assert_array_equal(batch.input_ids, [[1, 2, 3], [4, 0, 0]])
        np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1], [1, 0, 0]])
    else:
        np.testing.assert_array_equal(batch.input_ids, [[1, 2, 3], [0, 0, 4]])
        np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1], [0, 0, 1]])
