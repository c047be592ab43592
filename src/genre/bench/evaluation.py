"""Run one recourse method on a protocol's individuals and measure it."""

from __future__ import annotations

import time

import numpy as np

from genre.baselines import RecourseMethod
from genre.bench.metrics import Report, evaluate
from genre.bench.protocol import Protocol


def run_method(method: RecourseMethod, protocol: Protocol, n: int = 200, *,
               monotone: bool = False, fitted: bool = False,
               X: np.ndarray | None = None) -> tuple[Report, np.ndarray, float]:
    """Fit (unless already fitted) and generate recourse for n rejected test individuals.

    Returns the metrics report (its `seconds` is the generation wall time), the recourse
    array, and the fit wall time.
    """
    X = protocol.individuals(n) if X is None else X
    fit_seconds = 0.0
    if not fitted:
        t0 = time.perf_counter()
        method.fit(protocol.task(monotone=monotone))
        fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_plus = method.generate(X)
    seconds = time.perf_counter() - t0
    # Violations are always counted against the full schema, monotone facts included.
    report = evaluate(X, X_plus, encoder=protocol.encoder, gold=protocol.gold, h=protocol.h,
                      lof=protocol.lof, seconds=seconds)
    return report, X_plus, fit_seconds
