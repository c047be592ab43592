"""A team's own data and model: schema YAML, schema inference, user classifiers, the task."""

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from genre.classifiers.original_units import OriginalUnitsClassifier, load_classifier
from genre.classifiers.skops import skops_type_allowed
from genre.core.task import SklearnClassifier, TorchClassifier
from genre.core.usertask import build_user_task
from genre.data import Encoder
from genre.data.schema import Schema
from genre.data.schema_file import save_schema
from genre.errors import InputError, ModelError, SchemaError
from genre.io import read_table

EXAMPLE = """\
target: approved
favourable: 1
features:
  age:        {type: numeric, integer: true, monotone: increase, min: 18, max: 100}
  income:     {type: numeric}
  employment: {type: categorical, categories: [salaried, self-employed, unemployed]}
  country:    {type: categorical, immutable: true}
"""

APPLICANTS_SCHEMA = """\
target: decision
favourable: approved
features:
  age:        {type: numeric, integer: true, monotone: increase, min: 18, max: 100}
  income:     {type: numeric}
  employment: {type: categorical, categories: [salaried, self-employed, unemployed]}
  country:    {type: categorical, immutable: true}
"""
FEATURES = ["age", "income", "employment", "country"]
CATEGORICAL = ["employment", "country"]


def applicants(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, n)
    income = rng.normal(50, 15, n).round(2)
    employment = rng.choice(["salaried", "self-employed", "unemployed"], n)
    country = rng.choice(["FR", "DE", "NL"], n)
    score = (0.08 * (income - 50) + 0.04 * (age - 40) + rng.normal(0, 0.4, n)
             + np.select([employment == "salaried", employment == "unemployed"], [1.0, -2.0]))
    decision = np.where(score > 0, "approved", "rejected")
    return pd.DataFrame({"age": age, "income": income, "employment": employment,
                         "country": country, "decision": decision})


@pytest.fixture
def table():
    return applicants()


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(APPLICANTS_SCHEMA)
    return Schema.from_yaml(path)


@pytest.fixture
def encoder(table, schema):
    return Encoder(schema).fit(table)


def pipeline(table, model=None):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)],
                           remainder="passthrough")
    model = LogisticRegression(max_iter=1000) if model is None else model
    pipe = Pipeline([("ct", ct), ("clf", model)])
    return pipe.fit(table[FEATURES], table["decision"])


# ------------------------------------------------------------------------ schema YAML
def test_example_yaml_round_trips(tmp_path):
    src = tmp_path / "in.yaml"
    src.write_text(EXAMPLE)
    schema = Schema.from_yaml(src)
    assert schema.names == ["age", "income", "employment", "country"]
    assert (schema.target, schema.favourable) == ("approved", 1)
    age = schema["age"]
    assert (age.kind, age.integer, age.monotone, age.min, age.max) == (
        "numeric", True, "increase", 18, 100)
    assert schema["employment"].categories == ("salaried", "self-employed", "unemployed")
    assert schema["country"].immutable and schema["country"].categories is None
    out = tmp_path / "sub" / "out.yaml"
    save_schema(schema, out)
    text = out.read_text()
    assert "age: {type: numeric, integer: true, monotone: increase, min: 18, max: 100}" in text
    assert Schema.from_yaml(out) == schema
    assert [p.name for p in out.parent.iterdir()] == ["out.yaml"]  # no temporary left behind


