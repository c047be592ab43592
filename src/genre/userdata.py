"""Recourse on a team's own data and model: schema files, schema inference, user classifiers.

The pieces a command-line run over a user's table needs:

* `load_schema` / `save_schema`: the YAML form of a `Schema`::

      target: approved
      favourable: 1
      features:
        age:        {type: numeric, integer: true, monotone: increase, min: 18, max: 100}
        income:     {type: numeric}
        employment: {type: categorical, categories: [salaried, self-employed, unemployed]}
        country:    {type: categorical, immutable: true}

  Every key but `type` is optional; categories left out are taken from the training data.
  The file is read with a safe YAML loader that follows YAML 1.2 for booleans: only
  true/false are booleans, so a category written `yes`, `no`, `on` or `off` stays a string.
  A key given twice is an error rather than silently overwritten.
* `infer_schema`: a starting schema, guessed from a DataFrame, for the user to edit; the
  guesses worth checking are listed in ``schema.extra["notes"]`` (and `save_schema` writes
  them as comments at the top of the file).
* `load_classifier`: the user's own classifier, which takes features in original units, from
  a ``.skops`` file (a scikit-learn estimator or pipeline saved with ``skops.io.dump``) or an
  ``.onnx`` file (run with onnxruntime). Nothing is ever unpickled; see
  `SKOPS_TRUSTED_MODULES` for which types a ``.skops`` file may contain.
* `build_user_task`: validate the table against the schema and return the `RecourseTask`
  (training the protocol's MLP h when the user brings no classifier).
"""

from __future__ import annotations

import importlib
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from genre.data.encoder import Encoder, _row, _sort_key, category_key
from genre.data.schema import Feature, Schema
from genre.errors import GenreError, InputError, ModelError, SchemaError
from genre.task import Classifier, RecourseTask

__all__ = [
    "SKOPS_TRUSTED_MODULES", "OnnxModel", "OriginalUnitsClassifier", "build_user_task",
    "infer_schema", "load_classifier", "load_schema", "original_frame", "save_schema",
    "schema_from_dict", "schema_yaml", "skops_type_allowed",
]

# ======================================================================= schema files


class _SchemaLoader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML 1.2 booleans (true/false only) and no duplicate keys."""

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
_SchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
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


def load_schema(path: str | Path) -> Schema:
    """Read a schema YAML file. Every problem is a SchemaError naming the file.

    Malformed YAML names the line and column; a bad feature names the feature and key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read the schema file ({exc})") from exc
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
    return schema_from_dict(data, source=str(path))


def schema_from_dict(data: Any, source: str = "schema") -> Schema:
    """Schema.from_dict with every SchemaError prefixed by `source` and scalar checks added."""
    if isinstance(data, dict):
        if "favourable" in data and not isinstance(data["favourable"], _SCALAR):
            raise SchemaError(f"{source}: 'favourable' must be a single value (a label or a "
                              f"number), got {data['favourable']!r}")
        feats = data.get("features")
        if isinstance(feats, dict):
            for name, spec in feats.items():
                if not isinstance(name, str):
                    raise SchemaError(f"{source}: feature names must be strings, got {name!r}")
                cats = spec.get("categories") if isinstance(spec, dict) else None
                if isinstance(cats, list):
                    bad = [c for c in cats if not isinstance(c, _SCALAR)]
                    if bad:
                        raise SchemaError(f"{source}: feature '{name}': categories must be "
                                          f"labels or numbers, got {bad[0]!r}")
                if isinstance(spec, dict) and "type" in spec and not isinstance(spec["type"], str):
                    raise SchemaError(f"{source}: feature '{name}': type must be 'numeric' or "
                                      f"'categorical', got {spec['type']!r}")
    try:
        return Schema.from_dict(data, source=source)
    except SchemaError as exc:
        msg = str(exc)
        if msg.startswith(f"{source}:"):
            raise
        raise SchemaError(f"{source}: {msg}") from exc


