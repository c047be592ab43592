"""The `genre` command: one module per command group (run `genre --help`)."""

from __future__ import annotations

import sys

import typer

from genre.cli import fit as _fit
from genre.cli import lab as _lab
from genre.cli import recourse as _recourse
from genre.cli import schema as _schema
from genre.cli import serve as _serve

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Generative algorithmic recourse (GenRe) and its baselines.")
app.command()(_fit.fit)
app.command()(_recourse.recourse)
app.add_typer(_schema.schema_app, name="schema")
app.command()(_serve.serve)
_lab.register(app)


def main() -> None:  # pragma: no cover - console-script entry
    from genre.io import exit_on_sigterm

    exit_on_sigterm()  # temporary files go on SIGTERM as on Ctrl-C
    sys.exit(app())
