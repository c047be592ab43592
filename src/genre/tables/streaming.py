"""Recourse for tables too big for memory: read, answer and write a piece at a time.

    stream_recourse(model, "people.csv", "recourse.csv", changes_path="changes.csv")

The input (CSV, or Parquet: .parquet/.pq) is read in chunks of `chunk_size` rows; the rows
are answered by `recourse_table` in blocks of SEED_BLOCK rows and appended to the output
(CSV for .csv, Parquet for .parquet/.pq; header once), so memory stays flat however long the
file is. Outputs are written to temporary files beside their destinations and renamed only
when every row is done: a bad row anywhere (say in the seventh chunk) raises an InputError
naming its line and leaves no output file behind.

`person` in every output is the 0-based row index of the input (the first data row is
person 0, for CSV and Parquet alike); errors name CSV rows by the line they start on
(genre.utils.csvrows: quoted line breaks and blank lines counted). Before pandas reads a CSV, one
bounded pass (genre.utils.csvrows.scan_csv) refuses a data row longer than MAX_ROW_BYTES and caps
the rows per chunk so that a chunk's text stays under CHUNK_BYTES, whatever the bytes.
validate_first=True checks every row of the file against the model's schema before any row
is answered, so a bad last row fails in the time it takes to read the file.

CSV outputs are safe to open in a spreadsheet: a text cell starting with `=`, `+`, `-`, `@`,
a tab or a carriage return (which Excel, LibreOffice and Google Sheets would run as a
formula) is written with a leading `'` (FORMULA_PREFIXES, neutralise_formulas); numbers are
never changed. csv_safe=False (the CLI's --raw-csv) writes text as it is. Parquet outputs
always hold the values as they are.

Seeding: block b (rows b*SEED_BLOCK .. (b+1)*SEED_BLOCK - 1 of the file, counted from 0)
is answered with block_seed(seed, b); block 0 uses `seed` itself. Results therefore do not
depend on chunk_size, and a file of at most SEED_BLOCK rows gets exactly what
recourse_table(read_table(path), seed=seed) gives. A bigger file differs from one
recourse_table call on the whole table only in which random draws each row gets.
`answer_blocks` is that rule for any stream of DataFrames (GenRe.recourse uses it too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from genre.data.schema import RESERVED_ID_COLUMNS
from genre.errors import InputError
from genre.io import atomic_path, check_outputs
from genre.tables.protocol import Answerer, check_fitted
from genre.tables.recourse import recourse_table
from genre.utils.extras import require
from genre.utils.limits import CHUNK_MAX, check_int, check_request
from genre.utils.readers import CsvReader, ParquetReader

SEED_BLOCK = 1000  # rows per recourse_table call, each with its own seed
PARQUET_SUFFIXES = (".parquet", ".pq")
STATUSES = ("recourse", "none found", "already accepted")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets run as a formula


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with every text cell that starts like a spreadsheet formula (FORMULA_PREFIXES)
    prefixed by `'`, which spreadsheets show as text; numbers and other cells unchanged
    (a copy only when something changes)."""
    out = None
    for c in df.columns:
        col = df[c]
        if col.dtype != object and not pd.api.types.is_string_dtype(col):
            continue
        if not col.map(_formula).any():
            continue
        if out is None:
            out = df.copy()
        out[c] = col.map(lambda v: "'" + v if _formula(v) else v)
    return df if out is None else out


