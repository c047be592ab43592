"""Resumable benchmark cells, digest-keyed caches and epoch-only training (issue 19)."""

import json

import pandas as pd
import pytest

from genre.baselines import METHODS
from genre.baselines.nnr import NearestNeighbourRecourse
from genre.bench import cells
from genre.bench.benchmark import run_benchmark
from genre.core.estimator import GenRe

FITS: list[tuple] = []


class CountingNNR(NearestNeighbourRecourse):
    """NNR that records each fit (dataset, threshold)."""

    name = "counting"

    def fit(self, task):
        FITS.append((task.name, self.threshold))
        return super().fit(task)


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(METHODS, "counting", CountingNNR)
    FITS.clear()
    return FITS


def _run(out, methods=("counting",), **kw):
    return run_benchmark(["compas"], list(methods), n=3, out=out, progress=False, **kw)


def test_a_rerun_skips_done_cells_and_a_changed_parameter_reruns(compas, counting, tmp_path):
    first = _run(tmp_path, seeds=[0])
    assert len(counting) == 1
    path = cells.cell_path(tmp_path, "compas", "counting", 0)
    cell = json.loads(path.read_text())
    assert cell["fingerprint"] == compas.fingerprint == first.fingerprint.iloc[0]
    assert cell["key"]["params"]["threshold"] == 0.5
    assert cell["timing"]["fit_cpu_seconds"] >= 0 and cell["timing"]["generate_seconds"] > 0
    assert {"load_start", "load_end"} <= set(cell["timing"]) and cell["versions"]["torch"]
    assert cell["command"].startswith("run_benchmark(")

    again = _run(tmp_path, seeds=[0])
    assert len(counting) == 1  # skipped: same key, same fingerprint
    assert again.score.iloc[0] == pytest.approx(first.score.iloc[0])
    assert "reused 1" in (tmp_path / "results.md").read_text()

    _run(tmp_path, seeds=[0], params={"counting": {"threshold": 0.6}})
    assert counting == [("compas", 0.5), ("compas", 0.6)]  # another parameter: run again
    assert json.loads(path.read_text())["key"]["params"]["threshold"] == 0.6
    _run(tmp_path, seeds=[0], params={"counting": {"threshold": 0.6}})
    assert len(counting) == 2


def test_a_corrupted_cell_is_recomputed(compas, counting, tmp_path, capsys):
    _run(tmp_path)
    path = cells.cell_path(tmp_path, "compas", "counting", 0)
    for damage in ('{"format": "genre-recourse/bench-cell", "vers', "[1, 2]", ""):
        path.write_text(damage)
        table = _run(tmp_path)
        assert table.error.iloc[0] == "" and len(table) == 1
        assert "is unusable, computing the cell again" in capsys.readouterr().err
        assert cells.read_cell(path) is not None  # written again, whole
    assert len(counting) == 4


def test_a_failed_cell_is_tried_again(compas, counting, tmp_path, monkeypatch):
    monkeypatch.setattr(CountingNNR, "generate", lambda self, X: 1 / 0)
    assert "ZeroDivisionError" in _run(tmp_path).error.iloc[0]
    monkeypatch.undo()
    monkeypatch.setitem(METHODS, "counting", CountingNNR)
    assert _run(tmp_path).error.iloc[0] == ""
    assert len(counting) == 2


def test_results_are_assembled_from_the_cells_of_two_runs(compas, counting, tmp_path):
    _run(tmp_path, methods=["nnr"], seeds=[0])
    table = _run(tmp_path, methods=["counting"], seeds=[0])  # another run, another method
    assert list(table.method) == ["counting", "nnr"]  # this run's methods first
    csv = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert list(csv.method) == ["counting", "nnr"] and set(csv.seed) == {0}
    assert (csv.fingerprint == compas.fingerprint).all()
    md = (tmp_path / "results.md").read_text()
    assert "\n| counting | " in md and "\n| nnr | " in md
    doc = json.loads((tmp_path / "results.json").read_text())
    assert {r["method"] for r in doc["rows"]} == {"counting", "nnr"}
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [
        "compas-seed0-counting.json", "compas-seed0-nnr.json"]


