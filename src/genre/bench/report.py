"""The table's report writers: results.csv, results.md, results.json and the rich table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from genre.bench.common import fmt, plain
from genre.io import atomic_path, write_text

RESULT_FILES = ("results.csv", "results.md", "results.json")
COLUMNS = ("method", "dataset", "seed", "fingerprint", "cost", "val", "val_h", "lof", "score",
           "changes", "ms_per_individual")
EXTRA_COLUMNS = ("found", "fit_seconds", "imm_violations", "mono_violations", "error")
METRICS = ("cost", "val", "val_h", "lof", "score", "changes", "ms_per_individual",
           "fit_seconds")


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
    datasets = meta.get("table_datasets", meta["datasets"])
    methods = meta.get("table_methods", meta["methods"])
    seeds = meta.get("table_seeds") or meta.get("seeds") or [meta["seed"]]
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
            f"{meta.get('cells_total', len(datasets) * len(methods) * len(seeds))} cells "
            "done (the run is still going, or it stopped early)"]),
        *([] if "cells_total" not in meta else [
            "- assembled from every cell file in cells/ (one JSON per dataset, method and "
            "seed, with its parameters, protocol fingerprint, timings and command); "
            f"this run computed {meta['cells_done'] - meta['cells_skipped']} and reused "
            f"{meta['cells_skipped']}. A cell has as many seeds as marked (n seeds), else "
            f"{len(seeds)}."]),
        *_tuning_notes(methods),
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
            if r.n_seeds != len(seeds):
                score += f" ({r.n_seeds} seed{'s' if r.n_seeds != 1 else ''})"
            row += [_cell(r, "cost"), _cell(r, "val"), _cell(r, "lof"), score,
                    _cell(r, "changes", 1), _cell(r, "ms_per_individual", 1)]
        lines.append("| " + " | ".join(row) + " |")
    if errors:
        lines += ["", "Errors:", ""] + errors
    return "\n".join(lines) + "\n"


def _tuning_notes(methods: list[str]) -> list[str]:
    notes = []
    if "genre" in methods:
        notes.append('- genre: its sampling settings (temperature x best_k, 8 settings) '
                     'chosen after fitting by GenRe itself (tune="auto": h-validity + '
                     'inlier - effort/D on held-out rejected training rows, inliers by a '
                     'local outlier factor of the favourable training rows; no gold model, '
                     'no test rows)')
    tuned = [m for m in methods if m.endswith("-tuned")]
    if tuned:
        notes.append(f"- {', '.join(tuned)}: the method's cost weight or step size (GenRe: "
                     "temperature x best_k), 8 settings, chosen on validation individuals "
                     "(rejected rows of the training split, as many as the test individuals) "
                     "by the benchmark's Score, never on test rows; the choice per cell is "
                     "`setting` in results.json and the cell files")
    return notes


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


