"""Shared fixtures: a private cache dir per test session, and cached protocols."""

from __future__ import annotations

import numpy as np
import pytest

from genre.protocol import build_protocol


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GENRE_CACHE_DIR", str(tmp_path_factory.mktemp("genre-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def compas():
    """The full paper protocol on compas (about 10 s, then cached for the session)."""
    return build_protocol("compas", seed=0)


@pytest.fixture(scope="session")
def moons():
    return build_protocol("moons", seed=0, h_epochs=30)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
