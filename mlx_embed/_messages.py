"""What the package's errors and warnings share: the fix for a damaged model folder, and where a warning points."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REFETCH = "re-download or re-convert the model"


def damaged_file_fix(path: str | os.PathLike) -> str:
    """The fix for a model file that cannot be read: a Git LFS pointer (a `git clone` without git-lfs)
    needs `git lfs pull`; anything else, a fresh copy."""
    try:
        with open(path, "rb") as f:
            pointer = f.read(64).startswith(b"version https://git-lfs")
    except OSError:
        pointer = False
    if pointer:
        return "it is a Git LFS pointer, not the file (a git clone without git-lfs): run `git lfs pull` in the clone, or download with `hf download`"
    return f"it may be truncated or corrupt: {REFETCH}"

_PACKAGE_DIR = str(Path(__file__).parent) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by our caller at the first frame outside mlx_embed."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
