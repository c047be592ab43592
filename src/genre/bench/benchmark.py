"""The paper's comparison in one command: every method on every dataset, one table.

    genre benchmark --datasets adult compas heloc --methods all --n 200 --out DIR

One run uses one protocol per dataset and seed (`build_protocol(dataset, seed)`) and the
same n rejected test individuals for every method. Each (dataset, method, seed) cell is
fitted, asked for recourse and scored with the paper's metrics; a method that raises is
recorded with its error (and NaN metrics) and the run goes on.

Resumable, cell by cell: each cell is written to DIR/cells/<dataset>-seed<seed>-<method>.json
as soon as it finishes (metrics, the method's parameters, the protocol fingerprint, fit and
generation seconds and process CPU seconds, load average, versions, the command; see
genre.bench.cells). A rerun skips every cell whose file has the same parameters and protocol
fingerprint (and no error); others are computed again. DIR/results.csv (one row per method,
dataset and seed, with `seed` and `fingerprint` columns), DIR/results.md (mean ± sd over the
seeds, best in bold, the seed count of a cell with fewer seeds) and DIR/results.json are
assembled from ALL cells in DIR/cells after every cell, so a table grows over several runs;
in a folder with cells/ they are genre's own outputs and a run rewrites them without
--overwrite. Cells run in the order of --methods within each dataset and seed.

Trained components are cached, each entry keyed by a digest of its inputs, its parameters
and the source of the code that builds it (genre.utils.cache.code_digest), so changed code never
reads an old entry: the protocol (gold model, h), the VAE of the latent baselines, the
diffusion model, and fitted GenRe models (cache_dir()/genre-models/<dataset>-seed<seed>-
<digest>).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from genre.bench.common import split_names
from genre.bench.methods import (
    GENRE_CACHE,
    PAPER_DATASETS,
    QUICK,
    VARIANTS,
    fit_genre_cached,
    make,
    resolve_datasets,
    resolve_methods,
)
from genre.bench.report import (
    COLUMNS,
    EXTRA_COLUMNS,
    RESULT_FILES,
    markdown,
    rich_table,
    summarise,
    write_results,
)
from genre.bench.runner import DEFAULT_OUT, run_benchmark
from genre.errors import GenreError, InputError
from genre.io import check_outputs, results_files
from genre.utils.methods import METHOD_NAMES


# --------------------------------------------------------------------------- CLI
def _sort_extras(extras: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Bare names after --datasets/--methods/--sweep-lambda: datasets, methods, numbers."""
    from genre.baselines import METHODS
    from genre.data import DATASETS

    method_names = set(METHODS) | set(METHOD_NAMES) | set(VARIANTS) | {"all", "tuned"}
    ds, ms, nums = [], [], []
    for name in split_names(extras):
        if name in DATASETS:
            ds.append(name)
        elif name in method_names:
            ms.append(name)
        elif _is_number(name):
            nums.append(name)
        else:
            raise InputError(f"unexpected argument {name!r}: neither a bundled dataset "
                             f"({', '.join(DATASETS)}) nor a method "
                             f"({', '.join([*METHODS, *VARIANTS])}, all, tuned)")
    return ds, ms, nums


def _parse_seeds(values: list[str]) -> list[int]:
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        raise InputError(f"--seeds takes whole numbers, got {' '.join(values)}") from None
    if any(s < 0 for s in seeds):
        raise InputError(f"--seeds must be >= 0, got {' '.join(values)}")
    return list(dict.fromkeys(seeds))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _experiment(sweep: bool, ablation: bool, miscalibrated: bool,
                numbers: list[str]) -> str | None:
    chosen = [name for name, on in (("lambda_sweep", sweep), ("ablation", ablation),
                                    ("miscalibration", miscalibrated)) if on]
    if len(chosen) > 1:
        raise InputError("choose one experiment: --sweep-lambda, --ablation or "
                         "--miscalibrated")
    if numbers and chosen != ["lambda_sweep"]:
        raise InputError(f"unexpected argument(s) {', '.join(numbers)}: numbers follow "
                         "--sweep-lambda")
    return chosen[0] if chosen else None


