"""What every command shares: the consoles and the one way to fail on bad input."""

from __future__ import annotations

import sys
import warnings
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from genre.errors import GenreWarning

# Tables need ~100 columns; when output is not a terminal (a log, CI) rich would assume 80.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


# --device on the commands that fit or sample GenRe.
Device = Annotated[str, typer.Option(
    help="GenRe's torch device: cpu, cuda, or auto (cuda when torch sees a GPU)")]


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters written as escapes (\\n,
    \\x1b), so that a file name or value holding them cannot split a message in two (or
    forge a second `error:` line)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def fail(exc: Exception | str) -> NoReturn:
    """Print one line `error: ...` on stderr and exit 2 (bad input, never a traceback)."""
    err.print(f"[bold red]error:[/] {escape(one_line(str(exc)))}", soft_wrap=True,
              highlight=False)
    raise typer.Exit(code=2)


def parse_label(value: str | None):
    """A label given on the command line: an integer when it looks like one."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """GenreWarnings as one `warning: ...` line on stderr; others as Python prints them."""
    if issubclass(category, GenreWarning):
        err.print(f"[bold yellow]warning:[/] {escape(one_line(str(message)))}", soft_wrap=True,
                  highlight=False)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning
warnings.showwarning = show_warning
