"""Command-line interface: `genre --help`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genre.errors import GenreError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Generative algorithmic recourse (GenRe) and its baselines.")
# Tables need ~100 columns; when output is not a terminal (a log, CI) rich would assume 80.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
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


def _load_genre(model_dir: Path):
    from genre.estimator import GenRe

    return GenRe.load(model_dir)


@app.command()
def evaluate(
    dataset: Annotated[str, typer.Option(help="bundled dataset name")],
    method: Annotated[str, typer.Option(help="recourse method, e.g. nnr or genre")] = "nnr",
    n: Annotated[int, typer.Option(help="number of rejected test individuals")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    model: Annotated[Path | None, typer.Option(help="a fitted GenRe model directory")] = None,
    monotone: Annotated[bool, typer.Option(help="enforce the dataset's monotone facts")] = False,
    fast: Annotated[bool, typer.Option(help="GenRe: the fast demo preset")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write figures as JSON")] = None,
) -> None:
    """Evaluate a method under the paper's protocol: Cost, Val, LOF, Score, violations, time.

    For --method genre without --model, GenRe is fitted first with the dataset's defaults.
    """
    from genre.baselines import make_method
    from genre.bench.evaluation import run_method
    from genre.bench.protocol import build_protocol
    from genre.estimator import genre_for
    from genre.io import write_text

    try:
        with console.status(f"protocol for {dataset} (seed {seed})"):
            protocol = build_protocol(dataset, seed)
        fitted = model is not None
        if fitted:
            if method != "genre":
                raise GenreError("--model applies to --method genre only")
            method_obj = _load_genre(model)
        elif method == "genre":
            method_obj = genre_for(dataset, fast=fast, seed=seed)
        else:
            method_obj = make_method(method)
        console.print(f"{method}: fit and generate for {n} individuals")
        report, _, fit_seconds = run_method(method_obj, protocol, n, monotone=monotone,
                                            fitted=fitted)
    except GenreError as exc:
        _fail(exc)
    figures = report.to_dict() | {"fit_seconds": fit_seconds, "method": method,
                                  "dataset": dataset, "seed": seed, "monotone": monotone}
    console.print(report_table({method: figures}, f"{dataset}, {report.n} individuals"))
    if json_path is not None:
        write_text(json_path, json.dumps(figures, indent=2) + "\n")
        console.print(f"wrote {json_path}")


@app.command()
def fit(
    out: Annotated[Path, typer.Option(help="directory to write the model to")],
    dataset: Annotated[str | None, typer.Option(help="a bundled dataset name")] = None,
    data: Annotated[Path | None, typer.Option(help="your own training CSV/Parquet")] = None,
    schema: Annotated[Path | None, typer.Option(help="YAML schema for --data")] = None,
    classifier: Annotated[Path | None, typer.Option(
        help="your classifier on original units (.skops or .onnx); default: train the "
        "protocol's MLP h on --data")] = None,
    seed: Annotated[int, typer.Option(help="protocol and training seed")] = 0,
    monotone: Annotated[bool, typer.Option(
        help="bundled data: enforce the dataset's monotone facts (your schema's monotone "
        "keys are always enforced)")] = False,
    fast: Annotated[bool, typer.Option(help="the fast demo preset (smaller budget)")] = False,
) -> None:
    """Fit GenRe and save it to --out: on a bundled dataset (--dataset, with the protocol's
    classifier h) or on your own table (--data with --schema, optionally --classifier)."""
    import time

    from genre.estimator import genre_for

    try:
        if (dataset is None) == (data is None):
            raise GenreError("give either --dataset NAME or --data FILE --schema FILE")
        t0 = time.perf_counter()
        if dataset is not None:
            from genre.bench.protocol import build_protocol

            if schema is not None or classifier is not None:
                raise GenreError("--schema and --classifier go with --data, not --dataset")
            with console.status(f"protocol for {dataset} (seed {seed})"):
                task = build_protocol(dataset, seed).task(monotone=monotone)
            name = dataset
        else:
            from genre.io import read_table
            from genre.userdata import build_user_task, load_schema

            if schema is None:
                raise GenreError("--data needs --schema (write one with `genre schema infer`)")
            user_schema = load_schema(schema)
            table = read_table(data)
            with console.status("checking the data" + ("" if classifier else
                                                       " and training the classifier h")):
                task = build_user_task(table, user_schema, classifier, seed=seed)
            name = str(data)
        t1 = time.perf_counter()
        model = genre_for(dataset or "", fast=fast, seed=seed).fit(task)
        if classifier is not None:
            model.classifier_path_ = classifier
        seconds = time.perf_counter() - t1
        _save_atomically(model, out)
    except GenreError as exc:
        _fail(exc)
    log = model.log_
    console.print(f"fitted GenRe on {name} in {seconds:.1f} s (data and h: {t1 - t0:.1f} s): "
                  f"{log.epochs} epochs, best validation loss {log.best_val_loss:.3f} at epoch "
                  f"{log.best_epoch}, {log.n_train_pairs:,} training sources; saved to {out}")


schema_app = typer.Typer(help="Write and check schema files.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("infer")
def schema_infer(
    data: Annotated[Path, typer.Argument(help="your table (CSV or Parquet)")],
    target: Annotated[str, typer.Option(help="the label column")],
    out: Annotated[Path, typer.Option(help="YAML file to write")],
    favourable: Annotated[str | None, typer.Option(help="the favourable label")] = None,
) -> None:
    """Write a starting schema for --data; edit it (immutable, monotone, bounds) before fit."""
    from genre.io import read_table
    from genre.userdata import infer_schema, save_schema

    try:
        table = read_table(data)
        inferred = infer_schema(table, target, _parse_label(favourable))
        save_schema(inferred, out)
    except GenreError as exc:
        _fail(exc)
    for note in inferred.extra.get("notes", []):
        console.print(f"note: {escape(note)}")
    console.print(f"wrote {out}: {inferred.n_features} features; review it, then "
                  f"`genre fit --data {data} --schema {out} --out MODEL_DIR`")


@schema_app.command("check")
def schema_check(
    schema: Annotated[Path, typer.Argument(help="the YAML schema")],
    data: Annotated[Path | None, typer.Option(help="also check this table against it")] = None,
) -> None:
    """Validate a schema file (and optionally a table against it)."""
    from genre.data import Encoder
    from genre.io import read_table
    from genre.userdata import load_schema

    try:
        loaded = load_schema(schema)
        if data is not None:
            table = read_table(data)
            enc = Encoder(loaded).fit(table)
            enc.transform(table, source=str(data))
    except GenreError as exc:
        _fail(exc)
    console.print(f"{schema}: OK ({loaded.n_features} features, target '{loaded.target}')")


def _parse_label(value: str | None):
    """A label given on the command line: an integer when it looks like one."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _save_atomically(model, out: Path) -> None:
    """Save into a sibling temp dir and rename, so a failure leaves no half model."""
    import shutil
    import tempfile

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@app.command()
def recourse(
    model: Annotated[Path, typer.Option(help="a fitted GenRe model directory")],
    input: Annotated[Path, typer.Option("--input", help="CSV of people, original units")],
    output: Annotated[Path, typer.Option(help="CSV to write the recourse profiles to")],
    options: Annotated[int, typer.Option(help="up to K distinct recourses per person")] = 1,
    changes_path: Annotated[Path | None, typer.Option(
        "--changes", help="also write the changes only, long format: person, option, "
        "feature, from, to")] = None,
    best_k: Annotated[int | None, typer.Option(help="samples per person (default: model's)")]
    = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    show: Annotated[int, typer.Option(help="people whose changes are printed")] = 10,
    chunk_size: Annotated[int, typer.Option(help="rows read and answered at a time "
                                            "(memory stays flat as the file grows)")] = 50_000,
) -> None:
    """Recourse for each person in --input, in original units.

    With --options 1 (default) each person gets the sample h scores highest (GenRe's rule);
    with --options K, up to K distinct accepted profiles ranked by cost. Every row carries
    h's probability, the L1 cost in normalised units and a plausibility flag (LOF inlier
    among the training data's favourable rows). People h already accepts come back
    unchanged with status 'already accepted'.
    """
    from genre.streaming import stream_recourse

    if options < 1:
        _fail(GenreError("--options must be at least 1"))
    try:
        genre_model = _load_genre(model)
        summary = stream_recourse(genre_model, input, output, options=options, best_k=best_k,
                                  seed=seed, changes_path=changes_path, progress=True,
                                  show=show, chunk_size=chunk_size)
    except GenreError as exc:
        _fail(exc)
    _print_changes(summary["preview"], show)
    console.print(f"wrote {output}: {summary['people']} people; {summary['recourse']} with "
                  f"recourse, {summary['none found']} without, {summary['already accepted']} "
                  "already accepted (returned unchanged)"
                  + (f"; changes in {changes_path}" if changes_path else ""))


