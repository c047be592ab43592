"""A feature of a schema, and the helpers that compare and write its values (shared by the
schema, its files and the encoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from genre.errors import SchemaError

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
        for key in ("min", "max"):
            bound = getattr(self, key)
            if bound is not None and not finite32(bound):
                raise SchemaError(f"{where}: '{key}' must be a finite number within +-3.4e38 "
                                  f"(the model computes in float32), got {bound!r}")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise SchemaError(f"{where}: min ({self.min}) must be below max ({self.max})")
        if self.immutable and self.monotone is not None:
            raise SchemaError(f"{where}: an immutable feature cannot also be monotone")

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
