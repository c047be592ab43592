"""File output that never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets normal rights
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_table(path: str | Path):
    """Read a CSV (or Parquet) file for recourse; rows are labelled by their line number.

    Raises InputError for a missing or empty file, duplicate column names, or a file that
    does not parse, naming the file.
    """
    import csv

    import pandas as pd

    from genre.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        from genre.extras import require

        require("pyarrow", "parquet", "reading Parquet")
        return pd.read_parquet(path)
    with path.open(newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header or all(not h.strip() for h in header):
        raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{path}: duplicate columns {dup}")
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc
    if df.empty:
        raise InputError(f"{path}: has a header but no data rows")
    df.index = pd.RangeIndex(2, len(df) + 2, name="line")  # line 1 is the header
    return df
