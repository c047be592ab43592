"""Speed benchmark: GenRe's sampling against search-based recourse, and how it scales.

    genre benchmark-speed --datasets compas adult heloc --n 200 --out benchmarks/results/speed

In one run, on each dataset's protocol (the same data, classifier h and rejected test
individuals for every method):

- time per individual of GenRe (genre_for(dataset) with its preset's best_k, fitted or
  loaded from the benchmark's GenRe model cache), NNR, Wachter, Growing Spheres, DiCE
  random and DiCE genetic (DiCE on the first `dice_n` individuals only: it answers one at
  a time), with GenRe's fit time and its per-individual time with 1 and 2 torch threads (on
  THREADS_BATCH individuals);
- GenRe's Score under the protocol (genre.bench.evaluation.run_method on the n
  individuals), to be compared with the committed table's (speed may not cost quality);
- GenRe throughput (individuals/s) against the batch size (the individuals tiled);
- cached (KV cache) against uncached decoding, with the samples checked identical;

and once per run:

- GenRe's time per individual as the number of features grows (synthetic data: random
  numeric features, a small MLP h, a GenRe trained for one epoch: only sampling is timed);
- peak resident memory of streaming recourse (genre.streaming.stream_recourse, as
  `genre recourse` runs it) on CSVs of compas test rows tiled to 10k, 100k and 1M rows,
  each in a fresh subprocess that reports its own peak RSS (VmHWM; getrusage's ru_maxrss
  would include the parent's memory, which Linux carries across the child's execve).

Outputs: OUT/speed.md (the command line at the top, the tables, GenRe's speed-up over each
baseline, the per-dataset summary, the acceptance targets), OUT/throughput.png and
OUT/features.png (when the features were timed); the figures as a dict (and, from the
command, as JSON with --json). Each method is run once on one individual before it is
timed; a fast call is repeated and the median kept. Wall-clock times on a shared machine
are noisy: the load average at the start is recorded.
"""
from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from genre.bench.speed_measures import (
    BATCH_SIZES,
    DEFAULT_OUT,
    DICE_N,
    FEATURE_COUNTS,
    QUICK_BATCH_SIZES,
    QUICK_DICE_N,
    QUICK_FEATURE_COUNTS,
    QUICK_STREAM_ROWS,
    SPEED_FILES,
    STREAM_DATASET,
    STREAM_ROWS,
    TABLE_CSV,
    THREADS_BATCH,
    cached_vs_uncached,
    feature_scaling,
    genre_model,
    sayer,
    streaming_memory,
    thread_times,
    throughput,
    time_methods,
)
from genre.bench.speed_report import (
    markdown,
    summary,
    table_scores,
    targets,
    to_json,
    write_outputs,
)
from genre.bench.student import student_speed
from genre.errors import GenreError, InputError
from genre.io import check_outputs, results_files, write_text


