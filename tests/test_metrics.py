import numpy as np
import pandas as pd
import pytest

from genre.bench.metrics import cost, evaluate, score, validity, violations
from genre.data import Encoder, Feature, Schema


class Threshold:
    """P(favourable) = 1 when the first feature exceeds 0.5."""

    def predict_proba(self, X):
        return (np.asarray(X)[:, 0] > 0.5).astype(float)


class FirstIsInlier:
    def predict(self, X):
        return np.where(np.asarray(X)[:, 1] < 0.5, 1, -1)


@pytest.fixture
def enc():
    schema = Schema((Feature("a", "numeric", monotone="increase"), Feature("b", "numeric"),
                     Feature("s", "categorical", immutable=True)), "y", 1)
    df = pd.DataFrame({"a": [0.0, 1.0], "b": [0.0, 1.0], "s": ["f", "m"], "y": [0, 1]})
    return Encoder(schema).fit(df)


def test_hand_built_case(enc):
    X = np.array([[0.2, 0.2, 0.0], [0.4, 0.1, 1.0], [0.3, 0.3, 0.0], [0.1, 0.1, 1.0]])
    Xp = np.array([[0.7, 0.2, 0.0],        # valid, inlier, cost 0.5
                   [0.3, 0.6, 0.0],        # invalid, outlier, cost 0.1+0.5+1 (immutable, mono)
                   [0.9, 0.1, 0.0],        # valid, inlier, cost 0.6+0.2
                   [np.nan] * 3])          # none found: invalid, outlier, no cost
    assert cost(X, Xp) == pytest.approx((0.5 + 1.6 + 0.8) / 3)
    assert validity(Threshold(), Xp) == pytest.approx(0.5)
    r = evaluate(X, Xp, encoder=enc, gold=Threshold(), h=Threshold(), lof=FirstIsInlier())
    assert (r.n, r.found) == (4, 3)
    assert r.lof == pytest.approx(0.5)
    assert r.score == pytest.approx(0.5 + 0.5 - (2.9 / 3) / 3)
    assert r.violations.immutable == 1 and r.violations.monotone == 1
    assert r.violations.invalid_category == 0 and r.violations.out_of_bounds == 0


def test_score_formula():
    assert score(1.0, 1.0, 0.0, 7) == 2.0
    assert score(0.99, 0.97, 0.51, 7) == pytest.approx(1.887142857)


def test_off_grid_and_out_of_bounds_are_counted(enc):
    X = np.array([[0.2, 0.2, 0.0]])
    assert violations(enc, X, np.array([[0.3, 1.5, 0.0]])).out_of_bounds == 1
    assert violations(enc, X, np.array([[0.3, 0.2, 0.4]])).invalid_category == 1
