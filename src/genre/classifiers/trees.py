"""The default h for a user's data, when it is gradient boosting, as arrays: saved and
loaded without scikit-learn.

A fitted binary `HistGradientBoostingClassifier` (numeric splits only, which is what
`genre.usertask.choose_classifier` fits on normalised rows) is exported node by node: per
node its feature, threshold, children, leaf value, whether it is a leaf and where a missing
value goes, the trees one after another (`roots` gives each tree's first node), and the
baseline. `TreeEnsemble.predict_proba` evaluates them in NumPy exactly as scikit-learn does
(`x <= threshold` goes left, NaN follows missing_go_left; the baseline plus the trees' leaf
values summed in tree order, then the logistic function computed as 1 / (1 + exp(-raw))
with the C library's exp, as scipy.special.expit), so its probabilities equal
`predict_proba(X)[:, 1]` bit for bit.

On disk: h_trees.json (format, n_features, n_trees, n_nodes) and h_trees.safetensors (the
arrays), both in the model's manifest. Loading reads the JSON, checks the sizes against
bounds and the safetensors header against the shapes they imply before anything is
allocated, then checks every index (features in range, children after their parent and
inside their tree) so that evaluation always ends; importing this module imports neither
scikit-learn nor skops (a saved model loads in a fraction of the time `.skops` takes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genre.errors import ModelError
from genre.integrity import load_tensors, read_json

FORMAT = "genre-recourse/hgb-trees"
STEM = "h_trees"
MAX_NODES = 10_000_000
MAX_TREES = 1_000_000
_DTYPES = {"feature": "I64", "threshold": "F64", "left": "I64", "right": "I64",
           "value": "F64", "is_leaf": "U8", "missing_left": "U8", "roots": "I64",
           "baseline": "F64"}


class TreeEnsemble:
    """A binary gradient-boosted tree ensemble on normalised rows (a `Classifier`):
    predict_proba(X) -> P(favourable), shape (n,)."""

    def __init__(self, arrays: dict[str, np.ndarray], n_features: int):
        self.arrays = arrays
        self.n_features = n_features
        self.feature, self.threshold = arrays["feature"], arrays["threshold"]
        self.left, self.right = arrays["left"], arrays["right"]
        self.value, self.is_leaf = arrays["value"], arrays["is_leaf"].astype(bool)
        self.missing_left = arrays["missing_left"].astype(bool)
        self.roots, self.baseline = arrays["roots"], float(arrays["baseline"][0])

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The baseline plus every tree's leaf value, summed in tree order (n,)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ModelError(f"the tree ensemble takes {self.n_features} columns, got "
                             f"shape {X.shape}")
        n, T = len(X), len(self.roots)
        node = np.broadcast_to(self.roots, (n, T)).copy()
        rows = np.broadcast_to(np.arange(n)[:, None], (n, T))
        active = ~self.is_leaf[node]
        while active.any():
            r, nd = rows[active], node[active]
            x = X[r, self.feature[nd]]
            go_left = np.where(np.isnan(x), self.missing_left[nd], x <= self.threshold[nd])
            node[active] = np.where(go_left, self.left[nd], self.right[nd])
            active = ~self.is_leaf[node]
        leaves = self.value[node]
        total = np.zeros(n) + self.baseline
        for t in range(T):  # in tree order, as scikit-learn accumulates them
            total += leaves[:, t]
        return total

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return expit(self.raw(X))


def expit(raw: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-raw)) with the C library's exp per value (math.exp), which is what
    scipy.special.expit computes (NumPy's vectorised exp can differ in the last bit)."""
    neg = (-np.asarray(raw, dtype=np.float64)).tolist()
    exp = np.fromiter((math.exp(v) if v < 709.0 else math.inf for v in neg), np.float64,
                      len(neg))
    return 1.0 / (1.0 + exp)


def exportable(model) -> bool:
    """Whether `model` is a fitted binary HistGradientBoostingClassifier with numeric splits
    only (what `export` stores); anything else keeps its .skops form."""
    predictors = getattr(model, "_predictors", None)
    if type(model).__name__ != "HistGradientBoostingClassifier" or predictors is None:
        return False
    if getattr(model, "n_trees_per_iteration_", None) != 1 or len(model.classes_) != 2:
        return False
    if np.asarray(model._baseline_prediction).size != 1:
        return False
    return all(len(it) == 1 and not it[0].nodes["is_categorical"].any() for it in predictors)


