"""Schema files: the YAML form of a `Schema`, and a starting schema inferred from a table.

Call them through genre.data.schema.Schema (from_yaml, to_yaml, infer): this module does not
import the Schema class, so the functions that build one take it as `cls`.

* `load_schema` / `save_schema`::

      target: approved
      favourable: 1
      id: applicant_id          # optional: an identifier column, carried through, not a feature
      features:
        age:        {type: numeric, integer: true, monotone: increase, min: 18, max: 100}
        income:     {type: numeric}
        employment: {type: categorical, categories: [salaried, self-employed, unemployed]}
        country:    {type: categorical, immutable: true}

  Every key but `type` is optional; categories left out are taken from the training data.
  Effort keys (optional): per feature `cost: w` (w >= 0, default 1: the effort of moving a
  numeric feature across its range, or of any change of a categorical one) and `ordered:
  true` (a categorical whose order means something: a move costs w times the steps over
  n - 1, and `monotone` follows that order); top level `max_changes: K` (no recourse changes
  more than K features) and `sparsity: s` (effort added per changed feature).
  The file is read with a safe YAML loader that follows YAML 1.2 for booleans: only
  true/false are booleans, so a category written `yes`, `no`, `on` or `off` stays a string;
  a date stays a string too. A key given twice is an error rather than silently overwritten.
  Limits keep a hostile file from exhausting memory or time: at most `MAX_SCHEMA_BYTES`
  (1 MiB), nesting at most `MAX_SCHEMA_DEPTH` (20) levels deep, and no aliases (`*name`,
  hence no `<<: *name` merges either): a schema has no need for them, and expanding them is
  how a "billion laughs" file of a few hundred bytes asks for gigabytes.
* `infer_schema`: a starting schema, guessed from a DataFrame, for the user to edit; the
  guesses worth checking are listed in ``schema.extra["notes"]`` (and `save_schema` writes
  them as comments at the top of the file).
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from genre.data.feature import Feature, category_key, python_scalar, sort_key
from genre.errors import InputError, SchemaError, value_repr
from genre.io import write_text

# ======================================================================= schema files

MAX_SCHEMA_BYTES = 1 << 20  # a schema of 10,000 features takes about 500 KB
MAX_SCHEMA_DEPTH = 20  # a schema needs 4: features -> name -> spec -> categories


class _SchemaLoader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML 1.2 booleans (true/false only), no timestamps, no duplicate
    keys, no aliases and at most MAX_SCHEMA_DEPTH levels of nesting."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in a schema file; "
                "write the value out", event.start_mark)
        if self._depth >= MAX_SCHEMA_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_SCHEMA_DEPTH} levels deep; a schema "
                "needs 4 (features -> name -> spec -> categories)", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        """PyYAML's constructors raise plain ValueErrors on some scalars (`!!int 'abc'`, an
        integer of more than 4,300 digits, `!!timestamp 2020-13-01`): make them YAML errors
        naming the line and column."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            value = node.value if isinstance(node.value, str) else ""
            shown = value if len(value) <= 40 else f"{value[:20]}...({len(value):,} characters)"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {shown!r} as {node.tag.rsplit(':', 1)[-1]} "
                f"({str(exc)[:120]})", node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # unhashable key: let the base class report it
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} appears more than once (first on line "
                    f"{first.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"  # `2020-13-01` would be a ValueError, not a label
_SchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SchemaLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class _FlowMap(dict):
    """A mapping written on one line: `age: {type: numeric, integer: true}`."""


class _SchemaDumper(yaml.SafeDumper):
    pass


_SchemaDumper.add_representer(
    _FlowMap, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data.items(),
                                                  flow_style=True))

_SCALAR = (str, int, float, bool)


