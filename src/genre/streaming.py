"""Recourse for tables too big for memory: read, answer and write a piece at a time.

    stream_recourse(model, "people.csv", "recourse.csv", changes_path="changes.csv")

The input (CSV, or Parquet: .parquet/.pq) is read in chunks of `chunk_size` rows; the rows
are answered by `recourse_table` in blocks of SEED_BLOCK rows and appended to the output
CSV (header once), so memory stays flat however long the file is. Outputs are written to
temporary files beside their destinations and renamed only when every row is done: a bad
row anywhere (say in the seventh chunk) raises an InputError naming its line and leaves no
output file behind.

Row labels are what `genre.io.read_table` gives: for a CSV the line number (the header is
line 1), for Parquet the 0-based row number.

Seeding: block b (rows b*SEED_BLOCK .. (b+1)*SEED_BLOCK - 1 of the file, counted from 0)
is answered with block_seed(seed, b); block 0 uses `seed` itself. Results therefore do not
depend on chunk_size, and a file of at most SEED_BLOCK rows gets exactly what
recourse_table(read_table(path), seed=seed) gives. A bigger file differs from one
recourse_table call on the whole table only in which random draws each row gets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from genre.errors import InputError, ModelError
from genre.estimator import GenRe
from genre.io import atomic_path, check_parquet_types, read_csv_header
from genre.recourse import recourse_table

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


def stream_recourse(model: GenRe, input_path: str | Path, output_path: str | Path, *,
                    options: int = 1, best_k: int | None = None, seed: int = 0,
                    chunk_size: int = 50_000, changes_path: str | Path | None = None,
                    progress: bool = True, show: int = 10) -> dict:
    """Recourse for every row of a CSV/Parquet file, written to output_path (CSV).

    The output has the columns of recourse_table's profiles (person = line number, ...);
    changes_path, when given, gets its long changes view. options, best_k and seed mean
    what they mean for recourse_table (see the module docstring for how seeds are spread
    over the file). Raises InputError for a missing, empty or unparsable file, columns
    that do not match the model's schema (checked before any row is answered) or a bad
    cell (naming its line); nothing is written then.

    Returns counts: people, rows (output rows), changes (change rows), and the number of
    people per status ('recourse', 'none found', 'already accepted'); plus preview: the
    change rows of the first `show` people with changes (a DataFrame, for display).
    """
    if not hasattr(model, "model_"):
        raise ModelError("GenRe is not fitted: call fit(task) or GenRe.load(dir) first")
    if options < 1:
        raise InputError(f"options must be at least 1, got {options}")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    path = Path(input_path)
    source = str(path)
    reader = _ParquetReader(path) if path.suffix.lower() in PARQUET_SUFFIXES else \
        _CsvReader(path)
    # Columns first: a wrong header fails before any work, with read_table's and the
    # encoder's messages.
    model.encoder_._check_columns(pd.DataFrame(columns=reader.columns), allow_target=True,
                                  source=source)
    counts = dict.fromkeys(("people", "rows", "changes", *STATUSES), 0)
    preview: list[pd.DataFrame] = []
    shown: set = set()
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, silence in logs and CI.
    bar = tqdm(total=reader.total_rows(), unit="row", unit_scale=True, desc="recourse",
               leave=False, disable=None if progress else True)
    with contextlib.ExitStack() as stack:
        out_tmp = stack.enter_context(atomic_path(output_path))
        out = stack.enter_context(out_tmp.open("w", newline=""))
        diff_out = None
        if changes_path is not None:
            diff_tmp = stack.enter_context(atomic_path(changes_path))
            diff_out = stack.enter_context(diff_tmp.open("w", newline=""))
        stack.callback(bar.close)
        first = True
        for b, block in enumerate(_blocks(reader.chunks(chunk_size), SEED_BLOCK)):
            result, diff = recourse_table(model, block, options=options, best_k=best_k,
                                          seed=block_seed(seed, b), source=source)
            result.to_csv(out, header=first, index=False)
            if diff_out is not None:
                diff.to_csv(diff_out, header=first, index=False)
            first = False
            people = result.drop_duplicates("person")
            statuses = people["status"].value_counts()
            counts["people"] += len(people)
            counts["rows"] += len(result)
            counts["changes"] += len(diff)
            for status in STATUSES:
                counts[status] += int(statuses.get(status, 0))
            if len(shown) < show and len(diff):
                keep = list(dict.fromkeys(diff["person"]))[:show - len(shown)]
                shown.update(keep)
                preview.append(diff[diff["person"].isin(keep)])
            bar.update(len(block))
        if first:  # no data row in the whole file
            raise InputError(reader.empty_message())
        # Leaving the stack closes each file and then renames it into place; an exception
        # instead deletes the temporary files.
    counts["preview"] = (pd.concat(preview, ignore_index=True) if preview else
                         pd.DataFrame(columns=["person", "option", "feature", "from", "to"]))
    return counts


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
        try:
            import pyarrow.parquet as pq

            self.file = pq.ParquetFile(path)
        except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
            raise InputError(f"{path}: reading Parquet needs pyarrow ({exc})") from exc
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


__all__ = ["SEED_BLOCK", "block_seed", "stream_recourse"]
