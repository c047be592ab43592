"""`genre benchmark`: every registered method on the real compas protocol (quick presets)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import genre.bench.benchmark as bench
from genre.baselines import METHODS
from genre.bench.benchmark import COLUMNS, EXTRA_COLUMNS, benchmark_command, run_benchmark
from genre.core.method import RecourseMethod
from genre.errors import InputError

N = 5


@pytest.fixture(scope="module")
def quick_run(compas, tmp_path_factory):
    """One quick run of every registered method on compas (the protocol fixture caches it)."""
    out = tmp_path_factory.mktemp("bench")
    table = run_benchmark(["compas"], "all", n=N, seed=0, out=out, quick=True, progress=False)
    return table, out


def _app() -> typer.Typer:
    """What the maintainer's cli.py does: `app.command("benchmark")(benchmark_command)`."""
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:  # a group, so the command is invoked as `... benchmark ...`
        pass

    app.command("benchmark")(benchmark_command)
    return app


class Broken(RecourseMethod):
    name = "broken"

    def fit(self, task):
        raise RuntimeError("boom")

    def generate(self, X):  # pragma: no cover - never reached
        return X


def test_every_registered_method_gives_a_valid_row(quick_run):
    table, _ = quick_run
    assert list(table.columns) == list(COLUMNS + EXTRA_COLUMNS)
    assert list(table.method) == bench.resolve_methods("all")
    assert set(table.method) == set(METHODS)
    assert (table.dataset == "compas").all()
    for r in table.itertuples(index=False):
        assert r.error == "", f"{r.method}: {r.error}"
        assert math.isfinite(r.cost) and r.cost >= 0, r.method
        assert 0.0 <= r.val <= 1.0 and 0.0 <= r.val_h <= 1.0 and 0.0 <= r.lof <= 1.0
        assert math.isfinite(r.score) and r.score <= 2.0
        assert 1 <= r.found <= N
        assert r.imm_violations == 0, r.method
        assert r.ms_per_individual > 0 and r.fit_seconds >= 0
        assert 0 < r.changes <= 7, r.method  # compas has 7 features


def test_results_files(quick_run):
    table, out = quick_run
    csv = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(csv.columns[:len(COLUMNS)]) == list(COLUMNS)
    assert list(csv.columns) == list(COLUMNS + EXTRA_COLUMNS)
    assert len(csv) == len(table) and list(csv.method) == list(table.method)
    np.testing.assert_allclose(csv.cost.astype(float), table.cost)

    md = (out / "results.md").read_text()
    assert "```\nrun_benchmark(datasets=['compas'], methods=['all'], n=5" in md
    header = ["Method"] + [f"compas {c}" for c in ("Cost", "Val", "LOF", "Score", "Changes",
                                                   "ms/indiv")]
    assert "| " + " | ".join(header) + " |" in md
    for name in table.method:
        assert f"\n| {name} | " in md
    assert "machine:" in md and "date:" in md

    doc = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert doc["seed"] == 0 and doc["n"] == N and doc["quick"] is True
    assert doc["complete"] is True and "partial" not in md
    assert set(doc["versions"]) == {"genre", "torch", "numpy", "sklearn", "dice-ml"}
    assert doc["versions"]["torch"] and doc["versions"]["numpy"]
    assert {"platform", "cpu_count", "python"} <= set(doc["machine"])
    assert [r["method"] for r in doc["rows"]] == list(table.method)
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_genre_is_cached_and_reproducible(quick_run, tmp_path):
    from genre.utils.cache import cache_dir

    table, _ = quick_run
    assert list((cache_dir() / bench.GENRE_CACHE).glob("compas-seed0-*/config.json"))
    again = run_benchmark(["compas"], ["genre"], n=N, out=tmp_path, quick=True, progress=False)
    row = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    assert row["cached_fit"] is True
    first = table[table.method == "genre"].iloc[0]
    for col in ("cost", "val", "lof", "score"):
        assert again[col].iloc[0] == pytest.approx(first[col])


def test_a_failing_method_does_not_end_the_run(compas, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "broken", Broken)
    table = run_benchmark("compas", "broken,nnr", n=3, out=tmp_path, progress=False)
    assert list(table.method) == ["broken", "nnr"]
    broken, nnr = table.iloc[0], table.iloc[1]
    assert "RuntimeError: boom" in broken.error and math.isnan(broken.cost)
    assert nnr.error == "" and math.isfinite(nnr.cost)
    assert "broken on compas: RuntimeError: boom" in (tmp_path / "results.md").read_text()
    csv = pd.read_csv(tmp_path / "results.csv")
    assert math.isnan(csv.cost[0]) and "boom" in csv.error[0]


