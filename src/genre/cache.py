"""Where genre keeps what it can rebuild: protocols, cached models, VAEs, diffusion models.

Every cache entry carries a manifest (genre.integrity); an entry that is missing files,
fails its digests or does not match what the caller expects is rebuilt, with one line on
stderr (`report_rebuild`), never used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from genre.errors import GenreError


def cache_dir() -> Path:
    """The user cache directory (`GENRE_CACHE_DIR` overrides it), created if need be.

    Raises GenreError naming it when it is not a directory or cannot be created or written.
    """
    env = os.environ.get("GENRE_CACHE_DIR")
    if env:
        where, name = Path(env).expanduser(), f"GENRE_CACHE_DIR={env}"
    else:
        from platformdirs import user_cache_dir

        where = Path(user_cache_dir("genre-recourse"))
        name = f"the cache directory {where} (set GENRE_CACHE_DIR to use another)"
    if where.exists() and not where.is_dir():
        raise GenreError(f"{name}: not a directory")
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenreError(f"{name}: cannot be created ({exc.strerror or exc})") from None
    if not os.access(where, os.W_OK | os.X_OK):
        raise GenreError(f"{name}: not writable")
    return where


def report_rebuild(where: Path, reason: object) -> None:
    """Say on one stderr line that a cache entry is unusable and is being rebuilt."""
    why = " ".join(str(reason).split())
    print(f"genre: cache entry {where} is unusable, rebuilding it: {why}", file=sys.stderr)