def test_yaml_words_yes_no_stay_labels(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("target: smoker\nfavourable: no\nfeatures:\n"
                    "  insured: {type: categorical, categories: [yes, no, on, off]}\n")
    schema = Schema.from_yaml(path)
    assert schema.favourable == "no"
    assert schema["insured"].categories == ("yes", "no", "on", "off")
    save_schema(schema, tmp_path / "again.yaml")
    assert Schema.from_yaml(tmp_path / "again.yaml") == schema


BAD_SCHEMAS = {
    "bad-syntax": ("target: approved\nfeatures:\n  age: {type: numeric\n  income: x\n",
                   ["line 4", "invalid YAML"]),
    "tab-indent": ("target: a\nfeatures:\n\tage: {type: numeric}\n", ["line 3"]),
    "unknown-key": ("target: a\nfeatures:\n  age: {type: numeric, colour: red}\n",
                    ["feature 'age'", "colour"]),
    "unknown-top-key": ("target: a\nfeaturez: {}\n", ["featurez"]),
    "wrong-type": ("target: a\nfeatures:\n  age: {type: number}\n",
                   ["feature 'age'", "'numeric' or 'categorical'"]),
    "type-not-text": ("target: a\nfeatures:\n  age: {type: [numeric]}\n", ["feature 'age'"]),
    "min-not-number": ("target: a\nfeatures:\n  age: {type: numeric, min: young}\n",
                       ["feature 'age'", "'min' must be a number"]),
    "flag-not-bool": ("target: a\nfeatures:\n  age: {type: numeric, integer: yes}\n",
                      ["feature 'age'", "'integer' must be true or false"]),
    "min-above-max": ("target: a\nfeatures:\n  age: {type: numeric, min: 50, max: 10}\n",
                      ["feature 'age'", "min (50) must be below max (10)"]),
    "categories-not-list": ("target: a\nfeatures:\n  job: {type: categorical, categories: x}\n",
                            ["feature 'job'", "'categories' must be a list"]),
    "category-not-scalar": ("target: a\nfeatures:\n  job: {type: categorical, "
                            "categories: [[x]]}\n", ["feature 'job'", "labels or numbers"]),
    "duplicate-categories": ("target: a\nfeatures:\n  job: {type: categorical, "
                             "categories: [x, x]}\n", ["feature 'job'", "duplicates"]),
    "bad-monotone": ("target: a\nfeatures:\n  age: {type: numeric, monotone: up}\n",
                     ["feature 'age'", "monotone"]),
    "immutable-and-monotone": ("target: a\nfeatures:\n  age: {type: numeric, immutable: true,"
                               " monotone: increase}\n", ["feature 'age'", "immutable"]),
    "duplicate-feature": ("target: a\nfeatures:\n  age: {type: numeric}\n"
                          "  age: {type: categorical}\n", ["line 4", "'age'", "more than once"]),
    "no-target": ("features:\n  age: {type: numeric}\n", ["'target'"]),
    "target-is-feature": ("target: age\nfeatures:\n  age: {type: numeric}\n", ["target"]),
    "no-features": ("target: a\nfeatures: {}\n", ["'features'"]),
    "spec-not-mapping": ("target: a\nfeatures:\n  age: numeric\n", ["feature 'age'"]),
    "favourable-list": ("target: a\nfavourable: [1, 2]\nfeatures:\n  age: {type: numeric}\n",
                        ["'favourable'"]),
    "not-a-mapping": ("- target\n- features\n", ["expected a mapping"]),
    "empty": ("", ["empty"]),
    "only-comments": ("# nothing here\n", ["empty"]),
}


@pytest.mark.parametrize("case", list(BAD_SCHEMAS))
def test_malformed_schema_names_file_and_fault(tmp_path, case):
    text, fragments = BAD_SCHEMAS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        Schema.from_yaml(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="no such file"):
        Schema.from_yaml(tmp_path / "nope.yaml")


# -------------------------------------------------------------------- schema inference
def hand_made() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame({
        "income": rng.normal(40, 10, n).round(3),                         # numeric
        "age": rng.integers(18, 80, n),                                   # integer, many values
        "children": rng.integers(0, 4, n),                                # few integers
        "job": rng.choice(["nurse", "clerk", "baker", "pilot"], n),     # text, 4 categories
        "owner": rng.choice([True, False], n),                            # bool
        "outcome": rng.choice([0, 1], n),
    })


def test_infer_schema_kinds_and_yaml(tmp_path):
    df = hand_made()
    schema = Schema.infer(df, "outcome")
    assert schema.names == ["income", "age", "children", "job", "owner"]
    assert (schema["income"].kind, schema["income"].integer) == ("numeric", False)
    assert (schema["age"].kind, schema["age"].integer) == ("numeric", True)
    assert schema["children"].kind == "categorical"
    assert schema["children"].categories == (0, 1, 2, 3)
    assert schema["job"].categories == ("baker", "clerk", "nurse", "pilot")
    assert schema["owner"].categories == (False, True)
    assert not any(f.immutable or f.monotone for f in schema.features)
    assert schema.favourable == 1
    notes = " ".join(schema.extra["notes"])
    assert "guessed 1" in notes and "'children'" in notes

    path = tmp_path / "inferred.yaml"
    save_schema(schema, path)
    text = path.read_text()
    assert text.startswith("# favourable: guessed 1")
    back = Schema.from_yaml(path)
    assert back == schema
    task = build_user_task(df, back, h_epochs=2)  # the inferred schema fits its own data
    assert task.X_train.shape == (60, 5)


def test_infer_schema_favourable_guess_and_choice():
    df = pd.DataFrame({"x": np.arange(12.5, 24.5), "y": ["no", "yes", "maybe"] * 4})
    schema = Schema.infer(df, "y")
    assert schema.favourable == "yes"
    assert any("alphabetical" in n for n in schema.extra["notes"])
    assert any("3 distinct values" in n for n in schema.extra["notes"])
    assert Schema.infer(df, "y", favourable="maybe").favourable == "maybe"
    df01 = pd.DataFrame({"x": np.arange(12.5, 24.5), "y": [0.0, 1.0] * 6})
    assert Schema.infer(df01, "y", favourable="0").favourable == 0
    with pytest.raises(InputError, match="does not occur"):
        Schema.infer(df, "y", favourable="perhaps")


def test_infer_schema_rejects_bad_tables():
    df = hand_made()
    with pytest.raises(InputError, match="target column 'label' not found"):
        Schema.infer(df, "label")
    with pytest.raises(InputError, match="at least 2 distinct values"):
        Schema.infer(df.assign(outcome=1), "outcome")
    with pytest.raises(InputError, match="column 'blank' is entirely empty"):
        Schema.infer(df.assign(blank=np.nan), "outcome")


# --------------------------------------------------------------------------- the task
def test_build_user_task_trains_h(table, schema):
    task = build_user_task(table, schema, seed=0, h_epochs=60)
    assert task.name == "custom" and task.X_train.shape == (400, 4)
    assert task.X_train.min() >= 0 and task.X_train.max() <= 1
    np.testing.assert_array_equal(task.y_train, (table["decision"] == "approved").to_numpy())
    assert isinstance(task.classifier, TorchClassifier | SklearnClassifier)
    assert task.classifier_report["kind"] in ("mlp", "hgb")
    accuracy = np.mean((task.classifier.predict_proba(task.X_train) > 0.5) == task.y_train)
    assert accuracy > 0.6
    back = task.encoder.inverse_transform(task.X_train)
    pd.testing.assert_frame_equal(back[["age", "employment"]], table[["age", "employment"]])


def test_build_user_task_errors_name_column_and_line(table, schema, tmp_path):
    csv = tmp_path / "applicants.csv"
    bad = table.astype({"decision": object})
    bad.loc[5, "decision"] = None
    bad.to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"column 'decision', line 7: missing target"):
        build_user_task(read_table(csv), schema)
    with pytest.raises(InputError, match="target column 'decision' not found"):
        build_user_task(table.drop(columns="decision"), schema)
    with pytest.raises(InputError, match="no row of target 'decision' is favourable"):
        build_user_task(table.assign(decision="rejected"), schema)
    with pytest.raises(InputError, match="is unfavourable"):
        build_user_task(table.assign(decision="approved"), schema)
    wrong = table.copy()
    wrong.loc[3, "employment"] = "retired"
    wrong.to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"column 'employment', line 5: unknown category"):
        build_user_task(read_table(csv), schema)


