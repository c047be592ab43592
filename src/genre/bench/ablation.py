"""GenRe ablations: which of its choices carry its score (`genre benchmark --ablation`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from genre.bench.common import error_text, fmt, progress_bar
from genre.bench.methods import fit_genre_cached, make, resolve_datasets
from genre.bench.runner import result_row
from genre.bench.sweep_common import (
    MODEL_SIZES,
    RESULTS,
    SAMPLING_ABLATIONS,
    TRAINING_ABLATIONS,
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
    check_n(n)
    rec = Recorder("ablation", Path(out), command or (
        f"run_ablation({dataset_names!r}, n={n}, seed={seed})"),
        {"datasets": dataset_names, "n": n, "seed": seed, "quick": quick,
         "sampling": {k: list(v) for k, v in sampling.items()},
         "training": {k: list(v) for k, v in training.items()},
         "model_sizes": MODEL_SIZES, "presets": {d: PRESETS.get(d, {}) for d in dataset_names},
         "genre_budget": budget_meta(dataset_names, quick)},
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
                protocol = experiment_protocol(dataset, seed)
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
    lines = header("GenRe ablations", meta, [
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
    lines += error_lines(table, lambda r: f"{r['dataset']} {r['factor']}={r['value']}")
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
    save_png(fig, path)


