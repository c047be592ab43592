"""Feature schema: what each column is and how recourse may change it.

A Schema is plain data (JSON/YAML round-trippable). It says, per feature, its kind
(numeric or categorical with its categories), whether it is immutable, its monotone
direction, optional bounds and whether it is integer-valued; plus the target column and
its favourable value; optionally an identifier column (`id_column`, the YAML key `id`)
that is carried through to every output and never used as a feature.

Effort keys (optional; without them recourse is judged by the paper's plain L1 cost):
per feature `cost: w` (w >= 0, default 1) is the effort of moving a numeric feature across
its whole range, or of any change of a categorical one; a categorical with `ordered: true`
may use its order (a move of m steps among n categories costs w * m / (n - 1)), and its
order is also what `monotone` follows. Top level `max_changes: K` caps the number of
features a recourse changes, `sparsity: s` (s >= 0) is the effort of each changed feature.

Reading, writing and inferring schemas: `Schema.from_yaml`, `Schema.to_yaml`,
`Schema.infer` (implemented in genre.data.schema_file).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genre.data.feature import (  # noqa: F401 - Feature and its helpers, re-exported
    FLOAT32_MAX,
    Feature,
    Kind,
    Monotone,
    category_key,
    finite32,
    python_scalar,
    sort_key,
)
from genre.data.schema_file import infer_schema, load_schema, save_schema, schema_yaml
from genre.errors import SchemaError, value_repr

if TYPE_CHECKING:
    import pandas as pd

_FEATURE_KEYS = {"type", "categories", "immutable", "monotone", "min", "max", "integer", "cost",
                 "never", "forbid", "allowed",
                 "ordered"}
_TOP_KEYS = {"name", "target", "favourable", "features", "id", "max_changes", "sparsity"}
# The columns genre writes beside the features in its recourse outputs, in their order
# (genre.tables.recourse.META_COLUMNS is this tuple): no feature may be named like one, or its
# values would be overwritten by them in recourse.csv. Add a column here when an output gains
# one.
RESERVED_COLUMNS = ("person", "option", "h_probability", "effort", "cost", "plausible",
                    "status")
# The id column also sits beside the long changes view's columns.
RESERVED_ID_COLUMNS = (*RESERVED_COLUMNS, "feature", "from", "to")
MAX_CHANGES_LIMIT = 100_000  # max_changes beyond the most features a model may have


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]
    target: str
    favourable: Any = 1
    name: str = "custom"
    extra: dict = field(default_factory=dict, compare=False)
    id_column: str | None = None
    max_changes: int | None = None  # no recourse changes more than this many features
    sparsity: float | None = None  # effort of each changed feature (None = not given, 0)

    def __post_init__(self) -> None:
        if self.max_changes is not None and (isinstance(self.max_changes, bool)
                                             or not isinstance(self.max_changes, int)
                                             or self.max_changes < 1):
            raise SchemaError(f"max_changes must be a whole number >= 1, got "
                              f"{self.max_changes!r}")
        if self.sparsity is not None and (isinstance(self.sparsity, bool)
                                          or not isinstance(self.sparsity, int | float)
                                          or not 0 <= self.sparsity < float("inf")):
            raise SchemaError(f"sparsity must be a finite number >= 0, got {self.sparsity!r}")
        if self.max_changes is not None and self.max_changes > MAX_CHANGES_LIMIT:
            raise SchemaError(f"max_changes must be at most {MAX_CHANGES_LIMIT:,}, got "
                              f"{self.max_changes!r}"[:200])
        if self.sparsity is not None and not finite32(self.sparsity):
            raise SchemaError(f"sparsity must be at most 3.4e38, got {self.sparsity!r}"[:200])
        names = [f.name for f in self.features]
        if not names:
            raise SchemaError("schema has no features")
        reserved = [n for n in names if n in RESERVED_COLUMNS]
        if reserved:
            raise SchemaError(f"feature '{reserved[0]}' is named like a column genre writes "
                              f"in its outputs {list(RESERVED_COLUMNS)}; rename the column "
                              "(in the data and the schema)")
        if self.id_column in RESERVED_ID_COLUMNS:
            raise SchemaError(f"id column '{self.id_column}' is named like a column genre "
                              f"writes in its outputs {list(RESERVED_ID_COLUMNS)}; rename it")
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        if dup:
            raise SchemaError(f"schema lists features more than once: {dup}")
        if self.target in names:
            raise SchemaError(f"target column '{self.target}' is also listed as a feature")
        if self.id_column == self.target:
            raise SchemaError(f"id column '{self.id_column}' is also the target")
        if self.id_column in names:
            raise SchemaError(f"id column '{self.id_column}' is also listed as a feature; an "
                              "identifier is carried through, never a feature: remove it from "
                              "`features`")

    # --- files and inference (genre.data.schema_file) -----------------------------------
    @classmethod
    def infer(cls, df: pd.DataFrame, target: str, favourable: Any = None,
              id_column: str | None = None) -> Schema:
        """A starting schema guessed from `df` (see genre.data.schema_file.infer_schema);
        the guesses worth checking are in ``schema.extra["notes"]``."""
        return infer_schema(df, target, favourable, id_column=id_column, cls=cls)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Schema:
        """Read a schema YAML file (SchemaError naming the file, line and key at fault)."""
        return load_schema(path, cls)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The schema as YAML text; written (atomically) to `path` when one is given."""
        if path is not None:
            save_schema(self, path)
        return schema_yaml(self)

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

    @property
    def has_effort(self) -> bool:
        """Whether any effort key is given (cost, ordered, max_changes, sparsity): recourse
        is then judged by `effort` rather than the paper's plain L1 cost."""
        return (self.max_changes is not None or self.sparsity is not None
                or any(f.cost is not None or f.ordered for f in self.features))

    def with_monotone(self, enabled: bool) -> Schema:
        """The same schema with every monotone constraint kept (True) or dropped (False)."""
        if enabled:
            return self
        feats = tuple(Feature(**{**asdict(f), "monotone": None}) for f in self.features)
        return replace(self, features=feats)

    # --- (de)serialisation: the YAML/JSON form documented in the README -----------------
    def to_dict(self) -> dict:
        feats: dict[str, dict] = {}
        for f in self.features:
            d: dict[str, Any] = {"type": f.kind}
            if f.categories is not None:
                d["categories"] = list(f.categories)
            for key in ("immutable", "integer", "ordered"):
                if getattr(f, key):
                    d[key] = True
            for key in ("monotone", "min", "max", "cost"):
                if getattr(f, key) is not None:
                    d[key] = getattr(f, key)
            if f.never is not None:
                d["never"] = list(f.never)
            if f.allowed is not None:
                d["allowed"] = {src: list(to) for src, to in f.allowed}
            feats[f.name] = d
        out = {"name": self.name, "target": self.target, "favourable": self.favourable,
               "features": feats}
        if self.id_column is not None:
            out["id"] = self.id_column
        for key in ("max_changes", "sparsity"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: Any, source: str = "schema") -> Schema:
        if not isinstance(d, dict):
            raise SchemaError(f"{source}: expected a mapping with 'target' and 'features'")
        unknown = set(d) - _TOP_KEYS
        if unknown:
            raise SchemaError(f"{source}: unknown top-level keys {sorted(unknown, key=str)}; "
                              "expected target, favourable, features (optionally name, id, "
                              "max_changes, sparsity)")
        if "id" in d and not isinstance(d["id"], str):
            raise SchemaError(f"{source}: 'id' (the identifier column's name) must be text")
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
            for key in ("immutable", "integer", "ordered"):
                if key in spec and not isinstance(spec[key], bool):
                    raise SchemaError(f"{where}: '{key}' must be true or false")
            for key in ("min", "max", "cost"):
                if key in spec and (isinstance(spec[key], bool)
                                    or not isinstance(spec[key], int | float)):
                    raise SchemaError(f"{where}: '{key}' must be a number, got "
                                      f"{value_repr(spec[key])}")
            never, allowed = _moves_spec(spec, where)
            cats = spec.get("categories")
            if cats is not None and not isinstance(cats, list):
                raise SchemaError(f"{where}: 'categories' must be a list")
            out.append(Feature(
                name=str(name), kind=spec["type"],
                categories=tuple(cats) if cats is not None else None,
                immutable=spec.get("immutable", False), monotone=spec.get("monotone"),
                min=spec.get("min"), max=spec.get("max"), integer=spec.get("integer", False),
                cost=spec.get("cost"), ordered=spec.get("ordered", False),
                never=never, allowed=allowed,
            ))
        for key in ("max_changes", "sparsity"):
            if key in d and d[key] is not None and (isinstance(d[key], bool) or not isinstance(
                    d[key], int if key == "max_changes" else int | float)):
                raise SchemaError(f"{source}: '{key}' must be a "
                                  f"{'whole number' if key == 'max_changes' else 'number'}, "
                                  f"got {d[key]!r}")
        return cls(tuple(out), d["target"], d.get("favourable", 1), d.get("name", "custom"),
                   id_column=d.get("id"), max_changes=d.get("max_changes"),
                   sparsity=d.get("sparsity"))


def _moves_spec(spec: dict, where: str) -> tuple:
    """(never, allowed) of a feature's YAML/JSON spec: `never` (or its synonym `forbid`) a
    list of values; `allowed` a mapping value -> list of values."""
    if "never" in spec and "forbid" in spec:
        raise SchemaError(f"{where}: give 'never' or its synonym 'forbid', not both")
    never = spec.get("never", spec.get("forbid"))
    scalar = (str, int, float)
    if never is not None and (not isinstance(never, list)
                              or not all(isinstance(v, scalar) for v in never)):
        raise SchemaError(f"{where}: 'never' must be a list of category values, such as "
                          "[none]")
    allowed = spec.get("allowed")
    if allowed is not None:
        if not isinstance(allowed, dict) or not all(
                isinstance(k, scalar) and isinstance(v, list)
                and all(isinstance(x, scalar) for x in v) for k, v in allowed.items()):
            raise SchemaError(f"{where}: 'allowed' must map a value to the list of values it "
                              "may move to, such as {{none: [part-time, full-time]}}")
        allowed = tuple((k, tuple(v)) for k, v in allowed.items())
    return (None if never is None else tuple(never)), allowed
