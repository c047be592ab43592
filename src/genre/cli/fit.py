"""`genre fit`: GenRe on a bundled dataset or on a team's own table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genre.cli.common import Device, console, fail, show_warning
from genre.data.schema import Schema
from genre.errors import GenreError, GenreWarning
from genre.io import atomic_dir, check_model_dir
from genre.utils.limits import check_seed
from genre.utils.readers import read_table


def fit(
    out: Annotated[Path, typer.Option(help="directory to write the model to")],
    dataset: Annotated[str | None, typer.Option(help="a bundled dataset name")] = None,
    data: Annotated[Path | None, typer.Option(help="your own training table (CSV or "
                                              "Parquet)")] = None,
    schema: Annotated[Path | None, typer.Option(help="YAML schema for --data")] = None,
    classifier: Annotated[Path | None, typer.Option(
        help="your classifier on original units (.skops or .onnx); default: genre chooses h "
        "for --data: the protocol's MLP or HistGradientBoosting, by held-out ROC AUC")]
    = None,
    seed: Annotated[int, typer.Option(help="protocol and training seed")] = 0,
    monotone: Annotated[bool, typer.Option(
        help="bundled data: enforce the dataset's monotone facts (your schema's monotone "
        "keys are always enforced)")] = False,
    fast: Annotated[bool, typer.Option(help="the fast demo preset (smaller budget)")] = False,
    overwrite: Annotated[bool, typer.Option(
        help="replace the model directory genre wrote earlier at --out")] = False,
    id_column: Annotated[str | None, typer.Option(
        "--id", help="an identifier column of --data: not a feature, carried through to "
        "every recourse output (the schema's `id:` key does the same)")] = None,
    device: Device = "cpu",
    sampler: Annotated[str, typer.Option(
        help="student (the default: also distil a one-pass sampler from GenRe's "
        "transformer and answer with that; both are saved) or autoregressive (the "
        "transformer alone, the paper's sampler; no distillation)")] = "student",
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="NAME=VALUE",
        help="a GenRe hyper-parameter NAME=VALUE (repeatable), e.g. "
        "max_epochs=400, best_k=30; see the README's list")] = None,
) -> None:
    """Fit GenRe and save it to --out: on a bundled dataset (--dataset, with the protocol's
    classifier h) or on your own table (--data with --schema, optionally --classifier).

    --out must be a new or empty directory, or (with --overwrite) a model directory genre
    wrote; anything else there is refused before any work.

    On a terminal a progress bar shows the epoch, train and validation loss, elapsed time
    and ETA; otherwise one log line per 10 epochs goes to stderr. The classifier report
    (for a default h) and GenRe's training summary are printed and saved with the model
    (`genre info DIR` shows them again), with a warning when GenRe's best epoch is its last
    or fewer than 50 validation pairs judged it."""
    import time

    from genre.core.params import PARAM_CHECKS
    from genre.core.presets import genre_for
    from genre.core.report import parse_params, training_lines
    from genre.core.student import check_sampler
    from genre.core.tuning import describe
    from genre.utils.device import resolve_device

    try:
        check_sampler(sampler)
        check_seed(seed, "--seed")
        resolve_device(device)  # an unusable device fails before the data is read
        own = {"seed": "--seed", "device": "--device", "progress": "the terminal"}
        params = parse_params(param, {k: v for k, v in PARAM_CHECKS.items() if k not in own})
        params.setdefault("sampler", sampler)  # --param sampler=... or --sampler
        if (dataset is None) == (data is None):
            raise GenreError("give either --dataset NAME or --data FILE --schema FILE")
        check_model_dir(out, inputs=(data, schema, classifier), overwrite=overwrite)
        t0 = time.perf_counter()
        if dataset is not None:
            from genre.bench.protocol import build_protocol

            if schema is not None or classifier is not None or id_column is not None:
                raise GenreError("--schema, --classifier and --id go with --data, not --dataset")
            with console.status(f"protocol for {dataset} (seed {seed})"):
                task = build_protocol(dataset, seed).task(monotone=monotone)
            name = dataset
        else:
            from dataclasses import replace

            from genre.core.usertask import fit_user_table

            if schema is None:
                raise GenreError("--data needs --schema (write one with `genre schema infer`)")
            user_schema = Schema.from_yaml(schema)
            if id_column is not None:
                user_schema = replace(user_schema, id_column=id_column)
            table = read_table(data)
            status = console.status("checking the data" + ("" if classifier else
                                                           " and choosing the classifier h"))
            status.start()
            name, t1 = str(data), None

            def on_task(task) -> None:  # the data is read and h chosen: GenRe fits next
                nonlocal t1
                status.stop()
                if task.classifier_report is not None:
                    print_classifier_report(task.classifier_report)
                t1 = time.perf_counter()
                log_progress()

            try:
                model = fit_user_table(genre_for("", fast=fast, seed=seed, device=device,
                                                 **params),
                                       table, user_schema, classifier, seed=seed,
                                       source=str(data), on_task=on_task)
            finally:
                status.stop()
        if dataset is not None:
            t1 = time.perf_counter()
            log_progress()
            model = genre_for(dataset, fast=fast, seed=seed, device=device,
                              **params).fit(task)
        seconds = time.perf_counter() - t1
    except GenreError as exc:
        fail(exc)
    from safetensors import SafetensorError

    try:
        save_atomically(model, out, overwrite=overwrite)
    except GenreError as exc:
        fail(exc)
    except (OSError, SafetensorError) as exc:  # a full disk: safetensors' own error type
        fail(f"{out}: cannot save the model ({getattr(exc, 'strerror', None) or exc})")
    _, problems = training_lines(model.training_summary(), model.max_epochs)
    for problem in problems:  # one `warning:` line each (also under a test runner)
        show_warning(problem, GenreWarning, __file__, 0)
    log = model.log_
    console.print(f"fitted GenRe on {name} in {seconds:.1f} s (data and h: {t1 - t0:.1f} s): "
                  f"{log.epochs} epochs, best validation loss {log.best_val_loss:.3f} at epoch "
                  f"{log.best_epoch}, {log.n_train_pairs:,} training sources, "
                  f"{log.n_val_pairs:,} validation pairs; saved to {out}")
    console.print(describe(model.tuning_), markup=False, highlight=False)
    student = getattr(model, "student_", None)
    if student is not None:
        slog = student.log
        console.print(f"student sampler: {slog['epochs']} epochs on {slog['samples']:,} teacher "
                      f"samples, held-out NLL {slog['best_val_nll']:.3f} per sample, "
                      f"{slog['seconds']:.1f} s")


def print_classifier_report(report: dict) -> None:
    """What `genre fit` says about the default h it chose (see usertask.choose_classifier)."""
    from rich.markup import escape

    from genre.core.report import classifier_lines

    lines, problems = classifier_lines(report)
    for line in lines:
        console.print(escape(line))
    for problem in problems:
        console.print(f"[yellow]warning:[/] {escape(problem)} (--classifier)")


def log_progress() -> None:
    """Send genre's progress log lines (written when there is no progress bar) to stderr."""
    import logging
    import sys

    logger = logging.getLogger("genre")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def save_atomically(model, out: Path, overwrite: bool = False) -> None:
    """Save into a sibling temp dir and rename (genre.io.atomic_dir): a failure leaves no
    half model, and only a model directory genre wrote is ever replaced (with overwrite)."""
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save(tmp)
