import numpy as np
import pandas as pd
import pytest

from genre.data import DATASETS, Encoder, Feature, Schema, load
from genre.errors import InputError, SchemaError

SIZES = {"adult": (36624, 12208, 13), "compas": (4629, 1543, 7), "heloc": (7403, 2468, 21)}


@pytest.mark.parametrize("name", list(SIZES))
def test_bundled_sizes_and_schema_facts(name):
    d = load(name)
    n_train, n_test, n_feat = SIZES[name]
    assert (len(d.train), len(d.test), d.schema.n_features) == (n_train, n_test, n_feat)
    immutable = {f.name for f in d.schema.features if f.immutable}
    assert immutable == ({"race", "sex"} if name != "heloc" else set())
    for f in d.schema.features:
        if f.is_categorical:
            assert len(f.categories) == 2  # every categorical here is binary (data README)


def test_monotone_facts_recorded():
    assert load("adult").schema["education-num"].monotone == "increase"
    compas = load("compas").schema
    assert [f.name for f in compas.features if f.monotone] == [
        "age", "two_year_recid", "priors_count"]


@pytest.mark.parametrize("name", DATASETS)
def test_encoder_round_trip_is_exact(name):
    d = load(name)
    enc = Encoder(d.schema).fit(d.X_train)
    for frame in (d.X_train, d.X_test):
        X = enc.transform(frame)
        back = enc.inverse_transform(X)
        for f in d.schema.features:
            orig = frame[f.name].reset_index(drop=True)
            assert back[f.name].dtype == orig.dtype, f.name
            if f.is_categorical or f.integer:
                assert back[f.name].tolist() == orig.tolist(), f.name
            else:  # exact for values written with <= 12 significant digits, else ~1 ulp
                np.testing.assert_allclose(back[f.name], orig, rtol=1e-14, atol=1e-12)
                short = orig.map(lambda v: len(f"{v:.12g}") >= len(repr(v)))
                assert (back[f.name][short] == orig[short]).all(), f.name
    X = enc.transform(d.X_train)
    assert X.min() >= 0.0 and X.max() <= 1.0  # training statistics span [0, 1]


@pytest.fixture
def small():
    schema = Schema((Feature("age", "numeric", integer=True, min=18, max=100),
                     Feature("income", "numeric"),
                     Feature("job", "categorical", categories=("a", "b", "c")),
                     Feature("country", "categorical", immutable=True)), "ok", 1)
    df = pd.DataFrame({"age": [20, 40, 60], "income": [1.0, 2.5, 4.0], "job": ["a", "b", "c"],
                       "country": ["x", "y", "x"], "ok": [0, 1, 1]})
    return Encoder(schema).fit(df), df


def test_encoder_values_and_categories(small):
    enc, df = small
    X = enc.transform(df)
    np.testing.assert_allclose(X[:, 0], (df["age"] - 18) / 82)
    np.testing.assert_allclose(X[:, 1], [0, 0.5, 1])
    np.testing.assert_allclose(X[:, 2], [0, 0.5, 1])  # codes / (n_categories - 1)
    assert enc.schema_["country"].categories == ("x", "y")  # taken from the data
    assert enc.inverse_transform(X)["job"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns="income"), r"missing columns \['income'\]"),
    (lambda df: df.assign(extra=1), r"unexpected columns \['extra'\]"),
    (lambda df: df.assign(income=[1.0, np.nan, 2.0]), r"column 'income', row 1: missing value"),
    (lambda df: df.assign(job=["a", None, "b"]), r"column 'job', row 1: missing value"),
    (lambda df: df.assign(income=["1", "abc", "2"]), r"column 'income', row 1: expected a number"),
    (lambda df: df.assign(job=["a", "b", "zzz"]), r"column 'job', row 2: unknown category 'zzz'"),
    (lambda df: df.assign(age=[20, 40.5, 60]), r"column 'age', row 1: expected an integer"),
    (lambda df: df.assign(age=[20, 400, 60]), r"column 'age', row 1: value 400 is above"),
    (lambda df: df.assign(age=[10, 40, 60]), r"column 'age', row 0: value 10 is below"),
    (lambda df: df.iloc[:0], r"no rows"),
    (lambda df: pd.concat([df, df[["income"]]], axis=1), r"duplicate columns \['income'\]"),
])
def test_bad_input_is_named(small, mutate, message):
    enc, df = small
    with pytest.raises(InputError, match=message):
        enc.transform(mutate(df))


def test_numeric_strings_and_category_spellings_are_accepted(small):
    enc, df = small
    text = df.astype(str)
    np.testing.assert_allclose(enc.transform(text), enc.transform(df))


@pytest.mark.parametrize("spec, message", [
    ({"target": "y", "features": {}}, "non-empty"),
    ({"features": {"a": {"type": "numeric"}}}, "'target'"),
    ({"target": "y", "features": {"a": {"type": "text"}}}, "numeric' or 'categorical'"),
    ({"target": "y", "features": {"a": {"type": "numeric", "min": 5, "max": 1}}}, "below max"),
    ({"target": "y", "features": {"a": {"type": "numeric", "monotone": "up"}}}, "monotone"),
    ({"target": "y", "features": {"a": {"type": "numeric", "colour": 1}}}, "unknown keys"),
    ({"target": "y", "features": {"a": {"type": "categorical", "categories": ["u", "u"]}}},
     "duplicates"),
    ({"target": "a", "features": {"a": {"type": "numeric"}}}, "also listed as a feature"),
])
def test_bad_schema_is_named(spec, message):
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(spec)


def test_schema_dict_round_trip():
    s = load("adult").schema
    assert Schema.from_dict(s.to_dict()) == s


def test_project_respects_schema(small):
    enc, df = small
    X = enc.transform(df)
    wild = X + np.array([0.013, -2.0, 0.3, 0.9])
    P = enc.project(wild, factual=X)
    np.testing.assert_array_equal(P[:, 3], X[:, 3])  # immutable copied
    codes = P[:, 2] * 2
    np.testing.assert_allclose(codes, np.rint(codes))  # categorical on its grid
    ages = enc.inverse_transform(P)["age"]
    assert ages.between(18, 100).all()
    assert P[:, 1].min() >= 0.0  # clipped to bounds
