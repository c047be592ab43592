"""The benchmark's methods: names, the quick caps, how one cell's method is built, and the
GenRe models it caches.

A row of the table is a name: a method registered in genre.baselines.METHODS (built with
its constructor, the quick caps and the caller's overrides), or a variant of one registered
in TABLE_METHODS here (e.g. "wachter-tuned": Wachter with its cost weight chosen on
validation individuals; see genre.bench.tuning). To add a row, register a class in
genre.baselines.METHODS, or a variant with `register_variant`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genre.bench.common import split_names
from genre.errors import InputError, ModelError
from genre.utils.methods import METHOD_NAMES

PAPER_DATASETS = ("adult", "compas", "heloc")

# --quick: caps on the heavy hyper-parameters (iterations, samples, VAE epochs, GenRe's
# size and epochs), for demos and smoke tests. Figures from a quick run are not the paper's.
QUICK: dict[str, dict] = {
    # A tiny transformer with a larger step: ~2 s on compas, Score ~1.8 on 50 individuals.
    "genre": {"d_model": 16, "n_heads": 2, "n_enc_layers": 1, "n_dec_layers": 1, "d_ff": 32,
              "lr": 3e-3, "batch_size": 256, "max_epochs": 10, "patience": 5},
    "wachter": {"n_iter": 300, "max_rounds": 3},
    "gs": {"n_samples": 300},
    "dice": {"sample_size": 300},
    "roar": {"max_iter": 300},
    "probe": {"n_iter": 100, "max_rounds": 3},
    "cchvae": {"n_search_samples": 100, "max_iter": 100, "vae_epochs": 2},
    "revise": {"max_iter": 200, "vae_epochs": 2},
    "cruds": {"max_iter": 300, "vae_epochs": 2},
}

GENRE_CACHE = "genre-models"
STUDENT_CODE = ("genre.core.student",)  # genre.core.student, student_net, student_sampling


# ------------------------------------------------------------------------- names
def resolve_methods(methods: list[str] | str = "all") -> list[str]:
    """The row names a run will use, in the order given; "all" = every registered method, in
    the paper's order (genre.utils.methods.METHOD_NAMES, then any other registered method,
    in registration order); "tuned" = every tuned variant (see VARIANTS)."""
    from genre.baselines import METHODS

    names = split_names(methods)
    if not names:
        names = ["all"]
    everything = ([m for m in METHOD_NAMES if m in METHODS]
                  + [m for m in METHODS if m not in METHOD_NAMES])
    variants = [v for v, spec in VARIANTS.items() if spec.factory or spec.base in METHODS]
    out: list[str] = []
    for name in names:
        out += everything if name == "all" else [
            v for v in variants if v.endswith(TUNED)] if name == "tuned" else [name]
    out = list(dict.fromkeys(out))
    unknown = [m for m in out if m not in METHODS and m not in variants]
    if unknown:
        missing = [m for m in unknown if m in METHOD_NAMES]
        hint = (f" ({', '.join(missing)} not registered in genre.baselines.METHODS yet)"
                if missing else "")
        raise InputError(f"unknown method(s) {', '.join(map(repr, unknown))}{hint}; "
                         f"available: {', '.join([*METHODS, *variants])}, 'all' or 'tuned'")
    return out


def resolve_datasets(datasets: list[str] | str) -> list[str]:
    from genre.data import DATASETS

    names = split_names(datasets)
    if not names:
        raise InputError("no dataset given")
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        raise InputError(f"unknown dataset(s) {', '.join(map(repr, unknown))}; bundled: "
                         f"{', '.join(DATASETS)}")
    return names


# ---------------------------------------------------------------- building methods
@dataclass(frozen=True)
class Variant:
    """A row of the table beyond genre.baselines.METHODS.

    base: the registered method it builds on (its quick caps and the caller's overrides for
    `base` apply, then the variant's own). grid: settings (constructor overrides) tried on
    the protocol's validation individuals, the best by the benchmark's Score kept
    (genre.bench.tuned); () = none. factory: build the method another way,
    factory(dataset=..., seed=..., quick=..., **kwargs) -> a RecourseMethod.
    """

    base: str
    grid: tuple[dict, ...] = ()
    factory: Callable | None = None
    note: str = ""


TUNED = "-tuned"
# Tuned rows: each method's cost weight or step size, 8 settings (the budget of GenRe's
# temperature x best_k grid), chosen on validation individuals (rejected rows of the
# training split), never test rows.
_WEIGHTS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
TUNING_GRIDS: dict[str, tuple[dict, ...]] = {
    "genre": tuple({"temperature": t, "best_k": k, "tune": None}
                   for t in (1.0, 2.0, 4.0, 10.0) for k in (10, 30)),
    "wachter": tuple({"lambda_": v} for v in _WEIGHTS),
    "roar": tuple({"lambda_": v} for v in _WEIGHTS),
    "probe": tuple({"lambda_": v} for v in _WEIGHTS),
    "revise": tuple({"lambda_": v} for v in (0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 3.0, 10.0)),
    "cruds": tuple({"lambda_": v} for v in (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3)),
    "cchvae": tuple({"step": v} for v in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)),
    "diffusion": tuple({"guidance_scale": v} for v in _WEIGHTS),
    # DiCE's proximity weight (lambda_) acts in its genetic mode only; the table runs its
    # random mode, whose levers are how many counterfactuals to ask for (the cheapest
    # valid one is kept) and the probability a counterfactual must reach.
    "dice": tuple({"total_cfs": c, "stopping_threshold": t}
                  for c in (1, 4) for t in (0.5, 0.6, 0.7, 0.8)),
}
VARIANTS: dict[str, Variant] = {
    f"{m}{TUNED}": Variant(m, grid, note="tuned on validation individuals by the Score")
    for m, grid in TUNING_GRIDS.items()}


def register_variant(name: str, variant: Variant) -> None:
    """Add a row to the table (e.g. another way to fit GenRe); replaces one of that name.

    Parameters
    ----------
    name : str
        The row's name (what --methods takes).
    variant : Variant
        How to build it.
    """
    VARIANTS[name] = variant


def base_method(name: str) -> str:
    """The registered method a row builds on (the row itself when it is one)."""
    return VARIANTS[name].base if name in VARIANTS else name


def method_params(name: str, dataset: str, seed: int, quick: bool,
                  params: dict[str, dict] | None = None) -> dict:
    """Constructor arguments for one cell: the seed, the quick caps, the caller's overrides
    for the base method, then for the row itself (a variant's name)."""
    from genre.baselines import METHODS

    base = base_method(name)
    accepted = inspect.signature(METHODS[base].__init__).parameters if base in METHODS else {}
    out = {"seed": seed} if "seed" in accepted else {}
    if quick:
        out |= {k: v for k, v in QUICK.get(base, {}).items() if k in accepted}
    if base == "genre":
        out["progress"] = False  # the benchmark's own bar reports progress
        # The "genre" rows are the paper's method: its autoregressive sampler, whatever
        # GenRe's default sampler (the student has its own row, genre.bench.student).
        out["sampler"] = "autoregressive"
    out |= (params or {}).get(base, {})
    return out | ((params or {}).get(name, {}) if name != base else {})


def make(name: str, dataset: str, seed: int, quick: bool, params: dict[str, dict] | None = None):
    """The method of one cell, unfitted (a variant: its base, before any grid setting)."""
    from genre.baselines import make_method
    from genre.core.presets import genre_for

    kwargs = method_params(name, dataset, seed, quick, params)
    variant = VARIANTS.get(name)
    if variant is not None and variant.factory is not None:
        return variant.factory(dataset=dataset, seed=seed, quick=quick, **kwargs)
    base = base_method(name)
    return genre_for(dataset, fast=quick, **kwargs) if base == "genre" else make_method(
        base, **kwargs)


# GenRe's parameters that act after training only (sampling, selection, tuning).
SAMPLING_PARAMS = ("temperature", "sigma", "best_k", "select", "tune")


def genre_cache_key(model, protocol, monotone: bool) -> str:
    """<dataset>-seed<seed>-<digest>: the digest covers GenRe's training parameters (not
    the sampling ones, SAMPLING_PARAMS: one fit serves every sampling setting), the training
    rows and labels, h's decisions on them, and the source of the code that trains GenRe
    (genre.utils.cache.code_digest of the estimator's module and all it imports, except
    the student sampler's modules: a GenRe entry does not depend on them, and the student
    cached beside it is keyed by their source, genre.bench.student.student_cache_dir)."""
    from genre.utils.cache import code_digest, key_digest

    params = {k: v for k, v in model.get_params().items()
              if k not in ("progress", "threads", "device", "sampler", *SAMPLING_PARAMS)}
    # Training sees h only through which rows lie above gamma (sources vs targets), so h is
    # keyed by those decisions: two h with the same ones share a model.
    above = protocol.h.predict_proba(protocol.X_train) > model.gamma
    digest = key_digest({"params": params, "monotone": monotone,
                         "code": code_digest(type(model).__module__, exclude=STUDENT_CODE)},
                        arrays=(np.asarray(protocol.X_train, dtype=np.float64),
                                np.asarray(protocol.y_train, dtype=np.int64),
                                np.packbits(above)))
    return f"{protocol.name}-seed{protocol.seed}-{digest[:16]}"


def fit_genre_cached(model, protocol, monotone: bool = False, use_cache: bool = True):
    """Load GenRe from the cache, or fit it on the protocol's task and cache it.

    Returns (model, cached, train_seconds); train_seconds is the original training time
    (read back from the saved model when it came from the cache).
    """
    from genre.core.estimator import GenRe
    from genre.core.tuning import tune_sampling
    from genre.utils.cache import cache_dir, cache_entry, report_rebuild

    where = cache_dir() / GENRE_CACHE / genre_cache_key(model, protocol, monotone)
    if use_cache and (where.exists() or where.is_symlink()):
        try:
            loaded = GenRe.load(where, classifier=protocol.h, require_manifest=True)
        except ModelError as exc:  # unusable entry: say so, retrain and replace it
            report_rebuild(where, exc)
        else:
            seconds = float((loaded.train_log_ or {}).get("seconds", math.nan))
            loaded.set_params(progress=model.progress,
                              **{k: getattr(model, k) for k in SAMPLING_PARAMS})
            if loaded.tune == "auto":  # tuned again: it depends on h and the sampling params
                loaded.tuning_ = tune_sampling(loaded, protocol.task(monotone=monotone))
            return loaded, True, seconds
    model.set_params(sampler="autoregressive")  # the teacher alone (students: bench.student)
    model.fit(protocol.task(monotone=monotone))
    if use_cache:
        with cache_entry(where) as tmp:
            model.save(tmp)
    return model, False, model.log_.seconds


