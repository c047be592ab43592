"""Constraints per category and per person, enforced by construction while sampling.

Two sources, combined for every person:

- the schema, per categorical feature: `never: [values]` (values a recourse may not move
  to; a person already there may stay) and `allowed: {from_value: [to_values]}` (the only
  moves permitted from that value; a value not listed may move anywhere not forbidden);
- the call, per person (`Constraints`, DiCE's features_to_vary / permitted_range):
  `freeze` (features that keep the person's value) and `ranges` {feature: (lo, hi)} in
  original units (numeric features: a changed value lies in [lo, hi]; an unchanged one may
  lie outside, like a category the person already has).

`row_rules` turns them into per-row arrays in normalised units (`RowRules`): the sampler
forbids the bins that decode to a value the person may not move to (`bin_mask`), decodes
frozen features as fixed, and `project` puts every sample on what is allowed (clipping a
changed value into its range, keeping the person's value where a category move is not
allowed), so every profile obeys them, whatever the model learned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from genre.data.encoder import CHANGE_TOL, Encoder
from genre.data.schema import Schema, category_key
from genre.errors import InputError
from genre.utils.hints import near_match


@dataclass(frozen=True)
class Constraints:
    """Per-call constraints applying to every person of a call.

    Parameters
    ----------
    freeze : tuple of str
        Features no recourse may change.
    ranges : mapping str -> (lo, hi)
        Numeric features whose changed value must lie in [lo, hi] (original units; None
        for an open end).
    """

    freeze: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.freeze and not self.ranges

    @classmethod
    def make(cls, freeze: Iterable[str] | None = None,
             ranges: Mapping | None = None, source: str = "constraints") -> Constraints:
        """Constraints from Python values, checked for form (InputError naming `source`).

        Parameters
        ----------
        freeze : iterable of str or None
        ranges : mapping feature -> (lo, hi) or [lo, hi] (None: open end), or None
        source : str
            How errors name the caller's argument.

        Returns
        -------
        Constraints
        """
        if isinstance(freeze, str):
            freeze = [freeze]
        frozen = tuple(str(f) for f in (freeze or ()))
        clean: dict[str, tuple[float | None, float | None]] = {}
        if ranges is not None and not isinstance(ranges, Mapping):
            raise InputError(f"{source}: ranges must map a feature to (lo, hi), got "
                             f"{type(ranges).__name__}")
        for name, bounds in (ranges or {}).items():
            if not isinstance(bounds, list | tuple) or len(bounds) != 2:
                raise InputError(f"{source}: range of '{name}' must be (lo, hi), got "
                                 f"{bounds!r}")
            lo, hi = (_bound(b, name, source) for b in bounds)
            if lo is not None and hi is not None and lo > hi:
                raise InputError(f"{source}: range of '{name}' has lo {lo:g} > hi {hi:g}")
            clean[str(name)] = (lo, hi)
        return cls(frozen, clean)

    @classmethod
    def from_cli(cls, freeze: list[str] | None, ranges: list[str] | None) -> Constraints:
        """From `--freeze FEATURE` and `--range FEATURE=LO:HI` (either end may be left
        empty: age=:40), each repeatable; InputError naming the option otherwise.

        Parameters
        ----------
        freeze : list of str or None
        ranges : list of str or None

        Returns
        -------
        Constraints
        """
        parsed: dict[str, tuple] = {}
        for text in ranges or ():
            name, eq, span = str(text).partition("=")
            lo, colon, hi = span.partition(":")
            if not eq or not colon or not name.strip():
                raise InputError(f"--range: expected FEATURE=LO:HI (e.g. age=18:40, age=:40), "
                                 f"got {text!r}")
            try:
                parsed[name.strip()] = tuple(float(v) if v.strip() else None for v in (lo, hi))
            except ValueError:
                raise InputError(f"--range: expected numbers in FEATURE=LO:HI, got "
                                 f"{text!r}") from None
        return cls.make(freeze, parsed, source="--range")

    def check(self, schema: Schema, source: str = "constraints") -> Constraints:
        """Names are the schema's features (a near match suggested otherwise); ranges name
        numeric features. Returns self; InputError naming `source` otherwise."""
        names = schema.names
        for name in (*self.freeze, *self.ranges):
            if name not in names:
                raise InputError(f"{source}: '{name}' is not a feature of the model"
                                 f"{near_match(name, names)}; the features are {names}")
        for name in self.ranges:
            if schema[name].is_categorical:
                raise InputError(f"{source}: range of '{name}': ranges apply to numeric "
                                 "features (for a categorical one use freeze, or never/allowed "
                                 "in the schema)")
        return self


def _bound(v, name: str, source: str) -> float | None:
    if v is None:
        return None
    ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    if not ok or not math.isfinite(float(v)):
        raise InputError(f"{source}: range of '{name}' needs finite numbers (or None), got "
                         f"{v!r}")
    return float(v)


@dataclass
class RowRules:
    """Per-row constraints in normalised units (N rows, D features).

    fixed (N, D): features that keep the row's value. lo, hi (N, D): where a changed value
    may lie. moves: {j: (table (n, n) bool, codes (N,))}: the category moves allowed from
    each row's category of categorical feature j (genre.data.schema.Feature.move_table).
    """

    fixed: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    moves: dict[int, tuple[np.ndarray, np.ndarray]]
    n_codes: dict[int, int]

    def repeat(self, n: int) -> RowRules:
        """Each row repeated n times in place (the sampler's rows)."""
        return RowRules(np.repeat(self.fixed, n, axis=0), np.repeat(self.lo, n, axis=0),
                        np.repeat(self.hi, n, axis=0),
                        {j: (t, np.repeat(c, n)) for j, (t, c) in self.moves.items()},
                        self.n_codes)

    def bin_mask(self, left: np.ndarray, right: np.ndarray, values: np.ndarray,
                 own: np.ndarray) -> np.ndarray:
        """(N, D, n_bins) bool: the bins a row may sample.

        left, right (n_bins,): each bin's edges; values (D, n_bins): what each bin decodes
        to; own (N, D): each row's own bin (always allowed: it keeps the row's value)."""
        N, D = self.fixed.shape
        mask = ((right[None, None, :] > self.lo[:, :, None] - 1e-9)
                & (left[None, None, :] < self.hi[:, :, None] + 1e-9))
        for j, (table, codes) in self.moves.items():
            n = self.n_codes[j]
            bin_code = np.clip(np.rint(values[j] * max(n - 1, 1)), 0, n - 1).astype(int)
            mask[:, j, :] &= table[codes][:, bin_code]
        mask[np.arange(N)[:, None], np.arange(D)[None, :], own] = True
        return mask

    def project(self, X: np.ndarray, factual: np.ndarray, encoder: Encoder) -> np.ndarray:
        """Samples X (rows as `factual`) on what each row allows: frozen features keep the
        row's value, changed values are clipped into [lo, hi] (kept where that would move
        a monotone feature the wrong way), and a category the row may not move to is
        replaced by its own."""
        X = np.array(X, dtype=float, copy=True)
        X = np.where(self.fixed, factual, X)
        moved = np.abs(X - factual) > CHANGE_TOL
        X = np.where(moved, np.clip(X, self.lo, np.maximum(self.hi, self.lo)), X)
        mono = encoder.monotone
        wrong = ((mono > 0) & (X < factual)) | ((mono < 0) & (X > factual))
        X = np.where(wrong, factual, X)
        for j, (table, codes) in self.moves.items():
            n = self.n_codes[j]
            to = np.clip(np.rint(X[:, j] * max(n - 1, 1)), 0, n - 1).astype(int)
            ok = table[codes, to]
            X[:, j] = np.where(ok, X[:, j], factual[:, j])
        return X


def row_rules(encoder: Encoder, X: np.ndarray,
              constraints: Constraints | None = None) -> RowRules | None:
    """The schema's category rules and `constraints` for the rows X (normalised), or None
    when neither constrains anything (the sampler's plain path).

    Parameters
    ----------
    encoder : Encoder
        The model's fitted encoder.
    X : ndarray (N, D)
        The people, normalised.
    constraints : Constraints or None
        Per-call freeze and ranges (checked against the schema here).

    Returns
    -------
    RowRules or None
    """
    schema = encoder.schema_
    moves_of = {j: f.move_table() for j, f in enumerate(schema.features) if f.is_categorical}
    moves_of = {j: t for j, t in moves_of.items() if t is not None}
    if not moves_of and (constraints is None or constraints.empty):
        return None
    X = np.asarray(X, dtype=float)
    N, D = X.shape
    fixed = np.tile(encoder.immutable_mask, (N, 1))
    lo, hi = np.full((N, D), -np.inf), np.full((N, D), np.inf)
    if constraints is not None:
        constraints.check(schema)
        names = schema.names
        for name in constraints.freeze:
            fixed[:, names.index(name)] = True
        for name, (a, b) in constraints.ranges.items():
            j, f = names.index(name), schema[name]
            span = encoder.hi_[j] - encoder.lo_[j]
            if a is not None:
                lo[:, j] = ((math.ceil(a) if f.integer else a) - encoder.lo_[j]) / span
            if b is not None:
                hi[:, j] = ((math.floor(b) if f.integer else b) - encoder.lo_[j]) / span
            if lo[0, j] > hi[0, j]:  # no value of the grid in range: nothing may change
                fixed[:, j] = True
    n_codes = {j: len(schema.features[j].categories) for j in moves_of}
    moves = {j: (t, np.clip(np.rint(X[:, j] * max(n_codes[j] - 1, 1)), 0,
                            n_codes[j] - 1).astype(int)) for j, t in moves_of.items()}
    return RowRules(fixed, lo, hi, moves, n_codes)


def category_moves(encoder: Encoder) -> list[tuple[int, np.ndarray]]:
    """[(j, move table)] for the categorical features with never/allowed (pair synthesis)."""
    return [(j, f.move_table()) for j, f in enumerate(encoder.schema_.features)
            if f.is_categorical and f.move_table() is not None]


def violations(people, profiles, schema: Schema,
               constraints: Constraints | None = None) -> list[str]:
    """Every way the 'recourse' rows of `profiles` (a recourse table for `people`, original
    units) break the schema's never/allowed rules or `constraints`: one line each (empty:
    none). For tests and audits.

    Parameters
    ----------
    people, profiles : DataFrame
    schema : Schema
    constraints : Constraints or None

    Returns
    -------
    list of str
    """
    rows = profiles[profiles["status"] == "recourse"]
    out = []
    freeze = set(constraints.freeze) if constraints else set()
    ranges = dict(constraints.ranges) if constraints else {}
    for _, r in rows.iterrows():
        person = people.iloc[int(r["person"])]
        for f in schema.features:
            a, b = person[f.name], r[f.name]
            if f.is_categorical:
                same = category_key(a) == category_key(b)
            else:
                same = float(a) == float(b)
            if same:
                continue
            if f.name in freeze or f.immutable:
                out.append(f"person {r['person']}: frozen '{f.name}' moved {a!r} -> {b!r}")
            if f.name in ranges:
                lo, hi = ranges[f.name]
                if (lo is not None and float(b) < lo) or (hi is not None and float(b) > hi):
                    out.append(f"person {r['person']}: '{f.name}' = {b!r} outside {lo}..{hi}")
            table = f.move_table() if f.is_categorical else None
            if table is not None:
                code = {category_key(c): i for i, c in enumerate(f.categories)}
                if not table[code[category_key(a)], code[category_key(b)]]:
                    out.append(f"person {r['person']}: '{f.name}' may not move {a!r} -> {b!r}")
    return out


__all__ = ["Constraints", "RowRules", "category_moves", "row_rules", "violations"]
