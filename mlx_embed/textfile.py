"""Text files with one text per line, as ``mlx-embed embed --input`` and ``profile --texts`` read them."""

from __future__ import annotations

import io
import sys
from pathlib import Path


def read_lines(name: str, option: str) -> list[str]:
    """One text per line, ended by ``\\n`` or ``\\r\\n`` (a lone ``\\r``, a form feed or U+2028 stays inside its
    text, so row i is line i as ``wc -l`` and editors count); ``-`` reads stdin. A UTF-8 byte-order mark is
    not part of the first text. ``option`` names the flag in errors."""
    if name != "-":
        path = Path(name)
        if not path.is_file():
            why = "is a directory" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"{option} {path} {why}: give a UTF-8 text file with one text per line")
    try:
        if name == "-":
            raw = getattr(sys.stdin, "buffer", None)
            stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="\n") if raw is not None else sys.stdin
            return [_without_line_end(line) for line in stream]
        with path.open(encoding="utf-8-sig", newline="\n") as f:
            return [_without_line_end(line) for line in f]
    except UnicodeDecodeError as err:
        raise ValueError(f"{option} {name} is not UTF-8 text ({err}): convert it, e.g. `iconv -f latin1 -t utf-8`") from None


def _without_line_end(line: str) -> str:
    return line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")
