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
    counting = " ".join(f"item{i}" for i in range(300))  # no repeats: cutting the wrong end shows
    texts = TEXTS + ["word " * 300, counting]
    expected = reference(texts, truncation=True, max_length=256)["input_ids"]
    with pytest.warns(UserWarning, match="2 of 14"):
        got = ours.encode(texts, 256)
    assert got == expected


def test_many_texts_are_encoded_a_slice_at_a_time_with_the_same_ids(minilm_path):
    """The tokenizer encodes at most ENCODE_BATCH texts and ENCODE_BATCH_CHARS characters at once (every encoding
    holds its tokens' strings and offsets: 512 texts held 18 MiB at once for MiniLM), and the ids are
    transformers' for the whole list."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    from mlx_embed import tokenize

    reference = transformers.AutoTokenizer.from_pretrained(str(minilm_path))
    ours = TextEncoder(load_tokenizer(minilm_path))
    sizes = []

    class Counting:  # the Rust tokenizer's methods cannot be patched on the object itself
        def __init__(self, inner):
            self.inner = inner

        def encode_batch(self, texts, **kwargs):
            sizes.append(len(texts))
            return self.inner.encode_batch(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    ours.tokenizer = Counting(ours.tokenizer)
    texts = [f"{t} {i}" for i in range(3) for t in TEXTS * 10][:150]
    assert ours.encode(texts, 256) == reference(texts, truncation=True, max_length=256)["input_ids"]
    assert sizes == [tokenize.ENCODE_BATCH, tokenize.ENCODE_BATCH, 150 - 2 * tokenize.ENCODE_BATCH]
    # and at most ENCODE_BATCH_CHARS characters: 20,000 each (whole at 512 tokens: under 64 x 512), 6 fit 131,072
    long = [" ".join(f"w{i}x{j}" for j in range(3400))[:20_000] for i in range(10)]
    sizes.clear()
    with pytest.warns(UserWarning, match="10 of 10"):
        got = ours.encode(long, 512)
    assert got == reference(long, truncation=True, max_length=512)["input_ids"]
    assert sizes == [6, 4]


def test_vocab_txt_fallback_matches_tokenizer_json(minilm_path, tmp_path):
    import shutil

    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_path / name, tmp_path / name)
    a = TextEncoder(load_tokenizer(minilm_path)).encode(TEXTS, 256)
    b = TextEncoder(load_tokenizer(tmp_path)).encode(TEXTS, 256)
    assert a == b


def test_a_bare_vocab_txt_is_read_as_bert_reads_it(minilm_path, tmp_path):
    """vocab.txt without tokenizer_config.json: BERT's defaults (lowercase, CJK split), as ``tokenizers``'
    own BertWordPieceTokenizer builds them."""
    import shutil

    from tokenizers import BertWordPieceTokenizer

    shutil.copy(minilm_path / "vocab.txt", tmp_path / "vocab.txt")
    texts = ["Hello World", "PARIS is in FRANCE", "Café NAÏVE 東京"]
    reference = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"))
    assert TextEncoder(load_tokenizer(tmp_path)).encode(texts, 256) == [e.ids for e in reference.encode_batch(texts)]


def test_end_token_appended_only_when_missing():
    """A tokenizer.json without the end token in its template gets the ids of one with it (Qwen's current
    files), also for a text that ends in a literal <|endoftext|>: the template appends one more."""
    with_eos = TextEncoder(train_qwen_like_tokenizer(append_eos=True), end_token="<|endoftext|>")
    without = TextEncoder(train_qwen_like_tokenizer(append_eos=False), end_token="<|endoftext|>")
    eos = with_eos.end_id
    texts = TEXTS + ["hello world<|endoftext|>"]
    a, b = with_eos.encode(texts, 512), without.encode(texts, 512)
    assert a == b == [with_eos.tokenizer.encode(t).ids for t in texts]
    assert all(seq[-1] == eos and seq.count(eos) == 1 for seq in a[:-1])
    assert a[-1][-2:] == [eos, eos] and a[TEXTS.index("")] == [eos]


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
    assert batch.token_type_ids is None  # MiniLM's template gives every token type 0
    if side == "right":
        np.testing.assert_array_equal(batch.input_ids, [[1, 2, 3], [4, 0, 0]])
        np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1], [1, 0, 0]])
    else:
        np.testing.assert_array_equal(batch.input_ids, [[1, 2, 3], [0, 0, 4]])
        np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1], [0, 0, 1]])


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_to_a_longer_length_adds_columns_on_the_right(side, minilm_path):
    """Rounded-up lengths (the fused CPU path's) move no real token: left padding stays where it was."""
    enc = TextEncoder(load_tokenizer(minilm_path))
    batch = enc.pad([[1, 2, 3], [4]], side, length=4)
    rows = [[1, 2, 3, 0], [4, 0, 0, 0]] if side == "right" else [[1, 2, 3, 0], [0, 0, 4, 0]]
    np.testing.assert_array_equal(batch.input_ids, rows)
    np.testing.assert_array_equal(batch.attention_mask, np.array(rows) != 0)
    assert enc.pad([[1, 2, 3], [4]], side, length=2).input_ids.shape == (2, 3)  # never cuts a text


@pytest.mark.parametrize("side", ["left", "right"])
def test_token_types_follow_the_tokenizers_single_text_template(side, minilm_path):
    """A converted BERT marks [SEP] with a type of its own; pad() lays the template's types over
    each padded row, as the tokenizer itself does (padding gets type 0)."""
    from tokenizers.processors import TemplateProcessing

    tok = load_tokenizer(minilm_path)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:2", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    enc = TextEncoder(tok)
    seqs, cut = enc.tokenize(["hello world", "", "x " * 400], 8)
    assert [len(s) for s in seqs] == [4, 2, 8] and list(cut) == [2] and seqs[2][-1] == sep  # truncation keeps [SEP]
    batch = enc.pad(seqs, side)
    expected = [tok.encode(t).type_ids for t in ("hello world", "")] + [[0] * 7 + [2]]
    assert expected[:2] == [[0, 0, 0, 2], [0, 2]]
    for row, types, mask in zip(batch.token_type_ids, expected, batch.attention_mask):
        assert row[mask == 1].tolist() == types and not row[mask == 0].any()


def test_a_text_being_tokenized_blocks_no_other_thread(minilm_path):
    """A long document in one request must not hold up another request's query: the tokenizer is shared
    without a lock (it used to be locked for each call, truncation being tokenizer state)."""
    import threading

    class Gate:  # the tokenizer, held inside encode_batch while it tokenizes "BIG"
        def __init__(self, tokenizer):
            self.tokenizer, self.entered, self.release = tokenizer, threading.Event(), threading.Event()

        def encode_batch(self, texts, **kwargs):
            if texts == ["BIG"]:
                self.entered.set()
                assert self.release.wait(30)
            return self.tokenizer.encode_batch(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(self.tokenizer, name)

    encoder = TextEncoder(load_tokenizer(minilm_path))
    gate = encoder.tokenizer = Gate(encoder.tokenizer)
    big = threading.Thread(target=encoder.tokenize, args=(["BIG"], 256))
    big.start()
    try:
        assert gate.entered.wait(30)
        got = []
        query = threading.Thread(target=lambda: got.append(encoder.tokenize(["what is mlx?"], 256)))
        query.start()
        query.join(timeout=10)
        assert not query.is_alive() and got and len(got[0][0][0]) > 2, "the query waited for the long text"
    finally:
        gate.release.set()
        big.join()


def test_the_cut_count_includes_the_end_token_that_is_appended():
    """An older Qwen3 tokenizer.json appends no <|endoftext|>, so we do: a text of n tokens is n + 1 long,
    as with a current tokenizer.json, also one that already ends in <|endoftext|>."""
    for append_eos in (False, True):
        tok = train_qwen_like_tokenizer(append_eos=append_eos)
        encoder = TextEncoder(tok, end_token="<|endoftext|>")
        for text in ("hello world <|endoftext|>", "hello world"):
            n = len(tok.encode(text, add_special_tokens=False).ids)
            ids, cut = encoder.tokenize([text], 3)
            assert cut == {0: n + 1} and ids[0][-1] == tok.token_to_id("<|endoftext|>") and len(ids[0]) == 3


def test_left_truncation_of_a_long_text_keeps_the_ids_whole_text_tokenization_gives():
    """A byte-level BPE merges a whitespace run from its start, so a suffix cut inside the run changed the
    ids at the run's end, which left truncation keeps (2,000 spaces: one id off; 2,001 were right)."""
    transformers = pytest.importorskip("transformers", reason=NEEDS_TRANSFORMERS)
    encoder = TextEncoder(train_qwen_like_tokenizer(append_eos=True), end_token="<|endoftext|>", truncation_side="left")
    reference = transformers.PreTrainedTokenizerFast(tokenizer_object=train_qwen_like_tokenizer(append_eos=True),
                                                     truncation_side="left")
    for n in (2000, 2001, 2002, 2003):
        text = "hello " * 100 + " " * n + "a"
        assert len(text) > 64 * 8  # tokenized from a suffix
        ids, cut = encoder.tokenize([text], 8)
        assert ids[0] == reference(text, truncation=True, max_length=8)["input_ids"], n
        assert cut[0] <= len(reference(text)["input_ids"])