def export(model) -> dict[str, np.ndarray]:
    """The arrays of a fitted HistGradientBoostingClassifier (see `exportable`)."""
    if not exportable(model):
        raise ModelError(f"cannot export a {type(model).__name__} as trees")
    nodes = [it[0].nodes for it in model._predictors]
    sizes = np.array([len(n) for n in nodes], dtype=np.int64)
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offset = np.repeat(roots, sizes)
    cat = np.concatenate(nodes)
    leaf = cat["is_leaf"].astype(bool)
    # Leaves' children are meaningless in scikit-learn's records: stored as the leaf itself.
    own = np.arange(len(cat), dtype=np.int64)
    return {
        "feature": np.where(leaf, 0, cat["feature_idx"]).astype(np.int64),
        "threshold": np.where(leaf, 0.0, cat["num_threshold"]).astype(np.float64),
        "left": np.where(leaf, own, cat["left"].astype(np.int64) + offset),
        "right": np.where(leaf, own, cat["right"].astype(np.int64) + offset),
        "value": cat["value"].astype(np.float64),
        "is_leaf": leaf.astype(np.uint8),
        "missing_left": cat["missing_go_to_left"].astype(np.uint8),
        "roots": roots,
        "baseline": np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1),
    }


def save_trees(arrays: dict[str, np.ndarray], n_features: int, directory: Path) -> list[str]:
    """Write h_trees.json and h_trees.safetensors; returns their names (for the manifest)."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    meta = {"format": FORMAT, "n_features": int(n_features),
            "n_trees": len(arrays["roots"]), "n_nodes": len(arrays["value"])}
    (directory / f"{STEM}.json").write_text(json.dumps(meta))
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
              str(directory / f"{STEM}.safetensors"))
    return [f"{STEM}.json", f"{STEM}.safetensors"]


def load_trees(directory: Path, n_features: int) -> TreeEnsemble:
    """What save_trees wrote, checked before use (see the module docstring)."""
    directory = Path(directory)
    meta_path = directory / f"{STEM}.json"
    meta = read_json(meta_path)
    keys = {"format", "n_features", "n_trees", "n_nodes"}
    if not isinstance(meta, dict) or set(meta) != keys or meta["format"] != FORMAT:
        raise ModelError(f"{meta_path}: expected {sorted(keys)} with format {FORMAT!r}")
    for key, hi in (("n_features", 100_000), ("n_trees", MAX_TREES), ("n_nodes", MAX_NODES)):
        v = meta[key]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
            raise ModelError(f"{meta_path}: {key} must be an integer in [1, {hi}], got {v!r}")
    if meta["n_features"] != n_features:
        raise ModelError(f"{meta_path}: n_features is {meta['n_features']}; the model has "
                         f"{n_features}")
    N, T = meta["n_nodes"], meta["n_trees"]
    shapes = {k: (N,) for k in _DTYPES} | {"roots": (T,), "baseline": (1,)}
    path = directory / f"{STEM}.safetensors"
    tensors = load_tensors(path, shapes, dtype=_DTYPES, infinite=("threshold",))
    arrays = {k: v.numpy() for k, v in tensors.items()}
    _check_structure(arrays, n_features, path)
    return TreeEnsemble(arrays, n_features)


def _check_structure(a: dict[str, np.ndarray], n_features: int, path: Path) -> None:
    """Every index in range, so that evaluation always ends inside the arrays: roots
    ascending from 0, each tree's nodes from its root to the next one's, a split's
    children after it and inside its tree, features in [0, n_features)."""
    N = len(a["value"])
    roots = a["roots"]
    if roots[0] != 0 or np.any(np.diff(roots) <= 0) or roots[-1] >= N:
        raise ModelError(f"{path}: tree roots must start at 0, ascend and lie below {N}")
    end = np.append(roots[1:], N)
    tree_end = np.repeat(end, np.diff(np.append(roots, N)))
    split = a["is_leaf"] == 0
    own = np.arange(N)
    bad = ~np.isin(a["is_leaf"], (0, 1)) | ~np.isin(a["missing_left"], (0, 1))
    for child in ("left", "right"):
        c = a[child]
        bad |= split & ((c <= own) | (c >= tree_end))
    bad |= split & ((a["feature"] < 0) | (a["feature"] >= n_features))
    if bad.any():
        raise ModelError(f"{path}: node {int(np.flatnonzero(bad)[0])} has an index out of "
                         "range (a feature, a child or a flag)")


def is_hgb_classifier(clf) -> bool:
    """Whether `clf` (a genre Classifier) is a SklearnClassifier around an exportable
    HistGradientBoostingClassifier with the favourable class second."""
    return getattr(clf, "favourable_index", None) == 1 and exportable(getattr(clf, "model",
                                                                              None))


__all__ = ["TreeEnsemble", "export", "exportable", "load_trees", "save_trees"]
