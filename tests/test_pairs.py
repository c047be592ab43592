import numpy as np
import pytest

from genre.core.pairs import PairSampler, split_holdout


@pytest.fixture
def random_problem():
    rng = np.random.default_rng(0)
    D = 5
    X_src, X_tgt = rng.random((60, D)), rng.random((200, D))
    # Column 0 is an immutable binary category, column 1 a 3-level one.
    for X in (X_src, X_tgt):
        X[:, 0] = rng.integers(0, 2, len(X))
        X[:, 1] = rng.integers(0, 3, len(X)) / 2
    immutable = np.array([True, True, False, False, False])
    return X_src, X_tgt, immutable


def test_partners_share_immutables_and_respect_monotone(random_problem):
    X_src, X_tgt, immutable = random_problem
    monotone = np.array([0, 0, 1, -1, 0])
    ps = PairSampler(X_src, X_tgt, immutable, lambda_=5.0, k=20, monotone=monotone,
                     block_size=16)
    assert ps.neighbours_.shape == ps.probs_.shape == (len(ps.source_index_), 20)
    used = ps.probs_ > 0
    assert used[:, 0].all()
    rows = np.broadcast_to(ps.source_index_[:, None], used.shape)[used]
    partners = ps.neighbours_[used]
    src, tgt = X_src[rows], X_tgt[partners]
    np.testing.assert_array_equal(src[:, :2], tgt[:, :2])
    assert (tgt[:, 2] >= src[:, 2]).all()
    assert (tgt[:, 3] <= src[:, 3]).all()
    # Padding (fewer feasible targets than k) carries no weight and no index.
    assert (ps.neighbours_[~used] == -1).all()


def test_probs_normalised_and_decreasing_with_distance(random_problem):
    X_src, X_tgt, immutable = random_problem
    ps = PairSampler(X_src, X_tgt, immutable, lambda_=5.0, k=30, block_size=7)
    np.testing.assert_allclose(ps.probs_.sum(axis=1), 1.0, rtol=1e-5)
    assert (np.diff(ps.probs_, axis=1) <= 1e-7).all()  # sorted nearest first
    # Distances of the listed neighbours rise along each row.
    d = np.abs(X_src[ps.source_index_, None, :] - X_tgt[ps.neighbours_]).sum(-1)
    d = np.where(ps.probs_ > 0, d, 1e9)  # padding sorts last
    assert (np.diff(d, axis=1) >= -1e-5).all()


def test_exact_probabilities_on_hand_built_case():
    X_src = np.array([[0.0, 0.0], [1.0, 0.5], [0.5, 0.2]])
    X_tgt = np.array([[0.0, 0.1], [0.0, 0.5], [1.0, 0.4], [0.0, 1.0], [1.0, 1.0]])
    immutable = np.array([True, False])  # third source has no target with x_0 == 0.5
    lam = 3.0
    ps = PairSampler(X_src, X_tgt, immutable, lambda_=lam, k=4)
    np.testing.assert_array_equal(ps.source_index_, [0, 1])
    # Source 0 may only use targets 0, 1, 3 (distances .1, .5, 1.0), padded to k=4.
    np.testing.assert_array_equal(ps.neighbours_[0], [0, 1, 3, -1])
    w = np.exp(-lam * np.array([0.1, 0.5, 1.0]))
    np.testing.assert_allclose(ps.probs_[0], np.append(w / w.sum(), 0.0), rtol=1e-5)
    # Source 1 may use targets 2, 4 (distances .1, .5).
    np.testing.assert_array_equal(ps.neighbours_[1], [2, 4, -1, -1])
    w = np.exp(-lam * np.array([0.1, 0.5]))
    np.testing.assert_allclose(ps.probs_[1], [*(w / w.sum()), 0.0, 0.0], rtol=1e-5)


def test_k_keeps_only_the_nearest():
    X_src = np.array([[0.0]])
    X_tgt = np.array([[0.9], [0.1], [0.5], [0.3]])
    ps = PairSampler(X_src, X_tgt, np.array([False]), lambda_=1.0, k=2)
    np.testing.assert_array_equal(ps.neighbours_, [[1, 3]])
    np.testing.assert_allclose(ps.probs_[0, 0] / ps.probs_[0, 1], np.exp(0.2), rtol=1e-5)


def test_sample_draws_positive_probability_neighbours(random_problem):
    X_src, X_tgt, immutable = random_problem
    ps = PairSampler(X_src, X_tgt, immutable, lambda_=20.0, k=10)
    rng = np.random.default_rng(1)
    draws = np.stack([ps.sample(rng) for _ in range(300)])  # (300, n_valid)
    assert draws.shape == (300, len(ps.source_index_))
    for row in range(len(ps.source_index_)):
        allowed = ps.neighbours_[row][ps.probs_[row] > 0]
        assert np.isin(draws[:, row], allowed).all()
    # Frequencies follow Q: the nearest neighbour's empirical share matches its weight.
    freq = (draws == ps.neighbours_[:, 0]).mean(axis=0)
    assert np.abs(freq - ps.probs_[:, 0]).mean() < 0.05


def test_no_feasible_partner_is_excluded():
    X_src = np.array([[0.0, 0.5], [1.0, 0.5], [0.0, 0.9]])
    X_tgt = np.array([[0.0, 0.2], [0.0, 0.8]])
    monotone = np.array([0, 1])
    ps = PairSampler(X_src, X_tgt, np.array([True, False]), monotone=monotone, k=5)
    # Source 1 has no target with x_0 == 1; source 2 has none with x_1 >= 0.9.
    np.testing.assert_array_equal(ps.source_index_, [0])
    np.testing.assert_array_equal(ps.neighbours_, [[1, -1]])
    np.testing.assert_array_equal(ps.sample(np.random.default_rng(0)), [1])


def test_split_holdout():
    rng = np.random.default_rng(0)
    train, val = split_holdout(100, 0.1, rng)
    assert len(val) == 10 and len(train) == 90
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    train, val = split_holdout(3, 0.1, rng)
    assert len(val) == 1 and len(train) == 2
    with pytest.raises(ValueError):
        split_holdout(10, 1.0, rng)