# ------------------------------------------------------------------ skops classifiers
def test_skops_classifier_matches_pipeline(table, schema, encoder, tmp_path):
    sio = pytest.importorskip("skops.io")
    pipe = pipeline(table)
    assert list(pipe.classes_) == ["approved", "rejected"]  # favourable is column 0
    path = tmp_path / "model.skops"
    sio.dump(pipe, path)
    clf = load_classifier(path, encoder)
    assert isinstance(clf, OriginalUnitsClassifier) and clf.favourable_index == 0
    X = encoder.transform(table)
    expected = pipe.predict_proba(table[FEATURES])[:, 0]
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=0, atol=1e-9)
    X_nan = X[:3].copy()
    X_nan[1, 0] = np.nan
    p = clf.predict_proba(X_nan)
    assert np.isnan(p[1]) and np.allclose(p[[0, 2]], expected[[0, 2]])

    task = build_user_task(table, schema, classifier=path)
    np.testing.assert_allclose(task.classifier.predict_proba(task.X_train), expected, atol=1e-9)


def test_skops_tree_ensemble_is_allowed(table, encoder, tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.ensemble import RandomForestClassifier

    pipe = pipeline(table, RandomForestClassifier(n_estimators=5, random_state=0))
    path = tmp_path / "forest.skops"
    sio.dump(pipe, path)
    assert "sklearn.tree._tree.Tree" in sio.get_untrusted_types(file=path)
    clf = load_classifier(path, encoder)
    np.testing.assert_allclose(clf.predict_proba(encoder.transform(table)),
                               pipe.predict_proba(table[FEATURES])[:, 0])


def _double(x):
    return 2 * x


def test_skops_refuses_untrusted_types(table, encoder, tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    ct = ColumnTransformer([("cat", OneHotEncoder(), CATEGORICAL)],
                           remainder=FunctionTransformer(func=_double))
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(table[FEATURES], table["decision"])
    path = tmp_path / "custom.skops"
    sio.dump(pipe, path)
    with pytest.raises(ModelError, match=r"refusing to load types.*_double") as info:
        load_classifier(path, encoder)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name, allowed", [
    ("sklearn.tree._tree.Tree", True),
    ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
    ("sklearn.neighbors._kd_tree.KDTree", True),
    ("sklearn.linear_model._logistic.LogisticRegression", True),
    ("numpy.dtype", True),
    ("numpy.float64", True),
    ("numpy.dtypes.Float64DType", True),
    ("builtins.eval", False),
    ("os.system", False),
    ("numpy.load", False),                                    # a function, not a dtype
    ("sklearn.datasets._base.load_iris", False),              # module not on the list
    ("sklearn.preprocessing._data.np", False),                # a module re-exported
    ("sklearn.linear_model._base.check_array", False),        # a function re-exported
    ("sklearn.svmx.Evil", False),                             # prefix must end at a dot
    ("sklearn.svm.does_not_exist", False),
])
def test_skops_allow_list_rule(name, allowed):
    assert skops_type_allowed(name) is allowed


