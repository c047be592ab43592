"""Experiments beyond the paper's table, each one command that writes a table and a picture.

    genre benchmark --sweep-lambda 0.5 1 2 5 10   robustness to the cost weight lambda
    genre benchmark --ablation                    which of GenRe's choices carry its score
    genre benchmark --miscalibrated               a miscalibrated or biased classifier h

Each writes DIR/results.csv, DIR/results.json, DIR/results.md (the command line at the top)
and DIR/<experiment>.png; DIR defaults to benchmarks/results/<experiment>.

GenRe's training budget here is a fixed number of epochs per dataset and no wall-clock cap
(EXPERIMENT_BUDGET), so a rerun trains the same models whatever else the machine is doing.
(The table's GenRe trained under a wall-clock budget, so on adult and heloc it may differ
from the reference GenRe here.) Fitted models go to the same cache as the table's: the sweep's
lambda = 5 model is the ablation's reference model and the miscalibration's calibrated one.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genre.bench.benchmark import (
    error_text,
    fit_genre_cached,
    fmt,
    machine,
    make,
    plain,
    progress_bar,
    resolve_datasets,
    resolve_methods,
    result_row,
    run_cell,
    versions,
)
from genre.errors import InputError
from genre.io import atomic_path, write_text
from genre.utils.extras import require

RESULTS = Path("benchmarks/results")
EXPERIMENTS = ("lambda_sweep", "ablation", "miscalibration")

# GenRe's training budget in the experiments: epochs, not seconds (compas converges within
# the class default of 200 epochs with patience 20; adult and heloc get about 2-3 minutes).
EXPERIMENT_BUDGET: dict[str, dict] = {"adult": {"max_epochs": 20}, "heloc": {"max_epochs": 60}}
NO_CLOCK = {"max_seconds": 86400.0}

# Methods whose objective weighs cost with a `lambda_` (DiCE's proximity weight acts in its
# genetic mode only; the table's DiCE runs in random mode, where lambda changes nothing).
LAMBDA_METHODS = ("genre", "wachter", "roar", "probe", "revise", "cruds", "diffusion")
DEFAULT_LAMBDAS = (0.5, 1.0, 2.0, 5.0, 10.0)

# Ablation grids: sampling choices reuse one fitted model, training choices refit. The
# dataset's preset value is always added, so each grid contains the reference model.
SAMPLING_ABLATIONS: dict[str, tuple] = {"best_k": (1, 5, 10, 20),
                                        "temperature": (1.0, 2.0, 5.0, 10.0)}
TRAINING_ABLATIONS: dict[str, tuple] = {"gamma": (0.5, 0.6, 0.7, 0.8), "k": (10, 100, 1000),
                                        "model": ("small", "default", "large")}
MODEL_SIZES: dict[str, dict] = {
    "small": {"d_model": 16, "n_heads": 2, "n_enc_layers": 1, "n_dec_layers": 1, "d_ff": 32},
    "default": {"d_model": 32, "n_heads": 4, "n_enc_layers": 2, "n_dec_layers": 2, "d_ff": 64},
    "large": {"d_model": 64, "n_heads": 4, "n_enc_layers": 2, "n_dec_layers": 2, "d_ff": 128},
}

# The classifiers of the miscalibration experiment: (logit scale, decision threshold).
H_VARIANTS: dict[str, tuple[float, float]] = {
    "calibrated": (1.0, 0.5), "logits x0.5": (0.5, 0.5), "logits x2": (2.0, 0.5),
    "threshold 0.3": (1.0, 0.3), "threshold 0.7": (1.0, 0.7)}
MISCALIBRATION_METHODS = ("genre", "nnr", "wachter", "gs", "roar", "probe", "cchvae", "revise",
                          "cruds", "diffusion")


def genre_params(dataset: str, quick: bool, **extra) -> dict:
    """GenRe's constructor overrides in an experiment: the epoch budget, then `extra`."""
    return ({} if quick else NO_CLOCK | EXPERIMENT_BUDGET.get(dataset, {})) | extra


