"""One bounded pass over a CSV file before pandas reads it: row lengths and line numbers.

pandas holds a whole row in memory before it can tell that the row is absurd: a valid
header followed by gigabytes without a line break (a sparse hole of NUL bytes, say) would
be read into memory whole. `scan_csv` reads the file in fixed blocks, with numpy, and
refuses a data row longer than MAX_ROW_BYTES as soon as the pass reaches it, naming the
line where the row starts; nothing else is held per row.

The same pass finds where each data row starts, so errors name the right line when cells
hold quoted line breaks (one row over several lines) or the file has blank lines (which
pandas skips): `CsvLayout.lines` gives the line numbers of data rows, as readers label
their rows (genre.utils.readers.read_table, genre.tables.streaming), and `chunk_rows` caps
how many rows a chunk may hold so that a chunk's raw text stays under CHUNK_BYTES however
long the rows.

Rows are split as pandas' C parser splits them: at a line feed, a carriage return and
line feed, or a lone carriage return, outside double quotes ("" inside quotes is an
escaped quote); a line of spaces and tabs only is blank and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre.errors import InputError

MAX_ROW_BYTES = 1 << 20  # bytes a data row may take (the header's limit, genre.io)
CHUNK_BYTES = 32 << 20  # raw bytes of rows one chunk may hold (pandas takes ~10-30x that)
_BLOCK = 8 << 20  # bytes read at a time
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 10, 13, 32]] = True  # tab, line feed, carriage return, space


@dataclass
class CsvLayout:
    """Where the data rows of a CSV file are (from `scan_csv`).

    rows: data rows (the header and blank lines not counted); longest: bytes of the
    longest data row. Line numbers are kept as breakpoints: from data row first[i] on,
    row k starts on line k + offset[i] (until the next breakpoint).
    """

    rows: int
    longest: int
    first: np.ndarray
    offset: np.ndarray

    def lines(self, start: int, n: int) -> np.ndarray:
        """The 1-based line numbers on which data rows start .. start + n - 1 begin."""
        k = np.arange(start, start + n, dtype=np.int64)
        which = np.searchsorted(self.first, k, side="right") - 1
        return k + self.offset[which]

    def chunk_rows(self, wanted: int) -> int:
        """`wanted`, lowered so that that many of the longest row fit in CHUNK_BYTES."""
        return max(1, min(wanted, CHUNK_BYTES // max(self.longest, 1)))


def scan_csv(path: str | Path, max_row_bytes: int = MAX_ROW_BYTES) -> CsvLayout:
    """Scan a CSV file once in fixed blocks (see the module docstring). Raises InputError
    naming the file and line for a data row longer than max_row_bytes (the header's own
    limit is genre.utils.readers.read_csv_header's) or a file that cannot be read."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _Scan(path, max_row_bytes).run(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


class _Scan:
    def __init__(self, path: Path, max_row_bytes: int):
        self.path, self.max = path, max_row_bytes
        self.pos = 0  # bytes read so far
        self.lines = 0  # line breaks seen so far
        self.quotes = 0  # parity of the double quotes seen so far
        self.filled = 0  # non-blank bytes seen so far
        self.start, self.start_line, self.start_filled = 0, 1, 0  # the open row
        self.header = False
        self.rows = 0
        self.longest = 0
        self.first: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self.offset: list[np.ndarray] = [np.full(1, 2, dtype=np.int64)]
        self.last_offset = 2

    def run(self, fh) -> CsvLayout:
        while block := fh.read(_BLOCK):
            if block.endswith(b"\r"):  # is it a lone CR, or the first half of CR LF?
                block += fh.read(1)
            self._block(np.frombuffer(block, dtype=np.uint8))
        if self.pos > self.start:  # a last row without a line break
            self._rows(np.array([self.pos], dtype=np.int64),
                       np.array([self.lines + 1], dtype=np.int64),
                       np.array([self.filled], dtype=np.int64))
        return CsvLayout(self.rows, self.longest, np.concatenate(self.first),
                         np.concatenate(self.offset))

    def _block(self, b: np.ndarray) -> None:
        n = len(b)
        lf = b == 10
        cr = b == 13
        lone_cr = cr.copy()
        lone_cr[:-1] &= ~lf[1:]
        ends_line = np.flatnonzero(lf | lone_cr)
        quote_pos = np.flatnonzero(b == 34)
        parity = (self.quotes + np.searchsorted(quote_pos, ends_line)) % 2
        row_end = parity == 0
        filled = np.cumsum(~_BLANK[b], dtype=np.int64)  # non-blank bytes in b[0..i]
        end_local = ends_line[row_end]
        end_lines = self.lines + np.flatnonzero(row_end) + 1  # the line each row ends on
        filled_at_end = self.filled + np.where(end_local > 0, filled[end_local - 1], 0)
        if end_local.size:
            self._rows(self.pos + end_local, end_lines, filled_at_end)
            self.start = self.pos + int(end_local[-1]) + 1
            self.start_line = int(end_lines[-1]) + 1
            self.start_filled = self.filled + int(filled[end_local[-1]])
        self.pos += n
        self.lines += ends_line.size
        self.quotes = (self.quotes + quote_pos.size) % 2
        self.filled += int(filled[-1]) if n else 0
        if self.pos - self.start > self.max:  # the open row is too long already
            self._too_long(self.start_line)

    def _rows(self, ends: np.ndarray, end_lines: np.ndarray, filled_at_end: np.ndarray):
        """Rows ending at byte offsets `ends` (exclusive), on lines end_lines, with
        filled_at_end non-blank bytes read before their end."""
        starts = np.concatenate([[self.start], ends[:-1] + 1])
        start_lines = np.concatenate([[self.start_line], end_lines[:-1] + 1])
        # (a line break is blank, so a row starts with what the previous one ended with)
        start_filled = np.concatenate([[self.start_filled], filled_at_end[:-1]])
        length = ends - starts
        keep = filled_at_end - start_filled > 0  # not a blank line
        too_long = np.flatnonzero(length > self.max)
        if too_long.size:
            self._too_long(int(start_lines[too_long[0]]))
        length, start_lines = length[keep], start_lines[keep]
        if not self.header and length.size:  # the first non-blank row is the header
            self.header = True
            length, start_lines = length[1:], start_lines[1:]
        if not length.size:
            return
        self.longest = max(self.longest, int(length.max()))
        k = self.rows + np.arange(length.size, dtype=np.int64)
        offset = start_lines - k
        change = np.flatnonzero(np.diff(offset, prepend=self.last_offset) != 0)
        if change.size:
            self.first.append(k[change])
            self.offset.append(offset[change])
            self.last_offset = int(offset[-1])
        self.rows += length.size

    def _too_long(self, line: int):
        raise InputError(f"{self.path}: line {line}: a row longer than {self.max:,} bytes "
                         "(a data row may take at most that; is this a CSV file?)")


__all__ = ["CHUNK_BYTES", "MAX_ROW_BYTES", "CsvLayout", "scan_csv"]
