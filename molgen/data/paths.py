"""Where molgen finds data and keeps caches.

Shared data files (splits, benchmark sets) are read in place from ``$MOLGEN_DATA``, by default
``shared/data`` beside the checkout; parsed datasets are cached under ``$MOLGEN_CACHE``.
Nothing is copied into the repository.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    """Directory holding shared data files (the split): ``$MOLGEN_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("MOLGEN_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def default_cache_dir() -> Path:
    """Where parsed datasets are cached: ``$MOLGEN_CACHE`` or ``~/.cache/molgen``."""
    env = os.environ.get("MOLGEN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "molgen"
