"""Experiments beyond the paper's table, each one command that writes a table and a picture
(the lambda sweep here; the ablation in genre.bench.ablation, the miscalibrated h in
genre.bench.miscalibration, what they share in genre.bench.sweep_common).

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

import inspect
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from genre.bench.ablation import carriers, run_ablation
from genre.bench.common import fmt, progress_bar
from genre.bench.methods import resolve_datasets, resolve_methods
from genre.bench.miscalibration import run_miscalibration
from genre.bench.runner import run_cell
from genre.bench.sweep_common import (
    DEFAULT_LAMBDAS,
    EXPERIMENTS,
    H_VARIANTS,
    LAMBDA_METHODS,
    MISCALIBRATION_METHODS,
    RESULTS,
    Recorder,
    budget_meta,
    check_n,
    error_lines,
    experiment_protocol,
    genre_params,
    header,
    positive_values,
    save_png,
)
from genre.errors import InputError
from genre.utils.extras import require


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
    lambdas = positive_values(lambdas, "lambda")
    dataset_names = resolve_datasets(datasets)
    check_n(n)
    rec = Recorder("lambda_sweep", Path(out), command or (
        f"run_lambda_sweep({dataset_names!r}, {lambdas!r}, {names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "methods": names, "lambdas": lambdas, "n": n,
         "seed": seed, "quick": quick, "genre_budget": budget_meta(dataset_names, quick)},
        lambda_markdown, lambda_plot)
    with progress_bar(progress) as bar:
        task = bar.add_task("lambda sweep", total=len(dataset_names) * len(lambdas) * len(names))
        for dataset in dataset_names:
            try:
                protocol = experiment_protocol(dataset, seed)
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
    lines = header("Robustness to the cost weight lambda", meta, [
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
    lines += error_lines(table, lambda r: f"{r['method']} on {r['dataset']} at lambda "
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
    save_png(fig, path)


__all__ = ["DEFAULT_LAMBDAS", "EXPERIMENTS", "H_VARIANTS", "LAMBDA_METHODS",
           "MISCALIBRATION_METHODS", "carriers", "genre_params", "robustness",
           "run_ablation", "run_lambda_sweep", "run_miscalibration"]