# ------------------------------------------------------------------------ the run
def run_speed(datasets: Sequence[str] | str, out: Path | str = DEFAULT_OUT, n: int = 200,
              seed: int = 0, quick: bool = False, *, batch_sizes: Sequence[int] | None = None,
              feature_counts: Sequence[int] | None = None,
              stream_rows: Sequence[int] | None = None, dice_n: int | None = None,
              use_cache: bool = True, progress: bool = True,
              command: str | None = None, table: Path | str | None = TABLE_CSV) -> dict:
    """Run the speed benchmark; write out/speed.md, out/throughput.png, out/features.png.

    datasets: bundled dataset names (list or comma/space-separated string).
    n: rejected test individuals per dataset (the same for every method; DiCE gets the
        first dice_n of them). quick: GenRe's quick benchmark preset (genre.bench.benchmark
        QUICK, fast) and the baselines' QUICK caps, smaller sweeps (QUICK_* constants).
    batch_sizes, feature_counts, stream_rows, dice_n: override the sweeps (an empty
        sequence skips that part).
    use_cache: load/save fitted GenRe models in the benchmark's cache.
    command: the command line shown at the top of speed.md.
    table: the committed paper table (results.csv) whose GenRe Score each dataset's is
        compared with; None or a missing file: no such target.

    Returns the figures: {"command", "date", "machine", "versions", "n", "seed", "quick",
    "dice_n", "datasets": {name: {"best_k", "methods": {label: {"ms_per_individual",
    "individuals", "genre_speedup", ...}}, "genre_fit_seconds", "genre_fit_cached",
    "genre_score", "genre_individuals_per_s" (peak over batch sizes), "throughput":
    {batch: ind/s}, "threads": {"1": ms, "2": ms}, "cached_speedup", "cached_identical",
    ...}}, "summary": {name: {"genre_ms_per_individual", "nnr_ms_per_individual",
    "genre_per_s_10k" (None unless the batch sizes include 10,000), "genre_score",
    "table_score"}}, "features": [...], "streaming": [...], "targets": [...],
    "cached_identical": whether cached and uncached decoding gave identical samples on
    every dataset (speed_command fails when they did not)}.
    """
    from genre.bench.common import machine, versions
    from genre.bench.evaluation import run_method
    from genre.bench.methods import resolve_datasets
    from genre.bench.protocol import build_protocol

    names = resolve_datasets(datasets)
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    out = Path(out)
    batch_sizes = tuple(batch_sizes if batch_sizes is not None else
                        (QUICK_BATCH_SIZES if quick else BATCH_SIZES))
    feature_counts = tuple(feature_counts if feature_counts is not None else
                           (QUICK_FEATURE_COUNTS if quick else FEATURE_COUNTS))
    stream_rows = tuple(stream_rows if stream_rows is not None else
                        (QUICK_STREAM_ROWS if quick else STREAM_ROWS))
    dice_n = dice_n if dice_n is not None else (QUICK_DICE_N if quick else DICE_N)
    if command is None:
        command = (f"run_speed(datasets={names!r}, out={str(out)!r}, n={n}, seed={seed}, "
                   f"quick={quick})")
    say = sayer(progress)
    started = _dt.datetime.now().astimezone()
    doc: dict = {"command": command, "date": started.isoformat(timespec="seconds"),
                 "machine": machine() | {"load_average": list(os.getloadavg())},
                 "versions": versions(), "n": n, "seed": seed, "quick": quick,
                 "dice_n": dice_n, "datasets": {}}
    models = {}
    for dataset in names:
        say(f"{dataset}: protocol and GenRe")
        protocol = build_protocol(dataset, seed)
        X = protocol.individuals(n)
        if len(X) == 0:
            raise InputError(f"{dataset}: h rejects no test individual")
        genre, cached, train_seconds, saved = genre_model(dataset, protocol, seed, quick,
                                                          use_cache)
        models[dataset] = (genre, protocol, saved)
        entry: dict = {"individuals": len(X), "n_features": protocol.n_features,
                       "best_k": genre.best_k,
                       "genre_fit_seconds": train_seconds, "genre_fit_cached": cached,
                       "genre_params": {k: v for k, v in genre.get_params().items()
                                        if k != "progress"}}
        say(f"{dataset}: GenRe and the baselines, time per individual")
        entry["methods"] = time_methods(dataset, protocol, X, genre, seed=seed, quick=quick,
                                        dice_n=dice_n, say=say)
        say(f"{dataset}: the student sampler distilled from GenRe")
        entry |= student_speed(genre, protocol, X, entry["methods"], seed=seed, quick=quick,
                               use_cache=use_cache)
        say(f"{dataset}: GenRe's Score")
        report, _, _ = run_method(genre, protocol, len(X), fitted=True, X=X)
        entry["genre_score"] = report.score
        entry["genre_metrics"] = {"cost": report.cost, "val": report.val, "lof": report.lof}
        say(f"{dataset}: GenRe with 1 and 2 threads")
        entry["threads"] = thread_times(genre, np.resize(X, (THREADS_BATCH, X.shape[1])))
        say(f"{dataset}: throughput against batch size")
        entry["throughput"] = throughput(genre, X, batch_sizes)
        entry["genre_individuals_per_s"] = max(entry["throughput"].values(), default=None)
        say(f"{dataset}: cached and uncached decoding")
        entry |= cached_vs_uncached(genre, X, seed)
        doc["datasets"][dataset] = entry
    doc["features"] = feature_scaling(feature_counts, n, seed, quick, say)
    doc["streaming"] = []
    if stream_rows:
        if STREAM_DATASET in models:
            genre, protocol, saved = models[STREAM_DATASET]
        else:
            protocol = build_protocol(STREAM_DATASET, seed)
            genre, _, _, saved = genre_model(STREAM_DATASET, protocol, seed, quick, use_cache)
        doc["streaming"] = streaming_memory(genre, protocol.dataset.test, stream_rows, say,
                                            saved)
    doc["summary"] = summary(doc, seed, table)
    doc["targets"] = targets(doc)
    doc["seconds"] = (_dt.datetime.now().astimezone() - started).total_seconds()
    doc["cached_identical"] = all(e["cached_identical"] for e in doc["datasets"].values())
    write_outputs(doc, out)
    say(f"wrote {out / 'speed.md'}, {out / 'throughput.png'}"
        + (f", {out / 'features.png'}" if doc["features"] else ""))
    return doc


