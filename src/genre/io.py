"""Writing that never destroys what it did not make (reading tables: genre.utils.readers,
re-exported here).

The output-path policy, followed by every command that writes (check_outputs,
check_model_dir, results_files; atomic_path and atomic_dir check it again as they write):

* An output never is one of the command's inputs (same path, link or hard link) nor lies
  inside an input directory, and no two outputs of one command are the same file.
* An output that is a symbolic link, a device, a FIFO or a socket is refused, never
  replaced; so is a directory where a file is meant.
* An existing regular file is replaced only with overwrite (the commands' --overwrite), by
  writing a temporary file beside it and renaming that into place.
* A model directory may be new, empty, or a model directory genre wrote: its config.json
  has format "genre-recourse/genre" and every entry in it is a regular file its
  manifest.json lists (or, for a model saved before manifests, one of the files GenRe.save
  writes: MODEL_FILES); anything else there (a user's notes, a backup) is named and the
  directory refused, with or without overwrite. Replacing one needs overwrite: the new model is
  written to a sibling temporary directory, the old one renamed aside, the new one renamed
  in, and only then the old one removed. The root, the home directory, the current
  directory and its parents ("." and "..") are never a model directory.
* A results directory (the benchmarks') may hold other files: only the files the command
  writes there are outputs (results_files); nothing else in it is touched.
* Missing parent directories are created, and removed again (if still empty) when the
  write fails, so a failed command leaves nothing behind. A name longer than NAME_MAX
  bytes or a path longer than PATH_MAX is refused before anything is made.
* Temporary names ('.NAME.genre-PID-XXXXXXXX.tmp', NAME cut to fit) always fit in NAME_MAX
  bytes; those a killed run left behind (its PID no longer running) are removed by the next
  run writing to the same place (clean_leftovers).

Temporary files are removed on an exception, Ctrl-C (KeyboardInterrupt) and, once
exit_on_sigterm() is installed (the `genre` command does), SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from genre.errors import OutputError
from genre.utils.readers import (  # noqa: F401 - genre.io's table readers, re-exported
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    check_parquet_types,
    csv_line_index,
    read_csv_header,
    read_table,
)

MODEL_FORMAT = "genre-recourse/genre"  # config.json's "format", as GenRe.save writes it
# What GenRe.save writes: config.json, tensors, h's architecture, a user's classifier file,
# the manifest. A model directory with a manifest may hold only what it lists (and itself).
MODEL_FILES = frozenset({"config.json", "model.safetensors", "manifest.json", "h.json",
                         "h.safetensors", "h_trees.json", "h_trees.safetensors", "h.skops",
                         "classifier.skops", "classifier.onnx"})
_CONFIG_LIMIT = 64 << 20  # a config.json beyond this is not one genre wrote
NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)
PATH_MAX = 4095  # bytes in a whole path (Linux)
TEMP_MARK = ".genre-"  # in the names of genre's temporary files: .NAME.genre-PID-XXXXXXXX.tmp

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


def shown(path: PathLike, limit: int = 120) -> str:
    """A path for a message: shortened in the middle when longer than `limit`."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _check_name(out: Path) -> None:
    """Refuse a path the file system cannot hold: a name over NAME_MAX bytes or a whole
    path over PATH_MAX bytes (before anything is made, so nothing is left behind)."""
    full = os.fsencode(os.path.abspath(out))
    if len(full) > PATH_MAX:
        raise OutputError(f"{shown(out)}: the path is {len(full):,} bytes long; at most "
                          f"{PATH_MAX:,} are allowed")
    for part in Path(os.path.abspath(out)).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise OutputError(f"{shown(out)}: the name {shown(part, 40)!r} is "
                              f"{len(os.fsencode(part))} bytes long; a file name may take at "
                              f"most {NAME_MAX}")


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
        _check_name(out)
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
    listed = _manifest_files(path)
    if isinstance(listed, str):
        return listed
    allowed = MODEL_FILES if listed is None else listed | {"manifest.json"}
    with os.scandir(path) as entries:
        foreign = sorted(e.name for e in entries if not e.is_file(follow_symlinks=False)
                         or e.name not in allowed)
    if not foreign:
        return None
    names = ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else "")
    return (f"holds {names}, which genre did not write (not listed in its "
            f"{'manifest.json' if listed is not None else 'files'}); move "
            f"{'it' if len(foreign) == 1 else 'them'} out first")


