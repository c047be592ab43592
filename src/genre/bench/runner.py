"""The table's runner: every method on every dataset and seed, cell by cell, resumable.

See genre.bench.benchmark for the command and what it writes; genre.bench.cells for the
cell files; genre.bench.report for the result files.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from genre.bench.common import (
    error_text,
    load_average,
    machine,
    progress_bar,
    split_names,
    versions,
)
from genre.bench.methods import (
    VARIANTS,
    base_method,
    fit_genre_cached,
    make,
    method_params,
    resolve_datasets,
    resolve_methods,
)
from genre.bench.report import COLUMNS, EXTRA_COLUMNS, METRICS, write_results
from genre.bench.student import STUDENT, fit_student_row, student_key
from genre.errors import InputError

DEFAULT_OUT = Path("benchmarks/results/table")

# ------------------------------------------------------------------------ one cell
def result_row(method: str, dataset: str, report=None, fit_seconds: float = math.nan,
               error: str = "", cached: bool = False, train_seconds: float = math.nan,
               seed: int = 0, fingerprint: str | None = None) -> dict:
    """One results row: COLUMNS, EXTRA_COLUMNS, cached_fit and train_seconds."""
    head = {"method": method, "dataset": dataset, "seed": seed, "fingerprint": fingerprint}
    tail = {"error": error, "cached_fit": cached, "train_seconds": train_seconds}
    if report is None:
        return head | dict.fromkeys(METRICS, math.nan) | {
            "found": pd.NA, "fit_seconds": fit_seconds, "imm_violations": pd.NA,
            "mono_violations": pd.NA} | tail
    return head | {
        "cost": report.cost, "val": report.val, "val_h": report.val_h, "lof": report.lof,
        "score": report.score, "changes": report.changes,
        "ms_per_individual": 1000.0 * report.seconds / max(report.n, 1),
        "found": report.found, "fit_seconds": fit_seconds,
        "imm_violations": report.violations.immutable,
        "mono_violations": report.violations.monotone} | tail


def cell_key(name: str, protocol, n: int, *, quick: bool, monotone: bool,
             params: dict[str, dict] | None = None) -> dict:
    """What a cell's result depends on besides the protocol: the method's full constructor
    arguments (defaults included), n, quick and monotone. A cell file with another key is
    computed again."""
    seed = protocol.seed
    if name == STUDENT:  # the "genre" row's teacher and the student's config
        arguments = student_key(protocol.name, seed, quick, params)
        arguments["teacher"] = {k: v for k, v in arguments["teacher"].items()
                                if k not in ("progress", "threads", "device")}
        return {"method": name, "dataset": protocol.name, "seed": seed, "n": n,
                "quick": quick, "monotone": monotone, "h_variant": protocol.h_variant,
                "params": arguments}
    method = make(name, protocol.name, seed, quick, params)
    if hasattr(method, "get_params"):
        arguments = method.get_params()
    else:
        kwargs = method_params(name, protocol.name, seed, quick, params)
        signature = inspect.signature(type(method).__init__).parameters.values()
        arguments = {p.name: p.default for p in signature
                     if p.default is not inspect.Parameter.empty} | kwargs
    arguments = {k: v for k, v in arguments.items()
                 if k not in ("progress", "threads", "device", "num_threads")}
    key = {"method": name, "dataset": protocol.name, "seed": seed, "n": n, "quick": quick,
           "monotone": monotone, "h_variant": protocol.h_variant, "params": arguments}
    if name in VARIANTS:  # a tuned row: its grid too
        key["grid"] = list(VARIANTS[name].grid)
    return key


def run_cell(name: str, protocol, X: np.ndarray, *, seed: int, quick: bool, monotone: bool,
             params: dict[str, dict] | None = None, use_cache: bool = True,
             timing: dict | None = None, details: dict | None = None) -> dict:
    """Fit, generate and evaluate one method on one protocol; errors become the row's error.

    timing, if given, receives fit/generate wall and process-CPU seconds (a tuned row's fit
    includes its search on validation individuals); details receives "tuning": a tuned
    row's search (genre.bench.tuned) or GenRe's own choice (tune="auto", genre.core.tuning).
    The row's `setting` is the chosen setting (None: the method's own).
    """
    from genre.bench.evaluation import run_method
    from genre.bench.tuned import choose, is_tuned

    timing = {} if timing is None else timing
    details = {} if details is None else details
    t0, c0 = time.perf_counter(), time.process_time()
    cached, train_seconds, setting = False, math.nan, None
    try:
        base = base_method(name)
        if is_tuned(name):
            method, details["tuning"] = choose(name, protocol, len(X), quick=quick,
                                               monotone=monotone, params=params,
                                               use_cache=use_cache)
            setting = details["tuning"]["choice"]
        elif base == STUDENT:  # the "genre" row's cached teacher, then its student
            method, cached, train_seconds = fit_student_row(
                protocol, seed=seed, quick=quick, monotone=monotone, params=params,
                use_cache=use_cache)
        elif base == "genre":
            method, cached, train_seconds = fit_genre_cached(
                make(name, protocol.name, seed, quick, params), protocol, monotone, use_cache)
        else:
            method = make(name, protocol.name, seed, quick, params)
            method.fit(protocol.task(monotone=monotone))
        genres = ("genre", STUDENT)
        if base in genres and getattr(method, "tune", None) == "auto" and method.tuning_:
            details["tuning"] = method.tuning_
            setting = {k: method.tuning_[k] for k in ("temperature", "best_k")}
        fit_seconds = time.perf_counter() - t0
        timing |= {"fit_seconds": fit_seconds, "fit_cpu_seconds": time.process_time() - c0}
        c1 = time.process_time()
        report, _, _ = run_method(method, protocol, len(X), monotone=monotone, fitted=True,
                                  X=X)
        timing |= {"generate_seconds": report.seconds,
                   "generate_cpu_seconds": time.process_time() - c1}
        if base not in genres:
            info = getattr(method, "vae_info_", None)
            cached = bool(getattr(info, "cached", False))
            train_seconds = float(getattr(info, "train_seconds", fit_seconds))
    except Exception as exc:  # noqa: BLE001 - one failing cell must not end the run
        return result_row(name, protocol.name, fit_seconds=time.perf_counter() - t0,
                          error=error_text(exc), seed=protocol.seed,
                          fingerprint=protocol.fingerprint)
    return result_row(name, protocol.name, report, fit_seconds, cached=cached,
                      train_seconds=train_seconds, seed=protocol.seed,
                      fingerprint=protocol.fingerprint) | {"setting": setting}


def run_or_skip(name: str, protocol, X: np.ndarray, out: Path, *, n: int, quick: bool,
                monotone: bool, params: dict[str, dict] | None, use_cache: bool,
                command: str) -> tuple[dict, bool]:
    """One cell through its file: (row, skipped). A file with the same key and fingerprint
    (and no error) is read back; otherwise the cell runs and its file is (re)written."""
    from genre.bench import cells

    path = cells.cell_path(out, protocol.name, name, protocol.seed)
    try:
        key = cell_key(name, protocol, n, quick=quick, monotone=monotone, params=params)
    except Exception as exc:  # noqa: BLE001 - a method that cannot be built is its cell's error
        key = {"method": name, "dataset": protocol.name, "seed": protocol.seed, "n": n,
               "error": error_text(exc)}
    done = cells.read_cell(path)
    if cells.is_done(done, key, protocol.fingerprint):
        return done["row"], True
    timing, details = {"load_start": load_average(), "started": _now()}, {}
    row = run_cell(name, protocol, X, seed=protocol.seed, quick=quick, monotone=monotone,
                   params=params, use_cache=use_cache, timing=timing, details=details)
    timing |= {"load_end": load_average(), "finished": _now()}
    cells.write_cell(path, {"key": key, "fingerprint": protocol.fingerprint, "row": row,
                            "timing": timing, "tuning": details.get("tuning"),
                            "versions": versions(), "machine": machine(),
                            "command": command})
    return cells.normalise(row), False


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------- the run
def run_benchmark(datasets: list[str] | str, methods: list[str] | str = "all", n: int = 200,
                  seed: int = 0, out: Path | str = DEFAULT_OUT, quick: bool = False,
                  monotone: bool = False, progress: bool = True, *,
                  params: dict[str, dict] | None = None, use_cache: bool = True,
                  command: str | None = None, seeds: list[int] | None = None) -> pd.DataFrame:
    """Run every method on every dataset and seed, cell by cell; write out/results.*.

    datasets: bundled dataset names (a list, or a comma/space-separated string).
    methods: method names or "all" (every method registered in genre.baselines.METHODS, in
        the paper's order); a name that is not registered is an InputError. Cells run in
        this order within each dataset and seed (e.g. the rivals first).
    n: rejected test individuals per dataset, the same ones for every method.
    seed: protocol seed, also passed to every method that takes a seed.
    seeds: several protocol seeds (each a full protocol: its own gold model, h and
        individuals); results.csv gets one row per method, dataset and seed, results.md
        mean +- sd over the seeds. Overrides `seed`.
    quick: cap the heavy hyper-parameters (see QUICK; GenRe: genre_for(fast=True) plus a
        tiny model and a few epochs). Figures from a quick run are not the paper's.
    monotone: enforce the datasets' monotone facts (the paper ignores them).
    params: per-method constructor overrides, applied last, e.g. {"genre": {"max_epochs": 3}}.
    use_cache: load/save fitted GenRe models (and the VAE baselines' VAEs) in the cache.
    command: the command line shown in results.md (default: the equivalent Python call).

    Each cell is written to out/cells/<dataset>-seed<seed>-<method>.json as soon as it
    finishes (genre.bench.cells); a cell whose file has the same parameters and protocol
    fingerprint is not run again. out/results.{csv,md,json} are (re)written after every
    cell from ALL cells in out/cells (this run's and earlier runs'): they are genre's own
    outputs there. Returns that table: one row per (dataset, seed, method), the columns of
    COLUMNS then EXTRA_COLUMNS (error is "" for a cell that ran). A cell that raised has NaN
    metrics and its error message; the run goes on.
    """
    from genre.bench.protocol import build_protocol

    dataset_names = resolve_datasets(datasets)
    method_names = resolve_methods(methods)
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    seed_list = list(dict.fromkeys(int(s) for s in seeds)) if seeds else [seed]
    out = Path(out)
    if command is None:
        command = (f"run_benchmark(datasets={dataset_names!r}, "
                   f"methods={split_names(methods) or 'all'!r}, n={n}, seeds={seed_list!r}, "
                   f"out={str(out)!r}, quick={quick}, "
                   f"monotone={monotone}" + (f", params={params!r}" if params else "") + ")")
    started = _dt.datetime.now().astimezone()
    meta = _meta(command, started, dataset_names, method_names, n, seed_list, quick, monotone,
                 params)
    state = {"done": 0, "skipped": 0, "total": len(dataset_names) * len(seed_list)
             * len(method_names), "extra_rows": []}
    with progress_bar(progress) as bar:
        task = bar.add_task("benchmark", total=state["total"])
        for dataset in dataset_names:
            for s in seed_list:
                where = f"{dataset} seed {s}" if len(seed_list) > 1 else dataset
                bar.update(task, description=f"{where}: protocol")
                try:
                    protocol = build_protocol(dataset, s)
                    X = protocol.individuals(n)
                    if len(X) == 0:
                        raise InputError(f"{dataset}: h rejects no test individual")
                except Exception as exc:  # noqa: BLE001 - the other datasets still run
                    msg = f"protocol: {error_text(exc)}"
                    state["extra_rows"] += [result_row(m, dataset, seed=s, error=msg)
                                            for m in method_names]
                    state["done"] += len(method_names)
                    bar.advance(task, len(method_names))
                    _save(meta, out, started, state, complete=False)
                    continue
                for name in method_names:
                    bar.update(task, description=f"{where}: {name}")
                    _, skipped = run_or_skip(name, protocol, X, out, n=n, quick=quick,
                                             monotone=monotone, params=params,
                                             use_cache=use_cache, command=command)
                    state["done"] += 1
                    state["skipped"] += skipped
                    bar.advance(task)
                    # Results so far, marked partial: a long run that dies keeps what it did.
                    _save(meta, out, started, state, complete=False)
        bar.update(task, description="done")
    return _save(meta, out, started, state, complete=True)


def _save(meta: dict, out: Path, started, state: dict, complete: bool) -> pd.DataFrame:
    """Assemble the table from every cell in out/cells (plus this run's protocol errors)
    and write the result files."""
    from genre.bench import cells

    rows = [c["row"] for c in cells.read_cells(out)]
    keys = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    rows += [r for r in state["extra_rows"]
             if (r["dataset"], r["method"], r["seed"]) not in keys]
    datasets = cells.ordered(meta["datasets"], [r["dataset"] for r in rows])
    methods = cells.ordered(meta["methods"], [r["method"] for r in rows])
    seeds = cells.ordered(meta["seeds"], sorted({int(r["seed"]) for r in rows}))
    order = {(d, s, m): i for i, (d, s, m) in enumerate(
        (d, s, m) for d in datasets for s in seeds for m in methods)}
    rows.sort(key=lambda r: order[(r["dataset"], int(r["seed"]), r["method"])])
    full = pd.DataFrame(rows, columns=list(dict.fromkeys(
        [*COLUMNS, *EXTRA_COLUMNS, *(k for r in rows for k in r)])))
    for col in ("found", "imm_violations", "mono_violations"):
        full[col] = full[col].astype("Float64").astype("Int64")
    full["seed"] = full["seed"].astype(int)
    full["error"] = full["error"].fillna("")
    table = full[list(COLUMNS + EXTRA_COLUMNS)].copy()
    meta = meta | {"complete": complete, "cells_done": state["done"],
                   "cells_total": state["total"], "cells_skipped": state["skipped"],
                   "table_datasets": datasets, "table_methods": methods, "table_seeds": seeds,
                   "seconds": (_dt.datetime.now().astimezone() - started).total_seconds()}
    write_results(table, full, meta, out)
    return table


def _meta(command, started, datasets, methods, n, seeds, quick, monotone, params) -> dict:
    return {"command": command, "date": started.isoformat(timespec="seconds"),
            "datasets": datasets, "methods": methods, "n": n, "seed": seeds[0],
            "seeds": seeds, "quick": quick,
            "monotone": monotone, "params": params or {}, "versions": versions(),
            "machine": machine()}