# --------------------------------------------------------------------------- CLI
def speed_command(
    names: Annotated[list[str] | None, typer.Argument(
        help="more dataset names, as in `--datasets compas adult heloc`",
        show_default=False)] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        help="datasets, space- or comma-separated (default: compas adult heloc)",
        show_default=False)] = None,
    n: Annotated[int, typer.Option(help="rejected test individuals per dataset")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    out: Annotated[Path, typer.Option(help="output directory")] = DEFAULT_OUT,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="also write the figures as JSON to this file")] = None,
    quick: Annotated[bool, typer.Option(
        help="small models and sweeps (a smoke run, not the figures to report)")] = False,
    overwrite: Annotated[bool, typer.Option(
        help="replace output files that already exist (other files in --out are never "
             "touched)")] = False,
    features: Annotated[bool, typer.Option(
        help="time GenRe against the number of features (synthetic data)")] = True,
    streaming: Annotated[bool, typer.Option(
        help="measure streaming recourse's peak memory up to 1M rows")] = True,
) -> None:
    """Time GenRe against the search baselines, its throughput, feature scaling, cached
    decoding and streaming memory; write OUT/speed.md, throughput.png, features.png.

    Replacing those (or the --json file) needs --overwrite."""
    from genre.bench.common import split_names

    try:
        ds = split_names(datasets or []) + [d for d in split_names(names or [])
                                       if d not in split_names(datasets or [])]
        ds = ds or ["compas", "adult", "heloc"]
        written = [f for f in SPEED_FILES if features or f != "features.png"]
        check_outputs([*results_files(out, written), json_path], overwrite=overwrite)
        command = shlex.join(["genre", "benchmark-speed", "--datasets", *ds, "--n", str(n),
                              "--seed", str(seed), "--out", str(out)]
                             + (["--json", str(json_path)] if json_path else [])
                             + (["--quick"] if quick else [])
                             + ([] if features else ["--no-features"])
                             + ([] if streaming else ["--no-streaming"]))
        doc = run_speed(ds, out, n=n, seed=seed, quick=quick, command=command,
                        feature_counts=None if features else (),
                        stream_rows=None if streaming else ())
        if json_path is not None:
            write_text(json_path, to_json(doc), overwrite=overwrite)
    except GenreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    print(markdown(doc))
    if not doc["cached_identical"]:
        bad = {d: e["cached_differing_samples"] for d, e in doc["datasets"].items()
               if not e["cached_identical"]}
        print(f"error: cached and uncached decoding gave different samples {bad}",
              file=sys.stderr)
        raise typer.Exit(code=1)


# The measurements live in genre.bench.speed_measures, the report in speed_report.
__all__ = ["SPEED_FILES", "run_speed", "speed_command", "summary", "table_scores", "targets",
           "to_json"]

if __name__ == "__main__":  # pragma: no cover - `python -m genre.bench.speed ...`
    _app = typer.Typer(add_completion=False)
    _app.command()(speed_command)
    sys.exit(_app())
