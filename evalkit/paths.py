"""Where evalkit keeps things on disk: its conf/ and tasks/, and a cache.

In a source checkout (a clone, an editable install) conf/ and tasks/ are the repository's own
top-level folders; an installed wheel carries copies in evalkit/_data (setup.py's build step).
User config directories (--config-dir, hydra.searchpath) and task files (task.file=) add to or
override these.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


def data_root() -> Path:
    """The source tree when evalkit runs from one, else the copies inside the installed package."""
    if (ROOT / "pyproject.toml").is_file() and (ROOT / "conf" / "config.yaml").is_file():
        return ROOT
    return PACKAGE_DIR / "_data"


DATA_ROOT = data_root()
CONF_DIR = DATA_ROOT / "conf"
TASKS_DIR = DATA_ROOT / "tasks"


def cache_dir() -> Path:
    """Built ladder variants, assembled embedded models, reference caches, digests.

    EVALKIT_CACHE overrides the default ~/.cache/evalkit (tests point it at a temp dir).
    """
    path = Path(os.environ.get("EVALKIT_CACHE", Path.home() / ".cache" / "evalkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path
