"""`genre fit`: GenRe on a bundled dataset or on a team's own table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genre.cli.common import Device, console, fail
from genre.errors import GenreError


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
    device: Device = "cpu",
) -> None:
    """Fit GenRe and save it to --out: on a bundled dataset (--dataset, with the protocol's
    classifier h) or on your own table (--data with --schema, optionally --classifier)."""
    import time

    from genre.device import resolve_device
    from genre.estimator import genre_for

    try:
        resolve_device(device)  # an unusable device fails before the data is read
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
            from genre.data.schema_file import load_schema
            from genre.io import read_table
            from genre.usertask import build_user_task

            if schema is None:
                raise GenreError("--data needs --schema (write one with `genre schema infer`)")
            user_schema = load_schema(schema)
            table = read_table(data)
            with console.status("checking the data" + ("" if classifier else
                                                       " and training the classifier h")):
                task = build_user_task(table, user_schema, classifier, seed=seed)
            name = str(data)
        t1 = time.perf_counter()
        model = genre_for(dataset or "", fast=fast, seed=seed, device=device).fit(task)
        if classifier is not None:
            model.classifier_path_ = classifier
        seconds = time.perf_counter() - t1
        save_atomically(model, out)
    except GenreError as exc:
        fail(exc)
    log = model.log_
    console.print(f"fitted GenRe on {name} in {seconds:.1f} s (data and h: {t1 - t0:.1f} s): "
                  f"{log.epochs} epochs, best validation loss {log.best_val_loss:.3f} at epoch "
                  f"{log.best_epoch}, {log.n_train_pairs:,} training sources; saved to {out}")


def save_atomically(model, out: Path) -> None:
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
