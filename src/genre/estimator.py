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

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from genre.base import RecourseMethod
from genre.classifiers.mlp import (
    is_saveable_sklearn,
    load_mlp,
    load_sklearn_h,
    save_mlp,
    save_sklearn,
)
from genre.data.encoder import CHANGE_TOL, Encoder
from genre.data.schema import Schema
from genre.errors import InputError, ModelError
from genre.model import RecourseTransformer, TransformerConfig
from genre.pairs import PairSampler, sparse_targets, split_holdout
from genre.plausibility import PlausibilityFlag
from genre.task import Classifier, RecourseTask, TorchClassifier
from genre.threads import torch_threads

FORMAT_VERSION = 1
BIN_VALUES = "genre.bin_values"  # extra tensors stored beside the transformer's weights
REFERENCE = "genre.reference"
SPARSE_NEIGHBOURS = 3  # real neighbours per source that sparse targets are copied from
SPARSE_COPIES = 4  # sparse targets tried per (source, neighbour)
SPARSE_DEFAULT_CHANGES = 3  # at most this many copied features when max_changes is not set
# With effort keys, a sampled bin this close to the factual's own keeps the factual value (with
# stay_in_bin): the soft-bin loss spreads "unchanged" over about a bin either side, and a
# sub-bin move is noise that would count as a change.
EFFORT_STAY_RADIUS = 1


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
    holds the factual's value keeps it: no change, no cost).
    """

    name = "genre"

    def __init__(self, lambda_: float = 5.0, gamma: float = 0.7, k: int = 1000,
                 n_bins: int = 50, d_model: int = 32, n_heads: int = 4, n_enc_layers: int = 2,
                 n_dec_layers: int = 2, d_ff: int = 64, dropout: float = 0.1, lr: float = 1e-3,
                 batch_size: int = 512, max_epochs: int = 200, patience: int = 20,
                 max_seconds: float = 240.0, val_frac: float = 0.1, temperature: float = 2.0,
                 sigma: float = 0.0, best_k: int = 10, bin_value: str = "data",
                 stay_in_bin: bool = True, seed: int = 0, threads: int = 1,
                 progress: bool = True):
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

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params) -> GenRe:
        """Change hyper-parameters (sampling ones take effect without refitting)."""
        unknown = set(params) - set(_PARAMS)
        if unknown:
            raise ValueError(f"unknown GenRe parameters {sorted(unknown)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, task: RecourseTask) -> GenRe:
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
        src = torch.as_tensor(sources[s_tr][pairs.source_index_], dtype=torch.float32)
        tgt = torch.as_tensor(tgt_rows, dtype=torch.float32)
        # Validation pairs are drawn once, so the validation loss is comparable across epochs.
        v_src = torch.as_tensor(sources[s_val][val_pairs.source_index_], dtype=torch.float32)
        v_tgt = torch.as_tensor(v_tgt_rows[val_pairs.sample(rng)], dtype=torch.float32)

        self.bin_values_ = bin_representatives(targets, self.n_bins, self.bin_value)
        self.config_ = TransformerConfig(enc.n_features, self.n_bins, self.d_model,
                                         self.n_heads, self.n_enc_layers, self.n_dec_layers,
                                         self.d_ff, self.dropout)
        model = RecourseTransformer(self.config_)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best_state, best_val, best_epoch, history = None, math.inf, 0, []
        start = time.perf_counter()
        # disable=None: a bar on a terminal, silence in logs and CI.
        bar = tqdm(range(1, self.max_epochs + 1), desc="GenRe", unit="epoch", leave=False,
                   disable=None if self.progress else True)
        with torch_threads(self.threads):
            for epoch in bar:
                partners = tgt[torch.as_tensor(pairs.sample(rng))]
                model.train()
                perm = torch.randperm(len(src), generator=gen)
                total = 0.0
                for i in range(0, len(src), self.batch_size):
                    idx = perm[i:i + self.batch_size]
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
                                best=best_epoch, elapsed=f"{elapsed:.0f}s")
                if epoch - best_epoch >= self.patience or elapsed > self.max_seconds:
                    break
        bar.close()
        model.load_state_dict(best_state)
        self.model_ = model.eval()
        self.encoder_ = enc
        self.classifier_ = task.classifier
        # Observed favourable rows: the reference the plausibility (LOF) flag is judged by.
        self.reference_ = X[np.asarray(task.y_train) == 1].astype(np.float32)
        self.log_ = TrainLog(len(history), best_epoch, best_val, time.perf_counter() - start,
                             len(src), len(v_src), history)
        return self

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

    def sample(self, X: np.ndarray, n_samples: int = 1, *, seed: int | None = None,
               use_cache: bool = True) -> np.ndarray:
        """n_samples recourse candidates per row: (N, n_samples, D), on the schema's grid."""
        self._check_fitted(X)
        X = np.asarray(X, dtype=np.float64)
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        Xr = np.repeat(X, n_samples, axis=0)  # rows i*n .. i*n+n-1 belong to individual i
        xt = torch.as_tensor(Xr, dtype=torch.float32)
        fixed = torch.as_tensor(self.encoder_.immutable_mask)
        with torch_threads(self.threads):
            # The mask depends on the individual only: build it once per individual.
            mask = self._bin_mask(torch.as_tensor(X, dtype=torch.float32))
            out = self.model_.sample(xt, self.temperature, self.sigma,
                                     mask.repeat_interleave(n_samples, dim=0),
                                     fixed, gen, use_cache=use_cache,
                                     bin_values=torch.as_tensor(self.bin_values_),
                                     stay_in_bin=self.stay_in_bin,
                                     group=n_samples,
                                     max_changes=self.encoder_.schema_.max_changes,
                                     stay_radius=(EFFORT_STAY_RADIUS
                                                  if self.encoder_.schema_.has_effort else 0),
                                     ).double().numpy()
        effort = self.encoder_.schema_.has_effort
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
        rule). With effort keys in the schema: the cheapest (by the schema's effort) sample
        h accepts, or the one h scores highest when h accepts none."""
        best_k = self.best_k if best_k is None else best_k
        cands = self.sample(X, best_k, seed=seed)
        N, K, D = cands.shape
        p = self.classifier_.predict_proba(cands.reshape(N * K, D)).reshape(N, K)
        pick = p.argmax(axis=1)
        if self.encoder_.schema_.has_effort:
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

    def plausibility(self) -> PlausibilityFlag:
        """The plausible flag: distance to the nearest observed favourable training rows,
        its threshold calibrated so that about 5% of held-out favourable rows are flagged
        (see genre.plausibility). Built on first use, the same after save and load."""
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
        """Write config.json + model.safetensors (+ h.safetensors/h.json). No pickle."""
        if not hasattr(self, "model_"):
            raise ModelError("nothing to save: GenRe is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        source = getattr(self, "classifier_path_", None)
        if isinstance(self.classifier_, TorchClassifier):
            save_mlp(self.classifier_, directory, stem="h")
        elif is_saveable_sklearn(self.classifier_):  # a default h chosen for user data
            save_sklearn(self.classifier_.model, directory / "h.skops")
        elif source is not None:  # a user's .skops / .onnx file travels with the model
            shutil.copyfile(source, directory / f"classifier{Path(source).suffix.lower()}")
        else:
            raise ModelError("cannot store this classifier with the model: give an MLP h or "
                             "a .skops/.onnx file (classifier_path_)")
        tensors = {k: v.contiguous() for k, v in self.model_.state_dict().items()}
        tensors[BIN_VALUES] = torch.as_tensor(self.bin_values_)
        tensors[REFERENCE] = torch.as_tensor(self.reference_)
        save_file(tensors, str(directory / "model.safetensors"))
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
        return directory

    @classmethod
    def load(cls, directory: str | Path, classifier: Classifier | None = None) -> GenRe:
        """Load a saved model: JSON and tensors only, so loading runs no code."""
        directory = Path(directory)
        cfg_path = directory / "config.json"
        try:
            meta = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: not a GenRe model directory ({exc})") from exc
        if meta.get("format") != "genre-recourse/genre" or meta.get("version") != FORMAT_VERSION:
            raise ModelError(f"{cfg_path}: not a GenRe model of format version {FORMAT_VERSION}")
        self = cls(**meta["params"])
        self.train_log_ = meta.get("train_log")
        self.config_ = TransformerConfig.from_dict(meta["transformer"])
        schema = Schema.from_dict(meta["schema"], source=str(cfg_path))
        self.encoder_ = Encoder.from_state(schema, meta["encoder"]["lo"], meta["encoder"]["hi"])
        model = RecourseTransformer(self.config_)
        try:
            tensors = load_file(str(directory / "model.safetensors"))
            self.bin_values_ = tensors.pop(BIN_VALUES).numpy()
            self.reference_ = tensors.pop(REFERENCE).numpy()
            model.load_state_dict(tensors)
        except (OSError, RuntimeError, KeyError) as exc:
            raise ModelError(f"{directory}/model.safetensors: cannot load weights ({exc})") from exc
        self.model_ = model.eval()
        if classifier is not None:
            self.classifier_ = classifier
        elif (directory / "h.json").exists():
            self.classifier_ = load_mlp(directory, "h")
        elif (directory / "h.skops").exists():
            self.classifier_ = load_sklearn_h(directory / "h.skops")
        else:
            from genre.classifiers.original_units import load_classifier

            files = sorted(directory.glob("classifier.*"))
            if not files:
                raise ModelError(f"{directory}: no classifier (h.json, h.skops or "
                                 "classifier.skops/.onnx)")
            self.classifier_ = load_classifier(files[0], self.encoder_)
            self.classifier_path_ = files[0]
        return self


_PARAMS = ("lambda_", "gamma", "k", "n_bins", "d_model", "n_heads", "n_enc_layers",
           "n_dec_layers", "d_ff", "dropout", "lr", "batch_size", "max_epochs", "patience",
           "max_seconds", "val_frac", "temperature", "sigma", "best_k", "bin_value",
           "stay_in_bin", "seed", "threads", "progress")


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
