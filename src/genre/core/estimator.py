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
import copy
import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from genre.classifiers.mlp import (
    is_saveable_sklearn,
    load_mlp,
    load_sklearn_h,
    save_mlp,
    save_sklearn,
)
from genre.core.method import RecourseMethod
from genre.core.network import RecourseTransformer, TransformerConfig
from genre.core.pairs import PairSampler, sparse_targets, split_holdout
from genre.core.plausibility import PlausibilityFlag
from genre.core.student import (
    SAMPLERS,
    STUDENT_JSON,
    StudentConfig,
    check_sampler,
    distill,
    load_student,
    save_student,
)
from genre.core.task import Classifier, RecourseTask, TorchClassifier
from genre.data.encoder import CHANGE_TOL, Encoder
from genre.data.schema import Schema
from genre.errors import GenreError, GenreWarning, InputError, ModelError
from genre.integrity import (
    MANIFEST,
    load_tensors,
    module_shapes,
    read_json,
    regular_file,
    verify_manifest,
    write_manifest,
)
from genre.utils.device import resolve_device
from genre.utils.threads import torch_threads

FORMAT_VERSION = 1
LOG_EVERY = 10  # without a terminal (no progress bar), fit logs one line per LOG_EVERY epochs
log = logging.getLogger(__name__)
BIN_VALUES = "genre.bin_values"  # extra tensors stored beside the transformer's weights
REFERENCE = "genre.reference"
SPARSE_NEIGHBOURS = 3  # real neighbours per source that sparse targets are copied from
SPARSE_COPIES = 4  # sparse targets tried per (source, neighbour)
SPARSE_DEFAULT_CHANGES = 3  # at most this many copied features when max_changes is not set
# With effort keys, a sampled bin this close to the factual's own keeps the factual value (with
# stay_in_bin): the soft-bin loss spreads "unchanged" over about a bin either side, and a
# sub-bin move is noise that would count as a change.
EFFORT_STAY_RADIUS = 1
NO_STUDENT = ("this GenRe model has no student sampler: fit it with sampler='student' (`genre "
              "fit --sampler student`) or call distill(X_train) first")


def bin_representatives(targets: np.ndarray, n_bins: int, how: str) -> np.ndarray:
    """(D, n_bins) float32: the value each bin of each feature decodes to.

    "edge": the bin's left edge (the paper). "data": the target value nearest to the median
    of the targets falling in that bin (the left edge where no target falls in it).
    """
    edges = np.linspace(0, 1, n_bins + 1)[:-1]
    table = np.tile(edges, (targets.shape[1], 1))
    if how == "edge":
        return table.astype(np.float32)
    bins = np.clip(np.floor(targets * n_bins), 0, n_bins - 1).astype(int)
    for j in range(targets.shape[1]):
        for b in np.unique(bins[:, j]):
            values = targets[bins[:, j] == b, j]
            table[j, b] = values[np.argmin(np.abs(values - np.median(values)))]
    return table.astype(np.float32)


@dataclass
class Options:
    """Several recourses per person: (N, k, D) profiles, h's probability, cost (the schema's
    effort: the L1 cost when the schema has no effort keys), LOF flag."""

    X_plus: np.ndarray
    probability: np.ndarray
    cost: np.ndarray
    plausible: np.ndarray


@dataclass
class TrainLog:
    epochs: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    n_train_pairs: int
    n_val_pairs: int
    history: list  # (epoch, train_loss, val_loss, seconds)


