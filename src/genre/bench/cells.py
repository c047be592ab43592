"""The benchmark's cells on disk: one JSON file per (dataset, method, seed).

`genre benchmark ... --out DIR` writes each cell to DIR/cells/<dataset>-seed<seed>-<method>.json
as soon as it finishes: its metrics (the results row), the method's parameters, the
protocol's fingerprint, fit and generation seconds (wall and process CPU), the load average
at its start and end, versions and the command that made it. A rerun skips a cell whose file
holds the same key (method, dataset, seed, n, quick, monotone, the method's parameters) and
the same protocol fingerprint, and ran without error; anything else (missing, unreadable,
another key, an error) is computed again and its file replaced. The result files are
assembled from every cell in DIR/cells, so a table can grow over several runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from genre.bench.common import plain
from genre.io import write_text

CELL_FORMAT = "genre-recourse/bench-cell"
CELL_VERSION = 1
CELLS = "cells"


def cell_path(out: Path, dataset: str, method: str, seed: int) -> Path:
    """The file of one cell under `out`/cells.

    Parameters
    ----------
    out : pathlib.Path
        The benchmark's output directory.
    dataset, method : str
        The cell's dataset and method names.
    seed : int
        The protocol seed.

    Returns
    -------
    pathlib.Path
        out/cells/<dataset>-seed<seed>-<method>.json
    """
    return Path(out) / CELLS / f"{dataset}-seed{seed}-{method}.json"


def _say(path: Path, why: str) -> None:
    print(f"genre: cell file {path} is unusable, computing the cell again: {why}",
          file=sys.stderr)


def read_cell(path: Path, *, quiet: bool = False) -> dict | None:
    """A cell file's record, or None when it is missing or unusable (said on stderr).

    Parameters
    ----------
    path : pathlib.Path
        The cell file.
    quiet : bool
        Do not report an unusable file.

    Returns
    -------
    dict or None
        The record (format, key, fingerprint, row, timing, ...), None if unusable.
    """
    if not path.exists() and not path.is_symlink():
        return None
    why = None
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        cell = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cell, dict) or cell.get("format") != CELL_FORMAT \
                or cell.get("version") != CELL_VERSION:
            raise ValueError(f"not a {CELL_FORMAT} file of version {CELL_VERSION}")
        if not isinstance(cell.get("key"), dict) or not isinstance(cell.get("row"), dict):
            raise ValueError("no 'key' or 'row' mapping")
        row = cell["row"]
        if not {"method", "dataset", "seed", "error"} <= set(row):
            raise ValueError("the row lacks method, dataset, seed or error")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = str(exc) or type(exc).__name__
    if why is not None:
        if not quiet:
            _say(path, why)
        return None
    return cell


def is_done(cell: dict | None, key: dict, fingerprint: str | None) -> bool:
    """Whether a cell read back can stand for the one asked: same key and fingerprint, and it
    ran without error (a failed cell is tried again).

    Parameters
    ----------
    cell : dict or None
        What read_cell returned.
    key : dict
        The key of the cell asked for (JSON-normalised, as write_cell stores it).
    fingerprint : str or None
        The protocol's fingerprint.

    Returns
    -------
    bool
    """
    return (cell is not None and cell["key"] == normalise(key)
            and cell.get("fingerprint") == fingerprint and not cell["row"].get("error"))


def normalise(value):
    """`value` as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(plain(value), sort_keys=True, default=str))


def write_cell(path: Path, record: dict) -> None:
    """Write one cell file atomically (a cell is genre's own file: replaced when recomputed).

    Parameters
    ----------
    path : pathlib.Path
        The cell file.
    record : dict
        key, fingerprint, row, timing, versions, command, date (format and version added).
    """
    doc = {"format": CELL_FORMAT, "version": CELL_VERSION} | normalise(record)
    write_text(path, json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n")


def read_cells(out: Path) -> list[dict]:
    """Every usable cell record under out/cells, by file name.

    Parameters
    ----------
    out : pathlib.Path
        The benchmark's output directory.

    Returns
    -------
    list of dict
        The records (unusable files are reported and left out).
    """
    folder = Path(out) / CELLS
    if not folder.is_dir():
        return []
    cells = (read_cell(p) for p in sorted(folder.glob("*.json")))
    return [c for c in cells if c is not None]


def ordered(first: list, seen: list) -> list:
    """`first` in its order, then the rest of `seen` in theirs (no duplicates)."""
    return list(dict.fromkeys([*first, *seen]))


__all__ = ["CELLS", "cell_path", "is_done", "read_cell", "read_cells", "write_cell"]
