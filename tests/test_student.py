"""The one-pass student sampler (genre.core.student): constraints by construction on every bundled
dataset and on random schemas, max_changes, selection, save/load and its integrity checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from genre.bench.metrics import Violations, violations
from genre.core.estimator import GenRe
from genre.core.student import StudentConfig, cap_changes
from genre.core.task import RecourseTask
from genre.data import Encoder
from genre.data.datasets import DATASETS, load
from genre.errors import InputError, ModelError
from test_constraints import SLOW, LinearClassifier, _task, assert_respects_schema, problems

# sampler="autoregressive": fit trains the teacher alone; the tests distil TINY_STUDENT.
TINY_GENRE = dict(d_model=8, n_heads=1, n_enc_layers=1, n_dec_layers=1, d_ff=8, k=50,
                  max_epochs=1, patience=1, progress=False, best_k=6, sampler="autoregressive")
TINY_STUDENT = StudentConfig(n_components=3, hidden=16, n_layers=1, rows=300,
                             samples_per_row=4, epochs=2, patience=2, batch_rows=64)


def _bundled_task(name: str, max_changes: int | None = None) -> RecourseTask:
    """The bundled dataset with its monotone facts enforced, 400 training rows, a random
    linear h (cheap and deterministic)."""
    data = load(name)
    schema = replace(data.schema, max_changes=max_changes)
    enc = Encoder(schema).fit(data.train)
    rows = data.train.sample(n=min(400, len(data.train)), random_state=0)
    X = enc.transform(rows)
    y = data.labels(rows)
    rng = np.random.default_rng(0)
    h = LinearClassifier(rng.standard_normal(X.shape[1]), 0.0)
    task = RecourseTask(enc, X, y, h, name=name)
    p = h.predict_proba(X)
    task.gamma = float(np.quantile(p[y == 1], 0.3))
    return task


def _fitted(task: RecourseTask, gamma: float, **params) -> GenRe:
    model = GenRe(gamma=gamma, **(TINY_GENRE | params)).fit(task)
    return model.distill(task.X_train, TINY_STUDENT)


def _check_samples(model: GenRe, X: np.ndarray) -> np.ndarray:
    """Student samples and answers for X: schema-valid, project() leaves them unchanged."""
    enc = model.encoder_
    model.set_params(sampler="student")
    cands = model.sample(X, 8, seed=1)
    flat = cands.reshape(-1, X.shape[1])
    Xr = np.repeat(X, 8, axis=0)
    assert_respects_schema(enc, Xr, flat)
    assert violations(enc, Xr, flat) == Violations(0, 0, 0, 0)
    np.testing.assert_allclose(enc.project(flat, factual=Xr), flat, atol=1e-12)
    answers = model.generate(X)
    assert violations(enc, X, answers) == Violations(0, 0, 0, 0)
    return cands


@pytest.mark.parametrize("name", DATASETS)
def test_student_samples_respect_every_bundled_schema(name):
    task = _bundled_task(name)
    model = _fitted(task, task.gamma)
    X = task.encoder.transform(load(name).X_test.iloc[:60])
    _check_samples(model, X)


def test_student_max_changes_holds_by_construction():
    task = _bundled_task("compas", max_changes=1)
    model = _fitted(task, task.gamma)
    X = task.encoder.transform(load("compas").X_test.iloc[:60])
    cands = _check_samples(model, X)
    assert (Encoder.n_changes(X[:, None, :], cands) <= 1).all()


@pytest.mark.filterwarnings("ignore:n_neighbors")
@given(problem=problems(), data=st.data())
@settings(SLOW, max_examples=8)
def test_student_respects_random_schemas(problem, data):
    cap = data.draw(st.sampled_from([None, None, 1, 2]), label="max_changes")
    problem = replace(problem, schema=replace(problem.schema, max_changes=cap))
    task, gamma = _task(problem)
    params = dict(n_bins=data.draw(st.sampled_from([2, 7, 50]), label="n_bins"),
                  bin_value=data.draw(st.sampled_from(["data", "edge"]), label="bin_value"),
                  stay_in_bin=data.draw(st.booleans(), label="stay_in_bin"),
                  seed=problem.seed % 1000)
    try:
        model = _fitted(task, gamma, **params)
    except InputError as exc:  # immutables/monotone leave no source a feasible target
        assert "feasible favourable target" in str(exc)
        assume(False)
    X = task.encoder.transform(problem.queries, source="queries")
    cands = _check_samples(model, X)
    if cap is not None:
        assert (Encoder.n_changes(X[:, None, :], cands) <= cap).all()


def test_cap_keeps_the_most_confident_changes():
    x = torch.zeros(1, 2, 4, dtype=torch.float64)
    value = torch.tensor([[[0.1, 0.2, 0.3, 0.0], [0.0, 0.5, 0.0, 0.0]]], dtype=torch.float64)
    p_stay = torch.tensor([[[0.5, 0.1, 0.9, 0.0], [0.2, 0.3, 0.2, 0.2]]])
    out = cap_changes(value, x, p_stay, 2)
    # Row 0 changes 3 features: the two with the lowest stay probability stay changed.
    assert out[0, 0].tolist() == [0.1, 0.2, 0.0, 0.0]
    assert out[0, 1].tolist() == [0.0, 0.5, 0.0, 0.0]  # within the cap: untouched
    assert (cap_changes(value, x, p_stay, 0) == 0).all()


@pytest.fixture(scope="module")
def tiny_student(make_mixed_task):
    task = make_mixed_task("increase")
    return task, GenRe(gamma=0.5, **TINY_GENRE).fit(task).distill(task.X_train, TINY_STUDENT)


def test_sampler_is_chosen_per_call_and_refused_without_student(tiny_student, make_mixed_task):
    task, model = tiny_student
    X = task.X_train[:20]
    teacher = model.sample(X, 4, seed=0)
    with model.sampling_with("student"):
        student = model.sample(X, 4, seed=0)
    assert model.sampler == "autoregressive"
    assert not np.array_equal(teacher, student)
    people = task.encoder.inverse_transform(X)
    a = model.recourse(people, sampler="student", seed=3)
    b = model.set_params(sampler="student").recourse(people, seed=3)
    model.set_params(sampler="autoregressive")
    assert a.equals(b)
    bare = GenRe(gamma=0.5, **TINY_GENRE).fit(task)
    with pytest.raises(ModelError, match="no student sampler"):
        bare.set_params(sampler="student")
    with pytest.raises(ValueError, match="sampler must be one of"):
        GenRe().set_params(sampler="fast")


def test_the_student_is_the_default_sampler():
    assert GenRe().sampler == "student"
    assert GenRe().get_params()["sampler"] == "student"


def test_a_model_saved_before_the_sampler_parameter_loads_autoregressive(tiny_student,
                                                                         tmp_path):
    """config.json params without "sampler" (saved by a genre before the parameter existed):
    the model has no student and samples autoregressively, not with today's default."""
    from genre.integrity import write_manifest

    task, model = tiny_student
    saved = model.save(tmp_path / "old")
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["params"].pop("sampler") == "autoregressive"
    (saved / "config.json").write_text(json.dumps(cfg))
    files = [f for f in json.loads((saved / "manifest.json").read_text())["files"]
             if not f.startswith("student")]
    for name in ("student.json", "student.safetensors"):
        (saved / name).unlink()
    write_manifest(saved, files)  # re-sealed, as an older genre wrote it
    loaded = GenRe.load(saved)
    assert loaded.sampler == "autoregressive" and getattr(loaded, "student_", None) is None
    X = task.X_train[:10]
    np.testing.assert_array_equal(loaded.generate(X, seed=4), model.generate(X, seed=4))
    people = task.encoder.inverse_transform(X)
    assert len(loaded.recourse(people, seed=4)) == len(people)
    # The committed byte-identical fixture (tests/fixtures/house) is such a model.
    house = Path(__file__).parent / "fixtures" / "house" / "model"
    assert "sampler" not in json.loads((house / "config.json").read_text())["params"]
    assert GenRe.load(house).sampler == "autoregressive"


