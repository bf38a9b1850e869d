"""Where evalkit keeps things on disk: the repository's conf/ and tasks/, and a cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
CONF_DIR = ROOT / "conf"
TASKS_DIR = ROOT / "tasks"


def cache_dir() -> Path:
    """Built ladder variants, assembled embedded models, reference caches, digests.

    EVALKIT_CACHE overrides the default ~/.cache/evalkit (tests point it at a temp dir).
    """
    path = Path(os.environ.get("EVALKIT_CACHE", Path.home() / ".cache" / "evalkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path
