"""`genre cache info|clear`: see and clear what genre keeps in its cache folder."""

from __future__ import annotations

from typing import Annotated

import typer

from genre.cli.common import console, fail
from genre.utils.cache import CACHE_KINDS, cache_dir, cache_kind, folder_size

cache_app = typer.Typer(help="See (info) and clear (clear) genre's cache folder.",
                        no_args_is_help=True)


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def _entries():

    root = cache_dir()
    folders = sorted(p for p in root.iterdir()) if root.is_dir() else []
    return root, [(p, cache_kind(p)) for p in folders]


@cache_app.command("info")
def cache_info() -> None:
    """Print the cache folder (GENRE_CACHE_DIR overrides it) and its size per kind of entry."""

    root, entries = _entries()
    console.print(f"cache: {root}" + ("" if root.is_dir() else " (does not exist yet)"))
    total = 0
    for kind, what in CACHE_KINDS.items():
        size = entries_n = 0
        for path, k in entries:
            if k == kind:
                s, _ = folder_size(path)
                size += s
                entries_n += sum(1 for _ in path.iterdir())
        total += size
        console.print(f"  {kind:<13} {_human(size):>9}  {entries_n:>4} entries  ({what})")
    others = [p.name for p, k in entries if k is None]
    console.print(f"  {'total':<13} {_human(total):>9}"
                  + (f"; not genre's, left alone: {others}" if others else ""))


@cache_app.command("clear")
def cache_clear(
    kind: Annotated[list[str] | None, typer.Option(
        help="clear only this kind (repeat for several): protocol, genre-models, vae, "
        "diffusion")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
    = False,
) -> None:
    """Delete genre's cache entries (only the folders genre writes; they are rebuilt when
    needed). Asks first unless --yes."""
    import shutil
    import sys


    unknown = sorted(set(kind or ()) - set(CACHE_KINDS))
    if unknown:
        fail(f"unknown cache kinds {unknown}; known: {list(CACHE_KINDS)}")
    root, entries = _entries()
    doomed = [p for p, k in entries if k is not None and (not kind or k in kind)]
    if not doomed:
        console.print(f"cache {root}: nothing to clear")
        return
    size = sum(folder_size(p)[0] for p in doomed)
    what = f"{_human(size)} in {', '.join(p.name for p in doomed)} under {root}"
    if not yes:
        if not sys.stdin.isatty():
            fail(f"would delete {what}; add --yes to confirm")
        if not typer.confirm(f"delete {what}?"):
            raise typer.Exit(code=1)
    for path in doomed:
        shutil.rmtree(path)
    console.print(f"deleted {what}")
