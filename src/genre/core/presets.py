"""Per-dataset defaults for GenRe, found by benchmarks/genre_search.py (validation
individuals from the training split; see benchmarks/results/genre_search_<dataset>.md).
Unlisted datasets, and users' own data, get the class defaults."""

from __future__ import annotations

from genre.core.estimator import GenRe

PRESETS: dict[str, dict] = {
    "compas": {"gamma": 0.7, "temperature": 2.0, "best_k": 30, "max_seconds": 240.0},
    "adult": {"gamma": 0.5, "temperature": 2.0, "best_k": 30, "max_seconds": 480.0},
    "heloc": {"gamma": 0.5, "temperature": 2.0, "best_k": 10, "max_seconds": 480.0},
}
# A fast preset for demos and smoke tests: a smaller budget, everything else the same.
FAST = {"max_epochs": 40, "patience": 10, "max_seconds": 60.0}


def genre_for(dataset: str, fast: bool = False, **overrides) -> GenRe:
    """GenRe with the measured defaults for a bundled dataset (class defaults otherwise).

    Parameters
    ----------
    dataset : str
        A bundled dataset name (compas, adult, heloc have presets).
    fast : bool
        Apply the FAST budget.
    **overrides
        GenRe parameters that win over the preset.

    Returns
    -------
    GenRe
        Unfitted.
    """
    return GenRe(**(PRESETS.get(dataset, {}) | (FAST if fast else {}) | overrides))