def test_an_interrupted_run_leaves_the_cells_it_did(compas, tmp_path, monkeypatch):
    class Interrupted(Broken):
        def fit(self, task):
            raise KeyboardInterrupt

    monkeypatch.setitem(METHODS, "stop", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(["compas"], ["nnr", "stop", "gs"], n=3, out=tmp_path, progress=False)
    assert list(pd.read_csv(tmp_path / "results.csv").method) == ["nnr"]
    assert "**partial**: 1 of 3 cells done" in (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["complete"] is False
    assert not list(tmp_path.glob(".*"))


def test_unknown_names_fail_clearly(tmp_path):
    with pytest.raises(InputError, match="unknown method"):
        run_benchmark(["compas"], ["genre", "nope"], out=tmp_path)
    with pytest.raises(InputError, match="unknown dataset"):
        run_benchmark(["nope"], "all", out=tmp_path)
    for name in ("cchvae", "revise", "cruds"):
        if name not in METHODS:
            with pytest.raises(InputError, match=f"{name} not registered"):
                run_benchmark(["compas"], [name], out=tmp_path)
    assert not (tmp_path / "results.csv").exists()


def test_cli_space_separated_names(monkeypatch, tmp_path):
    """The issue's exact form: names after --datasets/--methods separated by spaces."""
    seen = {}

    def fake(datasets, methods, **kw):
        seen.update(datasets=datasets, methods=methods, **kw)
        return pd.DataFrame([{c: 0.0 for c in COLUMNS} | {"method": "genre", "dataset": d,
                                                           "error": ""} for d in datasets])

    monkeypatch.setattr(bench, "run_benchmark", fake)
    out = tmp_path / "table"
    args = ["benchmark", "--datasets", "adult", "compas", "heloc", "--methods", "all",
            "--n", "200", "--out", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert seen["datasets"] == ["adult", "compas", "heloc"] and seen["methods"] == ["all"]
    assert seen["n"] == 200 and seen["out"] == out and seen["seed"] == 0
    assert not seen["quick"] and not seen["monotone"]
    assert seen["command"] == ("genre benchmark --datasets adult compas heloc --methods all "
                               f"--n 200 --seed 0 --out {out}")

    for args, ds, ms in (
        (["--methods", "genre", "nnr", "--datasets", "compas,moons"], ["compas", "moons"],
         ["genre", "nnr"]),
        (["--datasets", "compas", "--datasets", "adult", "--methods", "gs"],
         ["compas", "adult"], ["gs"]),
        ([], ["adult", "compas", "heloc"], ["all"]),
    ):
        seen.clear()
        result = CliRunner().invoke(_app(), ["benchmark", *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (seen["datasets"], seen["methods"]) == (ds, ms)

    result = CliRunner().invoke(_app(), ["benchmark", "--datasets", "compas", "bogus"])
    assert result.exit_code == 2 and "bogus" in result.output


def test_cli_runs_for_real(compas, tmp_path):
    out = tmp_path / "table"
    result = CliRunner().invoke(_app(), [
        "benchmark", "--datasets", "compas", "--methods", "nnr", "gs", "--n", "3", "--quick",
        "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nnr" in result.stdout and "gs" in result.stdout
    csv = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(csv.method) == ["nnr", "gs"] and (csv.error == "").all()
    md = (out / "results.md").read_text()
    command = md.split("```\n")[1].strip()
    assert command == f"genre benchmark --datasets compas --methods nnr gs --n 3 --seed 0 " \
        f"--out {out} --quick"

    result = CliRunner().invoke(_app(), ["benchmark", "--datasets", "compas", "--methods",
                                         "nope", "--out", str(out)])
    assert result.exit_code == 2 and "unknown method" in result.output


def test_cli_seeds_go_to_the_table(monkeypatch, tmp_path):
    """`--seeds 0 1 2`: the bare numbers are seeds (not lambdas), recorded in the command."""
    seen = {}

    def fake(datasets, methods, **kw):
        seen.update(datasets=datasets, methods=methods, **kw)
        return pd.DataFrame([{c: 0.0 for c in COLUMNS} | {"method": "genre", "dataset": d,
                                                           "seed": s, "error": ""}
                             for d in datasets for s in kw["seeds"]])

    monkeypatch.setattr(bench, "run_benchmark", fake)
    out = tmp_path / "table"
    result = CliRunner().invoke(_app(), ["benchmark", "--datasets", "compas", "--methods",
                                         "genre", "--seeds", "0", "1", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert seen["seeds"] == [0, 1, 2] and seen["datasets"] == ["compas"]
    assert "--seeds 0 1 2" in seen["command"] and "--seed 0" not in seen["command"]
    result = CliRunner().invoke(_app(), ["benchmark", "--seeds", "0", "x", "--out", str(out)])
    assert result.exit_code == 2
    result = CliRunner().invoke(_app(), ["benchmark", "--ablation", "--seeds", "0", "1",
                                         "--out", str(out)])
    assert result.exit_code == 2 and "--seeds" in result.output


def test_three_seed_markdown_is_mean_and_sd():
    rows = []
    for s, (score, cost) in enumerate([(1.8, 0.2), (1.6, 0.4), (1.7, 0.3)]):
        rows.append({"method": "genre", "dataset": "compas", "seed": s, "cost": cost,
                     "val": 1.0, "lof": 1.0, "score": score, "changes": 2.0 + s,
                     "ms_per_individual": 1.0, "error": ""})
        rows.append({"method": "nnr", "dataset": "compas", "seed": s, "cost": 0.1, "val": 0.5,
                     "lof": 1.0, "score": 1.4, "changes": 1.0, "ms_per_individual": 0.1,
                     "error": "" if s else "ValueError: boom"})
    table = pd.DataFrame(rows)
    summary = bench.summarise(table).set_index("method")
    assert summary.loc["genre", "score"] == pytest.approx(1.7)
    assert summary.loc["genre", "score_sd"] == pytest.approx(0.1)
    assert summary.loc["genre", "n_seeds"] == 3 and summary.loc["nnr", "n_seeds"] == 2
    meta = {"datasets": ["compas"], "methods": ["genre", "nnr"], "seed": 0, "seeds": [0, 1, 2],
            "versions": {}, "machine": {"platform": "p", "cpu_count": 2, "python": "3"},
            "command": "genre benchmark --seeds 0 1 2", "date": "d", "n": 200, "quick": False,
            "monotone": False}
    md = bench.markdown(table, meta)
    assert ("| genre | 0.30 ± 0.10 | 1.00 ± 0.00 | 1.00 ± 0.00 | **1.70 ± 0.10** | 3.0 ± 1.0 |"
            in md)
    assert "protocol seeds 0, 1, 2 (mean ± sd over the seeds)" in md
    assert "nnr on compas: ValueError: boom" in md
