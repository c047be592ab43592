"""Recourse methods behind one interface: fit(task) then generate(X)."""

from __future__ import annotations

from genre.baselines.cchvae import CCHVAE
from genre.baselines.cruds import CRUDS
from genre.baselines.dice import DiCE
from genre.baselines.diffusion import GuidedDiffusion
from genre.baselines.growing_spheres import GrowingSpheres
from genre.baselines.nnr import NearestNeighbourRecourse
from genre.baselines.probe import PROBE
from genre.baselines.revise import REVISE
from genre.baselines.roar import ROAR
from genre.baselines.wachter import Wachter
from genre.core.estimator import GenRe
from genre.core.method import RecourseMethod

METHODS: dict[str, type[RecourseMethod]] = {
    "genre": GenRe,
    "nnr": NearestNeighbourRecourse,
    "wachter": Wachter,
    "gs": GrowingSpheres,
    "dice": DiCE,
    "roar": ROAR,
    "probe": PROBE,
    "cchvae": CCHVAE,
    "revise": REVISE,
    "cruds": CRUDS,
    "diffusion": GuidedDiffusion,
    # GenRe with its distilled one-pass sampler; the benchmark distils it from the "genre"
    # row's fitted model (genre.bench.benchmark.fit_student_cached).
    "genre-student": GenRe,
}


def make_method(name: str, **params) -> RecourseMethod:
    """Instantiate a registered method by its short name (see METHODS)."""
    try:
        cls = METHODS[name]
    except KeyError:
        from genre.errors import InputError

        raise InputError(f"unknown method {name!r}; available: {sorted(METHODS)}") from None
    return cls(**params)


__all__ = ["METHODS", "RecourseMethod", "make_method"]
