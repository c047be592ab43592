"""What the tables layer needs from a recourse model: a small protocol of its own, so that
genre.tables never imports genre.core (GenRe satisfies it)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from genre.data.encoder import Encoder
from genre.errors import ModelError


class Answers(Protocol):
    """A block of people answered in normalised units (genre.core.sampling.Answers)."""

    accepted: np.ndarray  # (N,) h already accepts the factual
    X_plus: np.ndarray  # (N, K, D) profiles; NaN rows where none was found
    probability: np.ndarray  # (N, K) h's probability
    effort: np.ndarray  # (N, K) the schema's effort
    plausible: np.ndarray  # (N, K) the plausibility flag


class Answerer(Protocol):
    """A fitted model that answers blocks of normalised rows."""

    encoder_: Encoder

    def answer(self, X: np.ndarray, options: int = 1, best_k: int | None = None,
               seed: int | None = None) -> Answers:
        """Profiles, probability, effort and plausibility for each row of X."""
        ...

    def __sklearn_is_fitted__(self) -> bool:
        """Whether the model was fitted (or loaded)."""
        ...


def check_fitted(model: Answerer) -> None:
    """Raise the model's NotFittedError (a ModelError) unless it is fitted.

    Parameters
    ----------
    model : Answerer

    Returns
    -------
    None
    """
    if not model.__sklearn_is_fitted__():
        raise ModelError("GenRe is not fitted: call fit(task) or GenRe.load(dir) first")
