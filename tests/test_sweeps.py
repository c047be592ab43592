"""The experiments beyond the table: lambda sweep, ablations, a distorted h (tiny runs)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

from genre.bench.benchmark import benchmark_command
from genre.bench.methods import genre_cache_key
from genre.bench.sweeps import (
    carriers,
    robustness,
    run_ablation,
    run_lambda_sweep,
    run_miscalibration,
)
from genre.classifiers.mlp import DistortedLogits, distorted, load_mlp, save_mlp
from genre.core.estimator import GenRe
from genre.errors import InputError

N = 5


# ------------------------------------------------------------ a distorted h
def test_scaled_logits_keep_decisions_and_change_confidence(compas):
    X = compas.X_test[:500]
    p = compas.h.predict_proba(X)
    for scale in (0.5, 2.0):
        q = distorted(compas.h, scale=scale).predict_proba(X)
        assert np.array_equal(q > 0.5, p > 0.5)
        logit_p, logit_q = np.log(p / (1 - p)), np.log(q / (1 - q))
        np.testing.assert_allclose(logit_q, scale * logit_p, rtol=1e-3, atol=1e-4)
    under = distorted(compas.h, scale=0.5).predict_proba(X)
    assert np.all(np.abs(under - 0.5) <= np.abs(p - 0.5) + 1e-7)


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_threshold_moves_acceptance_to_p_above_t(compas, threshold):
    X = compas.X_test
    p = compas.h.predict_proba(X)
    q = distorted(compas.h, threshold=threshold).predict_proba(X)
    clear = np.abs(p - threshold) > 1e-4  # float32 rounding right at the threshold
    assert np.array_equal((q > 0.5)[clear], (p > threshold)[clear])
    assert (q > 0.5).mean() == pytest.approx((p > threshold).mean(), abs=1e-3)


def test_distorted_h_is_differentiable_and_round_trips(compas, tmp_path):
    h = distorted(compas.h, scale=2.0, threshold=0.7)
    x = torch.tensor(compas.X_test[:4], dtype=torch.float32, requires_grad=True)
    h.logits(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    save_mlp(h, tmp_path)
    back = load_mlp(tmp_path)
    assert isinstance(back.module, DistortedLogits)
    assert (back.module.scale, back.module.threshold) == (2.0, 0.7)
    np.testing.assert_array_equal(back.predict_proba(compas.X_test),
                                  h.predict_proba(compas.X_test))


@pytest.mark.parametrize("kwargs", [{"scale": 0.0}, {"scale": -1.0}, {"threshold": 0.0},
                                    {"threshold": 1.0}])
def test_distorted_h_refuses_bad_numbers(compas, kwargs):
    with pytest.raises(ValueError):
        distorted(compas.h, **kwargs)


def test_substituted_h_changes_individuals_and_cache_key(compas):
    same = compas.with_classifier(compas.h, "calibrated")
    assert same.h_variant == ""  # the protocol's own h keeps the protocol's models
    scaled = compas.with_classifier(distorted(compas.h, scale=2.0), "logits x2")
    strict = compas.with_classifier(distorted(compas.h, threshold=0.7), "threshold 0.7")
    # Same decisions, same individuals; a stricter h rejects more people.
    np.testing.assert_array_equal(same.rejected_test, scaled.rejected_test)
    assert set(same.rejected_test) < set(strict.rejected_test)
    for vp in (same, scaled, strict):
        assert (vp.h.predict_proba(vp.individuals(50)) < 0.5).all()
    model = GenRe(gamma=0.5)
    # Training sees h only through which rows lie above gamma: scaling at gamma 0.5 keeps the
    # model, moving the threshold does not; at gamma 0.7 scaling changes the pairs too.
    assert genre_cache_key(model, same, False) == genre_cache_key(model, compas, False)
    assert genre_cache_key(model, scaled, False) == genre_cache_key(
        model, compas.with_classifier(distorted(compas.h, scale=0.5), "logits x0.5"), False)
    assert genre_cache_key(model, strict, False) != genre_cache_key(model, scaled, False)
    model7 = GenRe(gamma=0.7)
    assert genre_cache_key(model7, scaled, False) != genre_cache_key(
        model7, compas.with_classifier(distorted(compas.h, scale=0.5), "logits x0.5"), False)


# ------------------------------------------------------------ lambda sweep
@pytest.fixture(scope="module")
def sweep(compas, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    table = run_lambda_sweep(["compas"], [0.5, 10], ["genre", "wachter"], n=N, out=out,
                             quick=True, progress=False, command="genre benchmark --test")
    return table, out


def test_lambda_sweep_rows_and_files(sweep):
    table, out = sweep
    assert len(table) == 4 and (table.error == "").all()
    assert set(zip(table.method, table["lambda"], strict=True)) == {
        ("genre", 0.5), ("genre", 10.0), ("wachter", 0.5), ("wachter", 10.0)}
    assert table.val.between(0, 1).all() and (table.cost >= 0).all()
    md = (out / "results.md").read_text()
    assert md.splitlines()[2:4] == ["```", "genre benchmark --test"]
    assert "| genre |" in md and "Spread over lambda" in md
    assert (out / "lambda_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] and doc["lambdas"] == [0.5, 10.0] and len(doc["rows"]) == 4
    assert pd.read_csv(out / "results.csv").shape[0] == 4


def test_a_larger_cost_weight_buys_cheaper_recourse(sweep):
    table, _ = sweep
    for method in ("genre", "wachter"):
        r = table[table.method == method].set_index("lambda")
        assert r.cost[10.0] < r.cost[0.5], method


def test_robustness_summary_is_the_spread(sweep):
    table, _ = sweep
    rob = robustness(table).set_index("method")
    for method in ("genre", "wachter"):
        scores = table[table.method == method].score
        assert rob.score_spread[method] == pytest.approx(scores.max() - scores.min())


@pytest.mark.parametrize("methods, lambdas", [(["nnr"], [1.0]), (["wachter"], [0.0]),
                                               (["wachter"], ["x"]), (["wachter"], [])])
def test_lambda_sweep_refuses_bad_requests(methods, lambdas, tmp_path):
    with pytest.raises(InputError):
        run_lambda_sweep(["compas"], lambdas, methods, n=N, out=tmp_path, quick=True,
                         progress=False)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------- ablation
def test_ablation_varies_one_choice_at_a_time(compas, tmp_path):
    table = run_ablation(["compas"], n=N, out=tmp_path, quick=True, progress=False,
                         sampling={"best_k": (1, 3)}, training={"k": (20,)})
    assert (table.error == "").all()
    # best_k: 1, 3 and the quick preset's 30 (the reference); k: 20 and the reference 1000.
    assert list(zip(table.factor, table.value, table.reference, strict=True)) == [
        ("best_k", "1", False), ("best_k", "3", False), ("best_k", "30", True),
        ("k", "20", False), ("k", "1000", True)]
    ref = table[table.reference]
    assert ref.score.nunique() == 1  # the reference model, evaluated twice, scores the same
    car = carriers(table).set_index("factor")
    best_k = table[table.factor == "best_k"].score
    assert car.loc["best_k", "range"] == pytest.approx(best_k.max() - best_k.min())
    assert (tmp_path / "ablation.png").exists() and "Which choices carry" in (
        tmp_path / "results.md").read_text()


# ---------------------------------------------------------- miscalibration
def test_miscalibration_runs_each_method_on_each_variant(compas, tmp_path):
    variants = {"calibrated": (1.0, 0.5), "logits x2": (2.0, 0.5), "threshold 0.3": (1.0, 0.3)}
    table = run_miscalibration(["compas"], ["nnr", "wachter"], variants, n=N, out=tmp_path,
                               quick=True, progress=False)
    assert (table.error == "").all() and len(table) == 6
    wachter = table[table.method == "wachter"].set_index("variant")
    assert (wachter.val_h == 1.0).all()  # accepted by the classifier it was given
    # Scaling keeps h's decisions, so the same individuals, and NNR (which uses h's
    # decisions only) gives the same answers; gradient searches see another loss.
    nnr = table[table.method == "nnr"].set_index("variant")
    assert nnr.cost["calibrated"] == pytest.approx(nnr.cost["logits x2"])
    doc = json.loads((tmp_path / "results.json").read_text())
    facts = doc["classifiers"]["compas"]
    assert facts["threshold 0.3"]["accepts"] > facts["calibrated"]["accepts"]
    assert facts["logits x2"]["accepts"] == facts["calibrated"]["accepts"]
    assert facts["threshold 0.3"]["rejected_individuals"] < facts["calibrated"][
        "rejected_individuals"]
    assert (tmp_path / "miscalibration.png").exists()


# ------------------------------------------------------------------- CLI
def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:
        pass

    app.command("benchmark")(benchmark_command)
    return app


def test_cli_sweep_lambda_space_separated(compas, tmp_path):
    out = tmp_path / "sw"
    res = CliRunner().invoke(_app(), [
        "benchmark", "--sweep-lambda", "0.5", "10", "--datasets", "compas", "--methods",
        "wachter", "--n", "3", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    md = (out / "results.md").read_text()
    assert ("genre benchmark --sweep-lambda 0.5 10 --datasets compas --methods wachter --n 3 "
            "--seed 0") in md
    assert sorted(pd.read_csv(out / "results.csv")["lambda"]) == [0.5, 10.0]


@pytest.mark.parametrize("args, message", [
    (["--sweep-lambda", "1", "--ablation"], "choose one experiment"),
    (["--ablation", "--methods", "wachter"], "GenRe only"),
    (["--sweep-lambda", "abc"], "abc"),
    (["--datasets", "compas", "5"], "numbers follow --sweep-lambda"),
    (["--miscalibrated", "--monotone"], "--monotone"),
])
def test_cli_experiment_mistakes_exit_non_zero(args, message, tmp_path):
    out = tmp_path / "never"
    res = CliRunner().invoke(_app(), ["benchmark", *args, "--out", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not out.exists()
