"""Every .skops file genre reads (a user's classifier, a default h stored with a model, the
lab's gold model) is read by `read_skops`, with one type allow-list.

Nothing is ever unpickled; see `SKOPS_TRUSTED_MODULES` for which types a file may contain.
"""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genre.errors import ModelError

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
    "sklearn.neural_network", "sklearn.calibration", "sklearn.isotonic", "sklearn.frozen",
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


def skops_bytes(model) -> bytes:
    """`model` (a fitted scikit-learn estimator or pipeline) as .skops bytes (skops.io.dumps),
    after checking that `load_skops` will load it back: a ModelError names any type outside
    the allow-list (a custom function or class), so it fails when given, not when loaded."""
    import skops.io as sio

    try:
        data = sio.dumps(model)
        untrusted = list(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises several types on objects it cannot store
        raise ModelError(f"cannot store the {type(model).__name__} as .skops ({exc})") from exc
    refused = sorted(t for t in untrusted if not skops_type_allowed(t))
    if refused:
        raise ModelError(
            f"the {type(model).__name__} holds types outside the .skops allow-list: "
            f"{refused}; only scikit-learn estimators and transformers and numpy arrays are "
            "stored with a model (custom functions and classes are not)")
    return data


MAX_SKOPS_BYTES = 512 << 20  # what a .skops file's contents may take once uncompressed
MAX_SKOPS_ENTRIES = 100_000


def check_skops_size(path: Path) -> None:
    """Refuse (ModelError naming the file) a .skops file whose contents would take more than
    MAX_SKOPS_BYTES uncompressed, judged from its zip directory before anything is inflated
    (a deflated array of zeros is a thousand times smaller than the array). Reading never
    inflates an entry past the size the directory gives, so the check bounds memory."""
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ModelError(f"{path}: not a readable .skops file ({exc})") from None
    total = sum(e.file_size for e in entries)
    if len(entries) > MAX_SKOPS_ENTRIES or total > MAX_SKOPS_BYTES:
        raise ModelError(f"{path}: its contents take {total:,} bytes in {len(entries):,} "
                         f"entries uncompressed; a classifier file may take at most "
                         f"{MAX_SKOPS_BYTES:,} bytes")


def read_skops(path: str | Path):
    """The object stored in the .skops file `path`, after checking every type it holds
    against the allow-list (skops_type_allowed); ModelError naming the file otherwise.

    Parameters
    ----------
    path : str or Path
        A .skops file.

    Returns
    -------
    object
        What the file holds (not yet checked to be a classifier).
    """
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is a dependency
        raise ModelError(f"{path}: reading .skops files needs the 'skops' package") from exc
    path = Path(path)
    check_skops_size(path)
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
        return sio.load(path, trusted=untrusted)
    except Exception as exc:  # a damaged file can fail anywhere inside skops
        raise ModelError(f"{path}: cannot load the .skops file ({exc})") from exc


def load_skops(path: Path):
    """A user's fitted scikit-learn classifier from a .skops file (read_skops, then checked
    to have predict_proba and classes_).

    Parameters
    ----------
    path : Path

    Returns
    -------
    object
        The classifier or pipeline.
    """
    model = read_skops(path)
    if not hasattr(model, "predict_proba"):
        raise ModelError(f"{path}: the saved {type(model).__name__} has no predict_proba; "
                         "save a classifier (or a pipeline ending in one)")
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ModelError(f"{path}: the saved {type(model).__name__} is not fitted (no classes_)")
    if len(np.atleast_1d(classes)) < 2:
        raise ModelError(f"{path}: the saved {type(model).__name__} knows "
                         f"{len(np.atleast_1d(classes))} class; a classifier needs two or more")
    return model
