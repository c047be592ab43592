"""`genre info MODEL`: what a saved model is, how its h was chosen and how GenRe trained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from genre.cli.common import console, err, fail
from genre.errors import GenreError
from genre.integrity import read_json, verify_manifest


def info(model: Annotated[Path, typer.Argument(help="a saved GenRe model directory")]) -> None:
    """Show a saved model: its schema, classifier report (for an h genre chose: held-out
    AUC, accuracy, majority-class baseline), GenRe's training summary (epochs, best epoch,
    validation loss and pairs, with the fit's warnings) and its hyper-parameters.

    Reads config.json (checked as `genre recourse` checks it); loads no weights."""
    from genre.core.report import classifier_lines, training_lines
    from genre.core.saving import check_config
    from genre.core.student import sampler_line

    try:
        cfg = model / "config.json"
        if not cfg.is_file():
            raise GenreError(f"{model}: not a GenRe model directory (no config.json)")
        verify_manifest(model, required=False)
        meta = read_json(cfg)
        schema = check_config(meta, cfg)
    except GenreError as exc:
        fail(exc)
    params = meta["params"]
    kinds = [("categorical" if f.is_categorical else "numeric")
             + (", immutable" if f.immutable else "")
             + (f", {f.monotone}s only" if f.monotone else "") for f in schema.features]
    console.print(f"model {escape(str(model))}: schema '{escape(schema.name)}', target "
                  f"'{escape(schema.target)}' (favourable {schema.favourable!r}), "
                  f"{schema.n_features} features")
    for f, kind in zip(schema.features, kinds, strict=True):
        console.print(f"  {escape(f.name)}: {kind}")
    files = {p.name for p in model.iterdir()}
    lines, problems = classifier_lines(meta.get("classifier_report"))
    if not lines:
        own = sorted(n for n in files if n.startswith("classifier."))
        lines = ([f"classifier h: your own ({own[0]})"] if own else
                 ["classifier h: the protocol's MLP (bundled dataset)"] if "h.json" in files
                 else ["classifier h: no report saved (a model fitted by an older genre)"])
    t_lines, t_problems = training_lines(meta["train_log"], params.get("max_epochs"))
    for line in lines + t_lines:
        console.print(escape(line))
    for problem in problems + t_problems:
        err.print(f"[bold yellow]warning:[/] {escape(problem)}", soft_wrap=True,
                  highlight=False)
    console.print("hyper-parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    console.print(escape(sampler_line(params.get("sampler", "autoregressive"),
                                      model / "student.json" if "student.json" in files
                                      else None)))