def run_experiment(experiment: str, ds: list[str], ms: list[str], lambdas: list[str], *,
                   n: int, seed: int, out: Path | None, quick: bool, monotone: bool,
                   progress: bool, console, overwrite: bool = False) -> pd.DataFrame:
    """`genre benchmark --sweep-lambda/--ablation/--miscalibrated`: see genre.bench.sweeps.

    Its files in `out` (RESULT_FILES and <experiment>.png) are replaced only with overwrite.
    """
    from genre.bench import sweeps

    if monotone:
        raise InputError("--monotone applies to the table only, not to the experiments")
    out = out or sweeps.RESULTS / experiment
    check_outputs(results_files(out, (*RESULT_FILES, f"{experiment}.png")),
                  overwrite=overwrite)
    common = ["--n", str(n), "--seed", str(seed), "--out", str(out)] + (
        ["--quick"] if quick else [])
    kwargs = {"n": n, "seed": seed, "out": out, "quick": quick, "progress": progress}
    if experiment == "lambda_sweep":
        ms = ms or list(sweeps.LAMBDA_METHODS)
        command = shlex.join(["genre", "benchmark", "--sweep-lambda", *lambdas, "--datasets",
                              *ds, "--methods", *ms, *common])
        table = sweeps.run_lambda_sweep(ds, lambdas, ms, command=command, **kwargs)
    elif experiment == "ablation":
        if ms and ms != ["genre"]:
            raise InputError("--ablation studies GenRe only; leave out --methods")
        command = shlex.join(["genre", "benchmark", "--ablation", "--datasets", *ds, *common])
        table = sweeps.run_ablation(ds, command=command, **kwargs)
    else:
        ms = ms or list(sweeps.MISCALIBRATION_METHODS)
        command = shlex.join(["genre", "benchmark", "--miscalibrated", "--datasets", *ds,
                              "--methods", *ms, *common])
        table = sweeps.run_miscalibration(ds, ms, command=command, **kwargs)
    failed = table[table.error.fillna("") != ""] if "error" in table else table.iloc[:0]
    console.print((out / "results.md").read_text(), markup=False, highlight=False)
    for r in failed.to_dict(orient="records"):
        console.print(f"[yellow]{r['method']} on {r['dataset']} failed:[/] {r['error']}")
    console.print(f"wrote {out}/results.csv, results.md, results.json, {experiment}.png")
    return table


