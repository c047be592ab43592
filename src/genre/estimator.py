"""GenRe: learn R(x+ | x) once from synthesised pairs, answer each query by sampling.

fit:      sources = training rows with h(x) <= gamma, targets = rows with h(x) > gamma and
          y = 1; each epoch every source draws a partner from Q(x+|x) (exp(-lambda L1) over
          its K nearest feasible targets); the transformer is trained on those pairs with
          the soft-bin loss; 10% of sources and targets are held out and the checkpoint with
          the lowest validation loss is kept (early stopping on it).
generate: best_k samples per individual, decoded with immutables fixed and forbidden bins
          masked (monotone direction, bounds), snapped to the schema's grid, and the one h
          scores highest is returned.
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
from genre.classifiers.mlp import load_mlp, save_mlp
from genre.data.encoder import Encoder
from genre.data.schema import Schema
from genre.device import resolve_device
from genre.errors import InputError, ModelError
from genre.model import RecourseTransformer, TransformerConfig
from genre.pairs import PairSampler, split_holdout
from genre.task import Classifier, RecourseTask, TorchClassifier
from genre.threads import torch_threads

FORMAT_VERSION = 1
BIN_VALUES = "genre.bin_values"  # extra tensors stored beside the transformer's weights
REFERENCE = "genre.reference"


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
    """Several recourses per person: (N, k, D) profiles, h's probability, L1 cost, LOF flag."""

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
                 progress: bool = True, device: str = "cpu"):
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
        pairs = PairSampler(sources[s_tr], targets[t_tr], enc.immutable_mask, self.lambda_,
                            self.k, enc.monotone)
        if len(pairs.source_index_) == 0:
            raise InputError(f"{task.name}: no training row with h <= {self.gamma} has a "
                             "feasible favourable target (same immutables, monotone features "
                             "moved only the allowed way) to learn from")
        val_pairs = PairSampler(sources[s_val], targets[t_val], enc.immutable_mask,
                                self.lambda_, self.k, enc.monotone)
        src = torch.as_tensor(sources[s_tr][pairs.source_index_], dtype=torch.float32,
                              device=device)
        tgt = torch.as_tensor(targets[t_tr], dtype=torch.float32, device=device)
        # Validation pairs are drawn once, so the validation loss is comparable across epochs.
        v_src = torch.as_tensor(sources[s_val][val_pairs.source_index_], dtype=torch.float32,
                                device=device)
        v_tgt = torch.as_tensor(targets[t_val][val_pairs.sample(rng)], dtype=torch.float32,
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
                                best=best_epoch, elapsed=f"{elapsed:.0f}s")
                if epoch - best_epoch >= self.patience or elapsed > self.max_seconds:
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
        return self

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
        Xr = np.repeat(X, n_samples, axis=0)  # rows i*n .. i*n+n-1 belong to individual i
        xt = torch.as_tensor(Xr, dtype=torch.float32, device=device)
        fixed = torch.as_tensor(self.encoder_.immutable_mask)
        with torch_threads(self.threads):
            # The mask depends on the individual only: build it once per individual.
            mask = self._bin_mask(torch.as_tensor(X, dtype=torch.float32)).to(device)
            out = self.model_on(device).sample(
                xt, self.temperature, self.sigma, mask.repeat_interleave(n_samples, dim=0),
                fixed, gen, use_cache=use_cache, bin_values=torch.as_tensor(self.bin_values_),
                stay_in_bin=self.stay_in_bin, group=n_samples).cpu().double().numpy()
        # Immutables copy the factual exactly (float32 round-off aside); the rest is snapped
        # to categories / integers / bounds, and a monotone feature that stayed inside its
        # factual's bin keeps the factual value.
        out = self.encoder_.project(out, factual=Xr)
        return out.reshape(len(X), n_samples, -1)

    def generate(self, X: np.ndarray, best_k: int | None = None, *,
                 seed: int | None = None) -> np.ndarray:
        """One recourse per row: of best_k samples, the one h scores highest."""
        best_k = self.best_k if best_k is None else best_k
        cands = self.sample(X, best_k, seed=seed)
        N, K, D = cands.shape
        p = self.classifier_.predict_proba(cands.reshape(N * K, D)).reshape(N, K)
        return cands[np.arange(N), p.argmax(axis=1)]

    def options(self, X: np.ndarray, k: int = 3, n_samples: int | None = None, *,
                seed: int | None = None) -> Options:
        """Up to k distinct recourses per row that h accepts, cheapest first.

        Draws n_samples candidates (default max(best_k, 10 k)) per person, keeps the distinct
        ones h scores favourable, ranks them by L1 cost. Padding is NaN.
        """
        n_samples = max(self.best_k, 10 * k) if n_samples is None else n_samples
        cands = self.sample(X, n_samples, seed=seed)
        N, S, D = cands.shape
        flat = cands.reshape(N * S, D)
        prob = self.classifier_.predict_proba(flat).reshape(N, S)
        cost = np.abs(cands - np.asarray(X, dtype=float)[:, None, :]).sum(axis=2)
        out = np.full((N, k, D), np.nan)
        out_prob = np.full((N, k), np.nan)
        out_cost = np.full((N, k), np.nan)
        for i in range(N):  # per person: dedupe a few dozen rows, cheap
            ok = np.flatnonzero(prob[i] > 0.5)
            if ok.size == 0:
                continue
            _, first = np.unique(np.round(cands[i, ok], 9), axis=0, return_index=True)
            keep = ok[first]
            keep = keep[np.argsort(cost[i, keep], kind="stable")][:k]
            out[i, :len(keep)] = cands[i, keep]
            out_prob[i, :len(keep)] = prob[i, keep]
            out_cost[i, :len(keep)] = cost[i, keep]
        found = ~np.isnan(out_prob)
        plausible = np.zeros((N, k), dtype=bool)
        if found.any():
            plausible[found] = self.plausibility().predict(out[found]) == 1
        return Options(out, out_prob, out_cost, plausible)

    def plausibility(self):
        """LOF (n_neighbors=5, novelty) on the observed favourable training rows."""
        if getattr(self, "_lof", None) is None:
            from sklearn.neighbors import LocalOutlierFactor

            self._lof = LocalOutlierFactor(n_neighbors=5, novelty=True).fit(self.reference_)
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
        else:
            from genre.classifiers.original_units import load_classifier

            files = sorted(directory.glob("classifier.*"))
            if not files:
                raise ModelError(f"{directory}: no classifier (h.json or classifier.skops/.onnx)")
            self.classifier_ = load_classifier(files[0], self.encoder_)
            self.classifier_path_ = files[0]
        return self


_PARAMS = ("lambda_", "gamma", "k", "n_bins", "d_model", "n_heads", "n_enc_layers",
           "n_dec_layers", "d_ff", "dropout", "lr", "batch_size", "max_epochs", "patience",
           "max_seconds", "val_frac", "temperature", "sigma", "best_k", "bin_value",
           "stay_in_bin", "seed", "threads", "progress", "device")


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
