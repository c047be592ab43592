"""The lab's commands: bundled datasets, the paper's metrics, the demo, the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genre.cli.common import Device, console, fail
from genre.data import DATASETS, load
from genre.errors import GenreError
from genre.io import check_outputs, write_text
from genre.tables.decision import accepts
from genre.tables.explain import changes, format_value
from genre.utils.limits import check_int, check_seed
from genre.utils.methods import METHOD_NAMES

GENRES = {"genre": "autoregressive", "genre-student": "student"}  # GenRe and its sampler


def register(app: typer.Typer) -> None:
    """Add datasets, evaluate, demo, benchmark and benchmark-speed to `app`."""
    from genre.bench.benchmark import benchmark_command
    from genre.bench.speed import speed_command

    app.command()(datasets)
    app.command()(evaluate)
    app.command()(demo)
    app.command("benchmark")(benchmark_command)
    app.command("benchmark-speed")(speed_command)


def datasets() -> None:
    """List the bundled datasets with their sizes and feature counts."""

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
    for col in ("method", "Cost", "Val", "Val(h)", "LOF", "Score", "found", "imm.viol",
                "mono.viol", "fit s", "ms/indiv"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        v = r["violations"]
        table.add_row(name, f"{r['cost']:.3f}", f"{r['val']:.3f}", f"{r['val_h']:.3f}",
                      f"{r['lof']:.3f}", f"{r['score']:.3f}", f"{r['found']}/{r['n']}",
                      str(v["immutable"]), str(v["monotone"]),
                      f"{r.get('fit_seconds', 0.0):.1f}",
                      f"{1000 * r['seconds'] / max(r['n'], 1):.2f}")
    return table


def evaluate(
    dataset: Annotated[str, typer.Option(help="bundled dataset name")],
    method: Annotated[str, typer.Option(
        help=f"recourse method: one of {', '.join(METHOD_NAMES)}")] = "nnr",
    n: Annotated[int, typer.Option(help="number of rejected test individuals")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    model: Annotated[Path | None, typer.Option(help="a fitted GenRe model directory")] = None,
    monotone: Annotated[bool, typer.Option(help="enforce the dataset's monotone facts")] = False,
    fast: Annotated[bool, typer.Option(help="GenRe: the fast demo preset")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write figures as JSON")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the --json file if it exists")]
    = False,
    device: Device = "cpu",
) -> None:
    """Evaluate a method under the paper's protocol: Cost, Val, LOF, Score, violations, time.

    For --method genre without --model, GenRe is fitted first with the dataset's defaults.
    """
    from genre.baselines import make_method
    from genre.bench.evaluation import run_method
    from genre.bench.protocol import build_protocol
    from genre.core.presets import genre_for

    try:
        check_seed(seed, "--seed")
        check_int(n, "--n", 1, 10_000_000)
        check_outputs([json_path], inputs=[model], overwrite=overwrite)
        with console.status(f"protocol for {dataset} (seed {seed})"):
            protocol = build_protocol(dataset, seed)
        fitted = model is not None
        if device != "cpu" and method not in GENRES:
            raise GenreError("--device applies to --method genre only (and genre-student)")
        if fitted:
            if method not in GENRES:
                raise GenreError("--model applies to --method genre only (and genre-student)")
            from genre.core.estimator import GenRe

            method_obj = GenRe.load(model).set_params(device=device, sampler=GENRES[method])
        elif method in GENRES:
            method_obj = genre_for(dataset, fast=fast, seed=seed, device=device,
                                   sampler=GENRES[method])
        else:
            method_obj = make_method(method)
        console.print(f"{method}: fit and generate for {n} individuals")
        report, _, fit_seconds = run_method(method_obj, protocol, n, monotone=monotone,
                                            fitted=fitted)
    except GenreError as exc:
        fail(exc)
    figures = report.to_dict() | {"fit_seconds": fit_seconds, "method": method,
                                  "dataset": dataset, "seed": seed, "monotone": monotone}
    console.print(report_table({method: figures}, f"{dataset}, {report.n} individuals"))
    if json_path is not None:
        try:
            write_text(json_path, json.dumps(figures, indent=2) + "\n", overwrite=overwrite)
        except GenreError as exc:
            fail(exc)
        except OSError as exc:
            fail(f"cannot write {json_path}: {exc.strerror or exc}")
        console.print(f"wrote {json_path}")


def demo(
    dataset: Annotated[str, typer.Option(help="bundled dataset")] = "compas",
    n: Annotated[int, typer.Option(help="individuals for the metrics table")] = 200,
) -> None:
    """The main job end to end: protocol, fit GenRe (fast preset), recourse, metrics vs NNR.

    The demo enforces the dataset's monotone facts (nobody is told to get younger).
    """
    import numpy as np

    from genre.baselines import make_method
    from genre.bench.evaluation import run_method
    from genre.bench.protocol import build_protocol
    from genre.core.presets import genre_for

    console.rule(f"GenRe demo on {dataset}")
    with console.status("protocol: gold model, re-drawn labels, classifier h (cached)"):
        protocol = build_protocol(dataset, 0)
    console.print(f"h test accuracy {protocol.h_accuracy():.1%}; "
                  f"{len(protocol.rejected_test)} rejected test individuals")
    rows = {}
    genre_model = genre_for(dataset, fast=True, sampler="autoregressive")  # the paper's
    for name, method in (("genre", genre_model), ("nnr", make_method("nnr"))):
        console.print(f"fitting {name} ...")
        report, X_plus, fit_s = run_method(method, protocol, n, monotone=True)
        rows[name] = report.to_dict() | {"fit_seconds": fit_s}
        if name == "genre":
            X, shown = protocol.individuals(n), X_plus
    # What h accepts is what counts as recourse: a sample h rejects is shown as none found.
    ok = accepts(genre_model.classifier_.predict_proba(np.nan_to_num(shown)))
    ok &= ~np.isnan(shown).any(axis=1)
    console.print(f"GenRe: h accepts the recourse of {int(ok.sum())} of {len(ok)} rejected "
                  f"individuals; {len(ok) - int(ok.sum())} have none h accepts (the table's "
                  "'found' column counts every answer returned)")
    shown = np.where(ok[:, None], shown, np.nan)
    table = Table(title="recourse for 5 rejected individuals (original units)")
    for col in ("person", "feature", "before", "after"):
        table.add_column(col)
    for row in changes(protocol.encoder, X[:5], shown[:5]).to_dict("records"):
        table.add_row(str(row["person"]), row["feature"], format_value(row["from"]),
                      format_value(row["to"]))
    console.print(table)
    console.print(report_table(rows, f"{dataset}: {n} rejected test individuals"))
