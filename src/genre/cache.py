"""Where genre keeps what it can rebuild: protocols, cached models, VAEs, diffusion models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory (`GENRE_CACHE_DIR` overrides it)."""
    env = os.environ.get("GENRE_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("genre-recourse"))
