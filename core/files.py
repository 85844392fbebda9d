"""Temporary files that become real ones: created private by mkstemp, given the usual mode on rename."""

from __future__ import annotations

import os
from pathlib import Path


def usual_mode(path: str | os.PathLike) -> None:
    """Give a temporary file the mode a normally created file would have (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(Path(path), 0o666 & ~umask)
