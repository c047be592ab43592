"""The protocol's classifier h (an MLP) and safe persistence for it and for sklearn models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from genre.classifiers.skops import read_skops
from genre.core.task import SklearnClassifier, TorchClassifier
from genre.errors import ModelError
from genre.integrity import load_tensors, module_shapes, read_json
from genre.utils.threads import torch_threads


def mlp(n_features: int, hidden: tuple[int, ...] = (10, 10, 10)) -> nn.Sequential:
    """The paper's h: D-10-10-10-1 with ReLU; outputs a logit (sigmoid gives P(y=1))."""
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class DistortedLogits(nn.Module):
    """h with its logit scaled and its decision threshold moved: scale * logit - logit(t).

    scale < 1 makes h under-confident, > 1 over-confident (its decisions stay the same);
    threshold t makes the result accept exactly where the original h gives P > t.
    """

    def __init__(self, base: nn.Module, scale: float = 1.0, threshold: float = 0.5):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.base, self.scale, self.threshold = base, float(scale), float(threshold)
        self.shift = float(np.log(threshold / (1.0 - threshold)))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base(X).reshape(-1) - self.shift


def distorted(h: TorchClassifier, scale: float = 1.0, threshold: float = 0.5) -> TorchClassifier:
    """A miscalibrated (scale) or biased (threshold) copy of a differentiable classifier."""
    return TorchClassifier(DistortedLogits(h.module, scale, threshold))


def train_mlp(X: np.ndarray, y: np.ndarray, *, hidden: tuple[int, ...] = (10, 10, 10),
              balanced: bool = False, epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
              seed: int = 0) -> TorchClassifier:
    """Train h with binary cross-entropy and Adam, as the protocol specifies."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = mlp(X.shape[1], hidden)
    Xt = torch.tensor(np.asarray(X, dtype=np.float32))
    yt = torch.tensor(np.asarray(y, dtype=np.float32))  # a copy: y may be a read-only view
    if balanced:  # weight each class by n / (2 n_c), as sklearn's class_weight="balanced"
        pos = float(yt.mean())
        w = torch.where(yt > 0.5, 0.5 / max(pos, 1e-6), 0.5 / max(1 - pos, 1e-6))
    else:
        w = torch.ones_like(yt)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch_threads(1):
        _train_loop(model, opt, Xt, yt, w, epochs, batch_size, gen)
    return TorchClassifier(model)


def _train_loop(model, opt, Xt, yt, w, epochs: int, batch_size: int, gen) -> None:
    n = len(Xt)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            logits = model(Xt[idx]).squeeze(1)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[idx], weight=w[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def save_mlp(clf: TorchClassifier, directory: Path, stem: str = "h") -> None:
    """Save as tensors (safetensors) + JSON architecture; loading runs no code."""
    directory = Path(directory)
    module, arch = clf.module, {}
    if isinstance(module, DistortedLogits):  # stored as the MLP plus its two numbers
        arch = {"scale": module.scale, "threshold": module.threshold}
        module = module.base
    if not isinstance(module, nn.Sequential):
        raise ModelError(f"can only save the protocol's MLP h, not a {type(module).__name__}")
    linears = [m for m in module if isinstance(m, nn.Linear)]
    arch |= {"n_features": linears[0].in_features,
             "hidden": [m.out_features for m in linears[:-1]]}
    (directory / f"{stem}.json").write_text(json.dumps(arch))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()},
              str(directory / f"{stem}.safetensors"))


def load_mlp(directory: Path, stem: str = "h", n_features: int | None = None) -> TorchClassifier:
    """Load what save_mlp wrote: the architecture (checked: integer sizes, at most 16 hidden
    layers of at most 4096 units, n_features if given) fixes the tensor shapes, which the
    safetensors header must match before anything is loaded; weights must be finite."""
    directory = Path(directory)
    arch_path = directory / f"{stem}.json"
    arch = read_json(arch_path)
    if not isinstance(arch, dict) or not {"n_features", "hidden"} <= set(arch) or not set(
            arch) <= {"n_features", "hidden", "scale", "threshold"}:
        raise ModelError(f"{arch_path}: expected n_features and hidden (and optionally scale "
                         "and threshold)")
    width, hidden = arch["n_features"], arch["hidden"]
    if not _count(width, 1, 100_000) or (n_features is not None and width != n_features):
        raise ModelError(f"{arch_path}: n_features is {width!r}; expected "
                         + (str(n_features) if n_features is not None else "an integer >= 1"))
    if not isinstance(hidden, list) or len(hidden) > 16 or not all(
            _count(h, 1, 4096) for h in hidden):
        raise ModelError(f"{arch_path}: hidden must list at most 16 layer widths in "
                         f"[1, 4096], got {hidden!r}")
    scale, threshold = arch.get("scale", 1.0), arch.get("threshold", 0.5)
    for key, value, ok in (("scale", scale, lambda v: v > 0), ("threshold", threshold,
                                                               lambda v: 0 < v < 1)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and ok(value)):
            raise ModelError(f"{arch_path}: {key} {value!r} is out of range")
    expected = module_shapes(lambda: mlp(width, tuple(hidden)))
    tensors = load_tensors(directory / f"{stem}.safetensors", expected)
    model = mlp(width, tuple(hidden))
    model.load_state_dict(tensors)
    if "scale" in arch or "threshold" in arch:
        model = DistortedLogits(model, float(scale), float(threshold))
    return TorchClassifier(model)


def _count(value, lo: int, hi: int) -> bool:
    """An int (not a bool) in [lo, hi]."""
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def save_sklearn(model, path: Path) -> None:
    import skops.io as sio

    sio.dump(model, Path(path))


def load_sklearn(path: Path):
    """A scikit-learn object saved by `save_sklearn` (genre.classifiers.skops.read_skops: one
    allow-list for every .skops file; no arbitrary code runs)."""
    return read_skops(path)


def is_saveable_sklearn(clf) -> bool:
    """Whether `clf` is an h that `save_sklearn` / `load_sklearn_h` store with a model: a
    SklearnClassifier around a HistGradientBoostingClassifier (the default h for user data
    may be one)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return (isinstance(clf, SklearnClassifier) and clf.favourable_index == 1
            and isinstance(clf.model, HistGradientBoostingClassifier))