# ------------------------------------------------------------------ bookkeeping
class Recorder:
    """Collects rows and rewrites the outputs after each one (a long run that dies keeps what
    it did, marked partial)."""

    def __init__(self, experiment: str, out: Path, command: str, meta: dict, markdown, plot):
        self.experiment, self.out, self.markdown, self.plot = experiment, out, markdown, plot
        self.started = _dt.datetime.now().astimezone()
        self.meta = {"experiment": experiment, "command": command,
                     "date": self.started.isoformat(timespec="seconds"), **meta,
                     "versions": versions(), "machine": machine()}
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.save(complete=False)

    def fail(self, dataset: str, methods: Sequence[str], cells: list[dict],
             exc: BaseException) -> int:
        """Error rows for every cell of a dataset whose protocol could not be built."""
        for cell in cells:
            for m in methods:
                self.add(result_row(m, dataset, error=f"protocol: {error_text(exc)}") | cell)
        return len(cells) * len(methods)

    def save(self, complete: bool) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        meta = self.meta | {"complete": complete, "rows_done": len(self.rows), "seconds": (
            _dt.datetime.now().astimezone() - self.started).total_seconds()}
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out / "results.csv") as tmp:
            table.to_csv(tmp, index=False)
        doc = {k: v if isinstance(v, dict | list) else plain(v) for k, v in meta.items()}
        doc["rows"] = [{k: plain(v) for k, v in r.items()} for r in self.rows]
        write_text(self.out / "results.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
        write_text(self.out / "results.md", self.markdown(table, meta))
        if complete and len(table):
            self.plot(table, meta, self.out / f"{self.experiment}.png")
        return table


def _header(title: str, meta: dict, notes: Sequence[str]) -> list[str]:
    m, v = meta["machine"], meta["versions"]
    lines = [f"# {title}", "", "```", meta["command"], "```", "",
             f"- date: {meta['date']}; {meta['seconds']:.0f} s",
             f"- machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}",
             "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
             f"- protocol seed {meta['seed']}, {meta['n']} rejected test individuals per "
             f"dataset; quick: {'yes' if meta['quick'] else 'no'}",
             *notes]
    if not meta.get("complete", True):
        lines.append(f"- **partial**: {meta['rows_done']} rows so far (still running, or it "
                     "stopped early)")
    lines += ["- Cost: mean L1 in normalised space; Val: fraction valid under the gold model; "
              "Val(h): accepted by the classifier the method was given; LOF: fraction of "
              "inliers; Score = Val + LOF - Cost/D.", ""]
    return lines


def _errors(table: pd.DataFrame, label) -> list[str]:
    if "error" not in table or not (table.error.fillna("") != "").any():
        return []
    bad = table[table.error.fillna("") != ""]
    return ["", "Errors:", ""] + [f"- {label(r)}: {r['error']}"
                                  for r in bad.to_dict(orient="records")]


def _save_png(fig, path: Path) -> None:
    require("matplotlib", "bench", "drawing the sweep figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _protocol(dataset: str, seed: int):
    from genre.bench.protocol import build_protocol

    return build_protocol(dataset, seed)


# --------------------------------------------------------------- lambda sweep
def run_lambda_sweep(datasets: Sequence[str] | str, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
                     methods: Sequence[str] | str = LAMBDA_METHODS, n: int = 200,
                     seed: int = 0, out: Path | str = RESULTS / "lambda_sweep",
                     quick: bool = False, progress: bool = True, use_cache: bool = True,
                     command: str | None = None) -> pd.DataFrame:
    """Every lambda-bearing method at every cost weight lambda, on the same individuals.

    For GenRe lambda is the weight of the pair distribution Q(x+|x) ~ exp(-lambda L1) (so each
    value is a model of its own); for the baselines it is the cost weight of their objective
    (their initial weight where the method lowers it after failed rounds, as Wachter and
    PROBE do). Returns one row per (dataset, lambda, method).
    """
    from genre.baselines import METHODS

    names = resolve_methods(methods)
    no_lambda = [m for m in names
                 if "lambda_" not in inspect.signature(METHODS[m].__init__).parameters]
    if no_lambda:
        raise InputError(f"method(s) {', '.join(no_lambda)} have no cost weight lambda_ to "
                         f"sweep; lambda-bearing: {', '.join(LAMBDA_METHODS)}")
    lambdas = _positive(lambdas, "lambda")
    dataset_names = resolve_datasets(datasets)
    _check_n(n)
    rec = Recorder("lambda_sweep", Path(out), command or (
        f"run_lambda_sweep({dataset_names!r}, {lambdas!r}, {names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "methods": names, "lambdas": lambdas, "n": n,
         "seed": seed, "quick": quick, "genre_budget": _budget_meta(dataset_names, quick)},
        lambda_markdown, lambda_plot)
    with progress_bar(progress) as bar:
        task = bar.add_task("lambda sweep", total=len(dataset_names) * len(lambdas) * len(names))
        for dataset in dataset_names:
            try:
                protocol = _protocol(dataset, seed)
                X = protocol.individuals(n)
            except Exception as exc:  # noqa: BLE001 - the other datasets still run
                bar.advance(task, rec.fail(dataset, names, [{"lambda": x} for x in lambdas],
                                           exc))
                continue
            for lam in lambdas:
                for m in names:
                    bar.update(task, description=f"{dataset}: {m} lambda {lam:g}")
                    params = {m: ({"lambda_": lam} | genre_params(dataset, quick))
                              if m == "genre" else {"lambda_": lam}}
                    row = run_cell(m, protocol, X, seed=seed, quick=quick, monotone=False,
                                   params=params, use_cache=use_cache)
                    rec.add(row | {"lambda": lam})
                    bar.advance(task)
    return rec.save(complete=True)


def robustness(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method): Score and Val at their worst and best lambda, and the spread."""
    ok = table[table.error.fillna("") == ""]
    agg = ok.groupby(["dataset", "method"], sort=False).agg(
        score_min=("score", "min"), score_max=("score", "max"), val_min=("val", "min"),
        val_max=("val", "max"), cost_min=("cost", "min"), cost_max=("cost", "max"))
    agg["score_spread"] = agg.score_max - agg.score_min
    agg["val_spread"] = agg.val_max - agg.val_min
    return agg.reset_index()


def lambda_markdown(table: pd.DataFrame, meta: dict) -> str:
    lines = _header("Robustness to the cost weight lambda", meta, [
        f"- lambda in {', '.join(f'{x:g}' for x in meta['lambdas'])}; GenRe: weight of "
        "Q(x+|x) ~ exp(-lambda L1) (a model per value); baselines: the cost weight of their "
        "objective (the initial one where a failed round lowers it). The paper uses 5.",
        f"- GenRe training budget: {meta['genre_budget']}"])
    if not len(table):
        return "\n".join(lines) + "\n"
    for dataset in meta["datasets"]:
        part = table[table.dataset == dataset]
        if not len(part):
            continue
        lams = meta["lambdas"]
        lines += [f"## {dataset}: Score / Val / Cost", "",
                  "| method | " + " | ".join(f"lambda {x:g}" for x in lams) + " |",
                  "|---|" + "---:|" * len(lams)]
        for m in meta["methods"]:
            cells = []
            for lam in lams:
                r = part[(part.method == m) & (part["lambda"] == lam)]
                if not len(r):
                    cells.append("-")
                elif r.error.iloc[0]:
                    cells.append("error")
                else:
                    r = r.iloc[0]
                    cells.append(f"{fmt(r.score)} / {fmt(r.val)} / {fmt(r.cost)}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    rob = robustness(table)
    if len(rob):
        lines += ["## Spread over lambda (max - min)", "",
                  "| dataset | method | Score min..max | Score spread | Val min..max | "
                  "Cost min..max |", "|---|---|---:|---:|---:|---:|"]
        for r in rob.sort_values(["dataset", "score_spread"]).itertuples():
            lines.append(f"| {r.dataset} | {r.method} | {fmt(r.score_min)}..{fmt(r.score_max)}"
                         f" | {fmt(r.score_spread)} | {fmt(r.val_min)}..{fmt(r.val_max)} | "
                         f"{fmt(r.cost_min)}..{fmt(r.cost_max)} |")
    lines += _errors(table, lambda r: f"{r['method']} on {r['dataset']} at lambda "
                     f"{r['lambda']:g}")
    return "\n".join(lines) + "\n"


def lambda_plot(table: pd.DataFrame, meta: dict, path: Path) -> None:
    require("matplotlib", "bench", "drawing the sweep figures")
    from matplotlib.figure import Figure

    datasets = [d for d in meta["datasets"] if (table.dataset == d).any()]
    metrics = (("score", "Score (higher is better)"), ("cost", "Cost: L1, normalised"),
               ("val", "Val: valid under gold"))
    fig = Figure(figsize=(13, 3.4 * len(datasets)))
    axes = fig.subplots(len(datasets), 3, squeeze=False)
    for i, dataset in enumerate(datasets):
        part = table[(table.dataset == dataset) & (table.error.fillna("") == "")]
        for j, (col, label) in enumerate(metrics):
            ax = axes[i, j]
            for m in meta["methods"]:
                r = part[part.method == m].sort_values("lambda")
                if len(r):
                    ax.plot(r["lambda"], r[col], marker="o",
                            linewidth=2.5 if m == "genre" else 1.2, label=m)
            ax.set_xscale("log")
            ax.set_xticks(meta["lambdas"], [f"{x:g}" for x in meta["lambdas"]])
            ax.minorticks_off()
            ax.set_xlabel("cost weight lambda")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}: {col}")
            ax.grid(True, alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _save_png(fig, path)


# ------------------------------------------------------------------- ablations
def _levels(factor: str, grid: tuple, reference) -> list:
    values = list(grid)
    if reference not in values:
        values.append(reference)
    return values if factor == "model" else sorted(values)


def run_ablation(datasets: Sequence[str] | str, n: int = 200, seed: int = 0,
                 out: Path | str = RESULTS / "ablation", quick: bool = False,
                 progress: bool = True, use_cache: bool = True,
                 sampling: dict[str, tuple] | None = None,
                 training: dict[str, tuple] | None = None,
                 command: str | None = None) -> pd.DataFrame:
    """Vary one GenRe choice at a time around the dataset's preset (the reference model).

    Sampling choices (best_k, temperature) reuse the reference model; training choices
    (gamma, K = the candidates kept per source, model size) each fit a model. Returns one row
    per (dataset, factor, value); `reference` marks the preset's value.
    """
    from genre.bench.evaluation import run_method
    from genre.core.estimator import GenRe
    from genre.core.presets import PRESETS

    sampling = SAMPLING_ABLATIONS if sampling is None else sampling
    training = TRAINING_ABLATIONS if training is None else training
    unknown = [f for f in list(sampling) + list(training)
               if f != "model" and f not in GenRe().get_params()]
    if unknown:
        raise InputError(f"not GenRe parameters: {', '.join(unknown)}")
    dataset_names = resolve_datasets(datasets)
    _check_n(n)
    rec = Recorder("ablation", Path(out), command or (
        f"run_ablation({dataset_names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "n": n, "seed": seed, "quick": quick,
         "sampling": {k: list(v) for k, v in sampling.items()},
         "training": {k: list(v) for k, v in training.items()},
         "model_sizes": MODEL_SIZES, "presets": {d: PRESETS.get(d, {}) for d in dataset_names},
         "genre_budget": _budget_meta(dataset_names, quick)},
        ablation_markdown, ablation_plot)

    def evaluate(model, protocol, X, factor, value, reference, fit_seconds, cached):
        try:
            report, _, _ = run_method(model, protocol, len(X), fitted=True, X=X)
            row = result_row("genre", protocol.name, report, fit_seconds, cached=cached)
        except Exception as exc:  # noqa: BLE001 - one failing cell must not end the run
            row = result_row("genre", protocol.name, error=error_text(exc))
        rec.add(row | {"factor": factor, "value": str(value), "reference": reference})

    total = sum(len(v) + 1 for v in (sampling | training).values()) * len(dataset_names)
    with progress_bar(progress) as bar:
        task = bar.add_task("ablation", total=total)
        for dataset in dataset_names:
            bar.update(task, description=f"{dataset}: reference")
            try:
                protocol = _protocol(dataset, seed)
                X = protocol.individuals(n)
                t0 = time.perf_counter()
                ref = make("genre", dataset, seed, quick, {"genre": genre_params(dataset, quick)})
                ref, cached, _ = fit_genre_cached(ref, protocol, use_cache=use_cache)
                ref_fit = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - the other datasets still run
                rec.add(result_row("genre", dataset, error=error_text(exc))
                        | {"factor": "reference", "value": "", "reference": True})
                bar.advance(task, total // len(dataset_names))
                continue
            preset = ref.get_params()
            for factor, grid in sampling.items():
                for value in _levels(factor, grid, preset[factor]):
                    bar.update(task, description=f"{dataset}: {factor} {value}")
                    ref.set_params(**{factor: value})
                    evaluate(ref, protocol, X, factor, value, value == preset[factor],
                             ref_fit, cached)
                    bar.advance(task)
                ref.set_params(**{factor: preset[factor]})
            for factor, grid in training.items():
                ref_value = _model_size(preset) if factor == "model" else preset[factor]
                for value in _levels(factor, grid, ref_value):
                    bar.update(task, description=f"{dataset}: {factor} {value}")
                    if value == ref_value:
                        evaluate(ref, protocol, X, factor, value, True, ref_fit, cached)
                    else:
                        change = MODEL_SIZES[value] if factor == "model" else {factor: value}
                        t0 = time.perf_counter()
                        try:
                            model = make("genre", dataset, seed, quick,
                                         {"genre": genre_params(dataset, quick, **change)})
                            model, hit, _ = fit_genre_cached(model, protocol,
                                                             use_cache=use_cache)
                        except Exception as exc:  # noqa: BLE001
                            rec.add(result_row("genre", dataset, error=error_text(exc))
                                    | {"factor": factor, "value": str(value),
                                       "reference": False})
                        else:
                            evaluate(model, protocol, X, factor, value, False,
                                     time.perf_counter() - t0, hit)
                    bar.advance(task)
    return rec.save(complete=True)


def _model_size(params: dict) -> str:
    for name, size in MODEL_SIZES.items():
        if all(params[k] == v for k, v in size.items()):
            return name
    return "preset"


def carriers(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, factor): the Score range over the factor's values, largest first."""
    ok = table[(table.error.fillna("") == "") & (table.factor != "reference")]
    agg = ok.groupby(["dataset", "factor"], sort=False).score.agg(["min", "max"])
    agg["range"] = agg["max"] - agg["min"]
    best = ok.loc[ok.groupby(["dataset", "factor"], sort=False).score.idxmax()]
    agg["best_value"] = best.set_index(["dataset", "factor"]).value
    return agg.reset_index().sort_values(["dataset", "range"], ascending=[True, False])


def ablation_markdown(table: pd.DataFrame, meta: dict) -> str:
    lines = _header("GenRe ablations", meta, [
        "- One choice varied at a time around each dataset's preset (the reference, marked *): "
        f"presets {meta['presets']}.",
        "- best_k and temperature reuse the reference model; gamma, k (candidates kept per "
        "source in Q) and the model size each train a model. Sizes: "
        + "; ".join(f"{k}: d_model {v['d_model']}, {v['n_enc_layers']}+{v['n_dec_layers']} "
                    f"layers, d_ff {v['d_ff']}" for k, v in meta["model_sizes"].items()),
        f"- GenRe training budget: {meta['genre_budget']}"])
    if not len(table):
        return "\n".join(lines) + "\n"
    datasets = [d for d in meta["datasets"] if (table.dataset == d).any()]
    for factor in dict.fromkeys(table.factor):
        part = table[table.factor == factor]
        lines += [f"## {factor}", "",
                  "| value | " + " | ".join(f"{d} Score | {d} Val | {d} LOF | {d} Cost"
                                             for d in datasets) + " |",
                  "|---|" + "---:|" * (4 * len(datasets))]
        for value in dict.fromkeys(part.value):
            cells = []
            for d in datasets:
                r = part[(part.dataset == d) & (part.value == value)]
                if not len(r) or r.error.iloc[0]:
                    cells += ["error" if len(r) else "-"] + [""] * 3
                    continue
                r = r.iloc[0]
                star = "*" if r.reference else ""
                cells += [f"{fmt(r.score, 3)}{star}", fmt(r.val), fmt(r.lof), fmt(r.cost)]
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
        lines.append("")
    car = carriers(table)
    if len(car):
        lines += ["## Which choices carry the score", "",
                  "Score range (max - min) over each factor's values, largest first.", "",
                  "| dataset | factor | Score min | Score max | range | best value |",
                  "|---|---|---:|---:|---:|---|"]
        for r in car.itertuples():
            lines.append(f"| {r.dataset} | {r.factor} | {fmt(r.min, 3)} | {fmt(r.max, 3)} | "
                         f"{fmt(r.range, 3)} | {r.best_value} |")
    lines += _errors(table, lambda r: f"{r['dataset']} {r['factor']}={r['value']}")
    return "\n".join(lines) + "\n"


def ablation_plot(table: pd.DataFrame, meta: dict, path: Path) -> None:
    require("matplotlib", "bench", "drawing the sweep figures")
    from matplotlib.figure import Figure

    ok = table[(table.error.fillna("") == "") & (table.factor != "reference")]
    factors = list(dict.fromkeys(ok.factor))
    if not factors:
        return
    fig = Figure(figsize=(3.6 * len(factors), 6.4))
    axes = fig.subplots(2, len(factors), squeeze=False)
    colours = {d: f"C{i}" for i, d in enumerate(meta["datasets"])}
    for j, factor in enumerate(factors):
        part = ok[ok.factor == factor]
        values = list(dict.fromkeys(part.value))
        pos = {v: i for i, v in enumerate(values)}
        for d in meta["datasets"]:
            r = part[part.dataset == d]
            if not len(r):
                continue
            x = [pos[v] for v in r.value]
            c = colours[d]
            axes[0, j].plot(x, r.score, marker="o", color=c, label=d)
            ref = r[r.reference.astype(bool)]
            axes[0, j].plot([pos[v] for v in ref.value], ref.score, marker="*", markersize=14,
                            color=c, linestyle="none")
            axes[1, j].plot(x, r.val, marker="o", color=c, label=f"{d} Val")
            axes[1, j].plot(x, r.lof, marker="s", color=c, linestyle="--", label=f"{d} LOF")
        for ax in axes[:, j]:
            ax.set_xticks(range(len(values)), values)
            ax.set_xlabel(factor)
            ax.grid(True, alpha=0.3)
        axes[0, j].set_title(f"GenRe: {factor}")
        axes[0, j].set_ylabel("Score (star = preset)")
        axes[1, j].set_ylabel("Val (solid), LOF inliers (dashed)")
    axes[0, 0].legend()
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, path)


# ----------------------------------------------------------- miscalibrated h
def run_miscalibration(datasets: Sequence[str] | str,
                       methods: Sequence[str] | str = MISCALIBRATION_METHODS,
                       variants: dict[str, tuple[float, float]] | None = None, n: int = 200,
                       seed: int = 0, out: Path | str = RESULTS / "miscalibration",
                       quick: bool = False, progress: bool = True, use_cache: bool = True,
                       command: str | None = None) -> pd.DataFrame:
    """Every method given a distorted h (logits scaled, or the decision threshold moved).

    Each method fits on and answers for the classifier it is given: GenRe's pairs, the
    gradient searches' losses and the VAE searches' acceptance all use it, and the
    individuals are the test rows that classifier rejects. Val is still judged by the gold
    model, so it shows how much each method's recourse depends on h being right.
    """
    from genre.classifiers.mlp import distorted

    variants = H_VARIANTS if variants is None else variants
    for name, (scale, threshold) in variants.items():
        if not (scale > 0 and 0 < threshold < 1):
            raise InputError(f"classifier variant {name!r}: scale must be > 0 and threshold "
                             f"in (0, 1), got {scale}, {threshold}")
    names = resolve_methods(methods)
    dataset_names = resolve_datasets(datasets)
    _check_n(n)
    rec = Recorder("miscalibration", Path(out), command or (
        f"run_miscalibration({dataset_names!r}, {names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "methods": names, "n": n, "seed": seed, "quick": quick,
         "variants": {k: {"scale": s, "threshold": t} for k, (s, t) in variants.items()},
         "classifiers": {}, "genre_budget": _budget_meta(dataset_names, quick)},
        miscalibration_markdown, miscalibration_plot)
    with progress_bar(progress) as bar:
        task = bar.add_task("miscalibration",
                            total=len(dataset_names) * len(variants) * len(names))
        for dataset in dataset_names:
            try:
                protocol = _protocol(dataset, seed)
            except Exception as exc:  # noqa: BLE001 - the other datasets still run
                bar.advance(task, rec.fail(dataset, names, [{"variant": v} for v in variants],
                                           exc))
                continue
            facts = rec.meta["classifiers"].setdefault(dataset, {})
            gold = protocol.gold.predict_proba(protocol.X_test)
            for variant, (scale, threshold) in variants.items():
                h = (protocol.h if (scale, threshold) == (1.0, 0.5)
                     else distorted(protocol.h, scale, threshold))
                vp = protocol.with_classifier(h, variant)
                X = vp.individuals(n)
                facts[variant] = _classifier_facts(vp, gold)
                for m in names:
                    bar.update(task, description=f"{dataset}: {m}, {variant}")
                    params = {"genre": genre_params(dataset, quick)} if m == "genre" else None
                    row = run_cell(m, vp, X, seed=seed, quick=quick, monotone=False,
                                   params=params, use_cache=use_cache)
                    rec.add(row | {"variant": variant, "scale": scale, "threshold": threshold})
                    bar.advance(task)
    return rec.save(complete=True)


def _classifier_facts(protocol, gold: np.ndarray) -> dict:
    """How the (possibly distorted) h relates to the truth (gold: P on X_test) on the test
    split."""
    p = protocol.h.predict_proba(protocol.X_test)
    accepted = p > 0.5
    return {"accuracy": float(np.mean(accepted == protocol.y_test)),
            "accepts": float(np.mean(accepted)),
            "gold_accepts_of_accepted": float(np.mean(gold[accepted] > 0.5))
            if accepted.any() else math.nan,
            "brier": float(np.mean((p - protocol.y_test) ** 2)),
            "rejected_individuals": int(len(protocol.rejected_test))}


def miscalibration_markdown(table: pd.DataFrame, meta: dict) -> str:
    variants = list(meta["variants"])
    lines = _header("A miscalibrated or biased classifier h", meta, [
        "- Variants of the protocol's h: " + "; ".join(
            f"{k}: logit x {v['scale']:g}, accepts where P > {v['threshold']:g}"
            for k, v in meta["variants"].items())
        + ". Scaling keeps h's decisions and changes its confidence; the threshold moves them.",
        "- Every method is fitted on the variant it is given and asked about the test rows "
        "that variant rejects; Val is judged by the gold model.",
        f"- GenRe training budget: {meta['genre_budget']}"])
    if meta.get("classifiers"):
        lines += ["## The classifiers (test split)", "",
                  "| dataset | variant | accuracy | accepts | gold agrees with its accepts | "
                  "Brier | rejected test rows |", "|---|---|---:|---:|---:|---:|---:|"]
        for d, per in meta["classifiers"].items():
            for v, f in per.items():
                lines.append(f"| {d} | {v} | {fmt(f['accuracy'], 3)} | {fmt(f['accepts'], 3)}"
                             f" | {fmt(f['gold_accepts_of_accepted'], 3)} | "
                             f"{fmt(f['brier'], 3)} | {f['rejected_individuals']} |")
        lines.append("")
    if not len(table):
        return "\n".join(lines) + "\n"
    for col, title in (("val", "Val (gold model)"), ("val_h", "Val(h): accepted by the "
                                                           "variant"), ("score", "Score")):
        lines += [f"## {title}", ""]
        for d in meta["datasets"]:
            part = table[table.dataset == d]
            if not len(part):
                continue
            lines += [f"{d}:", "", "| method | " + " | ".join(variants) + " |",
                      "|---|" + "---:|" * len(variants)]
            for m in meta["methods"]:
                cells = []
                for v in variants:
                    r = part[(part.method == m) & (part.variant == v)]
                    cells.append("-" if not len(r) else "error" if r.error.iloc[0]
                                 else fmt(r[col].iloc[0]))
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += _errors(table, lambda r: f"{r['method']} on {r['dataset']} ({r['variant']})")
    return "\n".join(lines) + "\n"


def miscalibration_plot(table: pd.DataFrame, meta: dict, path: Path) -> None:
    require("matplotlib", "bench", "drawing the sweep figures")
    from matplotlib.figure import Figure

    ok = table[table.error.fillna("") == ""]
    datasets = [d for d in meta["datasets"] if (ok.dataset == d).any()]
    variants, methods = list(meta["variants"]), meta["methods"]
    fig = Figure(figsize=(max(8.0, 1.1 * len(methods)), 3.6 * len(datasets)))
    axes = fig.subplots(len(datasets), 1, squeeze=False)[:, 0]
    width = 0.8 / len(variants)
    for ax, d in zip(axes, datasets, strict=True):
        part = ok[ok.dataset == d]
        for i, v in enumerate(variants):
            vals = [part[(part.method == m) & (part.variant == v)].val for m in methods]
            ax.bar(np.arange(len(methods)) + (i - (len(variants) - 1) / 2) * width,
                   [float(x.iloc[0]) if len(x) else np.nan for x in vals], width,
                   label=f"h: {v}")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("Val: valid under gold")
        ax.set_title(f"{d}: validity of recourse made for a distorted h")
        ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.6 * len(datasets))))
    _save_png(fig, path)


# ------------------------------------------------------------------ helpers
def _positive(values: Sequence[float], what: str) -> list[float]:
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{what} values must be numbers, got {v!r}") from None
        if not (math.isfinite(x) and x > 0):
            raise InputError(f"{what} values must be positive numbers, got {v!r}")
        if x not in out:
            out.append(x)
    if not out:
        raise InputError(f"no {what} values given")
    return out


def _check_n(n: int) -> None:
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")


def _budget_meta(datasets: Sequence[str], quick: bool) -> dict:
    return {d: "quick preset" if quick else genre_params(d, quick) for d in datasets}


__all__ = ["DEFAULT_LAMBDAS", "EXPERIMENTS", "H_VARIANTS", "LAMBDA_METHODS",
           "MISCALIBRATION_METHODS", "carriers", "genre_params", "robustness",
           "run_ablation", "run_lambda_sweep", "run_miscalibration"]