def benchmark_command(
    names: Annotated[list[str] | None, typer.Argument(
        help="more dataset/method names, as in `--datasets adult compas heloc` (each bare "
             "name goes to the datasets or the methods, by name; numbers go to "
             "--sweep-lambda)", show_default=False)] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        help="datasets, space- or comma-separated (default: adult compas heloc)",
        show_default=False)] = None,
    methods: Annotated[list[str] | None, typer.Option(
        help="methods, space- or comma-separated, or 'all' (every registered method)",
        show_default=False)] = None,
    n: Annotated[int, typer.Option(help="rejected test individuals per dataset")] = 200,
    seed: Annotated[int, typer.Option(help="protocol seed")] = 0,
    seeds: Annotated[list[str] | None, typer.Option(
        help="several protocol seeds for the table, e.g. --seeds 0 1 2: one row per method, "
             "dataset and seed in results.csv, mean ± sd in results.md",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="output directory (default: benchmarks/results/table, or "
             "benchmarks/results/<experiment> with an experiment option)",
        show_default=False)] = None,
    quick: Annotated[bool, typer.Option(
        help="cap iterations, VAE epochs and GenRe's size (a smoke run, not the paper's "
             "figures)")] = False,
    monotone: Annotated[bool, typer.Option(help="enforce the datasets' monotone facts")] = False,
    sweep_lambda: Annotated[list[str] | None, typer.Option(
        "--sweep-lambda", help="experiment: run the lambda-bearing methods at each of these "
        "cost weights, e.g. --sweep-lambda 0.5 1 2 5 10; writes a table and lambda_sweep.png",
        show_default=False)] = None,
    ablation: Annotated[bool, typer.Option(
        help="experiment: GenRe ablations (best_k, temperature, gamma, k, model size); "
             "writes a table and ablation.png")] = False,
    miscalibrated: Annotated[bool, typer.Option(
        help="experiment: every method given h with logits x0.5 / x2 or a threshold of "
             "0.3 / 0.7; writes a table and miscalibration.png")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    overwrite: Annotated[bool, typer.Option(
        help="replace result files already in the output directory (other files there are "
             "never touched)")] = False,
) -> None:
    """Reproduce the paper's comparison: every method on every dataset, one table.

    Example: genre benchmark --datasets adult compas heloc --methods all --n 200 --out DIR

    Names after --datasets/--methods may be space- or comma-separated, or the flag repeated.

    Resumable: each (dataset, method, seed) cell is saved as DIR/cells/<dataset>-seed<seed>-
    <method>.json when it finishes, and a rerun skips the cells already there with the same
    parameters and protocol fingerprint. DIR/results.csv, results.md and results.json are
    assembled from all cells in DIR/cells, so a table can grow over several runs; once
    DIR/cells exists they are rewritten without --overwrite (a DIR with result files but no
    cells/ needs --overwrite; other files in DIR are left alone). Methods run in the order
    given. Fitted models are cached for reruns.

    Experiments beyond the table, each writing a table and a PNG:
    --sweep-lambda 0.5 1 2 5 10: Score, Cost and Val against the cost weight;
    --ablation: GenRe's choices varied one at a time;
    --miscalibrated: every method given a distorted h.
    \f
    How the space-separated form works: a Typer/click option takes one value, so in
    `--datasets adult compas heloc --methods genre nnr` the names after the first of each
    flag arrive as the positional NAMES. Each is sorted by name into the datasets (a bundled
    dataset) or the methods (a method name or "all"); the two sets of names are disjoint, so
    this is unambiguous, and anything else is an error. The comma form (--datasets
    adult,compas) and the repeated form (--datasets adult --datasets compas) work as well.
    Without --datasets: adult compas heloc; without --methods: all. The command line
    recorded in results.md is the canonical form of what ran.
    """
    from rich.console import Console
    from rich.markup import escape

    # The table is wide (6 columns per dataset); when output is not a terminal (a log, CI)
    # rich would assume 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    try:
        extra_ds, extra_ms, numbers = _sort_extras(names or [])
        given_ds, given_ms = split_names(datasets or []), split_names(methods or [])
        ds = given_ds + [d for d in extra_ds if d not in given_ds]
        ms = given_ms + [m for m in extra_ms if m not in given_ms]
        ds = ds or list(PAPER_DATASETS)
        seed_list: list[int] = []
        if seeds and not sweep_lambda:  # `--seeds 0 1 2`: the bare numbers are seeds
            seed_list, numbers = _parse_seeds(split_names(seeds) + numbers), []
        elif seeds:
            seed_list = _parse_seeds(split_names(seeds))
        lambdas = split_names(sweep_lambda or []) + numbers
        experiment = _experiment(bool(sweep_lambda), ablation, miscalibrated, numbers)
        if experiment and len(seed_list) > 1:
            raise InputError("--seeds applies to the table; the experiments take one --seed")
        if seed_list:
            seed = seed_list[0]
        if experiment:
            run_experiment(experiment, ds, ms, lambdas, n=n, seed=seed, out=out, quick=quick,
                           monotone=monotone, progress=progress, console=console,
                           overwrite=overwrite)
            return
        ms = ms or ["all"]
        out = out or DEFAULT_OUT
        seed_args = (["--seeds", *map(str, seed_list)] if len(seed_list) > 1 else
                     ["--seed", str(seed)])
        resolve_datasets(ds)  # bad names are reported before the outputs
        resolve_methods(ms)
        # A folder with cells/ holds a table genre assembles: its result files are rewritten
        # from the cells by every run (resuming needs no --overwrite).
        check_outputs(results_files(out, RESULT_FILES),
                      overwrite=overwrite or (out / "cells").is_dir())
        command = shlex.join(["genre", "benchmark", "--datasets", *ds, "--methods", *ms,
                              "--n", str(n), *seed_args, "--out", str(out)]
                             + (["--quick"] if quick else [])
                             + (["--monotone"] if monotone else []))
        table = run_benchmark(ds, ms, n=n, seed=seed, out=out, quick=quick, monotone=monotone,
                              progress=progress, command=command,
                              seeds=seed_list if len(seed_list) > 1 else None)
    except GenreError as exc:
        # One line (soft_wrap), the message as it is (escape): it names paths.
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(code=2) from None
    seed_text = (f"seeds {', '.join(map(str, seed_list))}" if len(seed_list) > 1 else
                 f"seed {seed}")
    console.print(rich_table(table, f"{n} individuals per dataset, {seed_text}"
                             + (" (quick)" if quick else "")))
    failed = table[table.error != ""]
    for r in failed.itertuples(index=False):
        err.print(f"[yellow]{r.method} on {r.dataset} failed:[/] {r.error}")
    console.print(f"wrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'results.json'}")


# The public names of the table (the runner's and the report's live in their modules).
__all__ = ["COLUMNS", "DEFAULT_OUT", "EXTRA_COLUMNS", "GENRE_CACHE", "PAPER_DATASETS",
           "QUICK", "RESULT_FILES", "benchmark_command", "fit_genre_cached",
           "make", "markdown", "resolve_datasets", "resolve_methods", "rich_table",
           "run_benchmark", "summarise", "write_results"]

if __name__ == "__main__":  # pragma: no cover - `python -m genre.bench.benchmark ...`
    _app = typer.Typer(add_completion=False)
    _app.command()(benchmark_command)
    sys.exit(_app())

