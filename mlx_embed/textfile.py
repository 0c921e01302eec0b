"""Files the command line reads and writes: text files with one text per line, as ``mlx-embed embed --input``
and ``profile --texts`` read them; outputs checked before the work that fills them; text as a terminal shows it."""

from __future__ import annotations

import os
import sys
import tempfile
import unicodedata
from pathlib import Path


def read_lines(name: str, option: str) -> list[str]:
    """One text per line, ended by ``\\n`` or ``\\r\\n`` (a lone ``\\r``, a form feed or U+2028 stays inside its
    text, so row i is line i as ``wc -l`` and editors count); ``-`` reads stdin. A UTF-8 byte-order mark is
    not part of the first text. ``option`` names the flag in errors."""
    if name == "-":
        if sys.stdin is None:
            raise ValueError(f"{option} - reads stdin, which is closed: pipe the texts in, or give a file name")
        raw = getattr(sys.stdin, "buffer", None)
        data = raw.read() if raw is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    else:
        path = Path(name)
        if path.is_dir() or not path.exists():  # anything else is read: a pipe, /dev/stdin, process substitution
            why = "is a directory" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"{option} {path} {why}: give a UTF-8 text file with one text per line")
        data = path.read_bytes()
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark is not part of the first text
    data = data[bom:]
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")  # the byte-order mark Windows' "Unicode" starts with
    nul = data.find(b"\0")
    if not utf16 and nul >= 0:  # UTF-16 without a byte-order mark: a NUL beside every ASCII letter
        raise ValueError(f"{option} {name} is not UTF-8 text: line {_line_of(data, nul)} holds a NUL character, "
                         "as UTF-16 without a byte-order mark does: convert it, e.g. `iconv -f utf-16le -t utf-8`")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        source = "utf-16" if utf16 else "latin1"
        where = f"byte 0x{data[err.start]:02x} at offset {bom + err.start}, line {_line_of(data, err.start)}: {err.reason}"
        raise ValueError(f"{option} {name} is not UTF-8 text ({where}): convert it, e.g. `iconv -f {source} -t utf-8`") from None
    *ended, last = text.split("\n")  # last: what follows the last newline ("" after a final newline)
    return [line.removesuffix("\r") for line in ended] + ([last] if last else [])


def _line_of(data: bytes, offset: int) -> int:
    """The line (from 1) that holds byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def try_writing_in(folder: Path) -> None:
    """Create and remove a file in ``folder``; ``OSError`` where it takes none. Tried rather than asked:
    ``os.access`` says yes to root, also where the file system says no."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".mlx-embed-probe-")
    os.close(fd)
    os.unlink(probe)


def check_writable(path: Path, what: str) -> None:
    """Refuse, before any work, a file that could not be written: a missing or read-only folder, a read-only
    file, a FIFO or device."""
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: the folder {folder} does not exist")
    if path.exists() and not path.is_file():  # a FIFO or a device: the probe would consume its reader
        raise ValueError(f"{what} is not a regular file: give a file name (JSON on stdout: leave the option out)")
    try:
        if path.exists():
            open(path, "ab").close()  # appends nothing: the file is left as it is
        else:
            try_writing_in(folder)
    except OSError as err:
        where = path if path.exists() else f"the folder {folder}"
        raise PermissionError(f"{what}: cannot write to {where} ({(err.strerror or str(err)).lower()}): pick another place") from None


def terminal_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK and other wide characters take two, combining marks and
    format characters (a zero-width joiner) none."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def printable(text: str) -> str:
    """``text`` for one line of a table: control characters (a newline, a tab, an escape sequence's ESC)
    shown as Python escapes, so that they neither break the line nor reach the terminal."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)
