"""septool's per-user folder (``SEPTOOL_HOME``, default ``~/.septool``) and its local plugins."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

HOME_ENV = "SEPTOOL_HOME"


def septool_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".septool")


def local_site() -> Path:
    """Where local plugins live: modules and ``.dist-info`` entry points, like a site-packages."""
    return septool_home() / "plugins"


def activate_local_site() -> None:
    """Put the local plugin folder on ``sys.path`` so that its entry points are found."""
    site = str(local_site())
    if Path(site).is_dir() and site not in sys.path:
        sys.path.append(site)
    importlib.invalidate_caches()
