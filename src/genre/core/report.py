"""What a fit reports: the classifier h it chose and how GenRe's training went.

The same sentences serve the API (logged on the `genre` logger, problems as GenreWarning),
`genre fit` (printed) and `genre info MODEL` (read back from config.json).
"""

from __future__ import annotations

import logging
import sys
import warnings

from genre.errors import GenreWarning, InputError
from genre.utils.hints import near_match

MIN_VAL_PAIRS = 50  # fewer validation pairs than this: the early-stopping signal is noise
H_NAMES = {"mlp": "the protocol's MLP", "hgb": "HistGradientBoosting"}
log = logging.getLogger("genre.fit")


def classifier_lines(report: dict | None) -> tuple[list[str], list[str]]:
    """(lines, warnings) describing the default h genre chose (usertask.choose_classifier's
    report); ([], []) when the user gave h.

    Parameters
    ----------
    report : dict or None

    Returns
    -------
    (list of str, list of str)
    """
    if not report:
        return [], []
    kind = report.get("kind")
    name = H_NAMES.get(kind, str(kind))
    if report.get("auc") is None:
        return [f"classifier h: {name}, trained on all rows (too few rows of one class to "
                "hold any out: its accuracy is unknown)"], []
    other = "hgb" if kind == "mlp" else "mlp"
    lines = [f"classifier h: {name}, chosen by held-out ROC AUC ({report['auc']:.3f} vs "
             f"{report[f'auc_{other}']:.3f} for {H_NAMES[other]}) on {report['n_holdout']} "
             f"held-out rows, then refitted on all rows; held-out accuracy "
             f"{report['accuracy']:.3f}, majority-class baseline {report['majority']:.3f}"]
    problems = []
    if report["accuracy"] <= report["majority"]:
        problems.append("h is no more accurate than always answering the majority class; "
                        "recourse explains this h, so consider giving your own classifier")
    return lines, problems


def training_lines(train_log: dict | None, max_epochs: int | None = None
                   ) -> tuple[list[str], list[str]]:
    """(lines, warnings) about GenRe's training from its log (TrainLog as a dict): epochs,
    best epoch, validation loss and pairs; warns when the best epoch is the last one (the
    validation loss was still falling: under-trained) or when fewer than MIN_VAL_PAIRS
    validation pairs judged it.

    Parameters
    ----------
    train_log : dict or None
    max_epochs : int or None
        The epoch budget, for the message.

    Returns
    -------
    (list of str, list of str)
    """
    if not train_log:
        return ["GenRe training: no record (model saved without a training log)"], []
    epochs, best = train_log.get("epochs"), train_log.get("best_epoch")
    budget = f"/{max_epochs}" if max_epochs else ""
    lines = [f"GenRe training: {epochs}{budget} epochs in {train_log.get('seconds', 0):.1f} s, "
             f"best validation loss {train_log.get('best_val_loss', float('nan')):.3f} at "
             f"epoch {best}; {train_log.get('n_train_pairs')} training sources, "
             f"{train_log.get('n_val_pairs')} validation pairs"]
    problems = []
    if epochs is not None and best == epochs:
        problems.append(f"GenRe's best epoch is its last ({best}): the validation loss was "
                        "still falling, so it is likely under-trained; give it more epochs "
                        "(e.g. `genre fit --param max_epochs=400`)")
    n_val = train_log.get("n_val_pairs")
    if n_val is not None and n_val < MIN_VAL_PAIRS:
        problems.append(f"only {n_val} validation pairs judged GenRe's training (fewer than "
                        f"{MIN_VAL_PAIRS}): early stopping and the reported loss are noisy; "
                        "more training rows (or a larger val_frac) make them reliable")
    return lines, problems


def announce(lines: list[str], problems: list[str], echo: bool = False) -> None:
    """Log `lines` (INFO on the genre.fit logger) and warn each of `problems`
    (GenreWarning). echo: when no logging is configured (no handler would show INFO),
    print the lines to stderr instead, as the progress bar is.

    Parameters
    ----------
    lines, problems : list of str
    echo : bool
    """
    for line in lines:
        if echo and not log.hasHandlers():
            print(line, file=sys.stderr)
        else:
            log.info(line)
    for problem in problems:
        warnings.warn(problem, GenreWarning, stacklevel=3)


def parse_params(items: list[str] | None, checks: dict, source: str = "--param") -> dict:
    """GenRe hyper-parameters from NAME=VALUE strings (VALUE read as YAML: 400, 0.5, true,
    data), each validated by `checks` (name -> check returning None or what is expected).

    Parameters
    ----------
    items : list of str or None
    checks : dict
        genre.core.params.PARAM_CHECKS (or a subset).
    source : str
        How errors name the option.

    Returns
    -------
    dict
    """
    import yaml

    out = {}
    for item in items or ():
        name, eq, text = str(item).partition("=")
        name = name.strip()
        if not eq or not name:
            raise InputError(f"{source}: expected NAME=VALUE (e.g. max_epochs=400), got "
                             f"{item!r}")
        if name not in checks:
            hint = near_match(name, checks)
            raise InputError(f"{source}: unknown GenRe parameter '{name}'{hint}; known: "
                             f"{', '.join(sorted(checks))}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, int) and not isinstance(value, bool):
            probe = checks[name](value)
            if probe is not None and checks[name](float(value)) is None:
                value = float(value)
        expected = checks[name](value)
        if expected is not None:
            raise InputError(f"{source} {name}: expected {expected}, got {text!r}")
        out[name] = value
    return out


__all__ = ["MIN_VAL_PAIRS", "announce", "classifier_lines", "parse_params", "training_lines"]