def test_classifier_without_favourable_class(table, encoder, tmp_path):
    sio = pytest.importorskip("skops.io")
    pipe = pipeline(table.assign(decision=table["decision"].map({"approved": "yes",
                                                                 "rejected": "no"})))
    path = tmp_path / "yesno.skops"
    sio.dump(pipe, path)
    with pytest.raises(ModelError, match=r"classes \['no', 'yes'\] do not include.*'approved'"):
        load_classifier(path, encoder)


def test_model_for_other_columns_is_refused(table, encoder, tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    wide = table.assign(zip_code=np.arange(len(table)))
    model = LogisticRegression(max_iter=1000).fit(wide[["age", "income", "zip_code"]],
                                                   wide["decision"])
    path = tmp_path / "wide.skops"
    sio.dump(model, path)
    with pytest.raises(ModelError, match=r"wide.skops: .*fitted on columns \['zip_code'\]"):
        load_classifier(path, encoder)


# ------------------------------------------------------------------- ONNX classifiers
def to_onnx_file(pipe, path, per_column=True, zipmap=True):
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    if per_column:
        types = [("age", Int64TensorType([None, 1])), ("income", FloatTensorType([None, 1])),
                 ("employment", StringTensorType([None, 1])),
                 ("country", StringTensorType([None, 1]))]
    else:
        types = [("X", FloatTensorType([None, pipe.n_features_in_]))]
    options = None if zipmap else {id(pipe): {"zipmap": False}}
    onx = skl2onnx.to_onnx(pipe, initial_types=types, options=options)
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_classifier_matches_pipeline(table, encoder, tmp_path, zipmap):
    pytest.importorskip("onnxruntime")
    pipe = pipeline(table)
    path = to_onnx_file(pipe, tmp_path / "model.onnx", zipmap=zipmap)
    clf = load_classifier(path, encoder)
    assert list(clf.model.classes_) == ["approved", "rejected"] and clf.favourable_index == 0
    expected = pipe.predict_proba(table[FEATURES])[:, 0]
    np.testing.assert_allclose(clf.predict_proba(encoder.transform(table)), expected,
                               rtol=0, atol=1e-4)


def test_onnx_labels_found_without_onnx_package(table, encoder, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pipe = pipeline(table)
    path = to_onnx_file(pipe, tmp_path / "model.onnx", zipmap=False)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails
    clf = load_classifier(path, encoder)
    assert list(clf.model.classes_) == ["approved", "rejected"]
    np.testing.assert_allclose(clf.predict_proba(encoder.transform(table)),
                               pipe.predict_proba(table[FEATURES])[:, 0], atol=1e-4)


def test_onnx_single_tensor_input(tmp_path):
    pytest.importorskip("onnxruntime")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 3, 200)})
    df["y"] = (df["a"] + 0.5 * df["b"] + rng.normal(0, 0.3, 200) > 0.5).astype(int)
    path = tmp_path / "s.yaml"
    path.write_text("target: y\nfeatures:\n  a: {type: numeric}\n"
                    "  b: {type: categorical}\n")
    enc = Encoder(Schema.from_yaml(path)).fit(df)
    model = LogisticRegression().fit(df[["a", "b"]].to_numpy(dtype=np.float32), df["y"])
    onnx_path = to_onnx_file(model, tmp_path / "lr.onnx", per_column=False)
    clf = load_classifier(onnx_path, enc)
    np.testing.assert_allclose(clf.predict_proba(enc.transform(df)),
                               model.predict_proba(df[["a", "b"]].to_numpy())[:, 1], atol=1e-4)


