"""GenRe's hyper-parameters: one constraint table, checked in fit, set_params and when a saved
config is loaded; `check_is_fitted` and NotFittedError.

The names come from GenRe.__init__'s signature (read once, by `param_names`); PARAM_CHECKS
holds what each may be. tests/test_params.py checks that the two list the same names.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import cache

from genre.errors import InputError, ModelError
from genre.utils.limits import BEST_K_MAX, SEED_MAX, THREADS_MAX

Check = Callable[[object], "str | None"]  # None when the value is fine, else what was expected


@cache
def _not_fitted_error() -> type:
    """NotFittedError, made on first use: it subclasses scikit-learn's, and importing
    scikit-learn costs about a second of CPU that loading and answering with a saved model
    does not otherwise spend (benchmarks/results/serve/cold_start.md)."""
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(ModelError, SklearnNotFittedError):
        """A GenRe model used before fit or load (a genre ModelError and scikit-learn's
        NotFittedError alike)."""

    NotFittedError.__module__ = __name__
    return NotFittedError


def __getattr__(name: str):
    if name == "NotFittedError":  # genre.core.params.NotFittedError (PEP 562)
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_is_fitted(estimator, attribute: str = "model_") -> None:
    """Raise NotFittedError unless `estimator` has its fitted `attribute`.

    Parameters
    ----------
    estimator : object
        The estimator (GenRe).
    attribute : str
        The learned attribute fit sets.

    Returns
    -------
    None
    """
    if not hasattr(estimator, attribute):
        raise _not_fitted_error()(f"{type(estimator).__name__} is not fitted: call fit(task), "
                             "genre.fit(...) or genre.load(dir) first")


def param_names(cls: type) -> tuple[str, ...]:
    """The hyper-parameters of `cls`: its __init__'s keyword names, in order.

    Parameters
    ----------
    cls : type
        An estimator class.

    Returns
    -------
    tuple of str
    """
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def _integer(lo: int, hi: int | None = None) -> Check:
    def check(v) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        return None if ok else (f"an integer in [{lo}, {hi}]" if hi is not None
                                else f"an integer >= {lo}")
    return check


def _number(lo: float, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = False,
            infinite: bool = False) -> Check:
    def check(v) -> str | None:
        ok = (isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)
              and (infinite or math.isfinite(v)) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
        return None if ok else (f"a {'' if infinite else 'finite '}number in "
                                f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")
    return check


def _optional(check: Check) -> Check:
    def optional(v) -> str | None:
        expected = None if v is None else check(v)
        return None if expected is None else f"null or {expected}"
    return optional


def _device(v) -> str | None:
    ok = isinstance(v, str) and (v in ("cpu", "cuda", "auto")
                                 or (v.startswith("cuda:") and v[5:].isdigit()))
    return None if ok else "'cpu', 'cuda', 'cuda:N' or 'auto'"


def _one_of(*choices) -> Check:
    def check(v) -> str | None:
        return None if any(v is c or (type(v) is type(c) and v == c) for c in choices) \
            else f"one of {list(choices)}"
    return check


number, integer = _number, _integer  # for the config checks of genre.core.saving

# What each hyper-parameter may be: types and ranges (sizes bounded so that a saved config
# cannot ask for gigabytes), checked before anything is built.
MAX_D_MODEL, MAX_LAYERS, MAX_BINS, MAX_D_FF, MAX_BEST_K = 4096, 64, 1024, 16384, BEST_K_MAX
# GenRe's samplers: the transformer's feature-by-feature decoding, or the one-pass student
# distilled from it (genre.core.student).
SAMPLERS = ("autoregressive", "student")
PARAM_CHECKS: dict[str, Check] = {
    "lambda_": _number(0), "gamma": _number(0, 1, lo_open=True, hi_open=True),
    "k": _integer(1), "n_bins": _integer(2, MAX_BINS), "d_model": _integer(1, MAX_D_MODEL),
    "n_heads": _integer(1, MAX_D_MODEL), "n_enc_layers": _integer(1, MAX_LAYERS),
    "n_dec_layers": _integer(1, MAX_LAYERS), "d_ff": _integer(1, MAX_D_FF),
    "dropout": _number(0, 1, hi_open=True), "lr": _number(0, lo_open=True),
    "batch_size": _integer(1), "max_epochs": _integer(1), "patience": _integer(0),
    "max_seconds": _optional(_number(0, infinite=True)), "val_frac": _number(0, 1, hi_open=True),
    "temperature": _number(0, lo_open=True), "sigma": _number(0),
    "best_k": _integer(1, MAX_BEST_K), "bin_value": _one_of("data", "edge"),
    "stay_in_bin": _one_of(True, False), "seed": _integer(0, SEED_MAX),
    "threads": _integer(1, THREADS_MAX),
    "progress": _one_of(True, False), "device": _device, "select": _one_of("h", "effort"),
    "tune": _one_of("auto", None),
    "sampler": _one_of(*SAMPLERS),
}


def check_params(params: dict, known: tuple[str, ...], where: str = "GenRe") -> None:
    """Raise InputError (a ValueError) for an unknown name or a value PARAM_CHECKS refuses,
    naming the parameter and what it may be.

    Parameters
    ----------
    params : dict
        Names and values to check.
    known : tuple of str
        The estimator's parameter names.
    where : str
        Prefix of the message.

    Returns
    -------
    None
    """
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InputError(f"unknown {where} parameters {unknown}; known: {sorted(known)}")
    for key, value in params.items():
        expected = PARAM_CHECKS[key](value)
        if expected is not None:
            raise InputError(f"{where}: {key} must be {expected}, got {value!r}")


class ParamsMixin:
    """scikit-learn's parameter protocol for an estimator whose __init__ stores its keyword
    arguments unchanged: get_params / set_params from the signature, values checked against
    PARAM_CHECKS, and fitted-ness (`model_`) for sklearn.utils.validation.check_is_fitted."""

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        if "_params" not in cls.__dict__:
            cls._params = param_names(cls)  # read from the signature once per class
        return cls._params

    def get_params(self, deep: bool = True) -> dict:
        """The hyper-parameters, in the signature's order.

        Parameters
        ----------
        deep : bool
            Ignored (no nested estimators); scikit-learn's signature.

        Returns
        -------
        dict
        """
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> ParamsMixin:
        """Change hyper-parameters (GenRe's sampling ones take effect without refitting);
        the values are checked against PARAM_CHECKS, as fit checks them.

        Parameters
        ----------
        **params
            Names and new values; InputError (a ValueError) for an unknown name or a value
            the table refuses, naming what is allowed.

        Returns
        -------
        GenRe
            self.
        """
        check_params(params, self._param_names(), type(self).__name__)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_params(self) -> None:
        """fit's check: every parameter against PARAM_CHECKS (as set_params checks them)."""
        check_params(self.get_params(), self._param_names(), type(self).__name__)
