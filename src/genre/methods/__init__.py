"""Recourse methods behind one interface: fit(task) then generate(X)."""

from __future__ import annotations

from genre.methods.base import RecourseMethod
from genre.methods.cchvae import CCHVAE
from genre.methods.cruds import CRUDS
from genre.methods.dice import DiCE
from genre.methods.diffusion import GuidedDiffusion
from genre.methods.genre import GenRe
from genre.methods.growing_spheres import GrowingSpheres
from genre.methods.nnr import NearestNeighbourRecourse
from genre.methods.probe import PROBE
from genre.methods.revise import REVISE
from genre.methods.roar import ROAR
from genre.methods.wachter import Wachter

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
