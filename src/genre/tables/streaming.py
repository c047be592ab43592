"""Recourse for tables too big for memory: read, answer and write a piece at a time.

    stream_recourse(model, "people.csv", "recourse.csv", changes_path="changes.csv")

The input (CSV, or Parquet: .parquet/.pq) is read in chunks of `chunk_size` rows; the rows
are answered by `recourse_table` in blocks of SEED_BLOCK rows and appended to the output
(CSV for .csv, Parquet for .parquet/.pq; header once), so memory stays flat however long the
file is. Outputs are written to temporary files beside their destinations and renamed only
when every row is done: a bad row anywhere (say in the seventh chunk) raises an InputError
naming its line and leaves no output file behind.

`person` in every output is the 0-based row index of the input (the first data row is
person 0, for CSV and Parquet alike); errors name CSV rows by their line number.

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

from genre.errors import InputError
from genre.io import atomic_path, check_outputs, check_parquet_types, read_csv_header
from genre.tables.protocol import Answerer, check_fitted
from genre.tables.recourse import recourse_table
from genre.utils.extras import require

SEED_BLOCK = 1000  # rows per recourse_table call, each with its own seed
PARQUET_SUFFIXES = (".parquet", ".pq")
STATUSES = ("recourse", "none found", "already accepted")


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
    if id_column is not None and id_column not in columns:
        raise InputError(f"{source}: id column '{id_column}' not found; the columns are "
                         f"{columns}")
    model.encoder_._check_columns(pd.DataFrame(columns=[c for c in columns if c != id_column]),
                                  allow_target=True, source=source)
    return id_column


def stream_recourse(model: Answerer, input_path: str | Path, output_path: str | Path, *,
                    options: int = 1, best_k: int | None = None, seed: int = 0,
                    chunk_size: int = 50_000, changes_path: str | Path | None = None,
                    progress: bool = True, show: int = 10,
                    id_column: str | None = None, overwrite: bool = True) -> dict:
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
    """
    check_fitted(model)
    if options < 1:
        raise InputError(f"options must be at least 1, got {options}")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    check_outputs((output_path, changes_path), inputs=(input_path,), overwrite=overwrite)
    formats = [output_format(p) for p in (output_path, changes_path) if p is not None]
    if "parquet" in formats:
        require("pyarrow.parquet", "parquet", "writing Parquet")
    path = Path(input_path)
    source = str(path)
    reader = _ParquetReader(path) if path.suffix.lower() in PARQUET_SUFFIXES else \
        _CsvReader(path)
    # Columns first: a wrong header fails before any work, with read_table's and the
    # encoder's messages.
    id_column = check_columns(model, reader.columns, source, id_column)
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
        out = stack.enter_context(_table_writer(output_path, overwrite, float_columns=floats))
        diff_out = None
        if changes_path is not None:
            diff_out = stack.enter_context(_table_writer(
                changes_path, overwrite, text_columns=("feature", "from", "to")))
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


@contextlib.contextmanager
def _table_writer(path: str | Path, overwrite: bool, float_columns=(),
                  text_columns=()) -> Iterator[_TableWriter]:
    """A _TableWriter on a temporary file renamed to `path` when the block ends without an
    exception (and deleted when it raises)."""
    with atomic_path(path, overwrite) as tmp:
        writer = _TableWriter(tmp, Path(path), float_columns, text_columns)
        try:
            yield writer
        finally:
            writer.close()


class _TableWriter:
    """Appends DataFrames to a CSV or Parquet file (by the destination's suffix).

    Parquet: float_columns are written as float64 and text_columns as text, so that every
    block has the first block's column types; empty blocks are skipped while others come."""

    def __init__(self, tmp: Path, path: Path, float_columns=(), text_columns=()):
        self.tmp, self.path, self.format = tmp, path, output_format(path)
        self.float_columns, self.text_columns = list(float_columns), list(text_columns)
        self._file = tmp.open("w", newline="") if self.format == "csv" else None
        self._parquet = None
        self._empty: pd.DataFrame | None = None

    def write(self, df: pd.DataFrame) -> None:
        if self.format == "csv":
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


class _CsvReader:
    """A CSV read in chunks with read_table's rules: skipinitialspace, line-number labels."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        read_csv_header(path)  # limits, emptiness, duplicates
        try:  # the names pandas will give the columns (skipinitialspace strips them)
            self.columns = [str(c) for c in pd.read_csv(path, skipinitialspace=True,
                                                          nrows=0).columns]
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc

    def total_rows(self) -> int:
        """Data rows, counted as newlines (for the progress bar only)."""
        lines, last = 0, b"\n"
        with self.path.open("rb") as fh:
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        return max(lines + (last != b"\n") - 1, 0)

    def chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        line = 2  # line 1 is the header
        try:
            with pd.read_csv(self.path, skipinitialspace=True, chunksize=chunk_size) as reader:
                for chunk in reader:
                    chunk.index = pd.RangeIndex(line, line + len(chunk), name="line")
                    line += len(chunk)
                    yield chunk
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path}: cannot parse as CSV ({exc})") from exc

    def empty_message(self) -> str:
        return f"{self.path}: has a header but no data rows"


class _ParquetReader:
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

    def total_rows(self) -> int:
        return self.file.metadata.num_rows

    def chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        row = 0
        try:
            for batch in self.file.iter_batches(batch_size=chunk_size, columns=self.columns):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(row, row + len(chunk))
                row += len(chunk)
                yield chunk
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path}: cannot read as Parquet ({exc})") from exc

    def empty_message(self) -> str:
        return f"{self.path}: has no data rows"


__all__ = ["SEED_BLOCK", "answer_blocks", "block_seed", "check_columns", "stream_recourse"]