def schema_yaml(schema: Schema) -> str:
    """The YAML text of `schema` (notes in ``schema.extra["notes"]`` become comments)."""
    d = schema.to_dict()
    out: dict[str, Any] = {"target": d["target"], "favourable": _plain(d["favourable"])}
    if d.get("name", "custom") != "custom":
        out["name"] = d["name"]
    out["features"] = {}
    for name, spec in d["features"].items():
        spec = dict(spec)
        if "categories" in spec:
            spec["categories"] = [_plain(c) for c in spec["categories"]]
        for key in ("min", "max"):
            if key in spec:
                spec[key] = _plain(spec[key])
        out["features"][name] = _FlowMap(spec)
    body = yaml.dump(out, Dumper=_SchemaDumper, sort_keys=False, allow_unicode=True,
                     width=100, default_flow_style=False)
    notes = schema.extra.get("notes") or []
    header = ""
    for note in notes:
        lines = textwrap.wrap(str(note), width=96) or [""]
        header += "# " + lines[0] + "\n" + "".join(f"#   {ln}\n" for ln in lines[1:])
    return header + body


def save_schema(schema: Schema, path: str | Path) -> None:
    """Write `schema` as YAML (atomically) in the form `load_schema` reads."""
    from genre.io import write_text

    write_text(path, schema_yaml(schema))


# ==================================================================== schema inference

_CATEGORICAL_MAX_INTS = 10  # integer columns with at most this many values are categorical
_MANY_CATEGORIES = 50


