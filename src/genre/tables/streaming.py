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
formula) is written with a leading `'` (genre.tables.writers: FORMULA_PREFIXES,
neutralise_formulas); numbers are never changed. csv_safe=False (the CLI's --raw-csv) writes
text as it is. Parquet outputs always hold the values as they are.

Seeding: every record draws from its own random stream, keyed by the seed and the record's
values (genre.core.seeding), so a record's answer depends on the record and the seed only:
not on its row, its block, chunk_size or the other rows. Rows are answered in blocks of
SEED_BLOCK rows (a memory bound), and a file gets exactly what
recourse_table(read_table(path), seed=seed) gives for the same rows.
`answer_blocks` is that rule for any stream of DataFrames (GenRe.recourse uses it too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from genre.data.schema import RESERVED_ID_COLUMNS
from genre.errors import InputError
from genre.io import check_outputs
from genre.tables.decision import check_min_probability
from genre.tables.protocol import Answerer, check_fitted
from genre.tables.recourse import recourse_table
from genre.tables.writers import PARQUET_SUFFIXES, output_format, table_writer
from genre.utils.extras import require
from genre.utils.limits import CHUNK_MAX, check_int, check_request
from genre.utils.readers import CsvReader, ParquetReader

SEED_BLOCK = 1000  # rows per recourse_table call (a memory bound; answers do not depend on it)
STATUSES = ("recourse", "none found", "already accepted")


def answer_blocks(model: Answerer, chunks: Iterable[pd.DataFrame], *, options: int = 1,
                  best_k: int | None = None, seed: int = 0, source: str = "input",
                  id_column: str | None = None, start: int = 0,
                  min_probability: float | None = None, constraints=None
                  ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, int]]:
    """The one way a table is answered (GenRe.recourse, stream_recourse, serve and Ray all
    come here): recourse_table on consecutive SEED_BLOCK-row blocks of `chunks`.

    Parameters
    ----------
    model : Answerer
        A fitted model (GenRe).
    chunks : iterable of DataFrame
        The people, original units, in order (any chunk sizes).
    options, best_k, seed, source, id_column, min_probability, constraints
        As for recourse_table (every record with its own stream from `seed`).
    start : int
        The row number of the first row (a multiple of SEED_BLOCK): persons are numbered
        from it.

    Returns
    -------
    iterator of (profiles, changes, rows in the block)
    """
    if start % SEED_BLOCK:
        raise InputError(f"{source}: rows must start on a seed block (a multiple of "
                         f"{SEED_BLOCK}), got {start}")
    for block in _blocks(iter(chunks), SEED_BLOCK):
        result, diff = recourse_table(model, block, options=options, best_k=best_k,
                                      seed=seed, source=source, start=start,
                                      id_column=id_column, min_probability=min_probability,
                                      constraints=constraints)
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
                    min_probability: float | None = None, constraints=None,
                    validate_first: bool = False, csv_safe: bool = True) -> dict:
    """Recourse for every row of a CSV/Parquet file, written to output_path (.csv or
    .parquet).

    The output has the columns of recourse_table's profiles (person = 0-based row index,
    the id column when `id_column` or the schema's `id` names one, ...); changes_path, when
    given, gets its long changes view (in Parquet, `from` and `to` are text: they mix
    labels and numbers). options, best_k, seed, min_probability and constraints (checked
    before any row is read) mean what they mean for recourse_table
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
    min_probability = check_min_probability(min_probability)
    if constraints is not None:
        constraints.check(model.encoder_.schema_)
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
        out = stack.enter_context(table_writer(output_path, overwrite, float_columns=floats,
                                                csv_safe=csv_safe))
        diff_out = None
        if changes_path is not None:
            diff_out = stack.enter_context(table_writer(
                changes_path, overwrite, text_columns=("feature", "from", "to"),
                csv_safe=csv_safe))
        stack.callback(bar.close)
        for result, diff, n in answer_blocks(model, reader.chunks(chunk_size),
                                             options=options, best_k=best_k, seed=seed,
                                             source=source, id_column=id_column,
                                             min_probability=min_probability,
                                             constraints=constraints):
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


__all__ = ["SEED_BLOCK", "answer_blocks", "check_columns", "stream_recourse"]
