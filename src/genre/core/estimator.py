"""GenRe: learn R(x+ | x) once from synthesised pairs, answer each query by sampling.

fit:      sources = training rows with h(x) <= gamma, targets = rows with h(x) > gamma and
          y = 1; each epoch every source draws a partner from Q(x+|x) (exp(-lambda L1) over
          its K nearest feasible targets); the transformer is trained on those pairs with
          the soft-bin loss; 10% of sources and targets are held out and the checkpoint with
          the lowest validation loss is kept (early stopping on it).
generate: best_k samples per individual, decoded with immutables fixed and forbidden bins
          masked (monotone direction, bounds), snapped to the schema's grid, and the one h
          scores highest is returned.

With effort keys in the schema (feature `cost`/`ordered`, top-level `max_changes`/`sparsity`,
see genre.data.schema): Q(x+|x) weighs targets by exp(-lambda * effort) instead of L1, each
source is also offered sparse targets (itself with a few features copied from one of its
SPARSE_NEIGHBOURS nearest favourable rows, kept where h > gamma), targets changing more than
max_changes features are not paired; sampling stops changing features once max_changes have
moved, and a sampled bin next to the factual's keeps the factual value (EFFORT_STAY_RADIUS);
generate returns the cheapest (by effort) sample h accepts (the highest-scored one when h
accepts none); options are ranked by effort.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genre.core import sampling, training
from genre.core.method import RecourseMethod
from genre.core.params import ParamsMixin, check_is_fitted
from genre.core.querying import QueryMixin
from genre.core.saving import load_model, save_model
from genre.core.student import StudentConfig, distill
from genre.core.task import Classifier, RecourseTask
from genre.core.tuning import tune_sampling
from genre.errors import ModelError
from genre.utils.device import resolve_device

log = logging.getLogger(__name__)
Options = sampling.Options  # GenRe.options' result (defined with the sampler)
TrainLog = training.TrainLog
bin_representatives = training.bin_representatives


class GenRe(ParamsMixin, QueryMixin, RecourseMethod):
    """Generative recourse (Garg, Nagalapatti, Sarawagi, ICLR 2025).

    Pair synthesis: lambda_, gamma, k. Model: n_bins, d_model, n_heads, n_enc_layers,
    n_dec_layers, d_ff, dropout. Training: lr, batch_size, max_epochs, patience (epochs
    without a better validation loss), max_seconds (a wall-clock cap; None, the default: no
    limit; when it fires, `log_.stopped_by` and the saved train_log say "max_seconds"), val_frac.
    Sampling: temperature (larger = sharper; the paper's 10 gave lower LOF than 2 on all
    three benchmark datasets in our CPU configuration, see benchmarks/results/genre_search_*),
    sigma (Gaussian noise on bin values), best_k,
    bin_value ("edge": a bin stands for its left edge, as in the paper; "data": for the real
    training value nearest the median of the targets in that bin, so that skewed features
    such as a length of stay land on values people have), stay_in_bin (a sampled bin that
    holds the factual's value keeps it: no change, no cost). Selection: select ("h": of the
    best_k samples, the one h scores highest, the paper's rule; "effort": the cheapest by
    the schema's effort among those h accepts). Tuning: tune ("auto", the default: after
    fit, temperature in {1, 2, 4, 10} x best_k in {10, 30} is chosen on held-out rejected
    training rows by h-validity + inlier - effort/D and used for sampling, the record in
    `tuning_` and config.json, see genre.core.tuning; None: temperature and best_k as given;
    a model loaded without a tuning record samples with its saved temperature and best_k).
    Sampler: sampler ("student", the default: a one-pass sampler distilled from the
    transformer at fit time, after tuning, from the teacher's samples at its tuned
    temperature, see genre.core.student and GenRe.distill; the same masks and best-of-k
    selection by h; fit then also distils, minutes of CPU. "autoregressive": the
    transformer decodes one feature at a time, the paper's sampler; a model saved before
    this parameter existed loads as "autoregressive").
    Hardware: threads (torch intra-op threads on the CPU), device ("cpu", "cuda" or "auto":
    where fit and sampling run; inputs and outputs stay NumPy arrays on the CPU, and the
    sampler draws its random numbers on the CPU, so a seed gives the same samples on either
    device up to floating-point round-off).
    """

    name = "genre"

    def __init__(self, lambda_: float = 5.0, gamma: float = 0.7, k: int = 1000,
                 n_bins: int = 50, d_model: int = 32, n_heads: int = 4, n_enc_layers: int = 2,
                 n_dec_layers: int = 2, d_ff: int = 64, dropout: float = 0.1, lr: float = 1e-3,
                 batch_size: int = 512, max_epochs: int = 200, patience: int = 20,
                 max_seconds: float | None = None, val_frac: float = 0.1,
                 temperature: float = 2.0, sigma: float = 0.0, best_k: int = 10,
                 bin_value: str = "data", stay_in_bin: bool = True, seed: int = 0,
                 threads: int = 1, progress: bool = True, device: str = "cpu",
                 select: str = "h", tune: str | None = "auto",
                 sampler: str = "student"):
        self.lambda_, self.gamma, self.k = lambda_, gamma, k
        self.n_bins, self.d_model, self.n_heads = n_bins, d_model, n_heads
        self.n_enc_layers, self.n_dec_layers, self.d_ff, self.dropout = (
            n_enc_layers, n_dec_layers, d_ff, dropout)
        self.lr, self.batch_size = lr, batch_size
        self.max_epochs, self.patience = max_epochs, patience
        self.max_seconds, self.val_frac = max_seconds, val_frac
        self.temperature, self.sigma, self.best_k = temperature, sigma, best_k
        self.bin_value, self.stay_in_bin = bin_value, stay_in_bin
        self.seed, self.threads, self.progress = seed, threads, progress
        self.device, self.select, self.tune = device, select, tune
        self.sampler = sampler

    def fit(self, task: RecourseTask) -> GenRe:
        """Learn R(x+|x) on `task` (see genre.core.training).

        Parameters
        ----------
        task : RecourseTask
            The encoder, normalised training rows and labels, and h.

        Returns
        -------
        GenRe
            self, with model_, config_, bin_values_, reference_, encoder_, classifier_, log_
            and tuning_ (tune="auto": the sampling settings chosen, see genre.core.tuning;
            else None).
        """
        self._check_params()
        fitted = training.train(self, task, resolve_device(self.device))
        self.bin_values_, self.config_ = fitted.bin_values, fitted.config
        self.model_ = fitted.model  # kept on the CPU; sampling copies it to the device
        self.encoder_, self.classifier_ = task.encoder, task.classifier
        self.reference_, self.log_ = fitted.reference, fitted.log
        # The held-out figures of a default h genre chose for a user's table (else None).
        self.classifier_report_ = getattr(task, "classifier_report", None)
        self._on_device = self._lof = None
        self.student_ = None
        with self.sampling_with("autoregressive"):  # the teacher is tuned, then distilled
            self.tuning_ = tune_sampling(self, task) if self.tune == "auto" else None
        if self.sampler == "student":
            self.distill(task.X_train)
        return self

    def distill(self, X: np.ndarray, config: StudentConfig | None = None) -> GenRe:
        """Distil the one-pass student sampler from this fitted GenRe (see
        genre.core.student).

        Parameters
        ----------
        X : ndarray of shape (n, D)
            Training rows (normalised), e.g. the task's X_train: the student learns the
            teacher's samples for its sources and jittered copies of them.
        config : StudentConfig, optional
            The student's size and budget (default StudentConfig(seed=self.seed)).

        Returns
        -------
        GenRe
            self, with `student_` set; `sampler="student"` then samples with it.
        """
        check_is_fitted(self)
        config = config or StudentConfig(seed=self.seed)
        self.student_ = distill(self, X, config, progress=log.info if self.progress else None)
        return self

    def set_params(self, **params) -> GenRe:
        """Change hyper-parameters (see ParamsMixin.set_params); sampler="student" on a
        fitted model needs its student (ModelError otherwise).

        Parameters
        ----------
        **params
            Names and new values.

        Returns
        -------
        GenRe
            self.
        """
        if (params.get("sampler") == "student" and hasattr(self, "model_")
                and getattr(self, "student_", None) is None):
            raise ModelError(sampling.NO_STUDENT)
        return super().set_params(**params)

    @contextlib.contextmanager
    def sampling_with(self, sampler: str | None):
        """Within the block, sample with `sampler` ("autoregressive" or "student"; None:
        the model's own).

        Parameters
        ----------
        sampler : str or None
            The sampler for the block.

        Returns
        -------
        contextmanager
            Yields self; the model's own sampler is restored on exit.
        """
        before = self.sampler
        self.set_params(sampler=before if sampler is None else sampler)
        try:
            yield self
        finally:
            self.sampler = before

    def training_summary(self) -> dict | None:
        """The training log without its per-epoch history (as saved in config.json):
        epochs, best_epoch, best_val_loss, seconds, n_train_pairs, n_val_pairs.

        Returns
        -------
        dict or None
        """
        if hasattr(self, "log_"):
            return {k: v for k, v in asdict(self.log_).items() if k != "history"}
        return getattr(self, "train_log_", None)

    def save(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors (+ h.safetensors/h.json or the user's
        classifier file) and manifest.json (their sizes and sha256). No pickle.
        See genre.core.saving.save_model."""
        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, classifier: Classifier | None = None, *,
             require_manifest: bool = False) -> GenRe:
        """Load a saved model: JSON and tensors only, so loading runs no code (manifest,
        config and tensor shapes checked first; every failure a ModelError naming the file).
        See genre.core.saving.load_model."""
        return load_model(cls, directory, classifier, require_manifest=require_manifest)
