"""Tokenization with the ``tokenizers`` library: special tokens, truncation policy, end token, padding."""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class TruncationWarning(UserWarning):
    """Some inputs were longer than ``max_length`` tokens and were cut."""


@dataclass
class Batch:
    input_ids: np.ndarray  # (B, L) int32
    attention_mask: np.ndarray  # (B, L) int32


def load_tokenizer(folder: Path) -> Tokenizer:
    path = folder / "tokenizer.json"
    if path.exists():
        tok = Tokenizer.from_file(str(path))
    elif (folder / "vocab.txt").exists():
        from tokenizers.implementations import BertWordPieceTokenizer

        config = _read_json(folder / "tokenizer_config.json")
        tok = BertWordPieceTokenizer(
            str(folder / "vocab.txt"), lowercase=config.get("do_lower_case", True)
        )._tokenizer
    else:
        raise FileNotFoundError(
            f"No tokenizer.json (or vocab.txt) in {folder}. Copy the tokenizer files of the source model there."
        )
    tok.no_padding()
    tok.no_truncation()
    return tok


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


class TextEncoder:
    """Turns texts into token id lists that end as the model expects, and pads batches of them."""

    def __init__(self, tokenizer: Tokenizer, *, end_token: str | None = None, pad_id: int | None = None):
        self.tokenizer = tokenizer
        self.end_id = None
        if end_token is not None:
            self.end_id = tokenizer.token_to_id(end_token)
            if self.end_id is None:
                raise ValueError(f"The tokenizer has no {end_token!r} token, which this model pools on")
        if pad_id is None:
            pad_id = self.end_id if self.end_id is not None else 0
        self.pad_id = pad_id
        self._lock = threading.Lock()  # truncation is tokenizer state; encode() may run in threads

    def _encode(self, texts: list[str], max_length: int | None) -> list[list[int]]:
        with self._lock:
            if max_length is None:
                self.tokenizer.no_truncation()
            else:
                self.tokenizer.enable_truncation(max_length)
            try:
                encodings = self.tokenizer.encode_batch(texts)
            finally:
                self.tokenizer.no_truncation()
        ids = [e.ids for e in encodings]
        if self.end_id is not None:
            # Older Qwen3 tokenizer.json files do not append <|endoftext|>; current ones do.
            for i, seq in enumerate(ids):
                if not seq or seq[-1] != self.end_id:
                    keep = len(seq) if max_length is None else min(len(seq), max_length - 1)
                    ids[i] = seq[:keep] + [self.end_id]
        return ids

    def encode(self, texts: list[str], max_length: int, truncate: bool = True) -> list[list[int]]:
        """Token ids per text, at most ``max_length`` long.

        Over-long texts are cut (one ``TruncationWarning`` per call, with the count) or, with
        ``truncate=False``, raise ``ValueError``.
        """
        ids, cut = self.tokenize(texts, max_length)
        check_truncation(cut, len(texts), max_length, truncate, stacklevel=4)
        return ids

    def tokenize(self, texts: list[str], max_length: int) -> tuple[list[list[int]], dict[int, int]]:
        """Token ids per text cut to ``max_length``, and ``{index: full length}`` of the texts cut."""
        ids = self._encode(texts, None)
        cut = {i: len(seq) for i, seq in enumerate(ids) if len(seq) > max_length}
        if cut:
            for i, seq in zip(cut, self._encode([texts[i] for i in cut], max_length)):
                ids[i] = seq
        return ids, cut

    def pad(self, seqs: list[list[int]], side: str = "right") -> Batch:
        B, L = len(seqs), max(len(s) for s in seqs)
        input_ids = np.full((B, L), self.pad_id, dtype=np.int32)
        mask = np.zeros((B, L), dtype=np.int32)
        for row, seq in enumerate(seqs):
            span = slice(0, len(seq)) if side == "right" else slice(L - len(seq), L)
            input_ids[row, span] = seq
            mask[row, span] = 1
        return Batch(input_ids, mask)


def check_truncation(
    cut: dict[int, int], n_texts: int, max_length: int, truncate: bool, stacklevel: int = 2, *, of: str | None = None
) -> None:
    """Apply the truncation policy to ``cut`` (``{index: full length}`` of texts over ``max_length``):
    one ``TruncationWarning`` with the count, or ``ValueError`` when ``truncate`` is False. ``of``
    names what was checked when it is not all ``n_texts`` texts (e.g. "the first 8192 of 100000 texts")."""
    if not cut:
        return
    longest = max(cut.values())
    if not truncate:
        raise ValueError(
            f"{len(cut)} of {of or f'{n_texts} texts'} are longer than max_length={max_length} tokens "
            f"(first at index {min(cut)}, longest {longest} tokens). "
            "Pass truncate=True to cut them, a larger max_length, or split the texts."
        )
    warnings.warn(
        f"{len(cut)} of {n_texts} texts were longer than max_length={max_length} tokens "
        f"and were truncated (longest {longest} tokens). Pass truncate=False to raise instead.",
        TruncationWarning,
        stacklevel=stacklevel,
    )
