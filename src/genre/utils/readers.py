"""Reading tables: read_table (a whole CSV or Parquet file, CSV rows labelled by the line they
start on), the header and type checks every reader applies, and the chunk readers that
genre.tables.streaming answers big files with (CsvReader, ParquetReader). pandas and pyarrow
load only when a table is read. genre.io re-exports read_table and its checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from genre.errors import InputError
from genre.utils.csvrows import CHUNK_BYTES, MAX_ROW_BYTES, scan_csv
from genre.utils.extras import require

if TYPE_CHECKING:
    import pandas as pd

MAX_COLUMNS = 10_000  # columns a table may have; more is refused before reading rows
MAX_HEADER_BYTES = 1 << 20  # bytes a CSV header row may take


def read_table(path: str | Path):
    """Read a CSV (or Parquet) file for recourse; CSV rows are labelled by the line they start
    on (quoted line breaks and blank lines counted).

    Raises InputError for a missing or empty file, a header over MAX_COLUMNS columns or
    MAX_HEADER_BYTES bytes, a data row over genre.utils.csvrows.MAX_ROW_BYTES bytes, duplicate
    column names, a Parquet column of a type no feature can hold (dates, durations, nested,
    binary: see `check_parquet_types`), or a file that does not parse, naming the file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        require("pyarrow", "parquet", "reading Parquet")
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
    layout = scan_csv(path)  # bounded rows; where each row starts
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc
    if df.empty:
        raise InputError(f"{path}: has a header but no data rows")
    df.index = csv_line_index(layout, 0, len(df), layout.rows == len(df))
    return df


def csv_line_index(layout, start: int, n: int, exact: bool = True):
    """The index labelling data rows start .. start + n - 1 of a CSV by the line each
    starts on (genre.utils.csvrows.CsvLayout); `exact` False (pandas counted other rows than the
    scan: never seen, but possible with odd bytes) falls back to line = row + 2."""
    import pandas as pd

    if not exact:
        return pd.RangeIndex(start + 2, start + n + 2, name="line")
    return pd.Index(layout.lines(start, n), name="line")


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


class CsvReader:
    """A CSV read in chunks with read_table's rules: skipinitialspace, line-number labels."""

    def __init__(self, path: Path):
        import pandas as pd

        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        read_csv_header(path)  # limits, emptiness, duplicates
        self.layout = scan_csv(path)  # row lengths, line numbers
        try:  # the names pandas will give the columns (skipinitialspace strips them)
            self.columns = [str(c) for c in pd.read_csv(path, skipinitialspace=True,
                                                          nrows=0).columns]
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc

    def total_rows(self) -> int:
        """Data rows (from the scan)."""
        return self.layout.rows

    def chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        import pandas as pd

        row = 0
        size = self.layout.chunk_rows(chunk_size)  # bounded memory however long the rows
        try:
            with pd.read_csv(self.path, skipinitialspace=True, chunksize=size) as reader:
                for chunk in reader:
                    exact = row + len(chunk) <= self.layout.rows
                    chunk.index = csv_line_index(self.layout, row, len(chunk), exact)
                    row += len(chunk)
                    yield chunk
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path}: cannot parse as CSV ({exc})") from exc

    def empty_message(self) -> str:
        return f"{self.path}: has a header but no data rows"


class ParquetReader:
    """A Parquet file read a record batch at a time (pyarrow); rows labelled 0, 1, ..."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        pq = require("pyarrow.parquet", "parquet", "reading Parquet")
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise InputError(f"{path}: cannot read as Parquet ({exc})") from exc
        check_parquet_types(path, self.file.schema_arrow)  # also: limits, duplicates
        names = list(self.file.schema_arrow.names)
        meta = self.file.schema_arrow.pandas_metadata or {}
        stored_index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
        self.columns = [n for n in names if n not in stored_index]
        if not self.columns:
            raise InputError(f"{path}: the file is empty (no columns)")
        self.row_bytes = self._row_bytes()

    def _row_bytes(self) -> int:
        """The largest mean row size (uncompressed, from the footer) of any row group;
        InputError when it is over MAX_ROW_BYTES (a few rows that inflate to gigabytes)."""
        meta, widest = self.file.metadata, 1
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            size = max(group.total_byte_size, 0) // max(group.num_rows, 1)
            if size > MAX_ROW_BYTES:
                first = sum(meta.row_group(i).num_rows for i in range(g))
                raise InputError(f"{self.path}: row group {g} (rows {first} on) holds rows of "
                                 f"{size:,} bytes on average uncompressed; a row may take at "
                                 f"most {MAX_ROW_BYTES:,}")
            widest = max(widest, size)
        return widest

    def total_rows(self) -> int:
        return self.file.metadata.num_rows

    def chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        import pandas as pd
        import pyarrow as pa

        row = 0
        size = max(1, min(chunk_size, CHUNK_BYTES // self.row_bytes))  # bounded memory
        try:
            for batch in self.file.iter_batches(batch_size=size, columns=self.columns):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(row, row + len(chunk))
                row += len(chunk)
                yield chunk
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path}: cannot read as Parquet ({exc})") from exc

    def empty_message(self) -> str:
        return f"{self.path}: has no data rows"


__all__ = ["MAX_COLUMNS", "MAX_HEADER_BYTES", "CsvReader", "ParquetReader",
           "check_parquet_types", "csv_line_index", "read_csv_header", "read_table"]
