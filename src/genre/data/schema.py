"""Feature schema: what each column is and how recourse may change it.

A Schema is plain data (JSON/YAML round-trippable). It says, per feature, its kind
(numeric or categorical with its categories), whether it is immutable, its monotone
direction, optional bounds and whether it is integer-valued; plus the target column and
its favourable value.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from genre.errors import SchemaError

Kind = Literal["numeric", "categorical"]
Monotone = Literal["increase", "decrease"] | None

_FEATURE_KEYS = {"type", "categories", "immutable", "monotone", "min", "max", "integer"}
# The model computes in float32: numbers (bounds, cells) beyond its range are refused.
FLOAT32_MAX = float(np.finfo(np.float32).max)


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

    def __post_init__(self) -> None:
        where = f"feature '{self.name}'"
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
            if bound is not None and not _finite32(bound):
                raise SchemaError(f"{where}: '{key}' must be a finite number within +-3.4e38 "
                                  f"(the model computes in float32), got {bound!r}")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise SchemaError(f"{where}: min ({self.min}) must be below max ({self.max})")
        if self.immutable and self.monotone is not None:
            raise SchemaError(f"{where}: an immutable feature cannot also be monotone")

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"


def _finite32(x) -> bool:
    try:
        return math.isfinite(float(x)) and abs(float(x)) <= FLOAT32_MAX
    except OverflowError:  # an int too big for a float
        return False


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]
    target: str
    favourable: Any = 1
    name: str = "custom"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if not names:
            raise SchemaError("schema has no features")
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        if dup:
            raise SchemaError(f"schema lists features more than once: {dup}")
        if self.target in names:
            raise SchemaError(f"target column '{self.target}' is also listed as a feature")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        return len(self.features)

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def with_monotone(self, enabled: bool) -> Schema:
        """The same schema with every monotone constraint kept (True) or dropped (False)."""
        if enabled:
            return self
        feats = tuple(Feature(**{**asdict(f), "monotone": None}) for f in self.features)
        return Schema(feats, self.target, self.favourable, self.name)

    # --- (de)serialisation: the YAML/JSON form documented in the README -----------------
    def to_dict(self) -> dict:
        feats: dict[str, dict] = {}
        for f in self.features:
            d: dict[str, Any] = {"type": f.kind}
            if f.categories is not None:
                d["categories"] = list(f.categories)
            for key in ("immutable", "integer"):
                if getattr(f, key):
                    d[key] = True
            for key in ("monotone", "min", "max"):
                if getattr(f, key) is not None:
                    d[key] = getattr(f, key)
            feats[f.name] = d
        return {"name": self.name, "target": self.target, "favourable": self.favourable,
                "features": feats}

    @classmethod
    def from_dict(cls, d: Any, source: str = "schema") -> Schema:
        if not isinstance(d, dict):
            raise SchemaError(f"{source}: expected a mapping with 'target' and 'features'")
        unknown = set(d) - {"name", "target", "favourable", "features"}
        if unknown:
            raise SchemaError(f"{source}: unknown top-level keys {sorted(unknown, key=str)}; "
                              "expected target, favourable, features")
        if "target" not in d or not isinstance(d["target"], str):
            raise SchemaError(f"{source}: 'target' (the label column name) is required")
        feats = d.get("features")
        if not isinstance(feats, dict) or not feats:
            raise SchemaError(f"{source}: 'features' must be a non-empty mapping name -> spec")
        out = []
        for name, spec in feats.items():
            where = f"{source}: feature '{name}'"
            if not isinstance(spec, dict):
                raise SchemaError(f"{where}: expected a mapping such as {{type: numeric}}")
            bad = set(spec) - _FEATURE_KEYS
            if bad:
                raise SchemaError(f"{where}: unknown keys {sorted(bad, key=str)}; allowed "
                                  f"{sorted(_FEATURE_KEYS)}")
            if "type" not in spec:
                raise SchemaError(f"{where}: 'type' is required (numeric or categorical)")
            for key in ("immutable", "integer"):
                if key in spec and not isinstance(spec[key], bool):
                    raise SchemaError(f"{where}: '{key}' must be true or false")
            for key in ("min", "max"):
                if key in spec and (isinstance(spec[key], bool)
                                    or not isinstance(spec[key], int | float)):
                    raise SchemaError(f"{where}: '{key}' must be a number, got {spec[key]!r}")
            cats = spec.get("categories")
            if cats is not None and not isinstance(cats, list):
                raise SchemaError(f"{where}: 'categories' must be a list")
            out.append(Feature(
                name=str(name), kind=spec["type"],
                categories=tuple(cats) if cats is not None else None,
                immutable=spec.get("immutable", False), monotone=spec.get("monotone"),
                min=spec.get("min"), max=spec.get("max"), integer=spec.get("integer", False),
            ))
        return cls(tuple(out), d["target"], d.get("favourable", 1), d.get("name", "custom"))
