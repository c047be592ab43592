"""Effort in the schema: cost weights, sparsity, max_changes, diverse options."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from genre.classifiers.mlp import train_mlp
from genre.core.estimator import GenRe
from genre.core.pairs import PairSampler, sparse_targets
from genre.core.task import RecourseTask
from genre.data import Encoder, Feature, Schema
from genre.data.schema_file import save_schema
from genre.errors import SchemaError

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, lr=3e-3,
            batch_size=128, k=100, progress=False, temperature=2.0, best_k=10,
            sampler="autoregressive")


def _two_keys_task(cost_a: float, cost_b: float, **top) -> RecourseTask:
    """y = 1 when a > 0.6 or b > 0.6 (either feature alone flips h); c is noise, g an
    immutable group. a costs cost_a, b costs cost_b."""
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"a": rng.random(n), "b": rng.random(n), "c": rng.random(n),
                       "g": rng.choice(["x", "y"], n)})
    df["y"] = ((df.a > 0.6) | (df.b > 0.6)).astype(int)
    schema = Schema((Feature("a", "numeric", cost=cost_a), Feature("b", "numeric", cost=cost_b),
                     Feature("c", "numeric"), Feature("g", "categorical", immutable=True)),
                    target="y", name="two-keys", **top)
    enc = Encoder(schema).fit(df)
    X = enc.transform(df)
    y = df["y"].to_numpy().copy()
    return RecourseTask(enc, X, y, train_mlp(X, y, epochs=30, seed=0), name="two-keys")


@pytest.fixture(scope="module")
def two_keys():
    return _two_keys_task(0.1, 10.0)


def test_effort_keys_round_trip_through_yaml_and_dict(tmp_path):
    schema = Schema((Feature("age", "numeric", cost=0.5),
                     Feature("job", "categorical", categories=("a", "b", "c"), ordered=True,
                             monotone="increase"),
                     Feature("city", "categorical", cost=2)), target="y",
                    max_changes=2, sparsity=0.25)
    assert Schema.from_dict(schema.to_dict()) == schema
    save_schema(schema, tmp_path / "s.yaml")
    back = Schema.from_yaml(tmp_path / "s.yaml")
    assert back == schema and back.max_changes == 2 and back["job"].ordered
    plain = Schema((Feature("x", "numeric"),), target="y")
    assert not plain.has_effort and "max_changes" not in plain.to_dict()
    assert schema.has_effort and schema.with_monotone(False).max_changes == 2


@pytest.mark.parametrize("bad, words", [
    ({"max_changes": 0}, "max_changes"), ({"sparsity": -1}, "sparsity"),
    ({"features": {"x": {"type": "numeric", "cost": -1}}}, "cost"),
    ({"features": {"x": {"type": "numeric", "ordered": True}}}, "ordered"),
])
def test_bad_effort_keys_are_refused(bad, words):
    d = {"target": "y", "features": {"x": {"type": "numeric"}}} | bad
    with pytest.raises(SchemaError, match=words):
        Schema.from_dict(d)


def test_effort_unordered_categories_cost_any_change_the_same():
    df = pd.DataFrame({"x": [0.0, 10.0], "c": ["a", "e"], "o": ["a", "e"], "y": [0, 1]})
    cats = ("a", "b", "c", "d", "e")
    schema = Schema((Feature("x", "numeric", cost=2.0),
                     Feature("c", "categorical", categories=cats, cost=3.0),
                     Feature("o", "categorical", categories=cats, ordered=True)),
                    target="y", sparsity=0.5)
    enc = Encoder(schema).fit(df)
    x = np.array([[0.0, 0.0, 0.0]])
    near = np.array([[0.5, 0.25, 0.25]])  # half the range; next category; next category
    far = np.array([[0.5, 1.0, 1.0]])  # last category of each
    assert enc.effort(x, near)[0] == pytest.approx(2 * 0.5 + 3 + 0.25 + 3 * 0.5)
    # Unordered: far costs what near costs; ordered: four steps instead of one.
    assert enc.effort(x, far)[0] - enc.effort(x, near)[0] == pytest.approx(0.75)
    plain = Encoder(Schema(tuple(replace(f, cost=None, ordered=False) for f in schema.features),
                           target="y")).fit(df)
    assert plain.effort(x, far)[0] == pytest.approx(np.abs(far - x).sum())  # the paper's L1


def test_pairs_use_effort_and_cap(two_keys):
    enc = two_keys.encoder
    rng = np.random.default_rng(1)
    src = np.column_stack([rng.random((50, 3)) * 0.5, np.zeros(50)])
    tgt = np.column_stack([rng.random((400, 3)), np.zeros(400)])
    effort = enc.effort_terms()
    pairs = PairSampler(src, tgt, enc.immutable_mask, 5.0, 20, enc.monotone, effort=effort,
                        max_changes=1)
    # Every continuous target differs in a, b and c: none keeps to one change.
    assert len(pairs.source_index_) == 0
    nb = PairSampler(src, tgt, enc.immutable_mask, 5.0, 3, enc.monotone, effort=effort)
    extra, owner = sparse_targets(src, tgt, nb.neighbours_, lambda Z: Z[:, 0] > 0.6, 1, 4, rng)
    assert len(extra) and (extra[:, 0] > 0.6).all()
    assert (enc.n_changes(src[owner], extra) == 1).all()
    capped = PairSampler(src, tgt, enc.immutable_mask, 5.0, 20, enc.monotone, effort=effort,
                         max_changes=1, extra=extra, extra_owner=owner)
    assert set(capped.source_index_) == set(owner)
    pick = capped.sample(rng)
    pool = np.vstack([tgt, extra])
    assert (enc.n_changes(src[capped.source_index_], pool[pick]) <= 1).all()
    # Distances follow effort: the weights decrease along each row.
    assert (np.diff(capped.probs_, axis=1) <= 1e-7).all()


def test_recourse_prefers_the_cheap_feature():
    """a costs 0.1, b costs 10: recourse should move a. Swap the costs: it should move b."""
    moved = {}
    for name, costs in (("a cheap", (0.1, 10.0)), ("b cheap", (10.0, 0.1))):
        task = _two_keys_task(*costs)
        model = GenRe(**TINY, max_epochs=15, patience=15, seed=0, select="effort").fit(task)
        p = task.classifier.predict_proba(task.X_train)
        X = task.X_train[p < 0.3][:100]
        best = model.generate(X)
        a_b = task.encoder.inverse_transform(best)[["a", "b"]].to_numpy()
        # Which feature carried the person over the line (a > 0.6 or b > 0.6), and how far
        # each moved on average (original units = normalised here, both span about [0, 1]).
        moved[name] = ((a_b > 0.6).mean(axis=0), np.abs(best - X)[:, :2].mean(axis=0))
        valid = task.classifier.predict_proba(best) > 0.5
        assert valid.mean() > 0.8, (name, valid.mean())
    crossed, dist = moved["a cheap"]
    assert crossed[0] > 0.8 and crossed[1] < 0.2 and dist[0] > 3 * dist[1], moved
    crossed, dist = moved["b cheap"]
    assert crossed[1] > 0.8 and crossed[0] < 0.2 and dist[1] > 3 * dist[0], moved


@pytest.mark.parametrize("cap", [1, 2])
def test_max_changes_is_never_exceeded(make_mixed_task, cap, tmp_path):
    """Property: over random individuals (not only rejected ones) and many samples, no
    sample changes more than max_changes features, with the cached and reference samplers."""
    task = make_mixed_task()
    enc = task.encoder
    schema = replace(enc.schema_, max_changes=cap)
    capped = RecourseTask(Encoder.from_state(schema, enc.lo_, enc.hi_), task.X_train,
                          task.y_train, task.classifier, name="tiny")
    model = GenRe(**TINY, max_epochs=2, patience=2, sigma=0.05, stay_in_bin=False).fit(capped)
    rng = np.random.default_rng(cap)
    X = enc.project(rng.random((60, enc.n_features)))
    X[:, enc.immutable_mask] = task.X_train[:60, enc.immutable_mask]
    for use_cache in (True, False):
        S = model.sample(X, 8, seed=cap, use_cache=use_cache)
        assert (enc.n_changes(X[:, None, :], S) <= cap).all()
    best = model.generate(X)
    assert (enc.n_changes(X, best) <= cap).all()
    opts = model.options(X, 3)
    found = ~np.isnan(opts.X_plus).any(axis=2)
    assert (enc.n_changes(np.repeat(X[:, None], 3, 1)[found], opts.X_plus[found]) <= cap).all()
    back = GenRe.load(model.save(tmp_path / "m"), classifier=task.classifier)
    assert back.encoder_.schema_ == model.encoder_.schema_
    assert back.encoder_.schema_.max_changes == cap
    np.testing.assert_array_equal(back.sample(X, 2, seed=5), model.sample(X, 2, seed=5))


def test_options_distinct_change_sets_first(make_mixed_task):
    task = make_mixed_task()
    model = GenRe(**TINY, max_epochs=4, patience=4).fit(task)
    p = task.classifier.predict_proba(task.X_train)
    X = task.X_train[p < 0.5][:30]
    opts = model.options(X, 3, n_samples=40)
    cands = model.sample(X, 40)  # the same draws options made
    ok = task.classifier.predict_proba(cands.reshape(-1, X.shape[1])).reshape(len(X), 40) > 0.5
    for i in range(len(X)):
        found = ~np.isnan(opts.probability[i])
        sets = [tuple(np.abs(opts.X_plus[i, j] - X[i]) > 1e-6) for j in np.flatnonzero(found)]
        available = {tuple(np.abs(c - X[i]) > 1e-6) for c in cands[i, ok[i]]}
        # Distinct sets of changed features are chosen before variations of one set ...
        assert len(set(sets)) == min(len(available), 3, found.sum())
        # ... and the options are shown cheapest (by effort) first.
        assert (np.diff(opts.cost[i, found]) >= -1e-9).all()


def test_mean_changes_counts_changed_features_of_found_recourses():
    from genre.bench.metrics import mean_changes

    X = np.zeros((3, 4))
    X_plus = np.array([[0, 0.5, 0, 1e-9], [1, 1, 1, 0], [np.nan] * 4])
    assert mean_changes(X, X_plus) == pytest.approx(2.0)  # (1 + 3) / 2; 1e-9 is no change
    assert np.isnan(mean_changes(X[:1], X_plus[2:]))
