"""The paper's comparison in one command: every method on every dataset, one table.

    genre benchmark --datasets adult compas heloc --methods all --n 200 --out DIR

One run uses one protocol per dataset (`build_protocol(dataset, seed)`) and the same n
rejected test individuals for every method. Each (dataset, method) cell is fitted, asked for
recourse and scored with the paper's metrics; a method that raises is recorded with its
error (and NaN metrics) and the run goes on. Results go to DIR/results.csv (one row per
method and dataset), DIR/results.md (the paper's layout, with the command line at the top)
and DIR/results.json (rows, versions, machine), each written atomically.

Trained components are cached, so a rerun skips training: the protocol (gold model, h) and
the VAE of the latent baselines cache themselves; fitted GenRe models are cached here under
cache_dir()/genre-models/<dataset>-seed<seed>-<hash of parameters and training data>.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import inspect
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from genre.errors import GenreError, InputError, ModelError
from genre.io import atomic_path, check_outputs, results_files, write_text

# The paper's comparison, in its order; "all" = those of these registered in METHODS (then
# any other registered method, in registration order).
PAPER_METHODS = ("genre", "nnr", "wachter", "gs", "dice", "roar", "probe", "cchvae", "revise",
                 "cruds")
PAPER_DATASETS = ("adult", "compas", "heloc")
DEFAULT_OUT = Path("benchmarks/results/table")
# The files a run writes into its output directory (an experiment adds <experiment>.png);
# other files there are never touched.
RESULT_FILES = ("results.csv", "results.md", "results.json")

COLUMNS = ("method", "dataset", "seed", "cost", "val", "val_h", "lof", "score", "changes",
           "ms_per_individual")
EXTRA_COLUMNS = ("found", "fit_seconds", "imm_violations", "mono_violations", "error")
METRICS = ("cost", "val", "val_h", "lof", "score", "changes", "ms_per_individual",
           "fit_seconds")

# --quick: caps on the heavy hyper-parameters (iterations, samples, VAE epochs, GenRe's
# size and epochs), for demos and smoke tests. Figures from a quick run are not the paper's.
QUICK: dict[str, dict] = {
    # A tiny transformer with a larger step: ~2 s on compas, Score ~1.8 on 50 individuals.
    "genre": {"d_model": 16, "n_heads": 2, "n_enc_layers": 1, "n_dec_layers": 1, "d_ff": 32,
              "lr": 3e-3, "batch_size": 256, "max_epochs": 10, "patience": 5,
              "max_seconds": 30.0},
    "wachter": {"n_iter": 300, "max_rounds": 3},
    "gs": {"n_samples": 300},
    "dice": {"sample_size": 300},
    "roar": {"max_iter": 300},
    "probe": {"n_iter": 100, "max_rounds": 3},
    "cchvae": {"n_search_samples": 100, "max_iter": 100, "vae_epochs": 2},
    "revise": {"max_iter": 200, "vae_epochs": 2},
    "cruds": {"max_iter": 300, "vae_epochs": 2},
    # StudentConfig caps (the teacher is the quick "genre" above).
    "genre-student": {"rows": 2000, "samples_per_row": 8, "epochs": 3, "patience": 2},
}

GENRE_CACHE = "genre-models"
GENRE_CACHE_VERSION = "v1"
# GenRe answering with the one-pass student sampler distilled from the very GenRe of the
# "genre" row (the same parameters, the same cached fit; genre.core.student).
# params["genre-student"] holds StudentConfig overrides.
STUDENT = "genre-student"


# ------------------------------------------------------------------------- names
def split_names(names) -> list[str]:
    """Comma- and/or space-separated names (a string or an iterable of strings), deduplicated."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for name in str(item).replace(",", " ").split():
            if name not in out:
                out.append(name)
    return out


