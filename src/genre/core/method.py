"""The interface every recourse method implements (GenRe and the baselines alike)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from genre.core.task import RecourseTask


class RecourseMethod(ABC):
    """fit(task) learns whatever the method needs; generate(X) answers queries.

    Conventions (scikit-learn's): hyper-parameters are set in __init__ and stored
    unchanged; fit returns self; learned state lives in attributes ending in '_'.
    generate takes and returns normalised arrays of shape (n, D); a row of NaN means the
    method found no recourse for that individual (metrics count it as invalid).
    Outputs must respect the schema: immutables equal to the factual, categoricals and
    integers on their grid (Encoder.project does this for methods that search freely).
    """

    name = "method"

    def fit(self, task: RecourseTask) -> RecourseMethod:
        self.task_ = task
        return self

    @abstractmethod
    def generate(self, X: np.ndarray) -> np.ndarray:
        """Recourse for each row of X (normalised); NaN rows where none was found."""