def test_onnx_single_tensor_refuses_text_categories(table, encoder, tmp_path):
    pytest.importorskip("onnxruntime")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.random.default_rng(0).normal(size=(50, 4)),
                                     np.arange(50) % 2)
    path = to_onnx_file(model, tmp_path / "lr.onnx", per_column=False)
    with pytest.raises(ModelError, match=r"features \['employment', 'country'\] have text"):
        load_classifier(path, encoder)


def test_onnx_inputs_must_match_features(table, encoder, tmp_path):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    wide = table.assign(zip_code=np.arange(len(table), dtype=float))
    cols = ["income", "zip_code"]
    pipe = Pipeline([("ct", ColumnTransformer([("n", "passthrough", cols)])),
                     ("m", LogisticRegression(max_iter=1000))]).fit(wide[cols], wide["decision"])
    onx = skl2onnx.to_onnx(pipe, initial_types=[(c, FloatTensorType([None, 1])) for c in cols])
    path = tmp_path / "wide.onnx"
    path.write_bytes(onx.SerializeToString())
    with pytest.raises(ModelError, match=r"model inputs \['zip_code'\] match no feature"):
        load_classifier(path, encoder)


# ------------------------------------------------------------------- files we refuse
def test_bad_model_files(encoder, tmp_path):
    for name in ("model.pkl", "model.joblib", "model"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(ModelError, match="unknown model format") as info:
            load_classifier(tmp_path / name, encoder)
        assert name in str(info.value)
    with pytest.raises(ModelError, match="no such file"):
        load_classifier(tmp_path / "absent.skops", encoder)
    for name in ("garbage.skops", "garbage.onnx"):
        (tmp_path / name).write_bytes(b"not a model at all")
        with pytest.raises(ModelError) as info:
            load_classifier(tmp_path / name, encoder)
        assert str(info.value).startswith(str(tmp_path / name))


def test_example_schema_text_is_valid_yaml_block():
    # the README/issue example: indentation and flow mappings parse as documented
    assert textwrap.dedent(EXAMPLE) == EXAMPLE
