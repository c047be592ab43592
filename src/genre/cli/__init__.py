"""The `genre` command: one module per command group (run `genre --help`).

Start-up stays light: command modules import torch, scikit-learn and pandas inside the
commands, so `genre --help`, `genre --version` and `genre schema check` load neither torch
nor scikit-learn.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Annotated

import typer

from genre import __version__
from genre.cli import cache as _cache
from genre.cli import fit as _fit
from genre.cli import info as _info
from genre.cli import lab as _lab
from genre.cli import recourse as _recourse
from genre.cli import schema as _schema
from genre.cli import serve as _serve
from genre.io import exit_on_sigterm

# rich_markup_mode=None: plain click help, which shows no type for flags (rich's showed
# `--help <bool>`) and does not import rich's markdown machinery for --help.
app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  help="Generative algorithmic recourse (GenRe) and its baselines.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genre-recourse {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Generative algorithmic recourse (GenRe) and its baselines."""


app.command()(_fit.fit)
app.command()(_recourse.recourse)
app.command()(_info.info)
app.add_typer(_schema.schema_app, name="schema")
app.command()(_serve.serve)
app.add_typer(_cache.cache_app, name="cache")
_lab.register(app)


def main() -> None:  # pragma: no cover - console-script entry (`genre`, `python -m genre`)
    exit_on_sigterm()  # temporary files go on SIGTERM as on Ctrl-C
    atexit.register(skip_final_collections)  # at exit only: a caller that goes on is unaffected
    sys.exit(app(prog_name="genre"))


def skip_final_collections() -> None:
    """At the interpreter's exit, freeze every object still alive (`gc.freeze`), so that
    its shutdown does not walk them in its garbage collections.

    Registered with atexit by `main`, it runs once the command has ended (its files written,
    closed and renamed, or their temporary files removed) and after the exit handlers
    registered later (Ray's shutdown, say); the flushing of stdout and stderr still follows,
    and objects are still released as their modules are torn down. What is skipped is the
    search for reference cycles among the hundreds of thousands of objects torch and pandas
    create on import: up to 0.25 s of CPU at the end of a cold `genre recourse`
    (benchmarks/results/serve/cold_start.md). A process that calls `main` and carries on
    (catching SystemExit) collects as usual until it exits.
    """
    gc.freeze()
