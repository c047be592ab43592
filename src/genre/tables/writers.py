"""Writing a table of answers block by block: CSV or Parquet by the file's suffix, through a
temporary file renamed into place (genre.io.atomic_path), and CSV cells that a spreadsheet
would run as a formula neutralised (see genre.tables.streaming)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from genre.errors import InputError
from genre.io import atomic_path

PARQUET_SUFFIXES = (".parquet", ".pq")
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


def output_format(path: str | Path) -> str:
    """'csv' or 'parquet' from the file name; InputError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(f"{path}: unknown output format '{Path(path).suffix}'; give a .csv or "
                     ".parquet file")


@contextlib.contextmanager
def table_writer(path: str | Path, overwrite: bool, float_columns=(),
                  text_columns=(), csv_safe: bool = True) -> Iterator[TableWriter]:
    """A TableWriter on a temporary file renamed to `path` when the block ends without an
    exception (and deleted when it raises)."""
    with atomic_path(path, overwrite) as tmp:
        writer = TableWriter(tmp, Path(path), float_columns, text_columns, csv_safe)
        try:
            yield writer
        finally:
            writer.close()


class TableWriter:
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

