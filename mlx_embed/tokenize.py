"""Tokenization with the ``tokenizers`` library: special tokens, truncation policy, end token, padding."""

from __future__ import annotations

import functools
import json
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from ._messages import REFETCH, caller_stacklevel, damaged_file_fix

# Texts longer than this many characters per token of max_length (16,384 for max_length 256) are
# tokenized from a prefix when the prefix already holds more than twice max_length tokens; warnings then
# give their length as "at least". Tokenizing whole, MiniLM took 1.5 s and +210 MiB of RSS for a text of
# 1 M characters, 36 s and 1.8 GB for 10 MB; from a prefix 0.1 s. Shorter texts are tokenized whole, so
# their ids and lengths are exact; at 64 characters a token, nearly all of them fit max_length. For BERT's
# WordPiece, a prefix, or a long text with too few tokens for one (8-10 MB of hex digits, spaces, emoji or
# accented letters: 3-10 s and +0.5-1 GB whole), is first squeezed to the same ids (:class:`Squeezer`): 0.2-0.8 s.
LONG_TEXT_CHARS_PER_TOKEN = 64
ENCODE_BATCH = 64  # texts the tokenizer encodes at once (TextEncoder._encodings) ...
ENCODE_BATCH_CHARS = 131_072  # ... and characters (~55 bytes each at the peak; a longer text alone)


def bounded_starts(sizes: Iterable[int], most: int, total: int) -> list[int]:
    """Where each run of consecutive items starts when a run holds at most ``most`` items whose ``sizes`` sum to at
    most ``total`` (an item larger than that alone)."""
    starts, count, held = [], most, 0
    for i, n in enumerate(sizes):
        if count == most or (count and held + n > total):
            starts.append(i)
            count, held = 0, 0
        count += 1
        held += n
    return starts