class GenRe(RecourseMethod):
    """Generative recourse (Garg, Nagalapatti, Sarawagi, ICLR 2025).

    Pair synthesis: lambda_, gamma, k. Model: n_bins, d_model, n_heads, n_enc_layers,
    n_dec_layers, d_ff, dropout. Training: lr, batch_size, max_epochs, patience (epochs
    without a better validation loss), max_seconds (wall-clock budget), val_frac.
    Sampling: temperature (larger = sharper; the paper's 10 gave lower LOF than 2 on all
    three benchmark datasets in our CPU configuration, see benchmarks/results/genre_search_*),
    sigma (Gaussian noise on bin values), best_k,
    bin_value ("edge": a bin stands for its left edge, as in the paper; "data": for the real
    training value nearest the median of the targets in that bin, so that skewed features
    such as a length of stay land on values people have), stay_in_bin (a sampled bin that
    holds the factual's value keeps it: no change, no cost). Selection: select ("h": of the
    best_k samples, the one h scores highest, the paper's rule; "effort": the cheapest by
    the schema's effort among those h accepts).
    Sampler: sampler ("autoregressive": the transformer decodes one feature at a time, the
    paper's; "student": a one-pass sampler distilled from it at fit time, see genre.core.student
    and GenRe.distill; the same masks and best-of-k selection by h).
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
                 max_seconds: float = 240.0, val_frac: float = 0.1, temperature: float = 2.0,
                 sigma: float = 0.0, best_k: int = 10, bin_value: str = "data",
                 stay_in_bin: bool = True, seed: int = 0, threads: int = 1,
                 progress: bool = True, device: str = "cpu", select: str = "h",
                 sampler: str = "autoregressive"):
        self.lambda_, self.gamma, self.k = lambda_, gamma, k
        self.n_bins, self.d_model, self.n_heads = n_bins, d_model, n_heads
        self.n_enc_layers, self.n_dec_layers, self.d_ff, self.dropout = (
            n_enc_layers, n_dec_layers, d_ff, dropout)
        self.lr, self.batch_size = lr, batch_size
        self.max_epochs, self.patience = max_epochs, patience
        self.max_seconds, self.val_frac = max_seconds, val_frac
        self.temperature, self.sigma, self.best_k = temperature, sigma, best_k
        if bin_value not in ("data", "edge"):
            raise ValueError(f"bin_value must be 'data' or 'edge', got {bin_value!r}")
        self.bin_value, self.stay_in_bin = bin_value, stay_in_bin
        self.seed, self.threads, self.progress = seed, threads, progress
        self.device = device
        if select not in ("h", "effort"):
            raise ValueError(f"select must be 'h' or 'effort', got {select!r}")
        self.select = select
        self.sampler = check_sampler(sampler)

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params) -> GenRe:
        """Change hyper-parameters (sampling ones take effect without refitting)."""
        unknown = set(params) - set(_PARAMS)
        if unknown:
            raise ValueError(f"unknown GenRe parameters {sorted(unknown)}")
        if "sampler" in params:
            check_sampler(params["sampler"])
            if (params["sampler"] == "student" and hasattr(self, "model_")
                    and getattr(self, "student_", None) is None):
                raise ModelError(NO_STUDENT)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, task: RecourseTask) -> GenRe:
        device = resolve_device(self.device)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        enc = task.encoder
        X = np.asarray(task.X_train, dtype=np.float64)
        p = task.classifier.predict_proba(X)
        sources = X[p <= self.gamma]
        targets = X[(p > self.gamma) & (np.asarray(task.y_train) == 1)]
        if len(sources) < 2 or len(targets) < 2:
            raise InputError(f"{task.name}: too few training rows to pair "
                             f"({len(sources)} with h <= {self.gamma}, {len(targets)} "
                             f"favourable with h > {self.gamma})")
        s_tr, s_val = split_holdout(len(sources), self.val_frac, rng)
        t_tr, t_val = split_holdout(len(targets), self.val_frac, rng)
        pairs, tgt_rows = self._pairs(task, sources[s_tr], targets[t_tr], rng)
        if len(pairs.source_index_) == 0:
            raise InputError(f"{task.name}: no training row with h <= {self.gamma} has a "
                             "feasible favourable target (same immutables, monotone features "
                             "moved only the allowed way, at most max_changes changes) to "
                             "learn from")
        val_pairs, v_tgt_rows = self._pairs(task, sources[s_val], targets[t_val], rng)
        src = torch.as_tensor(sources[s_tr][pairs.source_index_], dtype=torch.float32,
                              device=device)
        tgt = torch.as_tensor(tgt_rows, dtype=torch.float32, device=device)
        # Validation pairs are drawn once, so the validation loss is comparable across epochs.
        v_src = torch.as_tensor(sources[s_val][val_pairs.source_index_], dtype=torch.float32,
                                device=device)
        v_tgt = torch.as_tensor(v_tgt_rows[val_pairs.sample(rng)], dtype=torch.float32,
                                device=device)

        self.bin_values_ = bin_representatives(targets, self.n_bins, self.bin_value)
        self.config_ = TransformerConfig(enc.n_features, self.n_bins, self.d_model,
                                         self.n_heads, self.n_enc_layers, self.n_dec_layers,
                                         self.d_ff, self.dropout)
        model = RecourseTransformer(self.config_).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best_state, best_val, best_epoch, history = None, math.inf, 0, []
        start = time.perf_counter()
        # disable=None: a bar on a terminal, silence in logs and CI.
        bar = tqdm(range(1, self.max_epochs + 1), desc="GenRe", unit="epoch", leave=False,
                   disable=None if self.progress else True)
        with torch_threads(self.threads):
            for epoch in bar:
                partners = tgt[torch.as_tensor(pairs.sample(rng), device=device)]
                model.train()
                perm = torch.randperm(len(src), generator=gen)
                total = 0.0
                for i in range(0, len(src), self.batch_size):
                    idx = perm[i:i + self.batch_size].to(device)
                    loss = model.loss(src[idx], partners[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                train_loss = total / len(src)
                val_loss = self._loss(model, v_src, v_tgt)
                elapsed = time.perf_counter() - start
                history.append((epoch, train_loss, val_loss, elapsed))
                if val_loss < best_val:
                    best_val, best_epoch = val_loss, epoch
                    best_state = copy.deepcopy(model.state_dict())
                bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}",
                                best=best_epoch)
                stop = epoch - best_epoch >= self.patience or elapsed > self.max_seconds
                if self.progress and bar.disable and (epoch % LOG_EVERY == 0 or stop
                                                      or epoch == self.max_epochs):
                    log.info("GenRe epoch %d/%d: train loss %.3f, validation loss %.3f (best "
                             "%.3f at epoch %d), %.0f s elapsed", epoch, self.max_epochs,
                             train_loss, val_loss, best_val, best_epoch, elapsed)
                if stop:
                    break
        bar.close()
        model.load_state_dict(best_state)
        self.model_ = model.cpu().eval()  # kept on the CPU; sampling copies it to the device
        self.encoder_ = enc
        self.classifier_ = task.classifier
        # Observed favourable rows: the reference the plausibility (LOF) flag is judged by.
        self.reference_ = X[np.asarray(task.y_train) == 1].astype(np.float32)
        self.log_ = TrainLog(len(history), best_epoch, best_val, time.perf_counter() - start,
                             len(src), len(v_src), history)
        self._on_device = None
        if self.sampler == "student":
            self.distill(X)
        return self

    def distill(self, X: np.ndarray, config: StudentConfig | None = None) -> GenRe:
        """Distil the one-pass student sampler from this fitted GenRe (see genre.core.student).

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
        if not hasattr(self, "model_"):
            raise ModelError("GenRe is not fitted: fit it before distilling a student")
        config = config or StudentConfig(seed=self.seed)
        self.student_ = distill(self, X, config, progress=log.info if self.progress else None)
        return self

    @contextlib.contextmanager
    def sampling_with(self, sampler: str | None):
        """Within the block, sample with `sampler` ("autoregressive" or "student"; None:
        the model's own)."""
        before = self.sampler
        self.set_params(sampler=before if sampler is None else sampler)
        try:
            yield self
        finally:
            self.sampler = before

    def _pairs(self, task: RecourseTask, sources: np.ndarray, targets: np.ndarray,
               rng: np.random.Generator) -> tuple[PairSampler, np.ndarray]:
        """Q(x+|x) for these sources and targets, and the rows its indices refer to (the
        targets, then any sparse targets). Without effort keys: the paper's L1 pairs."""
        enc = task.encoder
        schema = enc.schema_
        if not schema.has_effort:
            return PairSampler(sources, targets, enc.immutable_mask, self.lambda_, self.k,
                               enc.monotone), targets
        effort = enc.effort_terms()
        near = PairSampler(sources, targets, enc.immutable_mask, self.lambda_,
                           SPARSE_NEIGHBOURS, enc.monotone, effort=effort)
        neighbours = np.full((len(sources), near.neighbours_.shape[1]), -1, dtype=np.int64)
        neighbours[near.source_index_] = near.neighbours_
        cap = schema.max_changes or SPARSE_DEFAULT_CHANGES
        extra, owner = sparse_targets(
            sources, targets, neighbours,
            lambda Z: task.classifier.predict_proba(Z) > self.gamma, cap, SPARSE_COPIES, rng)
        pairs = PairSampler(sources, targets, enc.immutable_mask, self.lambda_, self.k,
                            enc.monotone, effort=effort, max_changes=schema.max_changes,
                            extra=extra, extra_owner=owner)
        return pairs, np.vstack([targets, extra])

    @torch.no_grad()
    def _loss(self, model: RecourseTransformer, x: torch.Tensor, x_plus: torch.Tensor) -> float:
        model.eval()
        total = 0.0
        for i in range(0, len(x), 4096):
            total += float(model.loss(x[i:i + 4096], x_plus[i:i + 4096])) * len(x[i:i + 4096])
        return total / max(len(x), 1)

    # ---------------------------------------------------------------- sampling
    def _bin_mask(self, X: torch.Tensor) -> torch.Tensor:
        """(N, D, n_bins): bins a feature may take for each individual.

        A monotone feature keeps the bin holding its factual value and those on its allowed
        side; bins wholly outside the schema's bounds are forbidden.
        """
        enc = self.encoder_
        width = 1.0 / self.n_bins
        left = self.model_.bins.to(X.dtype)  # (n_bins,)
        right = left + width
        mask = torch.ones(X.shape[0], X.shape[1], self.n_bins, dtype=torch.bool)
        lower = torch.as_tensor(enc.lower, dtype=X.dtype)
        upper = torch.as_tensor(enc.upper, dtype=X.dtype)
        mask &= (right > lower[:, None] - 1e-9) & (left < upper[:, None] + 1e-9)
        mono = torch.as_tensor(enc.monotone)
        x = X[..., None]
        up = (right > x) | (torch.arange(self.n_bins) == self.n_bins - 1)
        down = (left <= x) | (torch.arange(self.n_bins) == 0)
        mask = torch.where((mono > 0)[None, :, None], mask & up, mask)
        mask = torch.where((mono < 0)[None, :, None], mask & down, mask)
        return mask

    def model_on(self, device: torch.device) -> RecourseTransformer:
        """The fitted transformer on device (model_ itself on the CPU; a copy elsewhere,
        made once)."""
        if device.type == "cpu":
            return self.model_
        cached = getattr(self, "_on_device", None)
        if cached is None or cached[0] is not self.model_ or cached[1] != device:
            cached = (self.model_, device, copy.deepcopy(self.model_).to(device))
            self._on_device = cached
        return cached[2]

    def sample(self, X: np.ndarray, n_samples: int = 1, *, seed: int | None = None,
               use_cache: bool = True) -> np.ndarray:
        """n_samples recourse candidates per row: (N, n_samples, D), on the schema's grid."""
        self._check_fitted(X)
        device = resolve_device(self.device)
        X = np.asarray(X, dtype=np.float64)
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        if check_sampler(self.sampler) == "student":
            if getattr(self, "student_", None) is None:
                raise ModelError(NO_STUDENT)
            with torch_threads(self.threads):
                return self.student_.sample(
                    self, X, n_samples, gen,
                    EFFORT_STAY_RADIUS if self.encoder_.schema_.has_effort else 0)
        Xr = np.repeat(X, n_samples, axis=0)  # rows i*n .. i*n+n-1 belong to individual i
        xt = torch.as_tensor(Xr, dtype=torch.float32, device=device)
        fixed = torch.as_tensor(self.encoder_.immutable_mask)
        with torch_threads(self.threads):
            # The mask depends on the individual only: build it once per individual.
            mask = self._bin_mask(torch.as_tensor(X, dtype=torch.float32)).to(device)
            effort = self.encoder_.schema_.has_effort
            out = self.model_on(device).sample(
                xt, self.temperature, self.sigma, mask.repeat_interleave(n_samples, dim=0),
                fixed, gen, use_cache=use_cache, bin_values=torch.as_tensor(self.bin_values_),
                stay_in_bin=self.stay_in_bin, group=n_samples,
                max_changes=self.encoder_.schema_.max_changes,
                stay_radius=EFFORT_STAY_RADIUS if effort else 0).cpu().double().numpy()
        if effort:  # a value the sampler kept (the factual in float32) is the factual exactly
            out = np.where(out == Xr.astype(np.float32), Xr, out)
        # Immutables copy the factual exactly (float32 round-off aside); the rest is snapped
        # to categories / integers / bounds, and a monotone feature that stayed inside its
        # factual's bin keeps the factual value.
        out = self.encoder_.project(out, factual=Xr)
        if effort:  # and a value rounded back onto the factual's grid point is unchanged
            out = np.where(np.abs(out - Xr) <= CHANGE_TOL, Xr, out)
        return out.reshape(len(X), n_samples, -1)

    def generate(self, X: np.ndarray, best_k: int | None = None, *,
                 seed: int | None = None) -> np.ndarray:
        """One recourse per row: of best_k samples, the one h scores highest (the paper's
        rule, select="h"). With select="effort": the cheapest (by the schema's effort) sample
        h accepts, or the one h scores highest when h accepts none. "h" is the default: on
        adult, compas and heloc capped at 3 changes it kept gold validity at 0.99 / 0.94 on
        compas / adult where "effort" fell to 0.75 / 0.80 (the cheapest accepted samples sit
        near h's boundary; benchmarks/results/max_changes)."""
        best_k = self.best_k if best_k is None else best_k
        cands = self.sample(X, best_k, seed=seed)
        N, K, D = cands.shape
        p = self.classifier_.predict_proba(cands.reshape(N * K, D)).reshape(N, K)
        pick = p.argmax(axis=1)
        if self.select == "effort":
            effort = self.encoder_.effort(np.asarray(X, dtype=float)[:, None, :], cands)
            cheapest = np.where(p > 0.5, effort, np.inf).argmin(axis=1)
            pick = np.where((p > 0.5).any(axis=1), cheapest, pick)
        return cands[np.arange(N), pick]

    def options(self, X: np.ndarray, k: int = 3, n_samples: int | None = None, *,
                seed: int | None = None) -> Options:
        """Up to k distinct recourses per row that h accepts, cheapest first, diverse.

        Draws n_samples candidates (default max(best_k, 10 k)) per person, keeps the distinct
        ones h scores favourable and ranks them by the schema's effort (L1 cost without
        effort keys): first the cheapest profile of each distinct set of changed features,
        cheapest first; then the other profiles (near-copies), cheapest first. Padding is NaN.
        """
        n_samples = max(self.best_k, 10 * k) if n_samples is None else n_samples
        cands = self.sample(X, n_samples, seed=seed)
        N, S, D = cands.shape
        flat = cands.reshape(N * S, D)
        prob = self.classifier_.predict_proba(flat).reshape(N, S)
        X = np.asarray(X, dtype=float)
        cost = self.encoder_.effort(X[:, None, :], cands)
        moved = np.abs(cands - X[:, None, :]) > CHANGE_TOL
        out = np.full((N, k, D), np.nan)
        out_prob = np.full((N, k), np.nan)
        out_cost = np.full((N, k), np.nan)
        for i in range(N):  # per person: dedupe a few dozen rows, cheap
            ok = np.flatnonzero(prob[i] > 0.5)
            if ok.size == 0:
                continue
            _, first = np.unique(np.round(cands[i, ok], 9), axis=0, return_index=True)
            keep = ok[first]
            keep = keep[np.argsort(cost[i, keep], kind="stable")]
            # The first (cheapest) profile of each set of changed features leads.
            _, lead = np.unique(moved[i, keep], axis=0, return_index=True)
            leads = np.zeros(len(keep), dtype=bool)
            leads[lead] = True
            keep = np.concatenate([keep[leads], keep[~leads]])[:k]
            out[i, :len(keep)] = cands[i, keep]
            out_prob[i, :len(keep)] = prob[i, keep]
            out_cost[i, :len(keep)] = cost[i, keep]
        found = ~np.isnan(out_prob)
        plausible = np.zeros((N, k), dtype=bool)
        if found.any():
            plausible[found] = self.plausibility().predict(out[found]) == 1
        return Options(out, out_prob, out_cost, plausible)

    def recourse(self, people, options: int = 1, *, seed: int = 0, best_k: int | None = None,
                 id_column: str | None = None, sampler: str | None = None):
        """Recourse for every row of the DataFrame `people` (original units): the table the
        CLI writes to recourse.csv, with `person` the 0-based row position (see
        genre.tables.recourse.recourse_table for the columns; genre.changes for the long view).
        Rows are answered in blocks as `genre recourse` answers a file, so both give the
        same profiles for the same rows and seed. sampler: "autoregressive" or "student"
        for this call (default: the model's)."""
        import pandas as pd

        from genre.tables.streaming import answer_blocks

        if not hasattr(self, "model_"):
            raise ModelError("GenRe is not fitted: call genre.fit(...) or genre.load(dir) first")
        if options < 1:
            raise InputError(f"options must be at least 1, got {options}")
        if not isinstance(people, pd.DataFrame):
            raise InputError(f"people: expected a pandas DataFrame, got {type(people).__name__}")
        id_column = id_column if id_column is not None else self.encoder_.schema_.id_column
        with self.sampling_with(sampler):
            results = [r for r, _, _ in answer_blocks(self, [people], options=options,
                                                       best_k=best_k, seed=seed,
                                                       source="people", id_column=id_column)]
        if not results:
            raise InputError("people: no rows")
        result = pd.concat(results, ignore_index=True)
        result.attrs["id_column"] = id_column
        return result

    def plausibility(self) -> PlausibilityFlag:
        """The plausible flag: distance to the nearest observed favourable training rows,
        its threshold calibrated so that about 5% of held-out favourable rows are flagged
        (see genre.core.plausibility). Built on first use, the same after save and load."""
        if getattr(self, "_lof", None) is None:
            self._lof = PlausibilityFlag(seed=self.seed).fit(self.reference_)
        return self._lof

    def _check_fitted(self, X: np.ndarray) -> None:
        if not hasattr(self, "model_"):
            raise ModelError("GenRe is not fitted: call fit(task) or GenRe.load(dir) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.config_.n_features:
            raise InputError(f"expected an array of shape (n, {self.config_.n_features}) for "
                             f"schema '{self.encoder_.schema_.name}', got {X.shape}")

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors (+ h.safetensors/h.json or the user's
        classifier file) and manifest.json (their sizes and sha256). No pickle."""
        if not hasattr(self, "model_"):
            raise ModelError("nothing to save: GenRe is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        source = getattr(self, "classifier_path_", None)
        if isinstance(self.classifier_, TorchClassifier):
            save_mlp(self.classifier_, directory, stem="h")
            files = ["h.json", "h.safetensors"]
        elif is_saveable_sklearn(self.classifier_):  # a default h chosen for user data
            save_sklearn(self.classifier_.model, directory / "h.skops")
            files = ["h.skops"]
        elif source is not None:  # a user's .skops / .onnx file travels with the model
            files = [f"classifier{Path(source).suffix.lower()}"]
            shutil.copyfile(source, directory / files[0])
        elif hasattr(self.classifier_, "save_skops"):  # a scikit-learn object given in Python
            files = ["classifier.skops"]
            self.classifier_.save_skops(directory / files[0])
        else:
            raise ModelError("cannot store this classifier with the model: give an MLP h or "
                             "a .skops/.onnx file (classifier_path_)")
        tensors = {k: v.contiguous() for k, v in self.model_.state_dict().items()}
        tensors[BIN_VALUES] = torch.as_tensor(self.bin_values_)
        tensors[REFERENCE] = torch.as_tensor(self.reference_)
        save_file(tensors, str(directory / "model.safetensors"))
        if getattr(self, "student_", None) is not None:
            files += save_student(self.student_, directory)
        meta_log = getattr(self, "train_log_", None)  # a loaded model keeps its record
        meta = {
            "format": "genre-recourse/genre", "version": FORMAT_VERSION,
            "params": self.get_params(), "transformer": self.config_.to_dict(),
            "schema": self.encoder_.schema_.to_dict(),
            "encoder": {"lo": self.encoder_.lo_.tolist(), "hi": self.encoder_.hi_.tolist()},
            "train_log": ({k: v for k, v in asdict(self.log_).items() if k != "history"}
                          if hasattr(self, "log_") else meta_log),
        }
        (directory / "config.json").write_text(json.dumps(meta, indent=2))
        write_manifest(directory, ["config.json", "model.safetensors", *files])
        return directory

    @classmethod
    def load(cls, directory: str | Path, classifier: Classifier | None = None, *,
             require_manifest: bool = False) -> GenRe:
        """Load a saved model: JSON and tensors only, so loading runs no code.

        Checked before anything is built: the files against manifest.json (sizes and sha256;
        a directory saved before manifests existed loads with a GenreWarning, or is refused
        with require_manifest), config.json against its schema (types, ranges, consistency)
        and the safetensors headers against the shapes the config implies; weights must be
        finite. Every failure is a ModelError naming the file.
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
                          "it again to add one", GenreWarning, stacklevel=2)
        schema = check_config(meta, cfg_path)
        self = cls(**meta["params"])
        self.train_log_ = meta["train_log"]
        self.config_ = TransformerConfig.from_dict(meta["transformer"])
        self.encoder_ = Encoder.from_state(schema, meta["encoder"]["lo"], meta["encoder"]["hi"])
        D, n_bins = self.config_.n_features, self.config_.n_bins
        expected = module_shapes(lambda: RecourseTransformer(self.config_))
        expected |= {BIN_VALUES: (D, n_bins), REFERENCE: (None, D)}
        weights = directory / "model.safetensors"
        tensors = load_tensors(weights, expected)
        self.bin_values_ = tensors.pop(BIN_VALUES).numpy()
        self.reference_ = tensors.pop(REFERENCE).numpy()
        if len(self.reference_) < 2 or not ((self.bin_values_ >= 0)
                                            & (self.bin_values_ <= 1)).all():
            raise ModelError(f"{weights}: '{REFERENCE}' needs at least 2 rows and "
                             f"'{BIN_VALUES}' values in [0, 1]")
        model = RecourseTransformer(self.config_)
        model.load_state_dict(tensors)
        self.model_ = model.eval()
        saved = set(manifest["files"]) if manifest is not None else None
        if classifier is not None:
            self.classifier_ = classifier
        elif _saved_file(directory, "h.json", saved):
            self.classifier_ = load_mlp(directory, "h", n_features=D)
        elif _saved_file(directory, "h.skops", saved):
            self.classifier_ = load_sklearn_h(regular_file(directory / "h.skops"))
        else:
            from genre.classifiers.original_units import load_classifier

            files = [p for p in sorted(directory.glob("classifier.*"))
                     if _saved_file(directory, p.name, saved)]
            if not files:
                raise ModelError(f"{directory}: no classifier (h.json, h.skops or "
                                 "classifier.skops/.onnx)")
            self.classifier_ = load_classifier(regular_file(files[0]), self.encoder_)
            self.classifier_path_ = files[0]
        if _saved_file(directory, STUDENT_JSON, saved):
            self.student_ = load_student(directory, D, n_bins)
        elif self.sampler == "student":
            raise ModelError(f"{cfg_path}: sampler is 'student' but the directory holds no "
                             f"{STUDENT_JSON}")
        return self


