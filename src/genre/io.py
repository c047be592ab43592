"""Writing that never destroys what it did not make, and reading tables.

The output-path policy, followed by every command that writes (check_outputs,
check_model_dir, results_files; atomic_path and atomic_dir check it again as they write):

* An output never is one of the command's inputs (same path, link or hard link) nor lies
  inside an input directory, and no two outputs of one command are the same file.
* An output that is a symbolic link, a device, a FIFO or a socket is refused, never
  replaced; so is a directory where a file is meant.
* An existing regular file is replaced only with overwrite (the commands' --overwrite), by
  writing a temporary file beside it and renaming that into place.
* A model directory may be new, empty, or a model directory genre wrote: its config.json
  has format "genre-recourse/genre" and it holds nothing but regular files of the kinds a
  model is saved as (MODEL_FILE_SUFFIXES). Replacing one needs overwrite: the new model is
  written to a sibling temporary directory, the old one renamed aside, the new one renamed
  in, and only then the old one removed. The root, the home directory, the current
  directory and its parents ("." and "..") are never a model directory.
* A results directory (the benchmarks') may hold other files: only the files the command
  writes there are outputs (results_files); nothing else in it is touched.
* Missing parent directories are created, and removed again (if still empty) when the
  write fails, so a failed command leaves nothing behind.

Temporary files are removed on an exception, Ctrl-C (KeyboardInterrupt) and, once
exit_on_sigterm() is installed (the `genre` command does), SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from genre.errors import InputError, OutputError
from genre.utils.extras import require

MODEL_FORMAT = "genre-recourse/genre"  # config.json's "format", as GenRe.save writes it
# What GenRe.save writes: config.json, tensors, h's architecture, a user's classifier file.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".skops", ".onnx")
_CONFIG_LIMIT = 64 << 20  # a config.json beyond this is not one genre wrote

PathLike = str | os.PathLike


def _same(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (following links), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: PathLike, directory: PathLike) -> bool:
    """Whether `path` lies strictly inside `directory` (both resolved)."""
    p, d = os.path.realpath(path), os.path.realpath(directory)
    return p != d and os.path.commonpath([p, d]) == d


def _present(paths: Iterable[PathLike | None]) -> list[Path]:
    return [Path(p) for p in paths if p is not None and os.path.lexists(p)]


def _check_not_input(out: Path, inputs: list[Path]) -> None:
    for inp in inputs:
        if _same(out, inp):
            raise OutputError(f"{out}: is the input {inp}; refusing to write over an input "
                              "(choose another output path)")
        if inp.is_dir() and _inside(out, inp):
            raise OutputError(f"{out}: lies inside the input directory {inp}; choose another "
                              "output path")


def _check_parent(out: Path) -> None:
    """The nearest existing ancestor of `out` must be a directory this process can write."""
    here = Path(os.path.abspath(out)).parent
    while not os.path.lexists(here):
        here = here.parent
    if not here.is_dir():
        raise OutputError(f"{out}: cannot be created: {here} is not a directory")
    if not os.access(here, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot write into {here} (permission denied)")


def _check_file(out: Path, overwrite: bool) -> None:
    """Refuse a link, directory or special file at `out`; an existing file needs overwrite."""
    try:
        mode = os.lstat(out).st_mode
    except OSError:  # missing (or a parent is not a directory: _check_parent says so)
        return
    if stat.S_ISLNK(mode):
        raise OutputError(f"{out}: is a symbolic link; links are never replaced (give the "
                          "file's real path or another path)")
    if stat.S_ISDIR(mode):
        raise OutputError(f"{out}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{out}: is a device, FIFO or socket, not a regular file; it is "
                          "never written to or replaced")
    if not overwrite:
        raise OutputError(f"{out}: already exists; add --overwrite to replace it")


def check_outputs(outputs: Iterable[PathLike | None], inputs: Iterable[PathLike | None] = (),
                  overwrite: bool = False) -> None:
    """Refuse output files that the policy (module docstring) forbids: raise OutputError
    naming the path and why. None entries (an option not given) are skipped.

    Call it before any work, so a refused command has done and written nothing.
    """
    ins = _present(inputs)
    seen: list[Path] = []
    for out in (Path(o) for o in outputs if o is not None):
        _check_not_input(out, ins)
        for other in seen:
            if _same(out, other):
                raise OutputError(f"{out}: given twice as an output (also as {other}); each "
                                  "output needs its own path")
        seen.append(out)
    for out in seen:
        _check_file(out, overwrite)
        _check_parent(out)


def results_files(directory: PathLike, names: Iterable[str]) -> list[Path]:
    """The files a command writes into a results directory, to pass to check_outputs.

    The directory may be new or hold other files, which are never touched; it must not be
    something other than a directory.
    """
    directory = Path(directory)
    if os.path.lexists(directory) and not directory.is_dir():
        raise OutputError(f"{directory}: is not a directory")
    return [directory / name for name in names]


def _never_a_model_dir(path: Path) -> str | None:
    real = os.path.realpath(path)
    if real == os.path.realpath(os.sep):
        return "is the root directory"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "is your home directory"
    cwd = os.path.realpath(os.getcwd())
    if real == cwd:
        return "is the current directory"
    if _inside(cwd, real):
        return "is a parent of the current directory"
    return None


def _not_genre_model(path: Path) -> str | None:
    """Why the existing, non-empty directory `path` is not a model directory genre wrote."""
    config = path / "config.json"
    try:
        if not stat.S_ISREG(os.lstat(config).st_mode) or config.stat().st_size > _CONFIG_LIMIT:
            raise ValueError
        fmt = json.loads(config.read_bytes()).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != MODEL_FORMAT:
        return f"is not a model directory genre wrote (no config.json of format {MODEL_FORMAT!r})"
    with os.scandir(path) as entries:
        foreign = sorted(e.name for e in entries if not e.is_file(follow_symlinks=False)
                         or not e.name.endswith(MODEL_FILE_SUFFIXES))
    return f"holds {foreign[0]}, which genre did not write" if foreign else None


def check_model_dir(path: PathLike, inputs: Iterable[PathLike | None] = (),
                    overwrite: bool = False) -> None:
    """Refuse a model directory the policy (module docstring) forbids: raise OutputError
    naming the path and why. New and empty directories are fine; a model directory genre
    wrote needs overwrite; anything else is refused."""
    path = Path(path)
    ins = _present(inputs)
    _check_not_input(path, ins)
    why = _never_a_model_dir(path)
    if why:
        raise OutputError(f"{path}: {why}, never a model directory; choose a new directory")
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = None
    if mode is not None:
        if stat.S_ISLNK(mode):
            raise OutputError(f"{path}: is a symbolic link; links are never replaced (give "
                              "the directory's real path or a new one)")
        if not stat.S_ISDIR(mode):
            raise OutputError(f"{path}: is a file, not a model directory; choose a new "
                              "directory")
        with os.scandir(path) as entries:
            empty = next(entries, None) is None
        if not empty:
            why = _not_genre_model(path)
            if why:
                raise OutputError(f"{path}: {why}; choose a new or empty directory")
            if not overwrite:
                raise OutputError(f"{path}: a model already exists there; add --overwrite "
                                  "to replace it")
            for inp in ins:
                if _inside(inp, path):
                    raise OutputError(f"{path}: holds the input {inp}; replacing the model "
                                      "would delete it (choose another directory)")
    _check_parent(path)


def _make_parents(directory: Path) -> list[Path]:
    """Create the missing directories up to `directory`; return them, deepest first."""
    missing = []
    here = Path(os.path.abspath(directory))
    while not os.path.lexists(here):
        missing.append(here)
        here = here.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return missing


def _remove_empty(created: list[Path]) -> None:
    for d in created:  # deepest first; a directory that got contents stays
        try:
            os.rmdir(d)
        except OSError:
            break


def _normal_rights(path: str | Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp make 0600/0700; outputs get the rights the umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place only on success.

    The policy is checked on entry and again before the rename: a link, directory or
    special file at `path` is refused (OutputError), an existing file only replaced with
    overwrite. Missing parent directories are created, and removed again on failure.
    """
    path = Path(path)
    check_outputs([path], overwrite=overwrite)
    created = _make_parents(path.parent)
    done, tmp = False, None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        _normal_rights(tmp)
        yield Path(tmp)
        _check_file(path, overwrite)  # nothing was put there meanwhile
        os.replace(tmp, path)
        done = True
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if not done:
            _remove_empty(created)