def _manifest_files(path: Path) -> set[str] | str | None:
    """The file names path/manifest.json lists; None without a manifest (a model saved by
    an older genre); a reason (str) when there is one but it cannot be read."""
    manifest = path / "manifest.json"
    if not os.path.lexists(manifest):
        return None
    try:
        if not stat.S_ISREG(os.lstat(manifest).st_mode) or \
                manifest.stat().st_size > _CONFIG_LIMIT:
            raise ValueError
        files = json.loads(manifest.read_bytes()).get("files")
        if not isinstance(files, dict) or not all(isinstance(n, str) for n in files):
            raise ValueError
    except (OSError, ValueError, AttributeError, RecursionError):
        return "has a manifest.json genre cannot read, so what genre wrote there is unknown"
    return set(files)


def check_model_dir(path: PathLike, inputs: Iterable[PathLike | None] = (),
                    overwrite: bool = False) -> None:
    """Refuse a model directory the policy (module docstring) forbids: raise OutputError
    naming the path and why. New and empty directories are fine; a model directory genre
    wrote needs overwrite; anything else is refused."""
    path = Path(path)
    ins = _present(inputs)
    _check_not_input(path, ins)
    _check_name(path)
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
            for inp in ins:
                if _inside(inp, path):
                    raise OutputError(f"{path}: holds the input {inp}; replacing the model "
                                      "would delete it (choose another directory)")
            why = _not_genre_model(path)
            if why:
                raise OutputError(f"{path}: {why}; choose a new or empty directory")
            if not overwrite:
                raise OutputError(f"{path}: a model already exists there; add --overwrite "
                                  "to replace it")
    _check_parent(path)


def _make_parents(directory: Path) -> list[Path]:
    """Create the missing directories up to `directory`; return them, deepest first."""
    missing = []
    here = Path(os.path.abspath(directory))
    while not os.path.lexists(here):
        missing.append(here)
        here = here.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            made.insert(0, d)
    except BaseException:
        _remove_empty(made)
        raise
    return missing


def _temp_prefix(path: Path) -> str:
    """The start of a temporary name beside `path`: '.NAME.genre-PID-' (NAME cut so that
    the whole name, with mkstemp's 8 random characters and '.tmp', fits in NAME_MAX bytes)."""
    tail = f"{TEMP_MARK}{os.getpid()}-"
    room = NAME_MAX - 1 - 1 - len(tail) - 8 - len(".tmp")
    name = os.fsencode(path.name)[:room].decode("utf-8", "ignore")
    return f".{name}{tail}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or not a pid): leave its files alone
    return True


def clean_leftovers(path: PathLike) -> list[Path]:
    """Remove what a killed genre run left beside `path`: its temporary files and
    directories ('.NAME.genre-PID-XXXXXXXX.tmp'), whose process PID is no longer running. A
    model directory set aside ('...old') while being replaced is put back when `path` is
    missing, else removed. Returns what was removed or put back."""


    path = Path(path)
    prefix = _temp_prefix(path)
    pattern = re.compile(re.escape(prefix[:prefix.rindex(TEMP_MARK) + len(TEMP_MARK)])
                         + r"(\d+)-[a-z0-9_]{8}\.(tmp|old)")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    done = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or _alive(int(match.group(1))):
            continue
        stale = Path(entry.path)
        with contextlib.suppress(OSError):
            if match.group(2) == "old" and not os.path.lexists(path):
                os.rename(stale, path)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(stale)
            else:
                os.unlink(stale)
            done.append(stale)
    return done


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
    clean_leftovers(path)
    created = _make_parents(path.parent)
    done, tmp = False, None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
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
    clean_leftovers(path)  # first: a killed run may have left the old model aside
    check_model_dir(path, overwrite=overwrite)
    created = _make_parents(path.parent)
    done, tmp = False, None
    try:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
        _normal_rights(tmp, directory=True)
        yield Path(tmp)
        check_model_dir(path, overwrite=overwrite)
        if os.path.lexists(path):  # empty, or a model directory genre wrote
            aside = tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".old")
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


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so `finally` blocks run and
    atomic_path/atomic_dir remove their temporary files, as they do on Ctrl-C."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