def test_student_saved_loaded_and_checked(tiny_student, tmp_path):
    task, model = tiny_student
    X = task.X_train[:30]
    model.set_params(sampler="student")
    try:
        saved = model.save(tmp_path / "m")
    finally:
        model.set_params(sampler="autoregressive")
    manifest = json.loads((saved / "manifest.json").read_text())
    assert {"student.json", "student.safetensors"} <= set(manifest["files"])
    loaded = GenRe.load(saved)
    assert loaded.sampler == "student"
    with model.sampling_with("student"):
        np.testing.assert_array_equal(loaded.sample(X, 5, seed=2), model.sample(X, 5, seed=2))
    # A student whose sizes disagree with its config is refused before any allocation.
    cfg = json.loads((saved / "student.json").read_text())
    cfg["config"]["hidden"] = 17
    (saved / "student.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="changed after it was saved"):
        GenRe.load(saved)
    from genre.integrity import write_manifest

    write_manifest(saved, manifest["files"])  # re-sealed: now the header check catches it
    with pytest.raises(ModelError, match="student.safetensors: tensor"):
        GenRe.load(saved)
    files = [f for f in manifest["files"] if not f.startswith("student")]
    write_manifest(saved, files)  # the student left out, but config.json asks for it
    with pytest.raises(ModelError, match="holds no student.json"):
        GenRe.load(saved)


def test_benchmark_student_shares_the_genre_cache(compas, private_cache):
    from genre.bench import methods as bench
    from genre.bench.student import fit_student_cached, student_config

    teacher, cached, _ = bench.fit_genre_cached(bench.make("genre", "compas", 0, True), compas)
    assert not cached
    config = student_config(None, 0, quick=True)
    model, cached, _ = fit_student_cached(teacher, compas, config=config)
    assert not cached and model is teacher and model.sampler == "autoregressive"
    # The genre-student cell asks for the same teacher: the sampler is not part of the key.
    again = bench.make("genre", "compas", 0, True).set_params(sampler="student")
    again, cached, _ = bench.fit_genre_cached(again, compas)
    assert cached and getattr(again, "student_", None) is None
    loaded, cached, _ = fit_student_cached(again, compas, config=config)
    assert cached and loaded.student_ is not None
    X = compas.individuals(20)
    with loaded.sampling_with("student"), model.sampling_with("student"):
        np.testing.assert_array_equal(loaded.generate(X, seed=1), model.generate(X, seed=1))


def test_cli_recourse_with_the_student_sampler(tiny_student, make_mixed_task, tmp_path):
    from typer.testing import CliRunner

    from genre.cli import app

    runner = CliRunner()
    task, model = tiny_student
    with_student = model.save(tmp_path / "with")
    without = GenRe(gamma=0.5, **TINY_GENRE).fit(task).save(tmp_path / "without")
    people = task.encoder.inverse_transform(task.X_train[:8])
    src = tmp_path / "people.csv"
    people.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    args = ["recourse", "--input", str(src), "--output", str(out)]
    r = runner.invoke(app, [*args, "--model", str(with_student), "--sampler", "student"])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(out)
    expected = model.recourse(people, sampler="student")
    np.testing.assert_allclose(got["x1"], expected["x1"], rtol=1e-12)
    out.unlink()
    r = runner.invoke(app, [*args, "--model", str(without), "--sampler", "student"])
    assert r.exit_code == 2 and "no student sampler" in r.output and not out.exists()
    r = runner.invoke(app, [*args, "--model", str(with_student), "--sampler", "fast"])
    assert r.exit_code == 2 and "sampler must be one of" in r.output and not out.exists()


def test_cli_evaluate_genre_is_the_autoregressive_sampler(compas, tmp_path, monkeypatch):
    """`genre evaluate --method genre --model M` evaluates the paper's sampler even when M
    answers with its student; --method genre-student the student (refused without one);
    --method genre without --model fits GenRe with the autoregressive sampler."""
    from typer.testing import CliRunner

    import genre.core.presets
    from genre.bench.evaluation import run_method
    from genre.cli import app

    task = compas.task()
    model = GenRe(gamma=0.5, **TINY_GENRE).fit(task)
    bare = model.save(tmp_path / "bare")
    saved = model.distill(task.X_train, TINY_STUDENT).set_params(sampler="student").save(
        tmp_path / "m")
    runner = CliRunner()
    args = ["evaluate", "--dataset", "compas", "--n", "20"]
    figures = {}
    for method, sampler in (("genre", "autoregressive"), ("genre-student", "student")):
        out = tmp_path / f"{method}.json"
        r = runner.invoke(app, [*args, "--method", method, "--model", str(saved), "--json",
                                str(out)])
        assert r.exit_code == 0, r.output
        figures[method] = json.loads(out.read_text())
        with GenRe.load(saved).sampling_with(sampler) as loaded:
            want, _, _ = run_method(loaded, compas, 20, fitted=True)
        for key in ("cost", "val", "lof", "score"):
            assert figures[method][key] == pytest.approx(getattr(want, key), rel=1e-12)
    assert figures["genre"]["cost"] != figures["genre-student"]["cost"]
    r = runner.invoke(app, [*args, "--method", "genre-student", "--model", str(bare)])
    assert r.exit_code == 2 and "no student sampler" in r.output
    asked = {}

    def tiny_for(dataset, fast=False, **params):  # the fit, made tiny; what was asked kept
        asked.update(params)
        return GenRe(gamma=0.5, **(TINY_GENRE | {"sampler": params["sampler"]}))

    monkeypatch.setattr(genre.core.presets, "genre_for", tiny_for)
    r = runner.invoke(app, [*args, "--method", "genre"])
    assert r.exit_code == 0, r.output
    assert asked["sampler"] == "autoregressive"


def test_cli_fit_distils_the_student_by_default(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import genre.core.estimator as estimator
    from genre.cli import app

    # The default StudentConfig distils for minutes: the tiny one, with the model's seed.
    monkeypatch.setattr(estimator, "StudentConfig", lambda seed: replace(TINY_STUDENT,
                                                                         seed=seed))
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"a": rng.random(n), "b": rng.integers(0, 5, n),
                       "c": rng.choice(["u", "v"], n)})
    df["y"] = (df.a + 0.1 * df.b + 0.1 * rng.standard_normal(n) > 0.8).astype(int)
    data, schema = tmp_path / "d.csv", tmp_path / "s.yaml"
    df.to_csv(data, index=False)
    schema.write_text("target: y\nfeatures:\n  a: {type: numeric}\n"
                      "  b: {type: numeric, integer: true, monotone: increase}\n"
                      "  c: {type: categorical, immutable: true}\n")
    out = tmp_path / "m"
    # No --sampler: the student is the default.
    r = CliRunner().invoke(app, ["fit", "--data", str(data), "--schema", str(schema), "--out",
                                 str(out), "--fast"])
    assert r.exit_code == 0, r.output
    assert "student sampler:" in r.output
    assert json.loads((out / "config.json").read_text())["params"]["sampler"] == "student"
    model = GenRe.load(out)
    X = model.encoder_.transform(df.drop(columns="y").head(20))
    Xp = model.generate(X)
    assert violations(model.encoder_, X, Xp) == Violations(0, 0, 0, 0)
    bad = CliRunner().invoke(app, ["fit", "--data", str(data), "--schema", str(schema),
                                   "--out", str(tmp_path / "m2"), "--sampler", "fast"])
    assert bad.exit_code == 2 and "sampler must be one of" in bad.output
    assert not (tmp_path / "m2").exists()
    # --sampler autoregressive: the paper's sampler, no student distilled or saved.
    plain = tmp_path / "m3"
    r = CliRunner().invoke(app, ["fit", "--data", str(data), "--schema", str(schema), "--out",
                                 str(plain), "--fast", "--param", "max_epochs=2",
                                 "--sampler", "autoregressive"])
    assert r.exit_code == 0, r.output
    assert "student sampler:" not in r.output and not (plain / "student.json").exists()
    assert json.loads((plain / "config.json").read_text())["params"]["sampler"] == (
        "autoregressive")
    assert GenRe.load(plain).sampler == "autoregressive"


