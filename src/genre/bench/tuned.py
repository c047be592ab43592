"""Tuned rows of the table: a method's setting chosen on validation individuals.

A row "<method>-tuned" (genre.bench.methods.VARIANTS) tries each setting of its grid (8:
the budget of GenRe's temperature x best_k grid): the method is built with the setting,
fitted on the protocol's task and asked for recourse for `Protocol.validation_individuals`
(rejected rows of the training split, never test rows); the benchmark's Score there (gold
validity + LOF inliers - cost/D) picks the setting, and that fitted method answers the test
individuals. GenRe is fitted once (its grid holds sampling settings only).
"""

from __future__ import annotations

import math
import time

from genre.bench.evaluation import run_method
from genre.bench.methods import VARIANTS, base_method, fit_genre_cached, make


def is_tuned(name: str) -> bool:
    """Whether the row `name` chooses a setting on validation individuals."""
    return bool(name in VARIANTS and VARIANTS[name].grid)


def choose(name: str, protocol, n: int, *, quick: bool, monotone: bool,
           params: dict[str, dict] | None = None, use_cache: bool = True) -> tuple:
    """Try every setting of the row's grid on n validation individuals; keep the best.

    Parameters
    ----------
    name : str
        A tuned row, e.g. "wachter-tuned".
    protocol : Protocol
        The cell's protocol.
    n : int
        Validation individuals (the test budget: the cell's n).
    quick, monotone, params, use_cache
        As for the cell.

    Returns
    -------
    tuple
        (the fitted method with the chosen setting, record): record holds "choice" (the
        setting), "grid" (each setting with its validation Score, Val, LOF and Cost),
        "n_validation" and "seconds".
    """
    t0 = time.perf_counter()
    grid = VARIANTS[name].grid
    X_val = protocol.validation_individuals(n)
    if len(X_val) == 0:
        raise ValueError(f"{protocol.name}: h rejects no training row to tune on")
    base = base_method(name)
    genre = None
    if base == "genre":  # one fit; the grid varies sampling only
        genre, _, _ = fit_genre_cached(
            make(name, protocol.name, protocol.seed, quick, params), protocol, monotone,
            use_cache)
    scores, best, best_method = [], None, None
    for setting in grid:
        if genre is not None:
            method = genre.set_params(**setting)
            report, _, _ = run_method(method, protocol, len(X_val), monotone=monotone,
                                      fitted=True, X=X_val)
        else:
            overrides = (params or {}) | {name: (params or {}).get(name, {}) | setting}
            method = make(name, protocol.name, protocol.seed, quick, overrides)
            report, _, _ = run_method(method, protocol, len(X_val), monotone=monotone,
                                      X=X_val)
        scores.append({"setting": setting, "score": report.score, "val": report.val,
                       "lof": report.lof, "cost": report.cost})
        if best is None or _finite(report.score) > _finite(best["score"]):
            best, best_method = scores[-1], method
    if genre is not None:
        best_method = genre.set_params(**best["setting"])
    return best_method, {"choice": best["setting"], "grid": scores,
                         "n_validation": len(X_val),
                         "seconds": time.perf_counter() - t0}


def _finite(score: float) -> float:
    return score if math.isfinite(score) else -math.inf


__all__ = ["choose", "is_tuned"]
