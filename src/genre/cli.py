"""Command-line interface: `genre --help`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genre.errors import GenreError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Generative algorithmic recourse (GenRe) and its baselines.")
console = Console()
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def datasets() -> None:
    """List the bundled datasets with their sizes and feature counts."""
    from genre.data import DATASETS, load

    table = Table(title="bundled datasets")
    for col in ("name", "train rows", "test rows", "features", "categorical", "immutable",
                "target"):
        table.add_column(col)
    for name in DATASETS:
        d = load(name)
        s = d.schema
        table.add_row(name, f"{len(d.train):,}", f"{len(d.test):,}", str(s.n_features),
                      str(sum(f.is_categorical for f in s.features)),
                      ", ".join(f.name for f in s.features if f.immutable) or "-", s.target)
    console.print(table)


def report_table(rows: dict[str, dict], title: str) -> Table:
    """A rich table of metric reports, one row per method."""
    table = Table(title=title)
    for col in ("method", "Cost", "Val", "Val(h)", "LOF", "Score", "found", "violations",
                "fit s", "ms/indiv"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        v = r["violations"]
        table.add_row(name, f"{r['cost']:.3f}", f"{r['val']:.3f}", f"{r['val_h']:.3f}",
                      f"{r['lof']:.3f}", f"{r['score']:.3f}", f"{r['found']}/{r['n']}",
                      f"imm {v['immutable']} mono {v['monotone']}",
                      f"{r.get('fit_seconds', 0.0):.1f}",
                      f"{1000 * r['seconds'] / max(r['n'], 1):.2f}")
    return table


@app.command()
def evaluate(
    dataset: Annotated[str, typer.Option(help="bundled dataset name")],
    method: Annotated[str, typer.Option(help="recourse method, e.g. nnr or genre")] = "nnr",
    n: Annotated[int, typer.Option(help="number of rejected test individuals")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    monotone: Annotated[bool, typer.Option(help="enforce the dataset's monotone facts")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write figures as JSON")] = None,
) -> None:
    """Evaluate a method under the paper's protocol: Cost, Val, LOF, Score, violations, time."""
    from genre.evaluation import run_method
    from genre.io import write_text
    from genre.methods import make_method
    from genre.protocol import build_protocol

    try:
        method_obj = make_method(method)
        with console.status(f"protocol for {dataset} (seed {seed})"):
            protocol = build_protocol(dataset, seed)
        with console.status(f"{method}: fit and generate for {n} individuals"):
            report, _, fit_seconds = run_method(method_obj, protocol, n, monotone=monotone)
    except GenreError as exc:
        _fail(exc)
    figures = report.to_dict() | {"fit_seconds": fit_seconds, "method": method,
                                  "dataset": dataset, "seed": seed, "monotone": monotone}
    console.print(report_table({method: figures}, f"{dataset}, {report.n} individuals"))
    if json_path is not None:
        write_text(json_path, json.dumps(figures, indent=2) + "\n")
        console.print(f"wrote {json_path}")


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())
