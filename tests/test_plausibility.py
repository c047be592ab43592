"""The plausible flag separates real favourable rows from random profiles."""

import numpy as np
import pytest

from genre.core.plausibility import PlausibilityFlag


def _correlated(n: int, rng) -> np.ndarray:
    """Rows on a 2-d manifold inside [0, 1]^8 (plus a little noise), with two binary columns."""
    z = rng.random((n, 2))
    cols = [z[:, 0], z[:, 1], (z[:, 0] + z[:, 1]) / 2, z[:, 0] ** 2, 1 - z[:, 1],
            np.sqrt(z[:, 0] * z[:, 1])]
    X = np.column_stack(cols) + 0.01 * rng.standard_normal((n, 6))
    return np.column_stack([X, z[:, 0] > 0.5, z[:, 1] > 0.3]).astype(float)


def test_flag_is_calibrated_on_held_out_rows_and_rejects_random_profiles():
    rng = np.random.default_rng(0)
    flag = PlausibilityFlag(seed=0).fit(_correlated(3000, rng))
    real = _correlated(2000, rng)
    random = rng.random((2000, 8))
    random[:, 6:] = random[:, 6:] > 0.5
    real_flagged = np.mean(flag.predict(real) == -1)
    assert 0.01 < real_flagged <= 0.10  # about the 5% it was calibrated for
    assert np.mean(flag.predict(random) == -1) >= 0.9
    assert flag.n_holdout_ == 600 and set(np.unique(flag.predict(real))) <= {-1, 1}


def test_tiny_reference_still_gives_a_flag():
    rng = np.random.default_rng(1)
    ref = rng.random((6, 3)) * 0.1
    flag = PlausibilityFlag().fit(ref)
    assert flag.n_holdout_ == 0
    assert (flag.predict(ref) == 1).all() and flag.predict(np.ones((1, 3)))[0] == -1
    with pytest.raises(ValueError):
        PlausibilityFlag().fit(ref[:1])
