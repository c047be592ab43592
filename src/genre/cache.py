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
