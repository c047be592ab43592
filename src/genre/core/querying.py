"""The query side of GenRe: samples, the chosen profile, options, a block's answer and
recourse for a table of people, on a fitted model (GenRe inherits it; the fitting side,
parameters and persistence stay in genre.core.estimator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre.core import sampling
from genre.core.params import check_is_fitted
from genre.core.plausibility import PlausibilityFlag
from genre.errors import InputError
from genre.tables.constraints import Constraints
from genre.tables.streaming import answer_blocks
from genre.utils.limits import check_request

Options = sampling.Options  # GenRe.options' result (defined with the sampler)


class QueryMixin:
    """What a fitted GenRe answers (see genre.core.sampling for the algorithms)."""

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.config_.n_features:
            raise InputError(f"expected an array of shape (n, {self.config_.n_features}) for "
                             f"schema '{self.encoder_.schema_.name}', got {X.shape}")
        return X

    def sample(self, X: np.ndarray, n_samples: int = 1, *, seed: int | None = None,
               use_cache: bool = True, temperature: float | None = None) -> np.ndarray:
        """n_samples recourse candidates per row: (N, n_samples, D), on the schema's grid.

        Parameters
        ----------
        X : ndarray
            (N, D) normalised factuals.
        n_samples : int
            Candidates per row.
        seed : int, optional
            Sampling seed (default: the model's seed).
        use_cache : bool
            The fast decoder (True) or the reference one; same samples.
        temperature : float, optional
            Default: the tuned one with tune="auto" (see tuning_), else the parameter.

        Returns
        -------
        ndarray
            (N, n_samples, D).
        """
        return sampling.sample(self, self._check_input(X), n_samples, seed, use_cache,
                               temperature=temperature)

    def generate(self, X: np.ndarray, best_k: int | None = None, *,
                 seed: int | None = None) -> np.ndarray:
        """One recourse per row: of best_k samples, the one h scores highest (the paper's
        rule, select="h"). With select="effort": the cheapest (by the schema's effort) sample
        h accepts, or the one h scores highest when h accepts none. "h" is the default: on
        adult, compas and heloc capped at 3 changes it kept gold validity at 0.99 / 0.94 on
        compas / adult where "effort" fell to 0.75 / 0.80 (the cheapest accepted samples sit
        near h's boundary; measured on older code, 84c8469: benchmarks/results/max_changes,
        rebuilt by benchmarks/max_changes.py).

        Parameters
        ----------
        X : ndarray
            (N, D) normalised factuals.
        best_k : int, optional
            Samples per row (default: the model's best_k).
        seed : int, optional
            Sampling seed.

        Returns
        -------
        ndarray
            (N, D) profiles.
        """
        X = self._check_input(X)
        best_k = sampling.setting(self, "best_k") if best_k is None else best_k
        return sampling.choose(self, X, best_k, seed)[0]

    def options(self, X: np.ndarray, k: int = 3, n_samples: int | None = None, *,
                seed: int | None = None) -> Options:
        """Up to k distinct recourses per row that h accepts, cheapest first, diverse.

        Draws n_samples candidates (default max(best_k, 10 k)) per person, keeps the distinct
        ones h scores favourable and ranks them by the schema's effort (L1 cost without
        effort keys): first the cheapest profile of each distinct set of changed features,
        cheapest first; then the other profiles (near-copies), cheapest first. Padding is NaN.

        Parameters
        ----------
        X : ndarray
            (N, D) normalised factuals.
        k : int
            Options per person.
        n_samples : int, optional
            Candidates per person.
        seed : int, optional
            Sampling seed.

        Returns
        -------
        Options
        """
        n_samples = max(sampling.setting(self, "best_k"), 10 * k) if n_samples is None \
            else n_samples
        return sampling.options(self, self._check_input(X), k, n_samples, seed)

    def answer(self, X: np.ndarray, options: int = 1, best_k: int | None = None,
               seed: int | None = None, min_probability: float | None = None,
               constraints=None) -> sampling.Answers:
        """A block of people answered at once (what every table entry point calls):
        profiles, h's probability, effort and plausibility flag; see sampling.answer.

        Parameters
        ----------
        X : ndarray
            (N, D) normalised factuals.
        options : int
            Profiles per person.
        best_k : int, optional
            Samples per person.
        seed : int, optional
            Sampling seed (each person draws from a stream keyed by it and their values).
        min_probability : float, optional
            A recourse needs at least this probability from h (besides h accepting it).
        constraints : genre.tables.constraints.Constraints, optional
            Per-call freeze and ranges.

        Returns
        -------
        genre.core.sampling.Answers
        """
        return sampling.answer(self, self._check_input(X), options, best_k, seed,
                               min_probability, constraints)

    def recourse(self, people: pd.DataFrame, options: int = 1, *, seed: int = 0,
                 best_k: int | None = None, id_column: str | None = None,
                 sampler: str | None = None, min_probability: float | None = None,
                 freeze=None, ranges=None) -> pd.DataFrame:
        """Recourse for every row of the DataFrame `people` (original units): the table the
        CLI writes to recourse.csv, with `person` the 0-based row position (see
        genre.tables.recourse.recourse_table for the columns; genre.changes for the long view).
        Rows are answered in blocks as `genre recourse` answers a file, so both give the
        same profiles for the same rows and seed.

        Parameters
        ----------
        people : DataFrame
            Original units, the schema's features (the target and id column may be present).
        options : int
            Up to this many profiles per person.
        seed : int
            Sampling seed.
        best_k : int, optional
            Samples per person.
        id_column : str, optional
            Carried through (default: the schema's id).
        sampler : str, optional
            "autoregressive" or "student" for this call (default: the model's).
        min_probability : float, optional
            A profile is a recourse only if h gives it at least this probability.
        freeze : list of str, optional
            Features no recourse may change (every row).
        ranges : dict, optional
            {feature: (lo, hi)} in original units where a changed numeric feature must lie
            (None: an open end). Both are enforced while sampling (genre.tables.constraints).

        Returns
        -------
        DataFrame
            A record's answer depends only on the record and the seed (genre.core.seeding).
        """
        check_is_fitted(self)
        seed, best_k, options = check_request(seed=seed, best_k=best_k, options=options)
        if not isinstance(people, pd.DataFrame):
            raise InputError(f"people: expected a pandas DataFrame, got {type(people).__name__}")
        id_column = id_column if id_column is not None else self.encoder_.schema_.id_column
        constraints = Constraints.make(freeze, ranges, source="recourse").check(
            self.encoder_.schema_, source="recourse")
        with self.sampling_with(sampler):
            results = [r for r, _, _ in answer_blocks(
                self, [people], options=options, best_k=best_k, seed=seed, source="people",
                id_column=id_column, min_probability=min_probability,
                constraints=constraints)]
        if not results:
            raise InputError("people: no rows")
        result = pd.concat(results, ignore_index=True)
        result.attrs["id_column"] = id_column
        return result

    def plausibility(self) -> PlausibilityFlag:
        """The plausible flag: distance to the nearest observed favourable training rows,
        its threshold calibrated so that about 5% of held-out favourable rows are flagged
        (see genre.core.plausibility). Built on first use, the same after save and load.

        Returns
        -------
        PlausibilityFlag
        """
        check_is_fitted(self)
        if getattr(self, "_lof", None) is None:
            self._lof = PlausibilityFlag(seed=self.seed).fit(self.reference_)
        return self._lof


__all__ = ["Options", "QueryMixin"]