def spans_from(starts: list[int], n: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each run that ``starts`` begins, the last ending at ``n``."""
    return list(zip(starts, [*starts[1:], n]))


_UNBUILT = object()


class AtLeast(int):
    """A token count from a prefix of a long text: the whole text has at least this many tokens."""


class TruncationWarning(UserWarning):
    """Some inputs were longer than ``max_length`` tokens and were cut: ``truncated`` of ``total`` texts."""

    def __init__(self, message: str, truncated: int = 0, total: int = 0) -> None:
        super().__init__(message)
        self.truncated, self.total = truncated, total


@dataclass
class Batch:
    input_ids: np.ndarray  # (B, L) int32
    attention_mask: np.ndarray  # (B, L) int32
    token_type_ids: np.ndarray | None = None  # (B, L) int32; None: all zero


def single_text_types(tokenizer: Tokenizer) -> tuple[list[int], int, list[int]] | None:
    """The token types the tokenizer's template gives one text: those of the special tokens before
    it, of its own tokens, and of the special tokens after it; None when they are all zero (the
    model's default). BERT models converted by :func:`mlx_embed.conversion.convert` mark their end
    token with a type of its own."""
    e = tokenizer.encode("a")
    real = [i for i, m in enumerate(e.attention_mask) if m]  # without padding, if the tokenizer pads
    types, special = [e.type_ids[i] for i in real], [e.special_tokens_mask[i] for i in real]
    if not any(types) or 0 not in special:
        return None
    first = special.index(0)
    last = len(special) - special[::-1].index(0)
    return types[:first], types[first], types[last:]


def load_tokenizer(folder: Path, lowercase: bool = False) -> Tokenizer:
    """The folder's tokenizer, without padding or truncation. ``lowercase`` (sentence-transformers'
    ``do_lower_case``) puts a ``Lowercase`` normalizer first, as sentence-transformers does: it lowers
    the text, not the special tokens matched before normalizing (``str.lower()`` would turn "[SEP]"
    into "[sep]", and a word-final "Σ" into "ς")."""
    path = folder / "tokenizer.json"
    if path.exists():
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad file
            raise ValueError(f"{path} is not a valid tokenizer file ({err}); {damaged_file_fix(path)}") from None
    elif (folder / "vocab.txt").exists():
        from tokenizers.implementations import BertWordPieceTokenizer

        config = read_json(folder / "tokenizer_config.json")
        options = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True}
        for key, default in options.items():  # strip_accents None: as lowercase, as in transformers' BertTokenizer
            options[key] = config.get(key, default)
            if not isinstance(options[key], bool) and not (key == "strip_accents" and options[key] is None):
                raise ValueError(f"{folder / 'tokenizer_config.json'}: {key} is {options[key]!r}, not true or false: {REFETCH}")
        try:
            tok = BertWordPieceTokenizer(
                str(folder / "vocab.txt"),
                lowercase=options["do_lower_case"],
                strip_accents=options["strip_accents"],
                handle_chinese_chars=options["tokenize_chinese_chars"],
            )._tokenizer
        except Exception as err:  # noqa: BLE001 - a bare Exception for a bad file, TypeError for missing [SEP]/[CLS]
            raise ValueError(f"{folder / 'vocab.txt'} is not a usable WordPiece vocabulary ({err}): {REFETCH}") from None
    else:
        raise FileNotFoundError(
            f"No tokenizer.json (or vocab.txt) in {folder}. Copy the tokenizer files of the source model there."
        )
    tok.no_padding()
    tok.no_truncation()
    if lowercase and not _has_lowercase(tok.normalizer):
        steps = list(tok.normalizer) if isinstance(tok.normalizer, normalizers.Sequence) else [tok.normalizer]
        tok.normalizer = normalizers.Sequence([normalizers.Lowercase()] + [n for n in steps if n is not None])
    return tok


def _has_lowercase(normalizer) -> bool:
    if isinstance(normalizer, normalizers.Sequence):
        return any(isinstance(n, normalizers.Lowercase) for n in normalizer)
    return isinstance(normalizer, normalizers.Lowercase)


def read_json(path: Path, kind: type[dict] | type[list] = dict) -> dict | list:
    """A model folder's JSON object (``kind=list``: array), empty when the file is absent; a clear error
    naming the file when it is not JSON or holds something else."""
    if not path.exists():
        return kind()
    if path.is_dir():
        raise ValueError(f"{path} is a folder, where a JSON file belongs: move it away, or {REFETCH}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {REFETCH}") from None
    if not isinstance(value, kind):
        expected = "an object" if kind is dict else "an array"
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not {expected}: {REFETCH}")
    return value


class TextEncoder:
    """Turns texts into token id lists that end as the model expects, and pads batches of them."""

    def __init__(self, tokenizer: Tokenizer, *, end_token: str | None = None, truncation_side: str = "right"):
        self.tokenizer = tokenizer
        self.truncation_side = truncation_side  # "left": an over-long text keeps its end
        self.end_id = None
        if end_token is not None:
            self.end_id = tokenizer.token_to_id(end_token)
            if self.end_id is None:
                raise ValueError(f"The tokenizer has no {end_token!r} token, which this model pools on")
        self.pad_id = self.end_id if self.end_id is not None else 0  # masked out: any id will do
        self.types = single_text_types(tokenizer)
        self.n_special = tokenizer.num_special_tokens_to_add(False)
        probe = tokenizer.encode("a")
        after = probe.special_tokens_mask[::-1].index(0) if 0 in probe.special_tokens_mask else 0
        self._template_end = probe.ids[-1] if after else None  # the last special token the template adds after a text
        self._squeezer: Squeezer | None | object = _UNBUILT
        self._squeezer_lock = threading.Lock()

    def _encode(self, texts: list[str], max_length: int) -> tuple[list[list[int]], list[int]]:
        """Per text, its token ids cut to ``max_length`` and its uncut length. As transformers cuts: the
        text's own tokens, then the special tokens added. The tokenizer is never reconfigured (no
        ``enable_truncation``), so threads share it without a lock and a long text blocks no one."""
        # Older Qwen3 tokenizer.json files do not append <|endoftext|>, and Qwen's recipe for them appends it
        # to every text, as current files do, also to one that ends in a literal "<|endoftext|>".
        append = self.end_id is not None and self._template_end != self.end_id
        ids, lengths = [], []
        for e in self._encodings(texts):
            length = len(e) + self.n_special + append
            if length > max_length:
                e.truncate(max(max_length - self.n_special - append, 0), direction=self.truncation_side)
            seq = self.tokenizer.post_process(e).ids
            if append:
                seq = seq[: max_length - 1] + [self.end_id]
            ids.append(seq)
            lengths.append(length)
        return ids, lengths

    def _encodings(self, texts: list[str]) -> Iterator:
        """The tokenizer's encodings of ``texts``, at most ``ENCODE_BATCH`` texts and (unless one text is longer)
        ``ENCODE_BATCH_CHARS`` characters at a time: an encoding holds every token's string and offsets, so 512
        texts of up to 420 words held 18 MiB at once for MiniLM, 5.8 in batches of 64 (12-17 % slower to tokenize,
        well under 1 % of encoding)."""
        starts = bounded_starts(map(len, texts), ENCODE_BATCH, ENCODE_BATCH_CHARS)
        for start, end in spans_from(starts, len(texts)):
            yield from self.tokenizer.encode_batch(texts[start:end], add_special_tokens=False)

    def encode(self, texts: list[str], max_length: int, truncate: bool = True) -> list[list[int]]:
        """Token ids per text, at most ``max_length`` long.

        Over-long texts are cut (one ``TruncationWarning`` per call, with the count) or, with
        ``truncate=False``, raise ``ValueError``.
        """
        ids, cut = self.tokenize(texts, max_length)
        self.check_truncation(cut, len(texts), max_length, truncate)
        return ids

    def check_truncation(self, cut: dict[int, int], n_texts: int, max_length: int, truncate: bool) -> None:
        """Apply the truncation policy to ``cut`` (``{index: full length}`` of texts over ``max_length``):
        one ``TruncationWarning`` with the count, pointing at the caller's line outside mlx_embed, or
        ``ValueError`` when ``truncate`` is False. With ``truncation_side`` "left" the warning says the texts'
        starts were cut."""
        if not cut:
            return
        approx = "at least " if any(isinstance(n, AtLeast) for n in cut.values()) else ""
        longest = f"{approx}{max(cut.values())}"
        if not truncate:
            raise ValueError(
                f"{len(cut)} of {n_texts} texts are longer than max_length={max_length} tokens "
                f"(first at index {min(cut)}, longest {longest} tokens). "
                "Pass truncate=True to cut them, a larger max_length, or split the texts."
            )
        warnings.warn(
            TruncationWarning(
                f"{len(cut)} of {n_texts} texts were longer than max_length={max_length} tokens "
                f"and were truncated (longest {longest} tokens{_START_CUT if self.truncation_side == 'left' else ''}). Pass truncate=False to raise instead.",
                len(cut), n_texts,
            ),
            stacklevel=caller_stacklevel(),
        )

    def tokenize(self, texts: list[str], max_length: int) -> tuple[list[list[int]], dict[int, int]]:
        """Token ids per text cut to ``max_length``, and ``{index: full length}`` of the texts cut
        (an :class:`AtLeast` count for a text tokenized from a prefix, or with ``truncation_side`` "left" a
        suffix: one over ``LONG_TEXT_CHARS_PER_TOKEN * max_length`` characters with a prefix that ends (a suffix
        that starts) at a word boundary and holds more than ``2 * max_length`` tokens)."""
        ids: list[list[int]] = [[] for _ in texts]
        cut: dict[int, int] = {}
        whole, squeezed = [], {}
        for i, text in enumerate(texts):
            head = None
            if len(text) > LONG_TEXT_CHARS_PER_TOKEN * max_length:
                head = self._long_head(text, max_length)
                if head is None and self._squeeze is not None:  # few tokens in many characters
                    squeezed[i] = self._squeeze(text)
            if head is None:
                whole.append(i)
            else:
                ids[i], cut[i] = head
        for i, seq, length in zip(whole, *self._encode([squeezed.get(i, texts[i]) for i in whole], max_length)):
            ids[i] = seq
            if length > max_length:
                cut[i] = length
        return ids, cut

    def _long_head(self, text: str, max_length: int) -> tuple[list[int], AtLeast] | None:
        """The ids of ``text`` cut to ``max_length`` from a prefix (``truncation_side`` "left": a suffix) that
        holds more than ``2 * max_length`` tokens, and its count; None when there is no such part. The part ends
        (starts) at a word boundary in its second (first) half: tokenizers split words locally, so a cut that
        far past the kept tokens cannot change them. A cut inside a word could for WordPiece, which makes a word
        over 100 characters one [UNK] and a piece of it many tokens; a long run without a boundary is cut
        anywhere for the others, at a prefix's end. A suffix for a byte-level BPE starts at a whitespace run
        after a letter or digit (:func:`_run_start`), or the text is tokenized whole."""
        size = 16 * max_length  # characters: at ~4 a token (English prose) ~4 * max_length tokens, twice what is needed
        wordpiece = isinstance(self.tokenizer.model, models.WordPiece)
        tail = self.truncation_side == "left"
        while size < len(text):
            lo, hi = (len(text) - size, len(text) - size // 2) if tail else (size // 2, size)
            if tail and not wordpiece:  # a BPE merges a run from its start: a suffix must hold every run it ends with whole
                end = _run_start(text, lo, hi)
            else:
                end = _word_boundary(text, lo, hi, self._splits_cjk)
            if end is None and not wordpiece and not tail:  # BPE and Unigram split a long run locally
                end = hi
            if end is not None:
                head = text[end:] if tail else text[:end]
                if size > 16 * max_length and self._squeeze is not None:  # the first prefix held too few tokens
                    head = self._squeeze(head)
                (seq,), (length,) = self._encode([head], max_length)
                if length > 2 * max_length:
                    return seq, AtLeast(length)
            size *= 4  # too few tokens (long words, whitespace runs): a longer prefix
        return None

    @property
    def _squeeze(self) -> Squeezer | None:
        """For a BERT tokenizer, what shortens a long text to the same ids (built once, on first use: 0.3 s)."""
        if self._squeezer is _UNBUILT:
            with self._squeezer_lock:
                if self._squeezer is _UNBUILT:
                    self._squeezer = Squeezer.for_tokenizer(self.tokenizer)
        return self._squeezer

    @functools.cached_property
    def _splits_cjk(self) -> bool:
        """Whether the normalizer makes each CJK ideograph a word (BERT's ``handle_chinese_chars``)."""
        return self.tokenizer.normalizer is not None and " " in self.tokenizer.normalizer.normalize_str("a\u4e00")

    def pad(self, seqs: list[list[int]], side: str = "right", length: int | None = None) -> Batch:
        """``seqs`` padded on ``side`` to the longest, then on the right up to ``length`` columns if given:
        those extra columns move no real token, so positions stay as ``side`` sets them."""
        B, longest = len(seqs), max(len(s) for s in seqs)
        L = max(longest, length or 0)
        input_ids = np.full((B, L), self.pad_id, dtype=np.int32)
        mask = np.zeros((B, L), dtype=np.int32)
        types = None if self.types is None else np.zeros((B, L), dtype=np.int32)
        for row, seq in enumerate(seqs):
            span = slice(0, len(seq)) if side == "right" else slice(longest - len(seq), longest)
            input_ids[row, span] = seq
            mask[row, span] = 1
            if types is not None:
                types[row, span] = self._types(len(seq))
        return Batch(input_ids, mask, types)

    def _types(self, n: int) -> list[int]:
        head, body, tail = self.types
        if n < len(head) + len(tail):
            return [0] * n
        return head + [body] * (n - len(head) - len(tail)) + tail


# The CJK ideographs BERT's normalizer splits one by one (handle_chinese_chars): each is a word of its own.
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _char_class(chars: Iterable[int], extra: Iterable[tuple[int, int]] = ()) -> str:
    """A regex character class's inside, ranges merged, for ``chars`` and the ``extra`` ranges."""
    ranges: list[list[int]] = []
    for c in chars:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(re.escape(chr(lo)) + ("-" + re.escape(chr(hi)) if hi > lo else "") for lo, hi in [*ranges, *extra])


def _ends_a_word(c: int) -> bool:
    """See :func:`_word_break`."""
    category = unicodedata.category(chr(c))
    if category == "Cc":
        return chr(c) in "\t\n\r"
    return (chr(c).isspace() or 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126
            or category.startswith("P") and unicodedata.ucd_3_2_0.category(chr(c)).startswith("P"))


@functools.lru_cache(maxsize=2)
def _word_break(cjk: bool) -> re.Pattern:
    """A character at which BERT's pre-tokenizer ends a word: whitespace, punctuation (ASCII, or a Unicode
    ``P*`` category in the BMP that Unicode 3.2 had too: ``tokenizers``' tables predate the newer ones, which
    it keeps inside words) or, with ``cjk``, a CJK ideograph. Symbols (``°``, emoji), format characters (a
    soft hyphen) and control characters but tab and newlines (a form feed, which Python counts as whitespace)
    sit inside a word: the normalizer deletes the last two."""
    return re.compile(f"[{_char_class(filter(_ends_a_word, range(0x10000)), _CJK if cjk else ())}]")


class Squeezer:
    """Shortens a text without changing its WordPiece ids under a BERT tokenizer: each run of whitespace
    becomes one space, each word of over ``max_word`` letters (one [UNK], whatever they are) ``max_word + 1``
    x's, each run of silent characters (below) one, or none between whitespace and at the ends. What counts as
    whitespace and as a letter is asked of the tokenizer's own normalizer and pre-tokenizer, one character at a
    time between two letters: whitespace splits them and leaves nothing, a letter keeps
    them one word and adds at least one character, a silent character (an accent that ``strip_accents``
    drops, a format character) keeps them one word and adds none, so it may sit in a long word but does not
    count. Anything else (punctuation, characters the normalizer decomposes into punctuation, CJK it splits)
    ends a run. The BMP is asked up front; a character past it when a text first holds it, up to
    ``MAX_ASTRAL`` of them (one not asked ends a run: the ids stay exact, the text is squeezed less)."""

    MAX_ASTRAL = 4096

    def __init__(self, tokenizer: Tokenizer, max_word: int):
        self._normalize = tokenizer.normalizer.normalize_str if tokenizer.normalizer is not None else str
        self._pre_tokenize = tokenizer.pre_tokenizer.pre_tokenize_str
        self.max_word = max_word
        self._lock = threading.Lock()
        self._bmp = self._classes(self._kinds(c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF))
        self._astral: dict[int, str] = {}  # code point past the BMP -> its kind, as asked
        self._compile()

    def _kinds(self, chars: Iterable[int]) -> dict[int, str]:
        """``"space"``, ``"letter"``, ``"silent"`` or ``"other"`` per code point, asked of the tokenizer."""
        kinds = {}
        for c in chars:
            words = [w for w, _ in self._pre_tokenize(self._normalize(f"a{chr(c)}b"))]
            if words == ["a", "b"]:
                kinds[c] = "space"
            elif words == ["ab"]:
                kinds[c] = "silent"
            elif len(words) == 1 and len(words[0]) >= 3:
                kinds[c] = "letter"
            else:
                kinds[c] = "other"
        return kinds

    @staticmethod
    def _classes(kinds: dict[int, str]) -> dict[str, str]:
        return {kind: _char_class(sorted(c for c, k in kinds.items() if k == kind)) for kind in ("space", "letter", "silent")}

    def _compile(self) -> None:
        astral = self._classes(self._astral)
        chars = {kind: self._bmp[kind] + astral[kind] for kind in self._bmp}
        silent = f"[{chars['silent']}]*" if chars["silent"] else ""
        # (whitespace runs, a run's first max_word + 1 letters, runs of letters and silent characters long enough
        # to be a long word, one character of such a run): replaced together when a new character is asked
        self._patterns = (
            re.compile(f"[{chars['space']}]{{2,}}"),
            re.compile(f"(?:{silent}[{chars['letter']}]){{{self.max_word + 1}}}"),  # disjoint classes: no backtracking
            re.compile(f"[{chars['letter']}{chars['silent']}]{{{self.max_word + 1},}}"),
            re.compile(f"[{chars['letter']}{chars['silent']}]"),
        )
        # (silent runs between whitespace or at an end, silent runs): the first go, the others become one character
        self._silent = (
            re.compile(f"(?:^|(?<=[{chars['space']}]))[{chars['silent']}]+(?=[{chars['space']}]|$)"),
            re.compile(f"[{chars['silent']}]{{2,}}"),
        ) if chars["silent"] else None

    def _ask(self, text: str, limit: int | None) -> None:
        """Classify the characters of ``text`` past the BMP not asked yet (at most ``limit`` more in all)."""
        new = [ord(c) for c in set(text) if ord(c) > 0xFFFF and ord(c) not in self._astral]
        if new and (limit is None or len(self._astral) < limit):
            with self._lock:
                todo = [c for c in new if c not in self._astral]
                if limit is not None:
                    todo = todo[: max(limit - len(self._astral), 0)]
                if todo:
                    self._astral.update(self._kinds(todo))
                    self._compile()

    def __call__(self, text: str) -> str:
        if not text.isascii():
            self._ask(text, self.MAX_ASTRAL)
        spaces, long_word, run, _ = self._patterns
        if self._silent is not None:
            alone, silent_run = self._silent
            text = silent_run.sub(_one_silent, alone.sub("", text))
        word = "x" * (self.max_word + 1)
        return run.sub(lambda m: word if long_word.match(m.group(0)) else m.group(0), spaces.sub(" ", text))

    @classmethod
    def for_tokenizer(cls, tokenizer: Tokenizer) -> Squeezer | None:
        """A squeezer where one is exact: WordPiece after BERT's pre-tokenizer and a normalizer that works one
        character at a time (BERT's, lowercasing), and no added token that a squeezed run could hold or
        form (each starts and ends with a character that is neither a letter nor silent, holds no whitespace
        nor a run of over ``max_word`` letters); else None. The added tokens' characters past the BMP are
        asked now, whatever ``MAX_ASTRAL`` leaves."""
        normalizer = tokenizer.normalizer
        parts = list(normalizer) if isinstance(normalizer, normalizers.Sequence) else [normalizer]
        if not (isinstance(tokenizer.model, models.WordPiece)
                and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
                and all(p is None or isinstance(p, normalizers.BertNormalizer | normalizers.Lowercase) for p in parts)):
            return None
        squeezer = cls(tokenizer, tokenizer.model.max_input_chars_per_word)
        added = [token.content for token in tokenizer.get_added_tokens_decoder().values()]
        squeezer._ask("".join(added), None)
        spaces, _, run, in_run = squeezer._patterns
        if in_run.fullmatch("x") is None or spaces.fullmatch("  ") is None:
            return None
        for text in added:
            if (not text or any(c.isspace() for c in text) or in_run.match(text[0]) or in_run.match(text[-1])
                    or run.search(text)):
                return None
        return squeezer


def _one_silent(m: re.Match) -> str:
    """One character for a run the normalizer deletes: one that stops canonical reordering of the marks around
    it where the run holds one (one does as well as many), else any, the run then being transparent to it."""
    run = m.group(0)
    return next((c for c in run if _blocks_reordering(c)), run[0])


@functools.lru_cache(maxsize=4096)
def _blocks_reordering(c: str) -> bool:
    """Whether ``c`` reaches NFD (``clean_text`` first deletes control, format, private-use characters and
    U+FFFD) and decomposes to hold a starter (U+0F73 has class 0 but decomposes into marks): the characters
    canonical reordering cannot move marks across. The combining grapheme joiner U+034F is one."""
    return (not unicodedata.category(c).startswith("C") and c != "\ufffd"
            and any(not unicodedata.combining(d) for d in unicodedata.normalize("NFD", c)))


_AFTER_ALNUM_SPACE = re.compile(r"(?<=[^\W_])\s")


def _run_start(text: str, lo: int, hi: int) -> int | None:
    """The last position in ``(lo, hi]`` where a run of whitespace starts right after a letter or digit: a
    byte-level BPE splits there alike in the text and in the suffix from there (a run after punctuation can
    belong to the punctuation's piece); None when there is none."""
    last = None
    for m in _AFTER_ALNUM_SPACE.finditer(text, lo + 1, hi + 1):
        last = m.start()
    return last


def _word_boundary(text: str, lo: int, hi: int, cjk: bool) -> int | None:
    """The last position in ``(lo, hi]`` at which no word runs on (see :func:`_word_break`); None when
    there is none (one long run of letters, digits and symbols)."""
    end = max(text.rfind(c, lo, hi) for c in " \n\t")
    if end > lo:
        return end
    top = min(hi, len(text) - 1)
    m = _word_break(cjk).search(text[lo : top + 1][::-1])
    if m is None:
        return None
    i = min(top - m.start() + 1, hi)  # after the break, or before it at the window's end
    return i if i > lo else None


TRUNCATION_SIDES = ("right", "left")
_START_CUT = "; their starts were cut, as the tokenizer's truncation_side 'left' asks"


def truncation_side(folder: Path) -> str:
    """Which end of an over-long text the folder's tokenizer cuts: ``truncation_side`` in its
    ``tokenizer_config.json``, which transformers (and so sentence-transformers) follows; "right" keeps the start."""
    path = folder / "tokenizer_config.json"
    side = read_json(path).get("truncation_side", "right")
    if side not in TRUNCATION_SIDES:
        raise ValueError(f"{path}: truncation_side is {side!r}, not 'right' or 'left': correct it, or {REFETCH}")
    return side