def resolve_methods(methods: list[str] | str = "all") -> list[str]:
    """The method names a run will use; "all" = every registered one, in the paper's order."""
    from genre.baselines import METHODS

    names = split_names(methods)
    if not names or "all" in names:
        return ([m for m in PAPER_METHODS if m in METHODS]
                + [m for m in METHODS if m not in PAPER_METHODS])
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        missing = [m for m in unknown if m in PAPER_METHODS]
        hint = (f" ({', '.join(missing)} not registered in genre.baselines.METHODS yet)"
                if missing else "")
        raise InputError(f"unknown method(s) {', '.join(map(repr, unknown))}{hint}; "
                         f"available: {', '.join(METHODS)} or 'all'")
    return names


def resolve_datasets(datasets: list[str] | str) -> list[str]:
    from genre.data import DATASETS

    names = split_names(datasets)
    if not names:
        raise InputError("no dataset given")
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        raise InputError(f"unknown dataset(s) {', '.join(map(repr, unknown))}; bundled: "
                         f"{', '.join(DATASETS)}")
    return names


# ---------------------------------------------------------------- building methods
def method_params(name: str, dataset: str, seed: int, quick: bool,
                  params: dict[str, dict] | None = None) -> dict:
    """Constructor arguments for one cell: the seed, the quick caps, then the caller's own."""
    from genre.baselines import METHODS

    accepted = inspect.signature(METHODS[name].__init__).parameters
    out = {"seed": seed} if "seed" in accepted else {}
    if quick:
        out |= {k: v for k, v in QUICK.get(name, {}).items() if k in accepted}
    if name in ("genre", STUDENT):
        out["progress"] = False  # the benchmark's own bar reports progress
    return out | (params or {}).get(name, {})


def make(name: str, dataset: str, seed: int, quick: bool, params: dict[str, dict] | None = None):
    from genre.baselines import make_method
    from genre.core.presets import genre_for

    kwargs = method_params(name, dataset, seed, quick, params)
    return genre_for(dataset, fast=quick, **kwargs) if name == "genre" else make_method(
        name, **kwargs)


def genre_cache_key(model, protocol, monotone: bool) -> str:
    from genre.bench.protocol import CACHE_VERSION
    from genre.core.saving import FORMAT_VERSION

    params = {k: v for k, v in model.get_params().items()
              if k not in ("progress", "threads", "device", "sampler")}
    key = {"params": params, "monotone": monotone, "format": FORMAT_VERSION,
           "protocol": CACHE_VERSION, "cache": GENRE_CACHE_VERSION}
    if protocol.h_variant:
        # Training sees h only through which rows lie above gamma (sources vs targets), so a
        # substituted h is keyed by those decisions: two h with the same ones share a model.
        above = protocol.h.predict_proba(protocol.X_train) > model.gamma
        key["h_above_gamma"] = hashlib.sha256(np.packbits(above).tobytes()).hexdigest()
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(protocol.X_train, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(protocol.y_train, dtype=np.int64).tobytes())
    return f"{protocol.name}-seed{protocol.seed}-{h.hexdigest()[:16]}"


def fit_genre_cached(model, protocol, monotone: bool = False, use_cache: bool = True):
    """Load GenRe from the cache, or fit it on the protocol's task and cache it.

    Returns (model, cached, train_seconds); train_seconds is the original training time
    (read back from the saved model when it came from the cache).
    """
    from genre.core.estimator import GenRe
    from genre.utils.cache import cache_dir, report_rebuild

    where = cache_dir() / GENRE_CACHE / genre_cache_key(model, protocol, monotone)
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            loaded = GenRe.load(where, classifier=protocol.h, require_manifest=True)
        except ModelError as exc:  # unusable entry: say so, retrain and replace it
            report_rebuild(where, exc)
        else:
            seconds = float((loaded.train_log_ or {}).get("seconds", math.nan))
            loaded.progress = model.progress
            return loaded, True, seconds
    model.set_params(sampler="autoregressive")  # the teacher alone; students are cached apart
    model.fit(protocol.task(monotone=monotone))
    if use_cache:
        _save_cached(model, where)
    return model, False, model.log_.seconds


