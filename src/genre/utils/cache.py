"""Where genre keeps what it can rebuild: protocols, cached models, VAEs, diffusion models.

Every cache entry carries a manifest (genre.integrity); an entry that is missing files,
fails its digests or does not match what the caller expects is rebuilt, with one line on
stderr (`report_rebuild`), never used.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


# What genre writes under cache_dir(): one subfolder per kind of entry, named after the kind
# (and a format version: protocol-v1, vae-v1, ...). Only these are ever cleared.
CACHE_KINDS = {
    "protocol": "the lab's protocols: gold model, re-drawn labels, classifier h",
    "genre-models": "fitted GenRe models of the benchmarks",
    "vae": "VAEs of the latent baselines (REVISE, CCHVAE, CRUDS)",
    "diffusion": "the diffusion baseline's models",
}


def cache_kind(folder: Path) -> str | None:
    """The kind of a subfolder of the cache (None: not genre's)."""
    if not folder.is_dir() or folder.is_symlink():
        return None
    for kind in CACHE_KINDS:
        if folder.name == kind or folder.name.startswith(f"{kind}-"):
            return kind
    return None


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) under `folder`, links not followed."""
    size = files = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size += path.stat().st_size
            files += 1
    return size, files


@contextmanager
def cache_entry(where: Path) -> Iterator[Path]:
    """Write the cache entry `where` safely: yields a new temporary sibling directory to
    write into; when the block ends without an exception, what is at `where` (a stale or
    unusable entry of genre's cache) is removed and the temporary directory renamed into
    place, so a crash never leaves a half entry. A concurrent writer that renamed its own
    entry first wins (its entry is as good). The temporary directory never outlives the
    block.

    Parameters
    ----------
    where : Path
        The entry's directory.

    Returns
    -------
    Iterator[Path]
        The temporary directory (a context manager's value).
    """
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=f".{where.name}-"))
    try:
        yield tmp
        if where.is_symlink() or where.is_file():
            where.unlink()
        shutil.rmtree(where, ignore_errors=True)
        try:
            tmp.rename(where)
        except OSError:  # a concurrent run got there first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