def test_distillation_length_is_set_by_epochs_and_uses_the_tuned_temperature():
    """No wall-clock cap by default; a cap the user sets is recorded when it fires; the
    teacher's samples are drawn at the temperature tune="auto" chose."""
    assert StudentConfig().max_seconds is None
    assert StudentConfig.from_dict(StudentConfig().to_dict()).max_seconds is None
    task = _bundled_task("compas")
    model = GenRe(gamma=task.gamma, **TINY_GENRE).fit(task)
    model.tuning_ = model.tuning_ | {"temperature": 7.5}  # a choice no parameter holds
    log = model.distill(task.X_train, TINY_STUDENT).student_.log
    assert log["epochs"] == TINY_STUDENT.epochs and log["stopped_by"] == "epochs"
    assert log["teacher_temperature"] == 7.5
    capped = replace(TINY_STUDENT, epochs=50, patience=50, max_seconds=0.0)
    log = model.distill(task.X_train, capped).student_.log
    assert log["epochs"] == 1 and log["stopped_by"] == "max_seconds"
    model.set_params(tune=None)
    assert model.distill(task.X_train, TINY_STUDENT).student_.log["teacher_temperature"] == (
        model.temperature)


def test_genre_student_row_in_the_table(compas, private_cache, tmp_path):
    """The genre-student cell: the "genre" row's cached teacher and its student; the cell key
    holds the teacher's parameters and the student's config (another config: run again)."""
    from genre.bench import cells
    from genre.bench.benchmark import run_benchmark
    from genre.bench.student import QUICK_STUDENT

    def run(params=None):
        return run_benchmark(["compas"], ["genre", "genre-student"], n=5, out=tmp_path,
                             quick=True, progress=False, params=params, seeds=[0])

    table = run()
    assert list(table.method) == ["genre", "genre-student"]
    assert (table.error == "").all() and table.score.notna().all()
    path = cells.cell_path(tmp_path, "compas", "genre-student", 0)
    cell = json.loads(path.read_text())
    key = cell["key"]["params"]
    assert key["student"]["epochs"] == QUICK_STUDENT["epochs"] and key["student"]["seed"] == 0
    genre_key = json.loads(cells.cell_path(tmp_path, "compas", "genre", 0).read_text())["key"]
    assert key["teacher"] == genre_key["params"]  # the same teacher as the genre row
    assert cell["row"]["cached_fit"] is False and cell["tuning"] is not None
    before = path.stat().st_mtime_ns
    run()  # the same key: skipped
    assert path.stat().st_mtime_ns == before
    run({"genre-student": {"n_components": 2}})
    assert json.loads(path.read_text())["key"]["params"]["student"]["n_components"] == 2


