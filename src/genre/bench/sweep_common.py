"""What the experiments (genre.bench.sweeps, ablation, miscalibration) share: GenRe's
training budget, the methods each studies, the recorder that writes their files, and small
checks. Imports no other experiment module."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from genre.bench.common import error_text, machine, plain, versions
from genre.bench.runner import result_row
from genre.errors import InputError
from genre.io import atomic_path, write_text
from genre.utils.extras import require

RESULTS = Path("benchmarks/results")
EXPERIMENTS = ("lambda_sweep", "ablation", "miscalibration")

# GenRe's training budget in the experiments: epochs, not seconds (compas converges within
# the class default of 200 epochs with patience 20; adult and heloc get about 2-3 minutes).
EXPERIMENT_BUDGET: dict[str, dict] = {"adult": {"max_epochs": 20}, "heloc": {"max_epochs": 60}}

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
    return ({} if quick else EXPERIMENT_BUDGET.get(dataset, {})) | extra


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


def header(title: str, meta: dict, notes: Sequence[str]) -> list[str]:
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


def error_lines(table: pd.DataFrame, label) -> list[str]:
    if "error" not in table or not (table.error.fillna("") != "").any():
        return []
    bad = table[table.error.fillna("") != ""]
    return ["", "Errors:", ""] + [f"- {label(r)}: {r['error']}"
                                  for r in bad.to_dict(orient="records")]


def save_png(fig, path: Path) -> None:
    require("matplotlib", "bench", "drawing the sweep figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def experiment_protocol(dataset: str, seed: int):
    from genre.bench.protocol import build_protocol

    return build_protocol(dataset, seed)


# ------------------------------------------------------------------ helpers
def positive_values(values: Sequence[float], what: str) -> list[float]:
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


def check_n(n: int) -> None:
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")


def budget_meta(datasets: Sequence[str], quick: bool) -> dict:
    return {d: "quick preset" if quick else genre_params(d, quick) for d in datasets}


