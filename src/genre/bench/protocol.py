"""The paper's evaluation protocol, seeded and cached.

1. Encode the dataset (training statistics).
2. Gold model: isotonic-calibrated random forest fit on train+test with balanced weights;
   it stands in for the true P(y|x).
3. Re-draw every label as Bernoulli(gold probability), so the truth is known everywhere.
4. Classifier h: MLP D-10-10-10-1 trained on the re-drawn training labels.
5. Evaluation individuals: a seeded draw of test rows that h rejects (h(x) < 0.5).
6. LOF (n_neighbors=5, novelty) fit on train+test points the gold model calls favourable.

Everything is cached under a user cache dir (override with the GENRE_CACHE_DIR environment
variable), keyed by dataset, seed, h's epochs and a digest of the encoded data and of the
source of every module that builds the entry (genre.utils.cache.code_digest), so a rerun takes
seconds and changed code never reads an old entry. `Protocol.fingerprint` is a short digest
of what the methods see (X_train, y_train, the rejected test individuals and h's
probabilities on them): two results with one fingerprint ran on the same protocol.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from genre.classifiers.mlp import load_mlp, load_sklearn, save_mlp, save_sklearn, train_mlp
from genre.core.task import Classifier, RecourseTask, SklearnClassifier
from genre.data import Dataset, Encoder, load
from genre.errors import ModelError
from genre.integrity import MANIFEST, regular_file, verify_manifest, write_manifest
from genre.utils.cache import cache_dir, cache_entry, code_digest, key_digest, report_rebuild

CACHE_VERSION = "v1"  # the folder; entries are keyed by a digest of inputs and code
BALANCED_H = {"adult", "compas"}  # the paper trains h with balanced class weights on these


@dataclass
class Protocol:
    """A dataset with its gold model, re-drawn labels, classifier h and test individuals."""

    dataset: Dataset
    encoder: Encoder
    seed: int
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    gold: Classifier
    h: Classifier
    rejected_test: np.ndarray  # indices into X_test with h < 0.5, in a seeded random order
    h_variant: str = ""  # "" for the protocol's own h; else a name for a substituted h

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def n_features(self) -> int:
        return self.encoder.n_features

    def task(self, monotone: bool = False) -> RecourseTask:
        """What methods fit on. The paper ignores monotone facts; monotone=True enforces them."""
        schema = self.encoder.schema_.with_monotone(monotone)
        encoder = Encoder.from_state(schema, self.encoder.lo_, self.encoder.hi_)
        return RecourseTask(encoder, self.X_train, self.y_train, self.h, self.name, self.seed)

    def individuals(self, n: int = 200) -> np.ndarray:
        """The first n rejected test individuals (normalised), the same for every method."""
        return self.X_test[self.rejected_test[:n]]

    def validation_individuals(self, n: int = 200) -> np.ndarray:
        """Rejected individuals from the training split, for tuning (never the test set)."""
        rng = np.random.default_rng(self.seed + 1)
        rejected = np.flatnonzero(self.h.predict_proba(self.X_train) < 0.5)
        return self.X_train[rng.permutation(rejected)[:n]]

    def with_classifier(self, h: Classifier, name: str) -> Protocol:
        """The same protocol with another classifier h (a miscalibrated or biased one).

        Its individuals are the test rows the new h rejects, taken in one seeded order of all
        test rows, so two classifiers with the same decisions get the same individuals.
        Gold model, labels and LOF are shared.
        """
        if not name and h is not self.h:
            raise ValueError("a substituted classifier needs a name")
        order = np.random.default_rng(self.seed + 2).permutation(len(self.X_test))
        rejected = order[h.predict_proba(self.X_test[order]) < 0.5]
        variant = replace(self, h=h, rejected_test=rejected,
                          h_variant=self.h_variant if h is self.h else name)
        if "lof" in self.__dict__:  # share the fitted detector (it depends on gold only)
            variant.__dict__["lof"] = self.__dict__["lof"]
        return variant

    @cached_property
    def lof(self):
        """LOF novelty detector fit on gold-favourable train+test points."""
        from sklearn.neighbors import LocalOutlierFactor

        X_all = np.vstack([self.X_train, self.X_test])
        fav = X_all[self.gold.predict_proba(X_all) > 0.5]
        return LocalOutlierFactor(n_neighbors=5, novelty=True).fit(fav)

    @cached_property
    def fingerprint(self) -> str:
        """Short sha256 of X_train, y_train, the rejected test individuals (in order) and h's
        probabilities on them: equal fingerprints, equal protocols (as the methods see it)."""
        X = self.X_test[self.rejected_test]
        p = np.asarray(self.h.predict_proba(X), dtype=np.float64)
        return key_digest(arrays=(np.asarray(self.X_train, dtype=np.float64),
                                  np.asarray(self.y_train, dtype=np.int64),
                                  np.asarray(X, dtype=np.float64), np.round(p, 6)))[:16]

    def h_accuracy(self) -> float:
        """Accuracy of h on the re-drawn test labels."""
        return float(np.mean((self.h.predict_proba(self.X_test) > 0.5) == self.y_test))


def build_protocol(name: str | Dataset, seed: int = 0, *, use_cache: bool = True,
                   h_epochs: int = 100, progress=None) -> Protocol:
    """Build (or load from cache) the protocol for a bundled dataset or a Dataset object."""
    dataset = load(name) if isinstance(name, str) else name
    say = progress or (lambda msg: None)
    encoder = Encoder(dataset.schema).fit(dataset.X_train)
    X_train = encoder.transform(dataset.X_train, source=f"{dataset.name} train")
    X_test = encoder.transform(dataset.X_test, source=f"{dataset.name} test")
    y_raw = np.concatenate([dataset.labels(dataset.train), dataset.labels(dataset.test)])
    digest = key_digest(dataset.name, seed, h_epochs, sorted(BALANCED_H),
                        code_digest("genre.bench.protocol"),
                        arrays=(X_train, X_test, np.asarray(y_raw)))
    key = f"{dataset.name}-seed{seed}-h{h_epochs}-{digest[:16]}"
    where = cache_dir() / f"protocol-{CACHE_VERSION}" / key if use_cache else None
    if where is not None and (where.exists() or where.is_symlink()):
        say(f"loading cached protocol from {where}")
        try:
            cached = load_cached(where, encoder, len(X_train), len(X_test))
        except ModelError as exc:
            report_rebuild(where, exc)
        else:
            return Protocol(dataset, encoder, seed, X_train, X_test, *cached)

    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    say("fitting the gold model (calibrated random forest on train+test)")
    X_all = np.vstack([X_train, X_test])
    y_all = y_raw
    forest = RandomForestClassifier(random_state=seed, n_jobs=-1)
    gold_model = CalibratedClassifierCV(forest, method="isotonic")
    gold_model.fit(X_all, y_all, sample_weight=compute_sample_weight("balanced", y_all))
    gold = SklearnClassifier(gold_model)

    rng = np.random.default_rng(seed)
    y_new = rng.binomial(1, gold.predict_proba(X_all)).astype(np.int64)
    y_train, y_test = y_new[: len(X_train)], y_new[len(X_train):]

    say("training h (MLP D-10-10-10-1)")
    h = train_mlp(X_train, y_train, balanced=dataset.name in BALANCED_H, epochs=h_epochs,
                  seed=seed)
    rejected = np.flatnonzero(h.predict_proba(X_test) < 0.5)
    rejected_test = rng.permutation(rejected)

    if where is not None:
        with cache_entry(where) as tmp:
            save_sklearn(gold_model, tmp / "gold.skops")
            save_mlp(h, tmp)
            labels = {"y_train": y_train, "y_test": y_test, "rejected_test": rejected_test}
            np.savez(tmp / "labels.npz", **labels)
            (tmp / "done.json").write_text(json.dumps({"dataset": dataset.name, "seed": seed}))
            write_manifest(tmp, [*CACHE_FILES, "done.json"],
                           {"arrays": {k: list(v.shape) for k, v in labels.items()}})
    return Protocol(dataset, encoder, seed, X_train, X_test, y_train, y_test, gold, h,
                    rejected_test)


CACHE_FILES = ("gold.skops", "h.json", "h.safetensors", "labels.npz")


def load_cached(where: Path, encoder: Encoder, n_train: int, n_test: int) -> tuple:
    """(y_train, y_test, gold, h, rejected_test) from a cache entry, every file checked.

    The manifest's digests must hold; the label arrays must be 0/1 integers of one entry per
    training / test row, rejected_test distinct test-row indices; gold loads with the skops
    allow-list and h with its shapes checked. Anything else raises ModelError.
    """
    manifest = verify_manifest(where, required=True, what="protocol cache entry")
    if not set(CACHE_FILES) <= set(manifest["files"]):
        raise ModelError(f"{where / MANIFEST}: does not list {list(CACHE_FILES)}")
    path = regular_file(where / "labels.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("y_train", "y_test", "rejected_test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    expected = {"y_train": (n_train,), "y_test": (n_test,), "rejected_test": None}
    for name, shape in expected.items():
        a = arrays[name]
        recorded = manifest.get("arrays", {}).get(name)
        if a.dtype.kind not in "iu" or a.ndim != 1 or (shape is not None and a.shape != shape) \
                or recorded != list(a.shape):
            raise ModelError(f"{path}: '{name}' is {a.dtype} of shape {a.shape}; expected "
                             f"integers of shape {shape or '(n,)'}")
    if not np.isin(arrays["y_train"], (0, 1)).all() or not np.isin(arrays["y_test"],
                                                                    (0, 1)).all():
        raise ModelError(f"{path}: labels other than 0 and 1")
    rejected = arrays["rejected_test"]
    if len(rejected) and (rejected.min() < 0 or rejected.max() >= n_test
                          or len(np.unique(rejected)) != len(rejected)):
        raise ModelError(f"{path}: 'rejected_test' is not a set of test-row indices")
    gold = SklearnClassifier(load_sklearn(where / "gold.skops"))
    h = load_mlp(where, n_features=encoder.n_features)
    return arrays["y_train"], arrays["y_test"], gold, h, rejected