def test_code_digest_follows_imports(tmp_path, monkeypatch):
    import genre.utils.cache as cache

    assert len(cache.code_digest("genre.bench.protocol")) == 64
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import numpy\n\ndef f():\n    from genre.fake_b import g\n")
    b.write_text("X = 1\n")
    files = {"genre.fake_a": a, "genre.fake_b": b}
    monkeypatch.setattr(cache, "_module_file", files.get)
    first = cache.code_digest.__wrapped__("genre.fake_a")
    b.write_text("X = 2\n")  # a module imported inside a function changed
    assert cache.code_digest.__wrapped__("genre.fake_a") != first
    # exclude: a left-out module neither counts nor is followed
    c = tmp_path / "c.py"
    b.write_text("from genre.fake_c import y\n")
    c.write_text("y = 1\n")
    files["genre.fake_c"] = c
    kept = cache.code_digest.__wrapped__("genre.fake_a", exclude=("genre.fake_b",))
    full = cache.code_digest.__wrapped__("genre.fake_a")
    c.write_text("y = 2\n")
    b.write_text("from genre.fake_c import y  # changed\n")
    assert cache.code_digest.__wrapped__("genre.fake_a", exclude=("genre.fake_b",)) == kept
    assert cache.code_digest.__wrapped__("genre.fake_a") != full


def test_genre_cache_key_ignores_only_the_student_code():
    """A GenRe entry's key covers the estimator's closure minus the student's modules
    (the student's entry is keyed by them): editing the student does not refit teachers."""
    import genre.utils.cache as cache
    from genre.bench.methods import STUDENT_CODE

    full = cache._closure_names("genre.core.estimator")
    kept = cache._closure_names("genre.core.estimator", exclude=STUDENT_CODE)
    assert {"genre.core.student", "genre.core.student_net",
            "genre.core.student_sampling"} <= full - kept
    assert {m for m in full - kept if not m.startswith("genre.core.student")} == set()
    assert {"genre.core.training", "genre.core.network", "genre.core.tuning",
            "genre.core.sampling", "genre.core.saving", "genre.data.encoder"} <= kept


def test_max_seconds_is_off_by_default_and_recorded_when_it_fires(compas, tmp_path):
    from genre.core.presets import FAST, PRESETS

    assert GenRe().max_seconds is None
    assert all("max_seconds" not in p for p in (*PRESETS.values(), FAST))
    tiny = dict(d_model=8, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=16, max_epochs=3,
                patience=3, batch_size=512, k=20, progress=False, sampler="autoregressive")
    model = GenRe(**tiny).fit(compas.task())
    assert model.log_.stopped_by == "max_epochs" and model.log_.epochs == 3
    model.save(tmp_path / "none")
    assert json.loads((tmp_path / "none" / "config.json").read_text())["params"][
        "max_seconds"] is None
    assert GenRe.load(tmp_path / "none").max_seconds is None

    capped = GenRe(**tiny, max_seconds=0.0).fit(compas.task())
    assert capped.log_.stopped_by == "max_seconds" and capped.log_.epochs == 1
    capped.save(tmp_path / "capped")
    config = json.loads((tmp_path / "capped" / "config.json").read_text())
    assert config["train_log"]["stopped_by"] == "max_seconds"
    assert GenRe.load(tmp_path / "capped").train_log_["stopped_by"] == "max_seconds"


def test_tuned_rows_choose_on_validation_individuals(compas, tmp_path, monkeypatch):
    from genre.bench import methods
    from genre.bench.protocol import Protocol

    asked = []
    original = Protocol.validation_individuals

    def spy(self, n=200):
        asked.append(n)
        return original(self, n)

    monkeypatch.setattr(Protocol, "validation_individuals", spy)
    fits, fit = [], GenRe.fit
    monkeypatch.setattr(GenRe, "fit", lambda self, task: fits.append(task.name) or fit(self, task))
    assert "wachter-tuned" in methods.resolve_methods("tuned")
    table = run_benchmark(["compas"], ["genre", "genre-tuned", "wachter-tuned"], n=3,
                          out=tmp_path, quick=True, progress=False)
    assert list(table.method) == ["genre", "genre-tuned", "wachter-tuned"]
    assert (table.error == "").all(), table.error.tolist()
    assert asked == [3, 3]  # one validation draw per tuned row, none for the default
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    for name, param in (("genre-tuned", "temperature"), ("wachter-tuned", "lambda_")):
        cell = json.loads(cells.cell_path(tmp_path, "compas", name, 0).read_text())
        grid = cell["tuning"]["grid"]
        assert len(grid) == 8 and cell["tuning"]["n_validation"] == 3
        best = max(grid, key=lambda g: g["score"])
        assert cell["tuning"]["choice"] == best["setting"] == rows[name]["setting"]
        assert param in rows[name]["setting"]
        assert cell["key"]["grid"] == [g["setting"] for g in grid]
    genre = json.loads(cells.cell_path(tmp_path, "compas", "genre", 0).read_text())
    assert genre["tuning"]["criterion"].startswith("h-validity")  # GenRe's own, no gold
    assert rows["genre"]["setting"] == {k: genre["tuning"][k] for k in ("temperature",
                                                                         "best_k")}
    assert len(fits) <= 1  # genre-tuned reuses the default row's fit (0: from the cache)
    md = (tmp_path / "results.md").read_text()
    assert "chosen on validation individuals" in md and "tune=\"auto\"" in md
