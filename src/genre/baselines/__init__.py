"""Recourse methods behind one interface: fit(task) then generate(X)."""

from __future__ import annotations

from genre.baselines.cchvae import CCHVAE
from genre.baselines.cruds import CRUDS
from genre.baselines.dice import DiCE
from genre.baselines.diffusion import GuidedDiffusion
from genre.baselines.genre_student import GenReStudent
from genre.baselines.growing_spheres import GrowingSpheres
from genre.baselines.nnr import NearestNeighbourRecourse
from genre.baselines.probe import PROBE
from genre.baselines.revise import REVISE
from genre.baselines.roar import ROAR
from genre.baselines.wachter import Wachter
from genre.core.estimator import GenRe
from genre.core.method import RecourseMethod
from genre.errors import InputError

# Every method, under its class's `name` (genre.utils.methods.METHOD_NAMES: the same names,
# in the same order).
METHODS: dict[str, type[RecourseMethod]] = {cls.name: cls for cls in (
    GenRe, NearestNeighbourRecourse, Wachter, GrowingSpheres, DiCE, ROAR, PROBE, CCHVAE, REVISE,
    CRUDS, GuidedDiffusion, GenReStudent)}


def make_method(name: str, **params) -> RecourseMethod:
    """Instantiate a registered method by its short name (see METHODS)."""
    try:
        cls = METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; available: {sorted(METHODS)}") from None
    return cls(**params)


__all__ = ["METHODS", "RecourseMethod", "make_method"]