def _save_cached(model, where: Path) -> None:
    """Save into a temporary sibling and rename: a crash never leaves a half model."""
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=f".{where.name}-"))
    try:
        model.save(tmp)
        shutil.rmtree(where, ignore_errors=True)
        with contextlib.suppress(OSError):  # a concurrent run got there first
            tmp.rename(where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fit_student_cached(teacher, protocol, monotone: bool = False, use_cache: bool = True,
                       config=None):
    """Distil the student sampler from `teacher` (fitted by fit_genre_cached on the same
    protocol) on the protocol's training rows, or load teacher + student from the cache.

    The teacher keeps its own sampler setting (use teacher.sampling_with("student")).
    Returns (model, cached, distill_seconds); model is `teacher` (with `student_`) unless
    it came from the cache.
    """
    from genre.core.estimator import GenRe
    from genre.core.student import STUDENT_VERSION, StudentConfig
    from genre.utils.cache import cache_dir, report_rebuild

    config = config or StudentConfig(seed=teacher.seed)
    tag = hashlib.sha256(json.dumps(config.to_dict() | {"version": STUDENT_VERSION},
                                    sort_keys=True).encode()).hexdigest()
    where = (cache_dir() / GENRE_CACHE
             / f"{genre_cache_key(teacher, protocol, monotone)}-student-{tag[:12]}")
    sampler = teacher.sampler
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            loaded = GenRe.load(where, classifier=protocol.h, require_manifest=True)
            if getattr(loaded, "student_", None) is None:
                raise ModelError(f"{where}: holds no student")
        except ModelError as exc:
            report_rebuild(where, exc)
        else:
            loaded.set_params(progress=teacher.progress, sampler=sampler)
            return loaded, True, float(loaded.student_.log.get("seconds", math.nan))
    teacher.distill(protocol.X_train, config)
    if use_cache:
        _save_cached(teacher, where)
    return teacher, False, float(teacher.student_.log["seconds"])


def student_config(params: dict[str, dict] | None, seed: int, quick: bool = False):
    """The StudentConfig of a benchmark cell: the defaults, the seed, the QUICK caps (with
    quick), then params[STUDENT]."""
    from genre.core.student import StudentConfig

    return StudentConfig(**({"seed": seed} | (QUICK[STUDENT] if quick else {})
                            | (params or {}).get(STUDENT, {})))


# ------------------------------------------------------------------------ one cell
def result_row(method: str, dataset: str, report=None, fit_seconds: float = math.nan,
         error: str = "", cached: bool = False, train_seconds: float = math.nan,
         seed: int = 0) -> dict:
    if report is None:
        return {"method": method, "dataset": dataset, "seed": seed,
                **dict.fromkeys(METRICS, math.nan),
                "found": pd.NA, "fit_seconds": fit_seconds, "imm_violations": pd.NA,
                "mono_violations": pd.NA, "error": error, "cached_fit": cached,
                "train_seconds": train_seconds}
    return {"method": method, "dataset": dataset, "seed": seed, "cost": report.cost,
            "val": report.val,
            "val_h": report.val_h, "lof": report.lof, "score": report.score,
            "changes": report.changes,
            "ms_per_individual": 1000.0 * report.seconds / max(report.n, 1),
            "found": report.found, "fit_seconds": fit_seconds,
            "imm_violations": report.violations.immutable,
            "mono_violations": report.violations.monotone, "error": error,
            "cached_fit": cached, "train_seconds": train_seconds}


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")[:500]


def run_cell(name: str, protocol, X: np.ndarray, *, seed: int, quick: bool, monotone: bool,
             params: dict[str, dict] | None = None, use_cache: bool = True) -> dict:
    """Fit, generate and evaluate one method on one protocol; errors become the row's error."""
    from genre.bench.evaluation import run_method

    t0 = time.perf_counter()
    try:
        method = make("genre" if name == STUDENT else name, protocol.name, seed, quick, params)
        if name in ("genre", STUDENT):
            method, cached, train_seconds = fit_genre_cached(method, protocol, monotone,
                                                             use_cache)
            if name == STUDENT:  # the same teacher as the "genre" row, plus its student
                method, cached, distill_seconds = fit_student_cached(
                    method, protocol, monotone, use_cache, student_config(params, seed, quick))
                method.set_params(sampler="student")
                train_seconds += distill_seconds
            fit_seconds = time.perf_counter() - t0
            report, _, _ = run_method(method, protocol, len(X), monotone=monotone,
                                      fitted=True, X=X)
        else:
            report, _, fit_seconds = run_method(method, protocol, len(X), monotone=monotone,
                                                X=X)
            info = getattr(method, "vae_info_", None)
            cached = bool(getattr(info, "cached", False))
            train_seconds = float(getattr(info, "train_seconds", fit_seconds))
    except Exception as exc:  # noqa: BLE001 - one failing cell must not end the run
        return result_row(name, protocol.name, fit_seconds=time.perf_counter() - t0,
                    error=error_text(exc), seed=protocol.seed)
    return result_row(name, protocol.name, report, fit_seconds, cached=cached,
                train_seconds=train_seconds, seed=protocol.seed)


# ----------------------------------------------------------------------- the run
def run_benchmark(datasets: list[str] | str, methods: list[str] | str = "all", n: int = 200,
                  seed: int = 0, out: Path | str = DEFAULT_OUT, quick: bool = False,
                  monotone: bool = False, progress: bool = True, *,
                  params: dict[str, dict] | None = None, use_cache: bool = True,
                  command: str | None = None, seeds: list[int] | None = None) -> pd.DataFrame:
    """Run every method on every dataset under one protocol; write out/results.{csv,md,json}.

    datasets: bundled dataset names (a list, or a comma/space-separated string).
    methods: method names or "all" (every method registered in genre.baselines.METHODS, in
        the paper's order); a name that is not registered is an InputError.
    n: rejected test individuals per dataset, the same ones for every method.
    seed: protocol seed, also passed to every method that takes a seed.
    seeds: several protocol seeds (each a full run: its own gold model, h and individuals);
        results.csv gets one row per method, dataset and seed, results.md mean +- sd over
        the seeds. Overrides `seed`.
    quick: cap the heavy hyper-parameters (see QUICK; GenRe: genre_for(fast=True) plus a
        tiny model and a few epochs). Figures from a quick run are not the paper's.
    monotone: enforce the datasets' monotone facts (the paper ignores them).
    params: per-method constructor overrides, applied last, e.g. {"genre": {"max_epochs": 3}}.
    use_cache: load/save fitted GenRe models (and the VAE baselines' VAEs) in the cache.
    command: the command line shown in results.md (default: the equivalent Python call).

    Returns a DataFrame with one row per (dataset, seed, method): the columns of COLUMNS, then
    EXTRA_COLUMNS (error is "" for a cell that ran). A cell that raised has NaN metrics and
    its error message; the run goes on.
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
    rows: list[dict] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("benchmark", total=len(dataset_names) * len(seed_list)
                            * len(method_names))
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
                    rows += [result_row(m, dataset, seed=s, error=msg) for m in method_names]
                    bar.advance(task, len(method_names))
                    _save(rows, meta, out, started, complete=False)
                    continue
                for name in method_names:
                    bar.update(task, description=f"{where}: {name}")
                    rows.append(run_cell(name, protocol, X, seed=s, quick=quick,
                                         monotone=monotone, params=params,
                                         use_cache=use_cache))
                    bar.advance(task)
                    # Results so far, marked partial: a long run that dies keeps what it did.
                    _save(rows, meta, out, started, complete=False)
        bar.update(task, description="done")
    return _save(rows, meta, out, started, complete=True)


def _save(rows: list[dict], meta: dict, out: Path, started, complete: bool) -> pd.DataFrame:
    full = pd.DataFrame(rows)
    for col in ("found", "imm_violations", "mono_violations"):
        full[col] = full[col].astype("Int64")
    table = full[list(COLUMNS + EXTRA_COLUMNS)].copy()
    meta = meta | {"complete": complete, "cells_done": len(rows),
                   "seconds": (_dt.datetime.now().astimezone() - started).total_seconds()}
    write_results(table, full, meta, out)
    return table


def progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled)


# ------------------------------------------------------------------------ output
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {"genre": _version("genre-recourse"), "torch": _version("torch"),
            "numpy": _version("numpy"), "sklearn": _version("scikit-learn"),
            "dice-ml": _version("dice-ml")}


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}


def _meta(command, started, datasets, methods, n, seeds, quick, monotone, params) -> dict:
    return {"command": command, "date": started.isoformat(timespec="seconds"),
            "datasets": datasets, "methods": methods, "n": n, "seed": seeds[0],
            "seeds": seeds, "quick": quick,
            "monotone": monotone, "params": params or {}, "versions": versions(),
            "machine": machine()}


def plain(v):
    """JSON-safe value: NaN/NA -> None, numpy scalars -> Python, dicts and lists item by
    item."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def fmt(v, digits: int = 2) -> str:
    return "-" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) \
        else f"{v:.{digits}f}"


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, dataset): mean and sd over the seeds of each metric.

    Columns: method, dataset, n_seeds (seeds that ran), <metric> and <metric>_sd for the
    metrics, error (the first seed's error, "" when every seed ran). A cell where some seed
    failed keeps the error and the figures of the seeds that ran.
    """
    metrics = ["cost", "val", "lof", "score", "changes", "ms_per_individual"]
    out = []
    for (method, dataset), g in table.groupby(["method", "dataset"], sort=False):
        ok = g[g.error.fillna("") == ""]
        row = {"method": method, "dataset": dataset, "n_seeds": len(ok),
               "error": "" if len(ok) == len(g) else g.error[g.error != ""].iloc[0]}
        for m in metrics:
            vals = ok[m].astype(float)
            row[m] = vals.mean() if len(vals) else math.nan
            row[f"{m}_sd"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def _cell(r, metric: str, digits: int = 2) -> str:
    mean, sd = getattr(r, metric), getattr(r, f"{metric}_sd")
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(sd, digits)}"


def markdown(table: pd.DataFrame, meta: dict) -> str:
    """results.md: rows = methods; per dataset Cost, Val, LOF, Score, ms/indiv.

    With several seeds each cell is the mean ± sd over the seeds (sd with ddof=1), and the
    best mean Score per dataset is in bold.
    """
    datasets, methods = meta["datasets"], meta["methods"]
    seeds = meta.get("seeds") or [meta["seed"]]
    v = meta["versions"]
    m = meta["machine"]
    seed_text = (f"protocol seed {seeds[0]}" if len(seeds) == 1 else
                 f"protocol seeds {', '.join(map(str, seeds))} (mean ± sd over the seeds)")
    lines = [
        "# Recourse benchmark", "",
        "```", meta["command"], "```", "",
        f"- date: {meta['date']}",
        f"- machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- {seed_text}, {meta['n']} rejected test individuals per dataset and seed "
        f"(the same for every method); quick: {'yes' if meta['quick'] else 'no'}; "
        f"monotone facts enforced: {'yes' if meta['monotone'] else 'no'}",
        *([] if meta.get("complete", True) else [
            f"- **partial**: {meta['cells_done']} of "
            f"{len(datasets) * len(methods) * len(seeds)} cells done "
            "(the run is still going, or it stopped early)"]),
        "- Cost: mean L1 in normalised space (lower is better); Val: fraction valid under the "
        "gold model; LOF: fraction of inliers; Score = Val + LOF - Cost/D (best in bold); "
        "Changes: mean number of features changed; ms/indiv: generation time per individual.",
        "",
    ]
    header = ["Method"] + [f"{d} {c}" for d in datasets
                           for c in ("Cost", "Val", "LOF", "Score", "Changes", "ms/indiv")]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * (len(header) - 1))
    summary = summarise(table) if len(table) else pd.DataFrame(
        columns=["method", "dataset", "score", "error"])
    cells = {(r.method, r.dataset): r for r in summary.itertuples(index=False)}
    best = {d: summary.loc[summary.dataset == d, "score"].max() for d in datasets}
    errors = []
    for name in methods:
        row = [name]
        for d in datasets:
            r = cells.get((name, d))
            if r is None:  # not run yet (a partial table)
                row += ["-"] * 6
                continue
            if r.error:
                errors.append(f"- {name} on {d}: {r.error}")
                if r.n_seeds == 0:
                    row += ["error"] + [""] * 5
                    continue
            score = _cell(r, "score")
            if np.isfinite(best[d]) and r.score == best[d]:
                score = f"**{score}**"
            row += [_cell(r, "cost"), _cell(r, "val"), _cell(r, "lof"), score,
                    _cell(r, "changes", 1), _cell(r, "ms_per_individual", 1)]
        lines.append("| " + " | ".join(row) + " |")
    if errors:
        lines += ["", "Errors:", ""] + errors
    return "\n".join(lines) + "\n"


def write_results(table: pd.DataFrame, full: pd.DataFrame, meta: dict, out: Path) -> None:
    """results.csv, results.md, results.json under out/, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    csv_name, md_name, json_name = RESULT_FILES
    with atomic_path(out / csv_name) as tmp:
        table.to_csv(tmp, index=False)
    write_text(out / md_name, markdown(table, meta))
    rows = [{k: plain(v) for k, v in r.items()} for r in full.to_dict(orient="records")]
    doc = {k: plain(v) if not isinstance(v, (dict, list)) else v for k, v in meta.items()}
    doc["rows"] = rows
    write_text(out / json_name, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def rich_table(table: pd.DataFrame, title: str = "benchmark"):
    """The results as a rich Table, laid out like results.md (mean ± sd over seeds)."""
    from rich.table import Table

    summary = summarise(table)
    datasets = list(dict.fromkeys(summary.dataset))
    methods = list(dict.fromkeys(summary.method))
    t = Table(title=title)
    t.add_column("method")
    for d in datasets:
        for c in ("Cost", "Val", "LOF", "Score", "Chg", "ms/ind"):
            t.add_column(f"{d}\n{c}", justify="right")
    cells = {(r.method, r.dataset): r for r in summary.itertuples(index=False)}
    for name in methods:
        row = [name]
        for d in datasets:
            r = cells.get((name, d))
            if r is None or r.n_seeds == 0:
                row += ["[red]error[/]"] + [""] * 5
            else:
                row += [_cell(r, "cost"), _cell(r, "val"), _cell(r, "lof"), _cell(r, "score"),
                        _cell(r, "changes", 1), _cell(r, "ms_per_individual", 1)]
        t.add_row(*row)
    return t


# --------------------------------------------------------------------------- CLI
def _sort_extras(extras: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Bare names after --datasets/--methods/--sweep-lambda: datasets, methods, numbers."""
    from genre.baselines import METHODS
    from genre.data import DATASETS

    method_names = set(METHODS) | set(PAPER_METHODS) | {"all"}
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
                             f"({', '.join(METHODS)}, all)")
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

    Writes DIR/results.csv, results.md and results.json (replacing them needs --overwrite;
    other files in DIR are left alone); fitted models are cached for reruns.

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
        check_outputs(results_files(out, RESULT_FILES), overwrite=overwrite)
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


__all__ = ["COLUMNS", "EXTRA_COLUMNS", "PAPER_METHODS", "QUICK", "RESULT_FILES",
           "benchmark_command", "fit_genre_cached", "resolve_methods", "run_benchmark"]

if __name__ == "__main__":  # pragma: no cover - `python -m genre.bench.benchmark ...`
    _app = typer.Typer(add_completion=False)
    _app.command()(benchmark_command)
    sys.exit(_app())
