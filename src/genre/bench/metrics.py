"""The paper's metrics (Cost, Val, LOF, Score) and constraint-violation counts.

All inputs are normalised arrays. A recourse row of NaN means "no recourse found": it
counts as invalid and as an outlier, and is left out of the mean cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from genre.core.task import Classifier
from genre.data.encoder import Encoder
from genre.tables.explain import TOL


def found_mask(X_plus: np.ndarray) -> np.ndarray:
    return ~np.isnan(X_plus).any(axis=1)


def cost(X: np.ndarray, X_plus: np.ndarray) -> float:
    """Mean L1 distance over individuals with a recourse (nan if none has one)."""
    ok = found_mask(X_plus)
    return float(np.abs(X[ok] - X_plus[ok]).sum(axis=1).mean()) if ok.any() else float("nan")


def mean_changes(X: np.ndarray, X_plus: np.ndarray) -> float:
    """Mean number of features changed, over individuals with a recourse (nan if none)."""
    ok = found_mask(X_plus)
    return float(Encoder.n_changes(X[ok], X_plus[ok]).mean()) if ok.any() else float("nan")


def validity(clf: Classifier, X_plus: np.ndarray) -> float:
    """Fraction of all individuals whose recourse clf scores favourable (P > 0.5)."""
    ok = found_mask(X_plus)
    good = np.zeros(len(X_plus), dtype=bool)
    if ok.any():
        good[ok] = clf.predict_proba(X_plus[ok]) > 0.5
    return float(good.mean())


def lof_inliers(lof, X_plus: np.ndarray) -> np.ndarray:
    """Boolean inlier flag per individual (False where no recourse was found)."""
    ok = found_mask(X_plus)
    inlier = np.zeros(len(X_plus), dtype=bool)
    if ok.any():
        inlier[ok] = lof.predict(X_plus[ok]) == 1
    return inlier


def score(val: float, lof: float, cost_: float, n_features: int) -> float:
    """Score = Val + LOF - Cost / D (the paper's summary; 2 is the ceiling)."""
    return val + lof - (cost_ if np.isfinite(cost_) else n_features) / n_features


@dataclass(frozen=True)
class Violations:
    immutable: int  # individuals whose recourse changed an immutable feature
    monotone: int  # individuals whose recourse moved a monotone feature the wrong way
    invalid_category: int  # individuals with a categorical/integer value off its grid
    out_of_bounds: int  # individuals with a value outside the schema's bounds


def violations(encoder: Encoder, X: np.ndarray, X_plus: np.ndarray) -> Violations:
    """Count individuals whose recourse breaks each kind of schema constraint."""
    ok = found_mask(X_plus)
    X, Xp = X[ok], X_plus[ok]
    delta = Xp - X
    imm = (np.abs(delta[:, encoder.immutable_mask]) > TOL).any(axis=1)
    mono = encoder.monotone
    wrong = ((mono > 0) & (delta < -TOL)) | ((mono < 0) & (delta > TOL))
    step = encoder.grid_step
    grid = step > 0
    off = np.abs(Xp[:, grid] / step[grid] - np.rint(Xp[:, grid] / step[grid])) > 1e-4
    # A point may sit outside the training range only where the factual already did.
    lower, upper = np.minimum(encoder.lower, X), np.maximum(encoder.upper, X)
    oob = ((Xp < lower - TOL) | (Xp > upper + TOL)).any(axis=1)
    return Violations(int(imm.sum()), int(wrong.any(axis=1).sum()), int(off.any(axis=1).sum()),
                      int(oob.sum()))


@dataclass(frozen=True)
class Report:
    """One method on one set of individuals: the figures `genre evaluate` prints."""

    n: int
    found: int
    cost: float
    val: float
    val_h: float
    lof: float
    score: float
    violations: Violations
    seconds: float
    changes: float = float("nan")  # mean number of features changed (found recourses)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["violations"] = asdict(self.violations)
        return d


def evaluate(X: np.ndarray, X_plus: np.ndarray, *, encoder: Encoder, gold: Classifier,
             h: Classifier, lof, seconds: float = float("nan")) -> Report:
    c = cost(X, X_plus)
    val = validity(gold, X_plus)
    lof_frac = float(lof_inliers(lof, X_plus).mean())
    return Report(
        n=len(X), found=int(found_mask(X_plus).sum()), cost=c, val=val,
        val_h=validity(h, X_plus), lof=lof_frac,
        score=score(val, lof_frac, c, X.shape[1]),
        violations=violations(encoder, X, X_plus), seconds=seconds,
        changes=mean_changes(X, X_plus),
    )