def load_schema(path: str | Path, cls: type) -> Any:
    """Read a schema YAML file. Every problem is a SchemaError naming the file.

    Malformed YAML (or an alias, or nesting deeper than MAX_SCHEMA_DEPTH) names the line and
    column; a bad feature names the feature and key. A file over MAX_SCHEMA_BYTES is refused
    unread.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SCHEMA_BYTES + 1)
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the schema file ({exc})") from exc
    if len(raw) > MAX_SCHEMA_BYTES:
        raise SchemaError(f"{path}: larger than {MAX_SCHEMA_BYTES:,} bytes; a schema file is "
                          "a few lines per feature")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: cannot read the schema file (not UTF-8 text: {exc})") \
            from exc
    try:
        data = yaml.load(text, Loader=_SchemaLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        detail = f"{context}: {problem}" if context else problem
        raise SchemaError(f"{where}: invalid YAML ({detail})") from exc
    if data is None:
        raise SchemaError(f"{path}: the file is empty; expected a mapping such as "
                          "'target: approved', 'favourable: 1' and 'features: {age: {type: "
                          "numeric}}'")
    return schema_from_dict(data, cls, source=str(path))


def schema_from_dict(data: Any, cls: type, source: str = "schema") -> Any:
    """Schema.from_dict with every SchemaError prefixed by `source` and scalar checks added."""
    if isinstance(data, dict):
        if "favourable" in data and not isinstance(data["favourable"], _SCALAR):
            raise SchemaError(f"{source}: 'favourable' must be a single value (a label or a "
                              f"number), got {value_repr(data['favourable'])}")
        feats = data.get("features")
        if isinstance(feats, dict):
            for name, spec in feats.items():
                if not isinstance(name, str):
                    raise SchemaError(f"{source}: feature names must be strings, got {name!r}")
                cats = spec.get("categories") if isinstance(spec, dict) else None
                if isinstance(cats, list):
                    bad = [c for c in cats if not isinstance(c, _SCALAR)
                           or (isinstance(c, float) and not math.isfinite(c))]
                    if bad:
                        raise SchemaError(f"{source}: feature '{name}': categories must be "
                                          "labels or numbers (finite ones), got "
                                          f"{value_repr(bad[0])}")
                if isinstance(spec, dict) and "type" in spec and not isinstance(spec["type"], str):
                    raise SchemaError(f"{source}: feature '{name}': type must be 'numeric' or "
                                      f"'categorical', got {spec['type']!r}")
    try:
        return cls.from_dict(data, source=source)
    except SchemaError as exc:
        msg = str(exc)
        if msg.startswith(f"{source}:"):
            raise
        raise SchemaError(f"{source}: {msg}") from exc


def schema_yaml(schema: Any) -> str:
    """The YAML text of `schema` (notes in ``schema.extra["notes"]`` become comments)."""
    d = schema.to_dict()
    out: dict[str, Any] = {"target": d["target"], "favourable": python_scalar(d["favourable"])}
    if "id" in d:
        out["id"] = d["id"]
    if d.get("name", "custom") != "custom":
        out["name"] = d["name"]
    for key in ("max_changes", "sparsity"):
        if key in d:
            out[key] = python_scalar(d[key])
    out["features"] = {}
    for name, spec in d["features"].items():
        spec = dict(spec)
        if "categories" in spec:
            spec["categories"] = [python_scalar(c) for c in spec["categories"]]
        for key in ("min", "max", "cost"):
            if key in spec:
                spec[key] = python_scalar(spec[key])
        out["features"][name] = _FlowMap(spec)
    body = yaml.dump(out, Dumper=_SchemaDumper, sort_keys=False, allow_unicode=True,
                     width=100, default_flow_style=False)
    notes = schema.extra.get("notes") or []
    header = ""
    for note in notes:
        lines = textwrap.wrap(str(note), width=96) or [""]
        header += "# " + lines[0] + "\n" + "".join(f"#   {ln}\n" for ln in lines[1:])
    return header + body


def save_schema(schema: Any, path: str | Path) -> None:
    """Write `schema` as YAML (atomically) in the form `load_schema` reads."""
    write_text(path, schema_yaml(schema))


# ==================================================================== schema inference

_CATEGORICAL_MAX_INTS = 10  # integer columns with at most this many values are categorical
_MANY_CATEGORIES = 50


def infer_schema(df: pd.DataFrame, target: str, favourable: Any = None,
                 id_column: str | None = None, *, cls: type) -> Any:
    """Guess a starting schema from a table; the user should check and edit it.

    Rules: a numeric column (not boolean) with more than 10 distinct values, or holding
    non-integer values, is numeric (``integer: true`` when every value is integral); other
    integer columns, and text, boolean and pandas-categorical columns are categorical with
    their values as sorted categories. Nothing is marked immutable or monotone: only the user
    knows that. Without `favourable`, the target's favourable value is 1 when the target holds
    exactly 0 and 1, else the lexicographically last of its values (compared as text).
    Each guess worth checking is described in ``schema.extra["notes"]``. `id_column` names
    an identifier column: left out of the features, written as the schema's ``id``.

    Raises InputError if the target column is missing or holds fewer than 2 distinct values,
    if `favourable` is not one of the target's values, or if a column is entirely empty.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}")
    cols = list(df.columns)
    bad_names = [c for c in cols if not isinstance(c, str)]
    if bad_names:
        raise InputError(f"column names must be text, got {bad_names[:5]}")
    if target not in cols:
        raise InputError(f"target column '{target}' not found; the columns are {cols}")
    if id_column is not None and id_column not in cols:
        raise InputError(f"id column '{id_column}' not found; the columns are {cols}")
    if len(df) == 0:
        raise InputError("the table has no rows")
    notes: list[str] = []
    fav = _infer_favourable(df[target], target, favourable, notes)
    feats = [_infer_feature(name, df[name], notes) for name in cols
             if name not in (target, id_column)]
    if not feats:
        raise InputError(f"the table has no columns besides the target '{target}'")
    notes.append("Nothing is marked immutable or monotone: add `immutable: true` to features "
                 "a person cannot change (e.g. age, country) and `monotone: increase` (or "
                 "decrease) to those that can only move one way (e.g. education).")
    notes.append("Effort (optional): `cost: w` on a feature is the effort of moving it across "
                 "its whole range (numeric) or of any change (categorical; default 1); "
                 "categories are unordered unless you add `ordered: true`, and only then "
                 "does a move cost more for being longer; `monotone` on a categorical follows "
                 "the order of its categories. Top level `max_changes: K` caps how many "
                 "features one recourse may change; `sparsity: s` adds s per changed feature.")
    notes.append("Advice nobody may give (optional, categorical): `never: [value]` forbids "
                 "moving to a value (a person already there may stay); `allowed: {from: [to, "
                 "...]}` lists the only moves from a value.")
    return cls(features=tuple(feats), target=target, favourable=fav,
                  extra={"notes": notes}, id_column=id_column)