def load_sklearn_h(path: Path, n_features: int | None = None):
    """An h saved by `save_sklearn` beside a model, as a SklearnClassifier on normalised rows.
    Types outside genre.classifiers.skops's allow-list are refused (nothing is unpickled),
    and so is a file whose contents are too big (check_skops_size, in read_skops). The model
    must be a fitted binary classifier taking n_features inputs (when given) and answering
    probabilities in [0, 1] on a few rows of the normalised space."""
    model = read_skops(path)
    if not hasattr(model, "predict_proba"):
        raise ModelError(f"{path}: the saved {type(model).__name__} is not a classifier")
    name = type(model).__name__
    classes, width = getattr(model, "classes_", None), getattr(model, "n_features_in_", None)
    if classes is None or width is None:
        raise ModelError(f"{path}: the saved {name} is not fitted")
    if len(np.atleast_1d(classes)) != 2:
        raise ModelError(f"{path}: the saved {name} has {len(np.atleast_1d(classes))} classes; "
                         "h is a binary classifier (2 classes)")
    if n_features is not None and width != n_features:
        raise ModelError(f"{path}: the saved {name} takes {width} features; the model has "
                         f"{n_features}")
    clf = SklearnClassifier(model)
    rows = np.random.default_rng(0).random((16, int(width)))
    try:
        p = clf.predict_proba(np.vstack([np.zeros((1, width)), np.ones((1, width)), rows]))
    except Exception as exc:  # noqa: BLE001 - a damaged estimator fails anywhere
        raise ModelError(f"{path}: the saved {name} fails on rows of {width} features "
                         f"({type(exc).__name__}: {exc})"[:400]) from None
    if p.shape != (18,) or not np.all((p >= 0) & (p <= 1)):
        raise ModelError(f"{path}: the saved {name} does not answer probabilities in [0, 1]")
    return clf