def infer_schema(df: pd.DataFrame, target: str, favourable: Any = None) -> Schema:
    """Guess a starting schema from a table; the user should check and edit it.

    Rules: a numeric column (not boolean) with more than 10 distinct values, or holding
    non-integer values, is numeric (``integer: true`` when every value is integral); other
    integer columns, and text, boolean and pandas-categorical columns are categorical with
    their values as sorted categories. Nothing is marked immutable or monotone: only the user
    knows that. Without `favourable`, the target's favourable value is 1 when the target holds
    exactly 0 and 1, else the lexicographically last of its values (compared as text).
    Each guess worth checking is described in ``schema.extra["notes"]``.

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
    if len(df) == 0:
        raise InputError("the table has no rows")
    notes: list[str] = []
    fav = _infer_favourable(df[target], target, favourable, notes)
    feats = [_infer_feature(name, df[name], notes) for name in cols if name != target]
    if not feats:
        raise InputError(f"the table has no columns besides the target '{target}'")
    notes.append("Nothing is marked immutable or monotone: add `immutable: true` to features "
                 "a person cannot change (e.g. age, country) and `monotone: increase` (or "
                 "decrease) to those that can only move one way (e.g. education).")
    return Schema(features=tuple(feats), target=target, favourable=fav,
                  extra={"notes": notes})


def _infer_favourable(col: pd.Series, target: str, favourable: Any, notes: list[str]) -> Any:
    present = col.dropna()
    values = {category_key(v): _plain(v) for v in present.tolist()}
    if len(values) < 2:
        raise InputError(f"target column '{target}' must hold at least 2 distinct values, "
                         f"found {sorted(values) or 'none'}")
    shown = [values[k] for k in sorted(values, key=_sort_key)]
    if favourable is not None:
        key = category_key(favourable)
        if key not in values:
            raise InputError(f"favourable value {favourable!r} does not occur in target "
                             f"column '{target}' (values: {shown[:20]})")
        fav = values[key]
    elif set(values) == {"0", "1"}:
        fav = 1
        notes.append(f"favourable: guessed 1 because target '{target}' holds 0 and 1; change "
                     "`favourable:` if 0 is the outcome people want.")
    else:
        fav = values[max(values)]
        notes.append(f"favourable: guessed {fav!r}, the last of target '{target}''s values "
                     f"{shown[:20]} in alphabetical order; set `favourable:` to the outcome "
                     "people want.")
    if len(values) > 2:
        notes.append(f"target '{target}' has {len(values)} distinct values: every value other "
                     f"than {fav!r} counts as unfavourable.")
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
    uniq = {category_key(v): _plain(v) for v in present.tolist()}
    cats = tuple(uniq[k] for k in sorted(uniq, key=_sort_key))
    if len(cats) > _MANY_CATEGORIES:
        notes.append(f"column '{name}' has {len(cats)} distinct values; if it is an "
                     "identifier or free text, drop it from the table and the schema.")
    return Feature(name, "categorical", categories=cats)


def _plain(v):
    """numpy scalar -> Python scalar, so schemas serialise to YAML."""
    return v.item() if isinstance(v, np.generic) else v


# ================================================================= user classifiers

# A .skops file may hold, besides what skops itself trusts by default (the scikit-learn
# estimators and numpy functions its authors vetted), only:
#   * classes defined in these scikit-learn modules or their submodules (the class must
#     also be *defined* there, so a module that merely imports something else does not
#     vouch for it; functions are not allowed this way);
#   * numpy.ndarray, numpy.dtype, numpy scalar types (numpy.float64, ...) and numpy.dtypes.*;
#   * collections.OrderedDict and builtins.slice (plain containers).
# Anything else (a custom function in a FunctionTransformer, a class from another package)
# is refused with a ModelError naming the type, before anything in the file is built.
SKOPS_TRUSTED_MODULES = (
    "sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing", "sklearn.linear_model",
    "sklearn.ensemble", "sklearn.tree", "sklearn.neighbors", "sklearn.svm", "sklearn.impute",
    "sklearn.neural_network",
    "sklearn.metrics._dist_metrics",  # the distance objects inside fitted neighbour models
)
_SKOPS_TRUSTED_EXACT = frozenset({"numpy.dtype", "numpy.ndarray", "collections.OrderedDict",
                                  "builtins.slice"})


def _in_modules(module: str, modules: Sequence[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in modules)


def skops_type_allowed(type_name: str) -> bool:
    """Whether `type_name` (as skops.io.get_untrusted_types reports it) is on the allow-list.

    See `SKOPS_TRUSTED_MODULES` for the rule. Only modules of scikit-learn and numpy are ever
    imported to check a name.
    """
    if type_name in _SKOPS_TRUSTED_EXACT:
        return True
    module, _, attr = type_name.rpartition(".")
    if not module or not attr.isidentifier():
        return False
    sklearn_ok = _in_modules(module, SKOPS_TRUSTED_MODULES)
    numpy_ok = module in ("numpy", "numpy.dtypes")
    if not (sklearn_ok or numpy_ok):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except Exception:  # a module that does not exist in this scikit-learn
        return False
    if not isinstance(obj, type):
        return False
    home = getattr(obj, "__module__", "") or ""
    if sklearn_ok:
        return _in_modules(home, SKOPS_TRUSTED_MODULES)
    if module == "numpy":
        return home == "numpy" and issubclass(obj, np.generic)
    return home == "numpy.dtypes" and issubclass(obj, np.dtype)


def _load_skops(path: Path):
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is a dependency
        raise ModelError(f"{path}: reading .skops files needs the 'skops' package") from exc
    try:
        untrusted = list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises several types on a corrupt file
        raise ModelError(f"{path}: not a readable .skops file ({exc})") from exc
    refused = sorted(t for t in untrusted if not skops_type_allowed(t))
    if refused:
        raise ModelError(
            f"{path}: refusing to load types outside the allow-list: {refused}. Only "
            "scikit-learn estimators and transformers (from "
            f"{', '.join(m for m in SKOPS_TRUSTED_MODULES if m.count('.') == 1)}) and numpy "
            "arrays and dtypes are loaded; custom functions and classes are not.")
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load the .skops file ({exc})") from exc
    if not hasattr(model, "predict_proba"):
        raise ModelError(f"{path}: the saved {type(model).__name__} has no predict_proba; "
                         "save a classifier (or a pipeline ending in one)")
    if getattr(model, "classes_", None) is None:
        raise ModelError(f"{path}: the saved {type(model).__name__} is not fitted (no classes_)")
    return model


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
                "tensor(string)": object}
_PROBABILITY_NAMES = ("output_probability", "probabilities", "probability", "probas", "proba")


class OnnxModel:
    """An ONNX classifier run with onnxruntime, seen as a scikit-learn-like model.

    `predict_proba(df)` takes a DataFrame in original units and returns (n, C) probabilities
    whose columns follow `classes_`.

    Inputs: one input per feature, named like the feature (what skl2onnx makes with
    ``initial_types`` per column; dtype from the input's type: float, double, int64, int32,
    bool or string), or a single 2-d input fed the numeric table in the schema's column order.
    Probabilities: the output named ``output_probability`` / ``probabilities`` (skl2onnx), else
    the only ``seq(map(...))`` output, else the only float tensor output, of shape (n, C),
    (n, 1) or (n,) (the last two: P(second class)).
    Class labels: the keys of a ``seq(map(...))`` output; else the ``classlabels_*`` attributes
    of the graph's classifier node (when the ``onnx`` package is installed); else matched
    through the label output on probe rows; a model without any labels is taken to output
    classes [0, 1].
    """

    def __init__(self, path: str | Path, schema: Schema):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
            raise ModelError(f"{path}: running .onnx models needs 'onnxruntime'") from exc
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{self.path}: not a readable ONNX model ({exc})") from exc
        self.schema = schema
        self._setup_inputs()
        self._setup_outputs()
        self.classes_: np.ndarray | None = None
        self._graph_labels = self._labels_from_graph()

    # ------------------------------------------------------------------ inputs
    def _setup_inputs(self) -> None:
        inputs = self.session.get_inputs()
        names = self.schema.names
        for i in inputs:
            if i.type not in _ONNX_DTYPES:
                raise ModelError(f"{self.path}: input '{i.name}' has unsupported type {i.type}")
        if len(inputs) > 1:
            unknown = [i.name for i in inputs if i.name not in names]
            if unknown:
                raise ModelError(f"{self.path}: model inputs {unknown} match no feature of the "
                                 f"schema {names}; export one input per feature, named like it")
            self.mode = "columns"
            return
        (inp,) = inputs
        width = inp.shape[1] if len(inp.shape) == 2 else None
        whole_table = isinstance(width, int) and width == len(names) and len(names) > 1
        if inp.name in names and not whole_table:
            self.mode = "columns"
            return
        if len(inp.shape) != 2 or (isinstance(width, int) and width != len(names)):
            raise ModelError(f"{self.path}: the single input '{inp.name}' has shape {inp.shape}"
                             f"; expected [n, {len(names)}] (one column per schema feature)")
        if inp.type == "tensor(string)":
            raise ModelError(f"{self.path}: a single string input is not supported")
        text = [f.name for f in self.schema.features if f.is_categorical and f.categories
                and not all(_is_number(c) or isinstance(c, bool | np.bool_)
                            for c in f.categories)]
        if text:
            raise ModelError(f"{self.path}: the model takes one numeric array '{inp.name}' but "
                             f"features {text} have text categories; export the model with "
                             "one input per column (skl2onnx: initial_types per column)")
        self.mode = "array"

    def _feed(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        inputs = self.session.get_inputs()
        if self.mode == "array":
            (inp,) = inputs
            return {inp.name: df[self.schema.names].to_numpy().astype(_ONNX_DTYPES[inp.type])}
        feed = {}
        for inp in inputs:
            col = df[inp.name]
            dtype = _ONNX_DTYPES[inp.type]
            if dtype is object:
                arr = np.array([v if isinstance(v, str) else category_key(v)
                                for v in col.tolist()], dtype=object)
            else:
                try:
                    arr = col.to_numpy().astype(dtype)
                except (TypeError, ValueError) as exc:
                    raise ModelError(f"{self.path}: input '{inp.name}' expects {inp.type}, but "
                                     f"the feature holds values such as {col.iloc[0]!r}") from exc
            feed[inp.name] = arr.reshape(-1, 1) if len(inp.shape) == 2 else arr
        return feed

    # ----------------------------------------------------------------- outputs
    def _setup_outputs(self) -> None:
        outs = self.session.get_outputs()
        by_name = {o.name: o for o in outs}
        seq = [o for o in outs if o.type.startswith("seq(map(")]
        floats = [o for o in outs if o.type in ("tensor(float)", "tensor(double)")]
        named = [by_name[n] for n in _PROBABILITY_NAMES if n in by_name]
        if named:
            prob = named[0]
        elif len(seq) == 1:
            prob = seq[0]
        elif len(floats) == 1:
            prob = floats[0]
        else:
            listed = [f"{o.name}: {o.type}" for o in outs]
            raise ModelError(f"{self.path}: cannot tell which output holds the class "
                             f"probabilities among {listed}; name it 'probabilities'")
        self.prob_output = prob.name
        self._seq = prob.type.startswith("seq(")
        labels = [o for o in outs if o.name != prob.name
                  and o.type in ("tensor(int64)", "tensor(int32)", "tensor(string)")]
        self.label_output = labels[0].name if len(labels) == 1 else None

    def _labels_from_graph(self) -> list | None:
        try:
            import onnx
        except ImportError:
            return None
        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
        except Exception:
            return None
        found: dict[str, list] = {}
        for node in graph.node:
            for a in node.attribute:
                if a.name in ("classlabels_strings",):
                    vals = [s.decode() for s in a.strings]
                elif a.name in ("classlabels_ints", "classlabels_int64s"):
                    vals = [int(v) for v in a.ints]
                else:
                    continue
                if vals:
                    found.setdefault(node.op_type, vals)
        if "ZipMap" in found:
            return found["ZipMap"]
        distinct = {tuple(v) for v in found.values()}
        return list(distinct.pop()) if len(distinct) == 1 else None

    def _run(self, df: pd.DataFrame) -> tuple[np.ndarray, list | None, np.ndarray | None]:
        """(probabilities (n, C) or (n, 1), labels of the columns if known, label output)."""
        wanted = [self.prob_output] + ([self.label_output] if self.label_output else [])
        res = self.session.run(wanted, self._feed(df))
        raw, label = res[0], (np.asarray(res[1]).reshape(-1) if len(res) > 1 else None)
        keys = None
        if self._seq:
            if len(raw) == 0:
                return np.zeros((0, 1)), None, label
            keys = list(raw[0].keys())
            try:
                probs = np.array([[d[k] for k in keys] for d in raw], dtype=float)
            except KeyError as exc:
                raise ModelError(f"{self.path}: rows of output '{self.prob_output}' have "
                                 "different class labels") from exc
        else:
            probs = np.asarray(raw, dtype=float)
            probs = probs.reshape(len(probs), -1) if probs.ndim <= 2 else probs
            if probs.ndim != 2:
                raise ModelError(f"{self.path}: output '{self.prob_output}' has shape "
                                 f"{np.shape(raw)}; expected (n, classes), (n, 1) or (n,)")
        return probs, keys, label

    def resolve_classes(self, probe: pd.DataFrame) -> None:
        """Run the model on probe rows: check its outputs and find the class labels."""
        probs, keys, label = self._run(probe)
        if probs.shape[0] != len(probe):
            raise ModelError(f"{self.path}: {len(probe)} rows in, {probs.shape[0]} out")
        if not np.isfinite(probs).all() or probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
            raise ModelError(f"{self.path}: output '{self.prob_output}' holds values outside "
                             "[0, 1]; export probabilities, not scores or logits")
        width = probs.shape[1]
        n_classes = 2 if width == 1 else width
        if keys is not None:
            classes = keys
        elif self._graph_labels is not None and len(self._graph_labels) == n_classes:
            classes = self._graph_labels
        elif label is not None:
            classes = self._labels_from_probe(probs, label, n_classes)
        elif n_classes == 2:
            classes = [0, 1]
        else:
            raise ModelError(f"{self.path}: the model outputs {width} probabilities but "
                             "carries no class labels")
        self.classes_ = np.asarray(classes, dtype=object)

    def _labels_from_probe(self, probs: np.ndarray, label: np.ndarray, n_classes: int) -> list:
        # an (n, 1) output is P(second class): its "column" is 1 where that exceeds 0.5
        col = (probs[:, 0] > 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(1)
        mapping: dict[int, str] = {}
        for c, lab in zip(col.tolist(), label.tolist(), strict=True):
            lab = lab.decode() if isinstance(lab, bytes) else lab
            if mapping.setdefault(c, lab) != lab:
                break
        else:
            if len(mapping) == n_classes:
                return [mapping[c] for c in range(n_classes)]
        raise ModelError(f"{self.path}: cannot tell which probability column belongs to "
                         "which class; install the 'onnx' package (to read the labels in the "
                         "graph) or export with skl2onnx's default zipmap output")

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        probs, keys, _ = self._run(df)
        if keys is not None and list(keys) != list(self.classes_):
            probs = probs[:, [keys.index(c) for c in self.classes_]]
        if probs.shape[1] == 1:
            probs = np.hstack([1.0 - probs, probs])
        return probs


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_)


class OriginalUnitsClassifier:
    """A user's model on original units, seen as a `Classifier` on normalised arrays.

    `predict_proba(X)` maps X back with `encoder.inverse_transform` to a DataFrame in
    original units (categoricals as labels, integers as integers), asks `model` (anything with
    ``predict_proba(DataFrame) -> (n, C)`` and ``classes_``: a scikit-learn pipeline or an
    `OnnxModel`) and returns P(favourable), where the favourable column is the entry of
    ``model.classes_`` equal to the schema's favourable value (compared by `category_key`, so
    1, 1.0 and '1' match). Rows containing NaN give NaN.
    """

    batch_size = 65536

    def __init__(self, model, encoder: Encoder):
        self.model = model
        self.encoder = encoder
        schema = encoder.schema_
        classes = getattr(model, "classes_", None)
        if classes is None:
            raise ModelError(f"{type(model).__name__} has no classes_; is it fitted?")
        keys = [category_key(c) for c in classes]
        fav = category_key(schema.favourable)
        if fav not in keys:
            raise ModelError(f"the model's classes {list(classes)} do not include the "
                             f"schema's favourable value {schema.favourable!r}")
        self.favourable_index = keys.index(fav)
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            names = [str(n) for n in names]
            missing = [n for n in names if n not in schema.names]
            if missing:
                raise ModelError(f"the model was fitted on columns {missing} that the schema "
                                 f"does not have (schema features: {schema.names})")
            self.columns: list[str] | None = names
        else:
            n_in = getattr(model, "n_features_in_", None)
            if n_in is not None and n_in != len(schema.names):
                raise ModelError(f"the model takes {n_in} features; the schema has "
                                 f"{len(schema.names)}")
            self.columns = None
        self._as_array = names is None and not isinstance(model, OnnxModel)

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """Normalised rows -> the DataFrame the model is given (original units and dtypes)."""
        df = original_frame(self.encoder, X)
        return df[self.columns] if self.columns is not None else df

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise InputError(f"expected a 2-d array, got shape {X.shape}")
        out = np.full(len(X), np.nan)
        ok = np.flatnonzero(np.isfinite(X).all(axis=1))
        for start in range(0, ok.size, self.batch_size):
            idx = ok[start:start + self.batch_size]
            df = self.frame(X[idx])
            probs = np.asarray(self.model.predict_proba(df.to_numpy() if self._as_array
                                                        else df))
            out[idx] = probs[:, self.favourable_index]
        return out


def original_frame(encoder: Encoder, X: np.ndarray) -> pd.DataFrame:
    """encoder.inverse_transform, with boolean categories as bool and numeric ones as numbers."""
    df = encoder.inverse_transform(X)
    for f in encoder.schema_.features:
        if not f.is_categorical or df[f.name].dtype != object:
            continue
        if all(isinstance(c, bool | np.bool_) for c in f.categories):
            df[f.name] = df[f.name].astype(bool)
        elif all(_is_number(c) for c in f.categories):
            df[f.name] = df[f.name].astype(float)
    return df


def _probe_rows(encoder: Encoder, n: int = 64, seed: int = 0) -> np.ndarray:
    """Valid normalised rows spread over the feature space (corners, middle, random)."""
    D = encoder.n_features
    rng = np.random.default_rng(seed)
    X = np.vstack([np.zeros((1, D)), np.ones((1, D)), np.full((1, D), 0.5),
                   rng.uniform(size=(n, D))])
    X = np.clip(X, encoder.lower, encoder.upper)
    return encoder.project(X)


def load_classifier(path: str | Path, encoder: Encoder) -> OriginalUnitsClassifier:
    """A user's classifier on original units (``.skops`` or ``.onnx``) as a `Classifier`.

    `encoder` must be fitted (it maps normalised rows back to original units and carries the
    schema, whose favourable value picks the probability column). The model is tried on a few
    rows in the schema's format before it is returned, so a model made for other columns or
    labels fails here, with a ModelError naming the file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".skops", ".onnx"):
        raise ModelError(f"{path}: unknown model format '{path.suffix}'; give a scikit-learn "
                         "model saved with skops.io.dump (.skops) or an ONNX model (.onnx). "
                         "Pickle/joblib files are never loaded: they can run arbitrary code")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if not hasattr(encoder, "schema_"):
        raise ModelError(f"{path}: the encoder must be fitted before loading a classifier")
    probe = _probe_rows(encoder)
    try:
        if ext == ".skops":
            model = _load_skops(path)
        else:
            model = OnnxModel(path, encoder.schema_)
            try:
                model.resolve_classes(original_frame(encoder, probe))
            except GenreError:
                raise
            except Exception as exc:
                raise ModelError(f"{path}: the model fails on rows in the schema's format "
                                 f"({type(exc).__name__}: {exc})") from exc
        clf = OriginalUnitsClassifier(model, encoder)
    except ModelError as exc:
        msg = str(exc)
        if msg.startswith(str(path)):
            raise
        raise ModelError(f"{path}: {msg}") from exc
    try:
        p = clf.predict_proba(probe)
    except GenreError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: the model fails on rows in the schema's format "
                         f"({type(exc).__name__}: {exc})") from exc
    if p.shape != (len(probe),) or not np.all((p >= -1e-6) & (p <= 1 + 1e-6)):
        raise ModelError(f"{path}: the model's predict_proba does not return probabilities")
    clf.path = path
    return clf


