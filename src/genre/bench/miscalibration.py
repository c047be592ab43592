"""Every method given a miscalibrated or biased h (`genre benchmark --miscalibrated`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genre.bench.common import fmt, progress_bar
from genre.bench.methods import resolve_datasets, resolve_methods
from genre.bench.runner import run_cell
from genre.bench.sweep_common import (
    H_VARIANTS,
    MISCALIBRATION_METHODS,
    RESULTS,
    Recorder,
    budget_meta,
    check_n,
    error_lines,
    experiment_protocol,
    genre_params,
    header,
    save_png,
)
from genre.errors import InputError
from genre.utils.extras import require


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
    check_n(n)
    rec = Recorder("miscalibration", Path(out), command or (
        f"run_miscalibration({dataset_names!r}, {names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "methods": names, "n": n, "seed": seed, "quick": quick,
         "variants": {k: {"scale": s, "threshold": t} for k, (s, t) in variants.items()},
         "classifiers": {}, "genre_budget": budget_meta(dataset_names, quick)},
        miscalibration_markdown, miscalibration_plot)
    with progress_bar(progress) as bar:
        task = bar.add_task("miscalibration",
                            total=len(dataset_names) * len(variants) * len(names))
        for dataset in dataset_names:
            try:
                protocol = experiment_protocol(dataset, seed)
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
    lines = header("A miscalibrated or biased classifier h", meta, [
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
    lines += error_lines(table, lambda r: f"{r['method']} on {r['dataset']} ({r['variant']})")
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
    save_png(fig, path)