def test_student_obeys_per_call_constraints_and_per_record_streams():
    """freeze/ranges mask the student's bins as the teacher's; a record's samples depend
    only on its values and the seed (its stream), not on its row or the batch."""
    from genre.core import sampling
    from genre.core.seeding import row_keys
    from genre.tables.constraints import Constraints

    task = _bundled_task("compas")
    model = _fitted(task, task.gamma).set_params(sampler="student")
    enc = model.encoder_
    X = task.encoder.transform(load("compas").X_test.iloc[:40])
    c = Constraints.make(freeze=["priors_count"], ranges={"length_of_stay": (None, 30)})
    keys = row_keys(X, 3)
    a = sampling.sample(model, X, 6, None, keys=keys, constraints=c)
    names = enc.schema_.names
    Xr = np.repeat(X, 6, axis=0)
    flat = a.reshape(-1, X.shape[1])
    j = names.index("priors_count")
    np.testing.assert_array_equal(flat[:, j], Xr[:, j])
    k = names.index("length_of_stay")
    moved = np.abs(flat[:, k] - Xr[:, k]) > 1e-9
    hi = (30 - enc.lo_[k]) / (enc.hi_[k] - enc.lo_[k])
    assert (flat[moved, k] <= hi + 1e-9).all()
    assert violations(enc, Xr, flat) == Violations(0, 0, 0, 0)
    b = sampling.sample(model, X[::-1], 6, None, keys=keys[::-1], constraints=c)
    np.testing.assert_array_equal(a, b[::-1])  # row order does not matter
    head = sampling.sample(model, X, 3, None, keys=keys, constraints=c)
    tail = sampling.sample(model, X, 3, None, keys=keys, offset=3, constraints=c)
    np.testing.assert_array_equal(np.concatenate([head, tail], axis=1), a)