def _formula(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def block_seed(seed: int, block: int) -> int:
    """The sampling seed of block `block` (SEED_BLOCK rows each): `seed` for block 0, then
    independent seeds derived from (seed, block)."""
    if block == 0:
        return seed
    state = np.random.SeedSequence([seed % 2**64, block]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def output_format(path: str | Path) -> str:
    """'csv' or 'parquet' from the file name; InputError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(f"{path}: unknown output format '{Path(path).suffix}'; give a .csv or "
                     ".parquet file")


def answer_blocks(model: Answerer, chunks: Iterable[pd.DataFrame], *, options: int = 1,
                  best_k: int | None = None, seed: int = 0, source: str = "input",
                  id_column: str | None = None, start: int = 0
                  ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, int]]:
    """The one way a table is answered (GenRe.recourse, stream_recourse, serve and Ray all
    come here): recourse_table on consecutive SEED_BLOCK-row blocks of `chunks`.

    Parameters
    ----------
    model : Answerer
        A fitted model (GenRe).
    chunks : iterable of DataFrame
        The people, original units, in order (any chunk sizes).
    options, best_k, seed, source, id_column
        As for recourse_table; block b of the stream gets block_seed(seed, start //
        SEED_BLOCK + b).
    start : int
        The row number of the first row (a multiple of SEED_BLOCK): persons are numbered
        from it, and the seeds are those of the whole file's blocks.

    Returns
    -------
    iterator of (profiles, changes, rows in the block)
    """
    if start % SEED_BLOCK:
        raise InputError(f"{source}: rows must start on a seed block (a multiple of "
                         f"{SEED_BLOCK}), got {start}")
    first = start // SEED_BLOCK
    for b, block in enumerate(_blocks(iter(chunks), SEED_BLOCK)):
        result, diff = recourse_table(model, block, options=options, best_k=best_k,
                                      seed=block_seed(seed, first + b), source=source,
                                      start=start, id_column=id_column)
        yield result, diff, len(block)
        start += len(block)


def check_columns(model: Answerer, columns: list[str], source: str,
                  id_column: str | None = None) -> str | None:
    """Fail before any work when `columns` do not match the model's schema (the target may
    be present; the id column, `id_column` or the schema's, must be).

    Parameters
    ----------
    model : Answerer
    columns : list of str
    source : str
        Names the input in messages.
    id_column : str, optional
        Default: the schema's.

    Returns
    -------
    str or None
        The id column in use.
    """
    id_column = id_column if id_column is not None else model.encoder_.schema_.id_column
    if id_column in RESERVED_ID_COLUMNS:
        raise InputError(f"{source}: id column '{id_column}' is named like a column genre "
                         f"writes in its outputs {list(RESERVED_ID_COLUMNS)}; rename it")
    if id_column is not None and id_column not in columns:
        raise InputError(f"{source}: id column '{id_column}' not found; the columns are "
                         f"{columns}"[:600])
    model.encoder_._check_columns(pd.DataFrame(columns=[c for c in columns if c != id_column]),
                                  allow_target=True, source=source)
    return id_column


def stream_recourse(model: Answerer, input_path: str | Path, output_path: str | Path, *,
                    options: int = 1, best_k: int | None = None, seed: int = 0,
                    chunk_size: int = 50_000, changes_path: str | Path | None = None,
                    progress: bool = True, show: int = 10,
                    id_column: str | None = None, overwrite: bool = True,
                    validate_first: bool = False, csv_safe: bool = True) -> dict:
    """Recourse for every row of a CSV/Parquet file, written to output_path (.csv or
    .parquet).

    The output has the columns of recourse_table's profiles (person = 0-based row index,
    the id column when `id_column` or the schema's `id` names one, ...); changes_path, when
    given, gets its long changes view (in Parquet, `from` and `to` are text: they mix
    labels and numbers). options, best_k and seed mean what they mean for recourse_table
    (see the module docstring for how seeds are spread over the file). Raises InputError for
    a missing, empty or unparsable file, an output that is not .csv/.parquet, columns that
    do not match the model's schema (checked before any row is answered) or a bad cell
    (naming its line); nothing is written then. Raises OutputError (before any work)
    for outputs genre.io's policy refuses: an output that is the input or the other output,
    a link, a directory or a device; an existing file unless overwrite.

    Returns counts: people, rows (output rows), profiles (output rows with a recourse),
    changes (change rows: changed features, summed over profiles), and the number of
    people per status ('recourse', 'none found', 'already accepted'); plus preview: the
    change rows of the first `show` people with changes (a DataFrame, for display).

    validate_first: check every row against the schema before answering any (one extra
    read of the file). csv_safe: neutralise spreadsheet formulas in CSV outputs (see the
    module docstring). seed, best_k, options and chunk_size are checked against
    genre.utils.limits' ranges first.
    """
    check_fitted(model)
    seed, best_k, options = check_request(seed=seed, best_k=best_k, options=options)
    check_int(chunk_size, "chunk_size", 1, CHUNK_MAX)
    check_outputs((output_path, changes_path), inputs=(input_path,), overwrite=overwrite)
    formats = [output_format(p) for p in (output_path, changes_path) if p is not None]
    if "parquet" in formats:
        require("pyarrow.parquet", "parquet", "writing Parquet")
    source = str(input_path)
    reader, id_column = open_input(model, input_path, id_column)
    if validate_first:
        validate_rows(model, reader, chunk_size, source, id_column)
    floats = [f.name for f in model.encoder_.schema_.features
              if not f.is_categorical and not f.integer]
    counts = dict.fromkeys(("people", "rows", "profiles", "changes", *STATUSES), 0)
    preview: list[pd.DataFrame] = []
    shown: set = set()
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, silence in logs and CI.
    bar = tqdm(total=reader.total_rows(), unit="row", unit_scale=True, desc="recourse",
               leave=False, disable=None if progress else True)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(_table_writer(output_path, overwrite, float_columns=floats,
                                                csv_safe=csv_safe))
        diff_out = None
        if changes_path is not None:
            diff_out = stack.enter_context(_table_writer(
                changes_path, overwrite, text_columns=("feature", "from", "to"),
                csv_safe=csv_safe))
        stack.callback(bar.close)
        for result, diff, n in answer_blocks(model, reader.chunks(chunk_size),
                                             options=options, best_k=best_k, seed=seed,
                                             source=source, id_column=id_column):
            out.write(result)
            if diff_out is not None:
                diff_out.write(diff)
            people = result.drop_duplicates("person")
            statuses = people["status"].value_counts()
            counts["people"] += len(people)
            counts["rows"] += len(result)
            counts["changes"] += len(diff)
            counts["profiles"] += int((result["status"] == "recourse").sum())
            for status in STATUSES:
                counts[status] += int(statuses.get(status, 0))
            if len(shown) < show and len(diff):
                keep = list(dict.fromkeys(diff["person"]))[:show - len(shown)]
                shown.update(keep)
                preview.append(diff[diff["person"].isin(keep)])
            bar.update(n)
        if counts["people"] == 0:  # no data row in the whole file
            raise InputError(reader.empty_message())
        # Leaving the stack closes each file and then renames it into place; an exception
        # instead deletes the temporary files.
    counts["preview"] = (pd.concat(preview, ignore_index=True) if preview else
                         pd.DataFrame(columns=["person", "option", "feature", "from", "to"]))
    return counts


def open_input(model: Answerer, input_path: str | Path, id_column: str | None = None):
    """A chunk reader on the CSV/Parquet file `input_path` whose header was checked against
    the model's schema (check_columns: before any row is read), and the id column in use.

    Parameters
    ----------
    model : Answerer
    input_path : str or Path
    id_column : str, optional
        Default: the schema's.

    Returns
    -------
    tuple
        (reader, id column or None).
    """
    path = Path(input_path)
    reader = ParquetReader(path) if path.suffix.lower() in PARQUET_SUFFIXES else \
        CsvReader(path)
    return reader, check_columns(model, reader.columns, str(path), id_column)


def validate_rows(model: Answerer, reader, chunk_size: int, source: str,
                  id_column: str | None) -> int:
    """Check every row the reader gives against the model's schema (the encoder's
    transform, chunk by chunk) before any is answered; the first bad cell raises its
    InputError naming the line.

    Parameters
    ----------
    model : Answerer
    reader : a reader from open_input
    chunk_size : int
        Rows per chunk.
    source : str
        Names the input in messages.
    id_column : str or None
        Left out of the check.

    Returns
    -------
    int
        The number of rows.
    """
    rows = 0
    for chunk in reader.chunks(chunk_size):
        if id_column is not None:
            chunk = chunk.drop(columns=id_column)
        if len(chunk):
            model.encoder_.transform(chunk, source=source)
        rows += len(chunk)
    return rows


@contextlib.contextmanager
def _table_writer(path: str | Path, overwrite: bool, float_columns=(),
                  text_columns=(), csv_safe: bool = True) -> Iterator[_TableWriter]:
    """A _TableWriter on a temporary file renamed to `path` when the block ends without an
    exception (and deleted when it raises)."""
    with atomic_path(path, overwrite) as tmp:
        writer = _TableWriter(tmp, Path(path), float_columns, text_columns, csv_safe)
        try:
            yield writer
        finally:
            writer.close()


class _TableWriter:
    """Appends DataFrames to a CSV or Parquet file (by the destination's suffix).

    Parquet: float_columns are written as float64 and text_columns as text, so that every
    block has the first block's column types; empty blocks are skipped while others come."""

    def __init__(self, tmp: Path, path: Path, float_columns=(), text_columns=(),
                 csv_safe: bool = True):
        self.tmp, self.path, self.format = tmp, path, output_format(path)
        self.csv_safe = csv_safe
        self.float_columns, self.text_columns = list(float_columns), list(text_columns)
        self._file = tmp.open("w", newline="") if self.format == "csv" else None
        self._parquet = None
        self._empty: pd.DataFrame | None = None

    def write(self, df: pd.DataFrame) -> None:
        if self.format == "csv":
            if self.csv_safe:
                df = neutralise_formulas(df)
            df.to_csv(self._file, header=self._file.tell() == 0, index=False)
        elif len(df) == 0:
            self._empty = df
        else:
            self._write_parquet(df)

    def _write_parquet(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = df.copy()
        for c in self.float_columns:
            if c in df.columns:
                df[c] = df[c].astype(np.float64)
        for c in self.text_columns:
            if c in df.columns:
                df[c] = df[c].map(lambda v: "" if v is None else str(v)).astype("string")
        if self._parquet is None:
            table = pa.Table.from_pandas(df, preserve_index=False)
            self._parquet = pq.ParquetWriter(self.tmp, table.schema)
        else:
            try:
                table = pa.Table.from_pandas(df, schema=self._parquet.schema,
                                             preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(f"{self.path}: a column changes type between blocks of rows "
                                 f"({exc})") from exc
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            return
        if self._parquet is None and self._empty is not None:
            self._write_parquet(self._empty)
        if self._parquet is not None:
            self._parquet.close()


def _blocks(chunks: Iterator[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Re-cut a stream of DataFrames into consecutive blocks of `size` rows (the last one
    shorter), whatever the chunks' sizes."""
    pending: pd.DataFrame | None = None
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        pending = chunk if pending is None else pd.concat([pending, chunk])
        start = 0
        while len(pending) - start >= size:
            yield pending.iloc[start:start + size]
            start += size
        pending = pending.iloc[start:] if start < len(pending) else None
    if pending is not None and len(pending):
        yield pending


__all__ = ["SEED_BLOCK", "answer_blocks", "block_seed", "check_columns", "stream_recourse"]
