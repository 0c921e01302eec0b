"""What the package's errors and warnings share: the fix for a damaged model folder, and where a warning points."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# a plain `hf download` keeps a cached file as it is, damaged or not
REFETCH = "re-download or re-convert the model (a model in the Hugging Face cache: `hf download ID --force-download`)"
CACHE_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots")


def cached_repo(path: str | os.PathLike) -> str | None:
    """The Hub id whose HF cache snapshot holds ``path`` (a folder, or a file: a link into blobs/), else None."""
    cached = CACHE_SNAPSHOT.search(os.path.abspath(path)) or CACHE_SNAPSHOT.search(str(Path(path).resolve()))
    return f"{cached.group(1)}/{cached.group(2)}" if cached else None


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
    repo = cached_repo(path)  # a plain `hf download` keeps the damaged file
    fix = f"download it again with `hf download {repo} --force-download`" if repo else REFETCH
    return f"it may be truncated or corrupt: {fix}"

_PACKAGE_DIR = str(Path(__file__).parent) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by our caller at the first frame outside mlx_embed."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