def test_genre_info_reports_the_sampler(tiny_student, tmp_path):
    from typer.testing import CliRunner

    from genre.cli import app

    _, model = tiny_student
    saved = model.save(tmp_path / "m")
    result = CliRunner().invoke(app, ["info", str(saved)])
    assert result.exit_code == 0, result.output
    assert f"sampler: {model.sampler}; student distilled: " in result.output
    assert "stopped by epochs" in result.output


def test_student_sharpness_is_tuned_saved_and_applied(make_mixed_task, tmp_path):
    """tune="auto": after distillation the student's sharpness is chosen on held-out rows
    by the teacher's criterion (the grid's best, (1, 1) first among equals), saved in
    student.json, reported by `genre info`, and changes the samples; config.tune=False or
    tune=None leaves the learnt distribution; a bad saved record is refused."""
    from genre.core.student import MIX_TEMPERATURES, SCALES, sampler_line

    task = make_mixed_task("increase")
    model = GenRe(gamma=0.5, **TINY_GENRE).fit(task).distill(task.X_train, TINY_STUDENT)
    tuning = model.student_.tuning
    assert tuning is not None and len(tuning["grid"]) == len(SCALES) * len(MIX_TEMPERATURES)
    best = max(tuning["grid"], key=lambda r: r["score"])
    assert (tuning["scale"], tuning["mix_temperature"]) == (best["scale"],
                                                           best["mix_temperature"])
    assert tuning["grid"][0]["scale"] == 1.0 and tuning["grid"][0]["mix_temperature"] == 1.0
    assert tuning["best_k"] == model.best_k or model.tuning_ is not None
    X = task.X_train[:25]
    with model.sampling_with("student"):
        with model.student_.trying(1.0, 1.0):
            plain = model.sample(X, 8, seed=1)
        with model.student_.trying(0.5, 0.25):
            sharp = model.sample(X, 8, seed=1)
        assert not np.array_equal(plain, sharp)
        saved = model.save(tmp_path / "m")
        np.testing.assert_array_equal(GenRe.load(saved).sample(X, 8, seed=1),
                                      model.sample(X, 8, seed=1))
    meta = json.loads((saved / "student.json").read_text())
    assert meta["tuning"]["scale"] == tuning["scale"]
    assert "sharpness tuned" in sampler_line("student", saved / "student.json")
    from genre.integrity import write_manifest

    files = json.loads((saved / "manifest.json").read_text())["files"]
    meta["tuning"]["scale"] = -1
    (saved / "student.json").write_text(json.dumps(meta))
    write_manifest(saved, files)
    with pytest.raises(ModelError, match="scale and mix_temperature"):
        GenRe.load(saved)
    off = model.distill(task.X_train, replace(TINY_STUDENT, tune=False)).student_
    assert off.tuning is None and off.sharpness() == (1.0, 1.0)
    model.set_params(tune=None)
    assert model.distill(task.X_train, TINY_STUDENT).student_.tuning is None


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("shape", [(7, 50, 8, 64, 2), (23, 50, 16, 128, 3), (2, 10, 3, 16, 1)])
def test_student_net_starts_as_randn_times_a_fiftieth(seed, shape):
    """The embedding is written empty().normal_().mul_(0.02) (so that building the net on
    the meta device imports no torch._dynamo): the values and the random stream after them
    are those of `torch.randn(...) * 0.02`, the form students were distilled with before."""
    from torch import nn

    from genre.core.student_net import StudentNet

    D, bins, _, hidden, _ = shape
    torch.manual_seed(seed)
    net = StudentNet(*shape)
    after = torch.rand(3)
    torch.manual_seed(seed)
    nn.Linear(D, hidden)  # the layer built before the embedding
    want = torch.randn(D * bins, hidden) * 0.02
    assert torch.equal(net.bin_embed.detach().view(torch.int32), want.view(torch.int32))
    assert torch.equal(net.offsets, torch.arange(D) * bins)
    for _ in range(shape[4] - 1):
        nn.Linear(hidden, hidden)
    nn.Linear(hidden, shape[2])
    nn.Linear(hidden, shape[2] * D * 3)
    assert torch.equal(torch.rand(3), after)
