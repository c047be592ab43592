"""Saving and loading GenRe: config.json (hyper-parameters, network sizes, schema, encoder
bounds, training record), model.safetensors (weights, bin values, the plausibility reference),
the classifier h, and manifest.json with every file's size and sha256. No pickle: loading
reads JSON and tensors only, after checking the manifest, the config and the tensor shapes.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from genre.classifiers.mlp import (
    is_saveable_sklearn,
    load_mlp,
    load_sklearn_h,
    save_mlp,
    save_sklearn,
)
from genre.classifiers.original_units import load_classifier
from genre.classifiers.trees import TreeEnsemble, is_hgb_classifier, load_trees, save_trees
from genre.classifiers.trees import export as export_trees
from genre.core.network import RecourseTransformer, TransformerConfig
from genre.core.params import PARAM_CHECKS, check_is_fitted
from genre.core.params import integer as _integer
from genre.core.params import number as _number
from genre.core.student import STUDENT_JSON, load_student, save_student
from genre.core.task import Classifier, TorchClassifier
from genre.core.tuning import check_tuning
from genre.data.encoder import Encoder
from genre.data.schema import Schema
from genre.errors import GenreError, GenreWarning, ModelError
from genre.integrity import (
    MANIFEST,
    load_tensors,
    module_shapes,
    read_json,
    regular_file,
    verify_manifest,
    write_manifest,
)
from genre.utils.limits import FLOAT32_MAX, INTEGER_MAX

FORMAT_VERSION = 1
BIN_VALUES = "genre.bin_values"  # extra tensors stored beside the transformer's weights
REFERENCE = "genre.reference"
# Params a model saved by an older genre lacks (GenRe's default applies when loading,
# except those in SAVED_BEFORE: their value before the parameter existed).
OPTIONAL_PARAMS = {"device", "select", "tune", "sampler"}
# A model saved before `sampler` existed has no student: it samples autoregressively, not
# with today's default sampler (the student).
SAVED_BEFORE = {"sampler": "autoregressive"}
TRANSFORMER_CHECKS = {"n_features": _integer(1, 100_000)} | {
    k: PARAM_CHECKS[k] for k in ("n_bins", "d_model", "n_heads", "n_enc_layers",
                                 "n_dec_layers", "d_ff", "dropout")}
CONFIG_KEYS = {"format", "version", "params", "transformer", "schema", "encoder", "train_log",
               "tuning", "classifier_report"}
# absent in models saved by an older genre (before tuning, before the classifier report)
OPTIONAL_CONFIG_KEYS = {"tuning", "classifier_report"}


def save_model(est, directory: str | Path) -> Path:
    """Write a fitted GenRe `est` to `directory` (see the module docstring).

    Parameters
    ----------
    est : GenRe
        Fitted.
    directory : str or Path
        Created when missing.

    Returns
    -------
    Path
        The directory.
    """
    check_is_fitted(est)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    source = getattr(est, "classifier_path_", None)
    if isinstance(est.classifier_, TorchClassifier):
        save_mlp(est.classifier_, directory, stem="h")
        files = ["h.json", "h.safetensors"]
    elif isinstance(est.classifier_, TreeEnsemble) or is_hgb_classifier(est.classifier_):
        # a default h chosen for user data: its trees as arrays (loads without sklearn)
        arrays = (est.classifier_.arrays if isinstance(est.classifier_, TreeEnsemble)
                  else export_trees(est.classifier_.model))
        files = save_trees(arrays, est.config_.n_features, directory)
    elif is_saveable_sklearn(est.classifier_):  # (one with categorical splits)
        save_sklearn(est.classifier_.model, directory / "h.skops")
        files = ["h.skops"]
    elif source is not None:  # a user's .skops / .onnx file travels with the model
        files = [f"classifier{Path(source).suffix.lower()}"]
        shutil.copyfile(source, directory / files[0])
    elif hasattr(est.classifier_, "save_skops"):  # a scikit-learn object given in Python
        files = ["classifier.skops"]
        est.classifier_.save_skops(directory / files[0])
    else:
        raise ModelError("cannot store this classifier with the model: give an MLP h or "
                         "a .skops/.onnx file (classifier_path_)")
    tensors = {k: v.contiguous() for k, v in est.model_.state_dict().items()}
    tensors[BIN_VALUES] = torch.as_tensor(est.bin_values_)
    tensors[REFERENCE] = torch.as_tensor(est.reference_)
    save_file(tensors, str(directory / "model.safetensors"))
    if getattr(est, "student_", None) is not None:
        files += save_student(est.student_, directory)
    meta_log = getattr(est, "train_log_", None)  # a loaded model keeps its record
    meta = {
        "format": "genre-recourse/genre", "version": FORMAT_VERSION,
        "params": saved_params(est), "transformer": est.config_.to_dict(),
        "schema": est.encoder_.schema_.to_dict(),
        "encoder": {"lo": est.encoder_.lo_.tolist(), "hi": est.encoder_.hi_.tolist()},
        "train_log": ({k: v for k, v in asdict(est.log_).items() if k != "history"}
                      if hasattr(est, "log_") else meta_log),
        "tuning": getattr(est, "tuning_", None),
    }
    report = getattr(est, "classifier_report_", None)
    if report is not None:
        meta["classifier_report"] = report
    (directory / "config.json").write_text(json.dumps(meta, indent=2))
    write_manifest(directory, ["config.json", "model.safetensors", *files])
    return directory


def saved_params(est) -> dict:
    """The hyper-parameters config.json records: get_params(), except that the network's
    shape (n_bins, d_model, ...) is the one the saved weights have. A set_params of those
    after fit takes effect at the next fit; until then the fitted network is what is saved,
    so that the saved model always loads.

    Parameters
    ----------
    est : GenRe
        Fitted.

    Returns
    -------
    dict
    """
    network = est.config_.to_dict()
    return {k: network.get(k, v) if k in TRANSFORMER_CHECKS else v
            for k, v in est.get_params().items()}


def load_model(cls: type, directory: str | Path, classifier: Classifier | None = None, *,
               require_manifest: bool = False):
    """A GenRe (of class `cls`) loaded from `directory`; see GenRe.load.

    Parameters
    ----------
    cls : type
        GenRe (or a subclass).
    directory : str or Path
        A directory written by save_model.
    classifier : Classifier, optional
        Use this h instead of the stored one.
    require_manifest : bool
        Refuse a directory without manifest.json.

    Returns
    -------
    GenRe
        Fitted.
    """
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a GenRe model directory (no such directory)")
    if not cfg_path.exists() and not cfg_path.is_symlink():
        raise ModelError(f"{directory}: not a GenRe model directory (no config.json)")
    meta = read_json(cfg_path)
    if (not isinstance(meta, dict) or meta.get("format") != "genre-recourse/genre"
            or meta.get("version") != FORMAT_VERSION):
        raise ModelError(f"{cfg_path}: not a GenRe model of format version {FORMAT_VERSION}")
    manifest = verify_manifest(directory, required=require_manifest)
    if manifest is not None and not {"config.json", "model.safetensors"} <= set(
            manifest["files"]):
        raise ModelError(f"{directory / MANIFEST}: does not cover config.json and "
                         "model.safetensors")
    if manifest is None:
        warnings.warn(f"{directory}: saved without an integrity manifest (by an older "
                      "genre); loaded after checking its config and tensor shapes. Save "
                      "it again to add one", GenreWarning, stacklevel=3)
    schema = check_config(meta, cfg_path)
    est = cls(**(SAVED_BEFORE | meta["params"]))
    est.train_log_ = meta["train_log"]
    est.tuning_ = meta.get("tuning")  # None (saved without tuning): the saved params rule
    est.classifier_report_ = meta.get("classifier_report")
    est.config_ = TransformerConfig.from_dict(meta["transformer"])
    est.encoder_ = Encoder.from_state(schema, meta["encoder"]["lo"], meta["encoder"]["hi"])
    D, n_bins = est.config_.n_features, est.config_.n_bins
    expected = module_shapes(lambda: RecourseTransformer(est.config_))
    expected |= {BIN_VALUES: (D, n_bins), REFERENCE: (None, D)}
    weights = directory / "model.safetensors"
    tensors = load_tensors(weights, expected)
    est.bin_values_ = tensors.pop(BIN_VALUES).numpy()
    est.reference_ = tensors.pop(REFERENCE).numpy()
    if len(est.reference_) < 2 or not ((est.bin_values_ >= 0) & (est.bin_values_ <= 1)).all():
        raise ModelError(f"{weights}: '{REFERENCE}' needs at least 2 rows and "
                         f"'{BIN_VALUES}' values in [0, 1]")
    model = RecourseTransformer(est.config_)
    model.load_state_dict(tensors)
    est.model_ = model.eval()
    saved = set(manifest["files"]) if manifest is not None else None
    if classifier is not None:
        est.classifier_ = classifier
    elif _saved_file(directory, "h.json", saved):
        est.classifier_ = load_mlp(directory, "h", n_features=D)
    elif _saved_file(directory, "h_trees.json", saved):
        if not _saved_file(directory, "h_trees.safetensors", saved):
            raise ModelError(f"{directory}: h_trees.json without h_trees.safetensors")
        est.classifier_ = load_trees(directory, n_features=D)
    elif _saved_file(directory, "h.skops", saved):  # saved by an older genre
        est.classifier_ = load_sklearn_h(regular_file(directory / "h.skops"),
                                         n_features=D)
    else:
        files = [p for p in sorted(directory.glob("classifier.*"))
                 if _saved_file(directory, p.name, saved)]
        if not files:
            raise ModelError(f"{directory}: no classifier (h.json, h.skops or "
                             "classifier.skops/.onnx)")
        est.classifier_ = load_classifier(regular_file(files[0]), est.encoder_)
        est.classifier_path_ = files[0]
    if _saved_file(directory, STUDENT_JSON, saved):
        est.student_ = load_student(directory, D, n_bins)
    elif est.sampler == "student":
        raise ModelError(f"{cfg_path}: sampler is 'student' but the directory holds no "
                         f"{STUDENT_JSON}")
    return est


def _saved_file(directory: Path, name: str, saved: set[str] | None) -> bool:
    """Whether directory/name belongs to the saved model: listed in its manifest, or (a
    directory without one) present."""
    if saved is not None:
        return name in saved
    return (directory / name).exists() or (directory / name).is_symlink()


def _check_section(section, checks: dict, where: str, optional=frozenset()) -> None:
    if not isinstance(section, dict):
        raise ModelError(f"{where}: expected a mapping")
    missing = sorted(set(checks) - set(section) - set(optional))
    unknown = sorted(set(section) - set(checks))
    if missing or unknown:
        raise ModelError(f"{where}: " + "; ".join(
            ([f"missing keys {missing}"] if missing else [])
            + ([f"unknown keys {unknown}"] if unknown else [])))
    for key, check in checks.items():
        if key not in section:
            continue  # an optional key left out
        expected = check(section[key])
        if expected is not None:
            raise ModelError(f"{where}.{key}: expected {expected}, got {section[key]!r}")


def check_config(meta, path: Path) -> Schema:
    """Validate a saved GenRe config.json against its schema; return the model's Schema.

    Types and ranges of every hyper-parameter (unknown or missing keys refused), the
    transformer's sizes (equal to the hyper-parameters, d_model divisible by n_heads), the
    feature schema (Schema.from_dict, one feature per model input) and the encoder's bounds
    (finite, lo <= hi, one per feature). Raises ModelError naming `path`.
    """
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: expected a JSON object")
    missing = sorted(CONFIG_KEYS - OPTIONAL_CONFIG_KEYS - set(meta))
    unknown = sorted(set(meta) - CONFIG_KEYS)
    if missing or unknown:
        raise ModelError(f"{path}: " + "; ".join(
            ([f"missing keys {missing}"] if missing else [])
            + ([f"unknown keys {unknown}"] if unknown else [])))
    params, transformer = meta["params"], meta["transformer"]
    _check_section(params, PARAM_CHECKS, f"{path}: params", OPTIONAL_PARAMS)
    _check_section(transformer, TRANSFORMER_CHECKS, f"{path}: transformer")
    for key in TRANSFORMER_CHECKS.keys() & PARAM_CHECKS.keys():
        if transformer[key] != params[key]:
            raise ModelError(f"{path}: transformer.{key} = {transformer[key]!r} but "
                             f"params.{key} = {params[key]!r}")
    if transformer["d_model"] % transformer["n_heads"]:
        raise ModelError(f"{path}: d_model {transformer['d_model']} is not divisible by "
                         f"n_heads {transformer['n_heads']}")
    log = meta["train_log"]
    if log is not None and (not isinstance(log, dict) or _number(0, infinite=True)(
            log.get("seconds", 0)) is not None):
        raise ModelError(f"{path}: train_log must be a mapping (with seconds a number) or null")
    check_tuning(meta.get("tuning"), f"{path}: tuning")
    report = meta.get("classifier_report")
    if report is not None and (not isinstance(report, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str | int | float))
            for k, v in report.items())):
        raise ModelError(f"{path}: classifier_report must map names to numbers or text")
    try:
        schema = Schema.from_dict(meta["schema"], source=f"{path}: schema")
    except (GenreError, TypeError, ValueError) as exc:
        raise ModelError(str(exc) if str(exc).startswith(str(path))
                         else f"{path}: schema: {exc}") from None
    open_ended = [f.name for f in schema.features if f.is_categorical and not f.categories]
    if open_ended:
        raise ModelError(f"{path}: schema: categorical features {open_ended} list no "
                         "categories (a saved model's schema lists them all)")
    D = len(schema.features)
    if D != transformer["n_features"]:
        raise ModelError(f"{path}: the schema has {D} features but transformer.n_features is "
                         f"{transformer['n_features']}")
    enc = meta["encoder"]
    if not isinstance(enc, dict) or set(enc) != {"lo", "hi"}:
        raise ModelError(f"{path}: encoder must hold exactly 'lo' and 'hi'")
    for key in ("lo", "hi"):
        values = enc[key]
        if not isinstance(values, list) or len(values) != D or any(
                _number(-math.inf)(v) is not None for v in values):
            raise ModelError(f"{path}: encoder.{key} must list {D} finite numbers (one per "
                             f"feature), got {values!r}"[:300])
    for f, lo, hi in zip(schema.features, enc["lo"], enc["hi"], strict=True):
        why = _bad_bounds(f, lo, hi)
        if why:
            raise ModelError(f"{path}: encoder bounds of '{f.name}' {why}")
    return schema


def _bad_bounds(f, lo: float, hi: float) -> str | None:
    """Why an encoder's (lo, hi) cannot be a feature's scaling (None when they can): the
    span must be positive and carried by float32, an integer feature's bounds exact
    integers, a categorical's [0, categories - 1]."""
    if not lo < hi:
        return f"have lo {lo} {'==' if lo == hi else '>'} hi {hi}; lo must be below hi"
    if max(abs(lo), abs(hi), hi - lo) > FLOAT32_MAX:
        return (f"lo {lo}, hi {hi} span more than +-3.4e38, the float32 range the model "
                "computes in")
    if f.is_categorical and (lo != 0 or hi != max(len(f.categories) - 1, 1)):
        return (f"lo {lo}, hi {hi} do not scale {len(f.categories)} categories (0 to "
                f"{max(len(f.categories) - 1, 1)})")
    if f.integer and (max(abs(lo), abs(hi)) > INTEGER_MAX or lo != math.floor(lo)):
        return (f"lo {lo}, hi {hi}: an integer feature needs a whole lo and bounds within "
                "+-2**53")
    return None


