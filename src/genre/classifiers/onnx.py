"""A user's ONNX classifier, run with onnxruntime, seen as a scikit-learn-like model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genre.data.encoder import category_key, is_number
from genre.data.schema import Schema
from genre.errors import ModelError, value_repr
from genre.utils.extras import require

_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
                "tensor(string)": object}
_PROBABILITY_NAMES = ("output_probability", "probabilities", "probability", "probas", "proba")


MAX_ONNX_BYTES = 1 << 30  # an ONNX file holds at most 2 GiB (protobuf); a classifier far less


def read_onnx(path: Path) -> bytes:
    """The bytes of an ONNX file that holds all its weights (ModelError naming the file
    otherwise): weights in external data files beside it are refused, since only the .onnx
    file is copied into a saved model and covered by its manifest. Checked with the `onnx`
    package when it is installed; without it, onnxruntime, given the bytes and no folder,
    cannot find external files and refuses the model."""
    try:
        if path.stat().st_size > MAX_ONNX_BYTES:
            raise ModelError(f"{path}: larger than {MAX_ONNX_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError:
        return data
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own errors
        raise ModelError(f"{path}: not a readable ONNX model ({exc})"[:600]) from None
    tensors = list(model.graph.initializer) + [
        a.t for node in model.graph.node for a in node.attribute if a.HasField("t")]
    external = sorted({e.value for t in tensors if uses_external_data(t)
                       for e in t.external_data if e.key == "location"})
    if external or any(uses_external_data(t) for t in tensors):
        raise ModelError(f"{path}: keeps weights in external data files {external[:5]}; save "
                         "the model with its weights inside (onnx.save_model(model, path, "
                         "save_as_external_data=False))")
    return data


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
        ort = require("onnxruntime", "onnx", f"{path}: running .onnx models")
        self.path = Path(path)
        data = read_onnx(self.path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:  # from bytes: onnxruntime then has no folder to look for external weights in
            self.session = ort.InferenceSession(data, sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{self.path}: not a readable ONNX model ({exc})"[:600]) from exc
        self._data = data
        self.schema = schema
        self._setup_inputs()
        self._setup_outputs()
        self.classes_: np.ndarray | None = None
        self._graph_labels = self._labels_from_graph()

    # ------------------------------------------------------------------ inputs
    def _setup_inputs(self) -> None:
        inputs = self.session.get_inputs()
        names = self.schema.names
        if not inputs:
            raise ModelError(f"{self.path}: the graph has no inputs; expected one input per "
                             f"schema feature {names} or one [n, {len(names)}] array")
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
                and not all(is_number(c) or isinstance(c, bool | np.bool_)
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
                                     "the feature holds values such as "
                                     f"{value_repr(col.iloc[0])}") from exc
            feed[inp.name] = arr.reshape(-1, 1) if len(inp.shape) == 2 else arr
        return feed

    # ----------------------------------------------------------------- outputs
    def _setup_outputs(self) -> None:
        outs = self.session.get_outputs()
        if not outs:
            raise ModelError(f"{self.path}: the graph has no outputs; expected one holding "
                             "the class probabilities")
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
            graph = onnx.load_from_string(self._data).graph
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
