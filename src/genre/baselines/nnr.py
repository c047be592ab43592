"""Nearest-neighbour recourse: the closest training instance that h accepts.

Candidates are training points with h(x) > 0.5; a candidate is feasible for a query when its
immutable features are equal (and, when the task enforces them, monotone features moved
only their allowed way). The search is the one pair synthesis uses, with k = 1: with effort
keys in the schema "closest" is by the schema's effort, and a candidate changing more than
max_changes features is not feasible.
"""

from __future__ import annotations

import numpy as np

from genre.core.method import RecourseMethod
from genre.core.pairs import PairSampler
from genre.core.task import RecourseTask


class NearestNeighbourRecourse(RecourseMethod):
    name = "nnr"

    def __init__(self, threshold: float = 0.5, block_size: int = 512):
        self.threshold = threshold
        self.block_size = block_size

    def fit(self, task: RecourseTask) -> NearestNeighbourRecourse:
        self.task_ = task
        accepted = task.classifier.predict_proba(task.X_train) > self.threshold
        self.candidates_ = task.X_train[accepted]
        return self

    def generate(self, X: np.ndarray) -> np.ndarray:
        enc = self.task_.encoder
        effort = enc.effort_terms() if enc.schema_.has_effort else None
        search = PairSampler(X, self.candidates_, enc.immutable_mask, lambda_=1.0, k=1,
                             monotone=enc.monotone, block_size=self.block_size, effort=effort,
                             max_changes=enc.schema_.max_changes)
        out = np.full(X.shape, np.nan)
        out[search.source_index_] = self.candidates_[search.neighbours_[:, 0]]
        return out
