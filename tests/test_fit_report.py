"""A fit that reports: the classifier report is logged by the API, kept on the model and in
config.json, shown by `genre info`; GenRe's training warnings; `genre fit --param`."""

import json
import logging

import pytest
from typer.testing import CliRunner

import genre
from credit_table import user_table
from genre.cli import app
from genre.core.params import PARAM_CHECKS
from genre.core.report import MIN_VAL_PAIRS, parse_params, training_lines
from genre.errors import GenreWarning, InputError

TINY = dict(d_model=16, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=32, batch_size=256,
            k=50, progress=False, best_k=4, sampler="autoregressive")
runner = CliRunner()




def test_api_fit_logs_keeps_and_saves_the_report(tmp_path, caplog):
    df = user_table()
    with caplog.at_level(logging.INFO, logger="genre"), \
            pytest.warns(GenreWarning) as record:
        model = genre.fit(df, genre.Schema.infer(df, target="approved"), h_epochs=3,
                          max_epochs=1, patience=1, **TINY)
    logged = caplog.text
    assert "classifier h:" in logged and "held-out accuracy" in logged
    assert "majority-class baseline" in logged and "GenRe training: 1/1 epochs" in logged
    report = model.classifier_report_
    assert report["kind"] in ("mlp", "hgb") and 0.5 <= report["auc"] <= 1
    warned = " ".join(str(w.message) for w in record)
    # one epoch: the best is the last; 600 rows: far fewer than 50 validation pairs
    assert "best epoch is its last (1)" in warned
    assert f"fewer than {MIN_VAL_PAIRS}" in warned
    saved = model.save(tmp_path / "m")
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["classifier_report"] == report
    again = genre.load(saved)
    assert again.classifier_report_ == report
    assert again.training_summary()["best_epoch"] == 1
    # genre info shows both, with the warnings
    res = runner.invoke(app, ["info", str(saved)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    name = {"mlp": "the protocol's MLP", "hgb": "HistGradientBoosting"}[report["kind"]]
    assert f"classifier h: {name}, chosen by held-out ROC AUC" in text
    assert f"held-out accuracy {report['accuracy']:.3f}" in text
    assert "GenRe training: 1/1 epochs" in text and "best epoch is its last" in text
    assert "max_epochs=1" in text


def test_training_lines_warn_only_when_due():
    ok = {"epochs": 80, "best_epoch": 60, "best_val_loss": 1.0, "seconds": 3.0,
          "n_train_pairs": 900, "n_val_pairs": 100}
    assert training_lines(ok, 200)[1] == []
    assert len(training_lines(ok | {"best_epoch": 80}, 80)[1]) == 1
    assert len(training_lines(ok | {"n_val_pairs": 49}, 80)[1]) == 1


def test_parse_params_validates_against_genre():
    assert parse_params(["max_epochs=400", "best_k=30", "temperature=4", "bin_value=edge",
                         "stay_in_bin=false"], PARAM_CHECKS) == {
        "max_epochs": 400, "best_k": 30, "temperature": 4.0, "bin_value": "edge",
        "stay_in_bin": False}
    for bad, msg in (("max_epoch=4", "did you mean 'max_epochs'"), ("max_epochs", "NAME=VALUE"),
                     ("max_epochs=-1", "expected an integer >= 1"),
                     ("bin_value=middle", "one of"), ("gamma=2", "gamma")):
        with pytest.raises(InputError, match=msg):
            parse_params([bad], PARAM_CHECKS)


def test_cli_fit_param_and_info(tmp_path):
    df = user_table()
    df.to_csv(tmp_path / "d.csv", index=False)
    genre.Schema.infer(df, target="approved").to_yaml(tmp_path / "s.yaml")
    common = ["fit", "--data", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.yaml")]
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "m"), "--param", "max_epochs=3",
                              "--param", "patience=3", "--param", "d_model=16", "--param",
                              "n_heads=2", "--param", "k=50", "--param", "best_k=7",
                              "--sampler", "autoregressive"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["params"]["max_epochs"] == 3 and cfg["params"]["best_k"] == 7
    assert cfg["train_log"]["epochs"] <= 3 and "classifier_report" in cfg
    text = " ".join(res.output.split())
    assert "validation pairs" in text  # and a warning: 600 rows give few validation pairs
    assert "warning: only" in text and f"fewer than {MIN_VAL_PAIRS}" in text
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "m2"), "--param", "max_epoch=4"])
    assert res.exit_code == 2 and "did you mean 'max_epochs'" in res.output
    assert not (tmp_path / "m2").exists()
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "m3"), "--param", "seed=3"])
    assert res.exit_code == 2 and "unknown GenRe parameter 'seed'" in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a GenRe model directory" in res.output


def test_report_is_printed_where_logging_is_not_set_up(monkeypatch, capsys):
    from genre.core import report

    monkeypatch.setattr(report.log, "hasHandlers", lambda: False)
    report.announce(["classifier h: x"], [], echo=True)
    assert capsys.readouterr().err == "classifier h: x\n"