def _infer_favourable(col: pd.Series, target: str, favourable: Any, notes: list[str]) -> Any:
    present = col.dropna()
    values = {category_key(v): python_scalar(v) for v in present.tolist()}
    if len(values) < 2:
        raise InputError(f"target column '{target}' must hold at least 2 distinct values, "
                         f"found {sorted(values) or 'none'}")
    shown = [values[k] for k in sorted(values, key=sort_key)]
    if favourable is not None:
        key = category_key(favourable)
        if key not in values:
            raise InputError(f"favourable value {value_repr(favourable)} does not occur in target "
                             f"column '{target}' (values: {shown[:20]})")
        fav = values[key]
    elif set(values) == {"0", "1"}:
        fav = 1
        notes.append(f"favourable: guessed 1 because target '{target}' holds 0 and 1; change "
                     "`favourable:` if 0 is the outcome people want.")
    else:
        fav = values[max(values)]
        notes.append(f"favourable: guessed {value_repr(fav)}, the last of target '{target}''s "
                     f"values {shown[:20]} in alphabetical order; set `favourable:` to the outcome "
                     "people want.")
    if len(values) > 2:
        notes.append(f"target '{target}' has {len(values)} distinct values: every value other "
                     f"than {value_repr(fav)} counts as unfavourable.")
    n_na = int(col.isna().sum())
    if n_na:
        notes.append(f"target '{target}' is missing in {n_na} rows; fill or drop them.")
    return fav


def _infer_feature(name: str, col: pd.Series, notes: list[str]) -> Feature:
    present = col.dropna()
    if present.empty:
        raise InputError(f"column '{name}' is entirely empty; fill it or drop it")
    n_na = len(col) - len(present)
    if n_na:
        notes.append(f"column '{name}' is missing in {n_na} rows; fill or drop them before "
                     "computing recourse.")
    if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
        raise InputError(f"column '{name}' holds dates or durations; convert it to a number "
                         "(e.g. days since an event) or drop it")
    is_bool = pd.api.types.is_bool_dtype(col) or (
        col.dtype == object and present.map(lambda v: isinstance(v, bool | np.bool_)).all())
    if pd.api.types.is_numeric_dtype(col) and not is_bool:
        values = present.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise InputError(f"column '{name}' holds infinite values")
        integral = bool(np.all(values == np.rint(values)))
        n_distinct = int(np.unique(values).size)
        if n_distinct > _CATEGORICAL_MAX_INTS or not integral:
            return Feature(name, "numeric", integer=integral)
        cats = tuple(int(v) for v in np.unique(values))
        notes.append(f"column '{name}' holds only {n_distinct} distinct integers {list(cats)} "
                     "and was made categorical; write {type: numeric, integer: true} if it "
                     "is a count or a scale.")
        return Feature(name, "categorical", categories=cats)
    uniq = {category_key(v): python_scalar(v) for v in present.tolist()}
    cats = tuple(uniq[k] for k in sorted(uniq, key=sort_key))
    if len(cats) > _MANY_CATEGORIES:
        notes.append(f"column '{name}' has {len(cats)} distinct values; if it is an "
                     "identifier or free text, drop it from the table and the schema.")
    return Feature(name, "categorical", categories=cats)


