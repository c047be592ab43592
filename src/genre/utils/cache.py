"""Where genre keeps what it can rebuild: protocols, cached models, VAEs, diffusion models.

Every cache entry carries a manifest (genre.integrity); an entry that is missing files,
fails its digests or does not match what the caller expects is rebuilt, with one line on
stderr (`report_rebuild`), never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
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


def _module_file(name: str) -> Path | None:
    """The source file of one of genre's modules (None: not a module, e.g. a class)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imported_modules(path: Path, name: str) -> set[str]:
    """genre.* modules that `path` (module `name`) imports, at any level (functions too)."""
    import ast

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # names may be submodules
    return {m for m in found if m == "genre" or m.startswith("genre.")}


def _closure(modules: tuple[str, ...], exclude: tuple[str, ...] = ()) -> dict[str, Path]:
    """{module name: file} of `modules` and every genre module they import, transitively,
    leaving out names that start with a prefix in `exclude`."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(exclude):
            continue
        path = _module_file(name)
        if path is None:
            if name in modules:
                raise ValueError(f"code_digest: {name!r} is not a Python module")
            continue
        seen[name] = path
        todo += sorted(_imported_modules(path, name) - set(seen))
    return seen


def _closure_names(*modules: str, exclude: tuple[str, ...] = ()) -> set[str]:
    """The module names code_digest hashes (for tests and for reading a key)."""
    return set(_closure(modules, exclude))


@cache
def code_digest(*modules: str, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over the source of the named modules and every genre module they import.

    The closure follows `import genre...` statements anywhere in the files (inside functions
    too), so a cache entry keyed by ``code_digest("genre.bench.protocol")`` changes whenever
    any code that builds it changes, wherever that code moves.

    Parameters
    ----------
    modules : str
        Dotted module names, e.g. "genre.bench.protocol".
    exclude : tuple of str
        Module-name prefixes left out of the closure (neither hashed nor followed): code the
        entry is known not to depend on, e.g. GenRe's student sampler for a GenRe entry,
        which the student's own entry covers. Empty: the whole closure.

    Returns
    -------
    str
        The hex digest (64 characters).
    """
    seen = _closure(modules, exclude)
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\n".encode())
        digest.update(seen[name].read_bytes())
    return digest.hexdigest()


def key_digest(*parts: object, arrays: tuple = ()) -> str:
    """sha256 of JSON-able parts (sort_keys) and arrays (dtype, shape and bytes).

    Parameters
    ----------
    parts : object
        JSON-able values (str() for anything else).
    arrays : tuple of numpy.ndarray
        Arrays hashed with their dtype and shape.

    Returns
    -------
    str
        The hex digest.
    """
    import numpy as np

    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


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
