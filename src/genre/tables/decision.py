"""When h accepts a profile: the decision threshold and the optional `min_probability`.

A profile is a recourse only when h accepts it: its probability of the favourable outcome
is above h's decision threshold (THRESHOLD) and, when a `min_probability` is given (DiCE's
stopping threshold: a margin for a bank that wants more than a coin flip), at least that.
A NaN probability is never accepted.
"""

from __future__ import annotations

import math

import numpy as np

from genre.errors import InputError

THRESHOLD = 0.5  # h accepts a profile when its probability exceeds this
# Draws after the first for people whose samples h all rejects: each draws as many samples
# again from the person's own stream, before the answer is 'none found'.
RETRY_ROUNDS = 3


def accepts(p, min_probability: float | None = None) -> np.ndarray:
    """Whether h accepts profiles with probabilities `p` (NaN: never).

    Parameters
    ----------
    p : array_like
        h's probabilities of the favourable outcome.
    min_probability : float or None
        Also require p >= min_probability (None: the decision threshold alone).

    Returns
    -------
    ndarray of bool, p's shape
    """
    p = np.asarray(p, dtype=float)
    ok = p > THRESHOLD  # False for NaN
    if min_probability is not None:
        ok &= p >= min_probability
    return ok


def check_min_probability(value, source: str = "min_probability") -> float | None:
    """`value` as a float in [0, 1), or None; InputError naming `source` otherwise.

    Parameters
    ----------
    value : float or None
        The requested minimum probability.
    source : str
        How errors name it (e.g. '--min-probability').

    Returns
    -------
    float or None
    """
    if value is None:
        return None
    ok = (isinstance(value, int | float | np.integer | np.floating)
          and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1)
    if not ok:
        raise InputError(f"{source}: expected a probability in [0, 1), got {value!r}")
    return float(value)


__all__ = ["RETRY_ROUNDS", "THRESHOLD", "accepts", "check_min_probability"]
