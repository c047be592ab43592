"""Status tells the truth: `recourse` only where h accepts the profile as written (above
its threshold, and at least min_probability when given), on every bundled dataset and a
user's table, over seeds and options; NaN is never recourse; printed counts match the file."""

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import genre
from credit_table import user_table
from genre.cli import app
from genre.data import load
from genre.data.datasets import DATASETS
from genre.errors import InputError, ModelError
from genre.tables.decision import THRESHOLD, accepts, check_min_probability

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, max_epochs=2,
            patience=2, batch_size=256, k=50, progress=False, best_k=4, sampler="autoregressive")
runner = CliRunner()




def tables():
    """(name, training table, schema, people) for each bundled dataset and a user table."""
    for name in DATASETS:
        d = load(name)
        train = d.train.sample(min(len(d.train), 1000), random_state=0)
        yield name, train, d.schema, d.test[d.schema.names].head(30)
    df = user_table()
    yield "user", df, genre.Schema.infer(df, target="approved"), \
        df.drop(columns="approved").head(40)


def assert_truthful(model, people, result, min_probability=None) -> int:
    names = model.encoder_.schema_.names
    rec = result[result["status"] == "recourse"]
    if len(rec):
        p = model.classifier_.predict_proba(model.encoder_.transform(rec[names]))
        assert accepts(p, min_probability).all(), p.min()
        assert (rec["h_probability"] > THRESHOLD).all()
        if min_probability is not None:
            assert (rec["h_probability"] >= min_probability).all()
    none = result[result["status"] == "none found"]
    assert none["h_probability"].isna().all() and none["cost"].isna().all()
    # a 'none found' person comes back unchanged
    pd.testing.assert_frame_equal(
        none[names].reset_index(drop=True),
        people.iloc[none["person"].to_numpy()][names].reset_index(drop=True),
        check_dtype=False)
    return len(rec)


@pytest.mark.parametrize("name, train, schema, people", list(tables()),
                         ids=[t[0] for t in tables()])
def test_no_rejected_profile_is_called_recourse(name, train, schema, people):
    model = genre.fit(train, schema, h_epochs=3, **TINY)
    rng = np.random.default_rng(0)
    found = 0
    for seed in (0, 1):
        for options in (1, 3):
            margin = [None, 0.6, 0.8][rng.integers(3)]
            result = model.recourse(people, options=options, seed=seed,
                                    min_probability=margin)
            found += assert_truthful(model, people, result, margin)
    assert found > 0  # the property is not vacuous


def test_min_probability_raises_the_bar():
    df = user_table()
    model = genre.fit(df, genre.Schema.infer(df, target="approved"), h_epochs=3, **TINY)
    people = df.drop(columns="approved").head(40)
    plain = model.recourse(people, options=3)
    strict = model.recourse(people, options=3, min_probability=0.9)
    assert_truthful(model, people, strict, 0.9)
    assert (strict.loc[strict.status == "recourse", "h_probability"] >= 0.9).all()
    assert (plain.loc[plain.status == "recourse", "h_probability"] < 0.9).any()
    for bad in (1.0, -0.1, float("nan"), "0.5", True):
        with pytest.raises(InputError, match="min_probability"):
            check_min_probability(bad)
    with pytest.raises(InputError, match="min_probability"):
        model.recourse(people, min_probability=1.5)


class NaNClassifier:
    """0.2 for the people themselves (the first call), NaN for every sample drawn for them;
    nan_first: NaN from the first call on."""

    def __init__(self, nan_first=False):
        self.calls = 0
        self.nan_first = nan_first

    def predict_proba(self, X):
        self.calls += 1
        first = self.calls == 1 and not self.nan_first
        return np.full(len(X), 0.2 if first else np.nan)


def test_nan_probability_is_never_recourse():
    df = user_table()
    model = genre.fit(df, genre.Schema.infer(df, target="approved"), h_epochs=3, **TINY)
    people = df.drop(columns="approved").head(10)
    model.classifier_ = NaNClassifier()
    result = model.recourse(people, options=2)
    assert set(result["status"]) == {"none found"}
    # A person h gives no probability for is refused, naming the row (issue 24).
    model.classifier_ = NaNClassifier(nan_first=True)
    with pytest.raises(ModelError, match="row 0: the model's classifier gives no probability"):
        model.recourse(people)
    assert accepts(np.array([np.nan, 0.4, 0.5, 0.51])).tolist() == [False, False, False, True]


@pytest.mark.parametrize("options", ["1", "2"])
def test_printed_counts_match_the_file(tmp_path, options):
    df = user_table()
    model = genre.fit(df, genre.Schema.infer(df, target="approved"), h_epochs=3, **TINY)
    model.save(tmp_path / "m")
    people = df.drop(columns="approved").head(60)
    src, out = tmp_path / "people.csv", tmp_path / "out.csv"
    people.to_csv(src, index=False)
    res = runner.invoke(app, ["recourse", "--model", str(tmp_path / "m"), "--input", str(src),
                              "--output", str(out), "--options", options,
                              "--min-probability", "0.6"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    m = re.search(r"(\d+) people; (\d+) with recourse, (\d+) without, (\d+) already accepted",
                  text)
    assert m, text
    written = pd.read_csv(out).drop_duplicates("person")["status"].value_counts()
    assert [int(g) for g in m.groups()] == [
        len(people), written.get("recourse", 0), written.get("none found", 0),
        written.get("already accepted", 0)]
    assert_truthful(model, people, pd.read_csv(out), 0.6)
    res = runner.invoke(app, ["recourse", "--model", str(tmp_path / "m"), "--input", str(src),
                              "--output", str(tmp_path / "x.csv"), "--min-probability", "2"])
    assert res.exit_code == 2 and "--min-probability" in res.output
