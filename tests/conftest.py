"""Shared fixtures: a private cache dir per test session, and cached protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre.bench.protocol import build_protocol
from genre.classifiers.mlp import train_mlp
from genre.core.task import RecourseTask
from genre.data import Encoder, Feature, Schema


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GENRE_CACHE_DIR", str(tmp_path_factory.mktemp("genre-cache")))
    yield
    mp.undo()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty cache dir for one test (the session's shared one is set above)."""
    monkeypatch.setenv("GENRE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def compas():
    """The full paper protocol on compas (about 10 s, then cached for the session)."""
    return build_protocol("compas", seed=0)


@pytest.fixture(scope="session")
def moons():
    return build_protocol("moons", seed=0, h_epochs=30)


@pytest.fixture(scope="session")
def make_mixed_task():
    """A tiny task of every feature kind: x1 continuous, x2 integer 0..10 (optionally
    monotone), colour categorical (3 levels), group immutable categorical; 1,200 rows, the
    label depends on x1, x2 and colour (and a little on group); h a small MLP."""

    def make(x2_monotone: str | None = None) -> RecourseTask:
        rng = np.random.default_rng(0)
        n = 1200
        df = pd.DataFrame({
            "x1": rng.random(n),
            "x2": rng.integers(0, 11, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "group": rng.choice(["a", "b"], n),
        })
        score = df.x1 + 0.05 * df.x2 + 0.4 * (df.colour == "blue") + 0.1 * (df.group == "a")
        df["y"] = (score + 0.1 * rng.standard_normal(n) > 0.95).astype(int)
        schema = Schema((
            Feature("x1", "numeric"),
            Feature("x2", "numeric", integer=True, monotone=x2_monotone),
            Feature("colour", "categorical"),
            Feature("group", "categorical", immutable=True),
        ), target="y", name="tiny")
        enc = Encoder(schema).fit(df)
        X = enc.transform(df)
        y = df["y"].to_numpy().copy()  # pandas 3 hands out read-only views
        h = train_mlp(X, y, epochs=15, seed=0)
        return RecourseTask(enc, X, y, h, name="tiny", seed=0)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(0)