def _saved_file(directory: Path, name: str, saved: set[str] | None) -> bool:
    """Whether directory/name belongs to the saved model: listed in its manifest, or (a
    directory without one) present."""
    if saved is not None:
        return name in saved
    return (directory / name).exists() or (directory / name).is_symlink()


_PARAMS = ("lambda_", "gamma", "k", "n_bins", "d_model", "n_heads", "n_enc_layers",
           "n_dec_layers", "d_ff", "dropout", "lr", "batch_size", "max_epochs", "patience",
           "max_seconds", "val_frac", "temperature", "sigma", "best_k", "bin_value",
           "stay_in_bin", "seed", "threads", "progress", "device", "select", "sampler")



# ------------------------------------------------------------- config.json's schema
def _integer(lo: int, hi: int | None = None):
    def check(v) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        return None if ok else (f"an integer in [{lo}, {hi}]" if hi is not None
                                else f"an integer >= {lo}")
    return check


def _number(lo: float, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = False,
            infinite: bool = False):
    def check(v) -> str | None:
        ok = (isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)
              and (infinite or math.isfinite(v)) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
        return None if ok else (f"a {'' if infinite else 'finite '}number in "
                                f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")
    return check


def _device(v) -> str | None:
    ok = isinstance(v, str) and (v in ("cpu", "cuda", "auto")
                                 or (v.startswith("cuda:") and v[5:].isdigit()))
    return None if ok else "'cpu', 'cuda', 'cuda:N' or 'auto'"


def _one_of(*choices):
    def check(v) -> str | None:
        return None if any(v is c or (type(v) is type(c) and v == c) for c in choices) \
            else f"one of {list(choices)}"
    return check


# What a saved config may hold: types and ranges (sizes bounded so that a config cannot
# ask for gigabytes), checked before anything is built.
MAX_D_MODEL, MAX_LAYERS, MAX_BINS, MAX_D_FF, MAX_BEST_K = 4096, 64, 1024, 16384, 10_000
PARAM_CHECKS = {
    "lambda_": _number(0), "gamma": _number(0, 1, lo_open=True, hi_open=True),
    "k": _integer(1), "n_bins": _integer(2, MAX_BINS), "d_model": _integer(1, MAX_D_MODEL),
    "n_heads": _integer(1, MAX_D_MODEL), "n_enc_layers": _integer(1, MAX_LAYERS),
    "n_dec_layers": _integer(1, MAX_LAYERS), "d_ff": _integer(1, MAX_D_FF),
    "dropout": _number(0, 1, hi_open=True), "lr": _number(0, lo_open=True),
    "batch_size": _integer(1), "max_epochs": _integer(1), "patience": _integer(0),
    "max_seconds": _number(0, infinite=True), "val_frac": _number(0, 1, hi_open=True),
    "temperature": _number(0, lo_open=True), "sigma": _number(0),
    "best_k": _integer(1, MAX_BEST_K), "bin_value": _one_of("data", "edge"),
    "stay_in_bin": _one_of(True, False), "seed": _integer(0), "threads": _integer(1),
    "progress": _one_of(True, False), "device": _device, "select": _one_of("h", "effort"),
    "sampler": _one_of(*SAMPLERS),
}
# Params a model saved by an older genre lacks (GenRe's default applies when loading).
OPTIONAL_PARAMS = {"device", "select", "sampler"}
TRANSFORMER_CHECKS = {"n_features": _integer(1, 100_000)} | {
    k: PARAM_CHECKS[k] for k in ("n_bins", "d_model", "n_heads", "n_enc_layers",
                                 "n_dec_layers", "d_ff", "dropout")}
CONFIG_KEYS = {"format", "version", "params", "transformer", "schema", "encoder", "train_log"}


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
    missing = sorted(CONFIG_KEYS - set(meta))
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
        if lo > hi:
            raise ModelError(f"{path}: encoder bounds of '{f.name}' have lo {lo} > hi {hi}")
    return schema


# Per-dataset defaults found by benchmarks/genre_search.py (validation individuals from the
# training split; see benchmarks/results/genre_search_<dataset>.md). Unlisted datasets, and
# users' own data, get the class defaults.
PRESETS: dict[str, dict] = {
    "compas": {"gamma": 0.7, "temperature": 2.0, "best_k": 30, "max_seconds": 240.0},
    "adult": {"gamma": 0.5, "temperature": 2.0, "best_k": 30, "max_seconds": 480.0},
    "heloc": {"gamma": 0.5, "temperature": 2.0, "best_k": 10, "max_seconds": 480.0},
}
# A fast preset for demos and smoke tests: a smaller budget, everything else the same.
FAST = {"max_epochs": 40, "patience": 10, "max_seconds": 60.0}


def genre_for(dataset: str, fast: bool = False, **overrides) -> GenRe:
    """GenRe with the measured defaults for a bundled dataset (class defaults otherwise)."""
    return GenRe(**(PRESETS.get(dataset, {}) | (FAST if fast else {}) | overrides))