# ========================================================================== the task


def build_user_task(df: pd.DataFrame, schema: Schema,
                    classifier: Classifier | str | Path | None = None, seed: int = 0,
                    h_epochs: int = 100) -> RecourseTask:
    """Validate a user's training table against `schema` and return its RecourseTask.

    Labels are ``target == favourable`` (compared by `category_key`). `classifier` may be a
    `Classifier` on normalised rows, a path to a ``.skops`` / ``.onnx`` model on original
    units (see `load_classifier`), or None to train the protocol's h (the D-10-10-10-1 MLP with
    balanced class weights, `h_epochs` epochs, seeded). An `OriginalUnitsClassifier` is
    re-bound to this task's encoder.

    Raises InputError (naming column and line) if the target column is missing or has missing
    values, if no row is favourable or none is unfavourable, or if a feature cell does not
    match the schema.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"training data: expected a pandas DataFrame, got {type(df).__name__}")
    target = schema.target
    if target not in df.columns:
        raise InputError(f"training data: target column '{target}' not found; the columns "
                         f"are {list(df.columns)}")
    col = df[target]
    na = np.flatnonzero(col.isna().to_numpy())
    if na.size:
        raise InputError(f"training data: column '{target}', {_row(df.index, na[0])}: missing "
                         f"target value (NaN); fill or drop {na.size} such rows")
    fav = category_key(schema.favourable)
    keys = col.map(category_key)
    y = (keys == fav).to_numpy().astype(np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        seen = sorted(set(keys.tolist()), key=_sort_key)[:20]
        which = "favourable" if y.sum() == 0 else "unfavourable"
        raise InputError(f"training data: no row of target '{target}' is {which} (favourable "
                         f"value {schema.favourable!r}; values present: {seen}); recourse "
                         "needs both outcomes")
    encoder = Encoder(schema).fit(df)
    X = encoder.transform(df, source="training data")
    if classifier is None:
        from genre.classifiers.mlp import train_mlp

        classifier = train_mlp(X, y, balanced=True, epochs=h_epochs, seed=seed)
    elif isinstance(classifier, str | Path):
        classifier = load_classifier(classifier, encoder)
    elif isinstance(classifier, OriginalUnitsClassifier):
        bound = OriginalUnitsClassifier(classifier.model, encoder)
        if hasattr(classifier, "path"):
            bound.path = classifier.path
        classifier = bound
    elif not isinstance(classifier, Classifier):
        raise ModelError(f"classifier: expected an object with predict_proba, got "
                         f"{type(classifier).__name__}")
    return RecourseTask(encoder, X, y, classifier, name="custom", seed=seed)
