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


MAX_COLUMNS = 10_000  # columns a table may have; more is refused before reading rows
MAX_HEADER_BYTES = 1 << 20  # bytes a CSV header row may take


def read_table(path: str | Path):
    """Read a CSV (or Parquet) file for recourse; rows are labelled by their line number.

    Raises InputError for a missing or empty file, a header over MAX_COLUMNS columns or
    MAX_HEADER_BYTES bytes, duplicate column names, a Parquet column of a type no feature can
    hold (dates, durations, nested, binary: see `check_parquet_types`), or a file that does
    not parse, naming the file.
    """
    import pandas as pd

    from genre.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            check_parquet_types(path, pq.read_schema(path))
            df = pd.read_parquet(path)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise InputError(f"{path}: cannot read as Parquet ({exc})") from exc
        if df.empty:
            raise InputError(f"{path}: has no data rows")
        return df
    read_csv_header(path)
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc
    if df.empty:
        raise InputError(f"{path}: has a header but no data rows")
    df.index = pd.RangeIndex(2, len(df) + 2, name="line")  # line 1 is the header
    return df


def read_csv_header(path: str | Path) -> list[str]:
    """The header row of a CSV file, read from at most its first MAX_HEADER_BYTES bytes.

    Raises InputError (naming the file) if the file is empty, not UTF-8, its header is wider
    than MAX_COLUMNS or longer than MAX_HEADER_BYTES, or names a column twice (leading
    spaces ignored, as pandas' skipinitialspace does).
    """
    import codecs
    import csv
    import io
    from collections import Counter

    from genre.errors import InputError

    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    cut = len(head) > MAX_HEADER_BYTES
    try:  # final=False: a character cut in two at the end is left out, not an error
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=not cut)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: cannot parse as CSV (not UTF-8 text: {exc})") from exc
    buffer = io.StringIO(text, newline="")
    too_long = InputError(f"{path}: the header row is longer than {MAX_HEADER_BYTES:,} bytes")
    try:
        header = next(csv.reader(buffer), None)
    except csv.Error as exc:  # cut: the row did not end within the limit
        raise (too_long if cut else InputError(f"{path}: cannot parse as CSV ({exc})")) from exc
    if header is not None and len(header) > MAX_COLUMNS:
        raise InputError(f"{path}: the header has {'more than ' if cut else ''}"
                         f"{len(header):,} columns; at most {MAX_COLUMNS:,} are allowed")
    if cut and buffer.tell() >= len(text):  # the first row did not end within the limit
        raise too_long
    if not header or all(not h.strip() for h in header):
        raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
    counts = Counter(h.lstrip(" ") for h in header)
    dup = sorted(h for h, n in counts.items() if n > 1)
    if dup:
        raise InputError(f"{path}: duplicate columns {dup[:20]}")
    return header


def check_parquet_types(path: str | Path, arrow_schema) -> None:
    """Refuse (InputError naming file and column) a Parquet column whose type no feature
    can hold: only integers, floats, decimals, booleans and text (or dictionaries of them)
    are read; dates, times, durations, binary and nested (list, struct, map) columns are not,
    since read as numbers they would be silently wrong. A stored pandas index is skipped.
    Also refuses more than MAX_COLUMNS columns."""
    from collections import Counter

    import pyarrow.types as pat

    from genre.errors import InputError

    meta = arrow_schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    if len(arrow_schema) > MAX_COLUMNS:
        raise InputError(f"{path}: the file has {len(arrow_schema):,} columns; at most "
                         f"{MAX_COLUMNS:,} are allowed")
    dup = sorted(c for c, n in Counter(arrow_schema.names).items() if n > 1)
    if dup:
        raise InputError(f"{path}: duplicate columns {dup[:20]}")
    for field in arrow_schema:
        if field.name in index:
            continue
        kind = field.type.value_type if pat.is_dictionary(field.type) else field.type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind)
                or pat.is_boolean(kind) or pat.is_string(kind) or pat.is_large_string(kind)
                or pat.is_null(kind) or str(kind) == "string_view"):
            raise InputError(f"{path}: column '{field.name}' has Parquet type {kind}; expected "
                             "numbers, text or true/false (convert dates to numbers, e.g. days "
                             "since an event, and flatten nested columns)")