@contextlib.contextmanager
def atomic_dir(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new empty directory beside `path`; on success it becomes `path`.

    check_model_dir is applied on entry and again before the swap. An existing model
    directory (overwrite) is renamed aside, the new one renamed in, and only then the old one
    removed; on failure the old one is put back. On any exception (Ctrl-C, SIGTERM with
    exit_on_sigterm) the temporary directory and any parent directories made are removed.
    """
    path = Path(path)
    check_model_dir(path, overwrite=overwrite)
    created = _make_parents(path.parent)
    done, tmp = False, None
    try:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        _normal_rights(tmp, directory=True)
        yield Path(tmp)
        check_model_dir(path, overwrite=overwrite)
        if os.path.lexists(path):  # empty, or a model directory genre wrote
            aside = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
            os.rename(path, aside)  # onto the empty directory mkdtemp made
            try:
                os.rename(tmp, path)
            except OSError:
                os.rename(aside, path)
                raise
            shutil.rmtree(aside)
        else:
            os.rename(tmp, path)
        done = True
    finally:
        if tmp is not None and not done:
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_empty(created)


def write_text(path: PathLike, text: str, overwrite: bool = True) -> None:
    """Write `text` to `path` through atomic_path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


MAX_COLUMNS = 10_000  # columns a table may have; more is refused before reading rows
MAX_HEADER_BYTES = 1 << 20  # bytes a CSV header row may take
def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so `finally` blocks run and
    atomic_path/atomic_dir remove their temporary files, as they do on Ctrl-C."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def read_table(path: str | Path):
    """Read a CSV (or Parquet) file for recourse; rows are labelled by their line number.

    Raises InputError for a missing or empty file, a header over MAX_COLUMNS columns or
    MAX_HEADER_BYTES bytes, duplicate column names, a Parquet column of a type no feature can
    hold (dates, durations, nested, binary: see `check_parquet_types`), or a file that does
    not parse, naming the file.
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
