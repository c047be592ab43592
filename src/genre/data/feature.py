"""A feature of a schema, and the helpers that compare and write its values (shared by the
schema, its files and the encoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from genre.errors import SchemaError, value_repr

Kind = Literal["numeric", "categorical"]
Monotone = Literal["increase", "decrease"] | None

# The model computes in float32: numbers (bounds, cells) beyond its range are refused.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def python_scalar(v):
    """numpy scalar -> Python scalar (anything else unchanged), so schemas serialise to
    JSON and YAML."""
    return v.item() if isinstance(v, np.generic) else v


def category_key(value) -> str:
    """Key used to match a cell against a category list: 1, 1.0 and '1' all match '1'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bool | np.bool_):
        return str(value)
    return str(value).strip()


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    categories: tuple[Any, ...] | None = None
    immutable: bool = False
    monotone: Monotone = None
    min: float | None = None
    max: float | None = None
    integer: bool = False
    cost: float | None = None  # effort weight; None = not given (1)
    ordered: bool = False  # categorical only: the category order means something
    # categorical only: values a recourse may not move to (a person already there may stay)
    never: tuple[Any, ...] | None = None
    # categorical only: ((from_value, (to_values...)), ...): the only moves from from_value
    allowed: tuple[tuple[Any, tuple[Any, ...]], ...] | None = None

    def __post_init__(self) -> None:
        where = f"feature '{self.name}'"
        if self.cost is not None and (isinstance(self.cost, bool)
                                      or not isinstance(self.cost, int | float)
                                      or not self.cost >= 0 or not finite32(self.cost)):
            raise SchemaError(f"{where}: cost must be a finite number >= 0 (at most "
                              f"3.4e38), got {self.cost!r}"[:200])
        if self.ordered and self.kind != "categorical":
            raise SchemaError(f"{where}: ordered applies to categorical features only")
        if self.kind not in ("numeric", "categorical"):
            raise SchemaError(
                f"{where}: type must be 'numeric' or 'categorical', got {self.kind!r}"
            )
        if self.monotone not in (None, "increase", "decrease"):
            raise SchemaError(
                f"{where}: monotone must be 'increase' or 'decrease', got {self.monotone!r}"
            )
        if self.kind == "categorical":
            if self.categories is not None:
                if len(self.categories) < 1:
                    raise SchemaError(f"{where}: categories must not be empty")
                seen: dict[str, Any] = {}
                for c in self.categories:
                    key = category_key(c)
                    if key in seen:
                        raise SchemaError(
                            f"{where}: categories contain duplicates: {seen[key]!r} and "
                            f"{c!r} are the same value once spaces are trimmed and 1.0 is read "
                            "as 1; list each value once")
                    seen[key] = c
            if self.min is not None or self.max is not None or self.integer:
                raise SchemaError(f"{where}: min/max/integer apply to numeric features only")
        elif self.categories is not None:
            raise SchemaError(f"{where}: categories apply to categorical features only")
        self._check_moves(where)
        for key in ("min", "max"):
            bound = getattr(self, key)
            if bound is not None and not finite32(bound):
                raise SchemaError(f"{where}: '{key}' must be a finite number within +-3.4e38 "
                                  f"(the model computes in float32), got {bound!r}")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise SchemaError(f"{where}: min ({self.min}) must be below max ({self.max})")
        if self.immutable and self.monotone is not None:
            raise SchemaError(f"{where}: an immutable feature cannot also be monotone")

    def _check_moves(self, where: str) -> None:
        """`never` and `allowed`: categorical only, values among the categories (when known)."""
        if self.never is None and self.allowed is None:
            return
        if self.kind != "categorical":
            raise SchemaError(f"{where}: never/allowed apply to categorical features only")
        if self.categories is None:
            return  # checked again once the categories are taken from the data
        known = {category_key(c) for c in self.categories}
        named = [("never", v) for v in self.never or ()]
        for source, targets in self.allowed or ():
            named += [("allowed", source)] + [("allowed", v) for v in targets]
        for key, v in named:
            if category_key(v) not in known:
                raise SchemaError(f"{where}: '{key}' names {value_repr(v)}, which is not one of "
                                  f"its categories {value_repr(list(self.categories))}")

    def move_table(self) -> np.ndarray | None:
        """(n, n) bool over the categories (in order): [a, b] is whether a recourse may move
        a person at category a to category b (staying is always allowed); None without
        never/allowed."""
        if self.never is None and self.allowed is None:
            return None
        code = {category_key(c): i for i, c in enumerate(self.categories)}
        n = len(self.categories)
        table = np.ones((n, n), dtype=bool)
        for v in self.never or ():
            table[:, code[category_key(v)]] = False
        for source, targets in self.allowed or ():
            row = np.zeros(n, dtype=bool)
            row[[code[category_key(v)] for v in targets]] = True
            table[code[category_key(source)]] &= row
        np.fill_diagonal(table, True)
        return table

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def weight(self) -> float:
        """The effort weight: `cost` when given, else 1."""
        return 1.0 if self.cost is None else float(self.cost)


def finite32(x) -> bool:
    try:
        return math.isfinite(float(x)) and abs(float(x)) <= FLOAT32_MAX
    except OverflowError:  # an int too big for a float
        return False


def sort_key(k: str):
    """Order of category keys: numbers first (by value), then labels."""
    try:
        return (0, float(k), k)
    except ValueError:
        return (1, 0.0, k)