def _print_changes(diff, show: int) -> None:
    from genre.explain import format_value

    people = list(dict.fromkeys(diff["person"]))[:show]
    if not people:
        return
    table = Table(title=f"changes for the first {len(people)} people with recourse "
                        "(original units)")
    for col in ("person", "option", "feature", "from", "to"):
        table.add_column(col)
    for row in diff[diff["person"].isin(people)].to_dict("records"):
        table.add_row(str(row["person"]), str(row["option"]), row["feature"],
                      format_value(row["from"]), format_value(row["to"]))
    console.print(table)


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help="bundled dataset")] = "compas",
    n: Annotated[int, typer.Option(help="individuals for the metrics table")] = 200,
) -> None:
    """The main job end to end: protocol, fit GenRe (fast preset), recourse, metrics vs NNR.

    The demo enforces the dataset's monotone facts (nobody is told to get younger).
    """
    from genre.baselines import make_method
    from genre.bench.evaluation import run_method
    from genre.bench.protocol import build_protocol
    from genre.estimator import genre_for
    from genre.explain import changes, format_value

    console.rule(f"GenRe demo on {dataset}")
    with console.status("protocol: gold model, re-drawn labels, classifier h (cached)"):
        protocol = build_protocol(dataset, 0)
    console.print(f"h test accuracy {protocol.h_accuracy():.1%}; "
                  f"{len(protocol.rejected_test)} rejected test individuals")
    rows = {}
    genre_model = genre_for(dataset, fast=True)
    for name, method in (("genre", genre_model), ("nnr", make_method("nnr"))):
        console.print(f"fitting {name} ...")
        report, X_plus, fit_s = run_method(method, protocol, n, monotone=True)
        rows[name] = report.to_dict() | {"fit_seconds": fit_s}
        if name == "genre":
            X, shown = protocol.individuals(n), X_plus
    table = Table(title="recourse for 5 rejected individuals (original units)")
    for col in ("person", "feature", "before", "after"):
        table.add_column(col)
    for row in changes(protocol.encoder, X[:5], shown[:5]).to_dict("records"):
        table.add_row(str(row["person"]), row["feature"], format_value(row["from"]),
                      format_value(row["to"]))
    console.print(table)
    console.print(report_table(rows, f"{dataset}: {n} rejected test individuals"))


from genre.bench.benchmark import benchmark_command  # noqa: E402 (registered after the app exists)
from genre.bench.speed import speed_command  # noqa: E402

app.command("benchmark")(benchmark_command)
app.command("benchmark-speed")(speed_command)


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())
