"""What the package's errors and warnings share: the fix for a damaged model folder, and where a warning points."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REFETCH = "re-download or re-convert the model"

_PACKAGE_DIR = str(Path(__file__).parent) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by our caller at the first frame outside mlx_embed."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
