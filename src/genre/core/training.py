"""Training GenRe's network: pairs from Q(x+|x), the soft-bin loss, early stopping.

sources = training rows with h(x) <= gamma, targets = rows with h(x) > gamma and y = 1; each
epoch every source draws a partner from Q(x+|x) (exp(-lambda L1) over its K nearest feasible
targets; with the schema's effort keys, exp(-lambda effort), plus sparse targets); the
transformer is trained on those pairs with the soft-bin loss; val_frac of sources and targets
are held out and the checkpoint with the lowest validation loss is kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from genre.core.network import RecourseTransformer, TransformerConfig
from genre.core.pairs import PairSampler, sparse_targets, split_holdout
from genre.core.task import RecourseTask
from genre.errors import InputError
from genre.tables.constraints import category_moves
from genre.utils.threads import torch_threads

LOG_EVERY = 10  # without a terminal (no progress bar), fit logs one line per LOG_EVERY epochs
log = logging.getLogger("genre.core.estimator")  # the estimator's log, as users know it
SPARSE_NEIGHBOURS = 3  # real neighbours per source that sparse targets are copied from
SPARSE_COPIES = 4  # sparse targets tried per (source, neighbour)
SPARSE_DEFAULT_CHANGES = 3  # at most this many copied features when max_changes is not set


@dataclass
class TrainLog:
    epochs: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    n_train_pairs: int
    n_val_pairs: int
    history: list  # (epoch, train_loss, val_loss, seconds)
    stopped_by: str = "max_epochs"  # or "patience", or "max_seconds" (a wall-clock cap fired)


@dataclass
class Trained:
    """What training learns: the network (on the CPU, eval mode), its config, the value each
    bin decodes to, the favourable training rows (the plausibility reference) and the log."""

    model: RecourseTransformer
    config: TransformerConfig
    bin_values: np.ndarray
    reference: np.ndarray
    log: TrainLog


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


def train(p, task: RecourseTask, device: torch.device) -> Trained:
    """Fit the network with the hyper-parameters of `p` (a GenRe) on `task`.

    Parameters
    ----------
    p : GenRe
        Supplies the hyper-parameters (read only).
    task : RecourseTask
        Encoder, normalised training rows and labels, and h.
    device : torch.device
        Where the network trains.

    Returns
    -------
    Trained
    """
    rng = np.random.default_rng(p.seed)
    torch.manual_seed(p.seed)
    X = np.asarray(task.X_train, dtype=np.float64)
    prob = task.classifier.predict_proba(X)
    sources = X[prob <= p.gamma]
    targets = X[(prob > p.gamma) & (np.asarray(task.y_train) == 1)]
    if len(sources) < 2 or len(targets) < 2:
        raise InputError(f"{task.name}: too few training rows to pair "
                         f"({len(sources)} with h <= {p.gamma}, {len(targets)} "
                         f"favourable with h > {p.gamma})")
    s_tr, s_val = split_holdout(len(sources), p.val_frac, rng)
    t_tr, t_val = split_holdout(len(targets), p.val_frac, rng)
    pairs, tgt_rows = make_pairs(p, task, sources[s_tr], targets[t_tr], rng)
    if len(pairs.source_index_) == 0:
        raise InputError(f"{task.name}: no training row with h <= {p.gamma} has a "
                         "feasible favourable target (same immutables, monotone features "
                         "moved only the allowed way, at most max_changes changes) to "
                         "learn from")
    val_pairs, v_tgt_rows = make_pairs(p, task, sources[s_val], targets[t_val], rng)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    src, tgt = tensor(sources[s_tr][pairs.source_index_]), tensor(tgt_rows)
    # Validation pairs are drawn once, so the validation loss is comparable across epochs.
    v_src = tensor(sources[s_val][val_pairs.source_index_])
    v_tgt = tensor(v_tgt_rows[val_pairs.sample(rng)])
    bin_values = bin_representatives(targets, p.n_bins, p.bin_value)
    config = TransformerConfig(task.encoder.n_features, p.n_bins, p.d_model, p.n_heads,
                               p.n_enc_layers, p.n_dec_layers, p.d_ff, p.dropout)
    model = RecourseTransformer(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    gen = torch.Generator().manual_seed(p.seed)
    best_state, best_val, best_epoch, history = None, math.inf, 0, []
    stopped_by = "max_epochs"
    start = time.perf_counter()
    # disable=None: a bar on a terminal, silence in logs and CI.
    bar = tqdm(range(1, p.max_epochs + 1), desc="GenRe", unit="epoch", leave=False,
               disable=None if p.progress else True)
    with torch_threads(p.threads):
        for epoch in bar:
            partners = tgt[torch.as_tensor(pairs.sample(rng), device=device)]
            model.train()
            perm = torch.randperm(len(src), generator=gen)
            total = 0.0
            for i in range(0, len(src), p.batch_size):
                idx = perm[i:i + p.batch_size].to(device)
                loss = model.loss(src[idx], partners[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            train_loss = total / len(src)
            val_loss = validation_loss(model, v_src, v_tgt)
            elapsed = time.perf_counter() - start
            history.append((epoch, train_loss, val_loss, elapsed))
            if val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", best=best_epoch)
            stopped_by = ("patience" if epoch - best_epoch >= p.patience else
                          "max_seconds" if p.max_seconds is not None
                          and elapsed > p.max_seconds else "max_epochs")
            stop = stopped_by != "max_epochs"
            if p.progress and bar.disable and (epoch % LOG_EVERY == 0 or stop
                                               or epoch == p.max_epochs):
                log.info("GenRe epoch %d/%d: train loss %.3f, validation loss %.3f (best "
                         "%.3f at epoch %d), %.0f s elapsed", epoch, p.max_epochs,
                         train_loss, val_loss, best_val, best_epoch, elapsed)
            if stop:
                break
    bar.close()
    if stopped_by == "max_seconds":
        log.warning("GenRe: training stopped by max_seconds=%s after %d epochs (best %d)",
                    p.max_seconds, len(history), best_epoch)
    model.load_state_dict(best_state)
    # Observed favourable rows: the reference the plausibility flag is judged by.
    reference = X[np.asarray(task.y_train) == 1].astype(np.float32)
    return Trained(model.cpu().eval(), config, bin_values, reference,
                   TrainLog(len(history), best_epoch, best_val, time.perf_counter() - start,
                            len(src), len(v_src), history, stopped_by))


def make_pairs(p, task: RecourseTask, sources: np.ndarray, targets: np.ndarray,
               rng: np.random.Generator) -> tuple[PairSampler, np.ndarray]:
    """Q(x+|x) for these sources and targets, and the rows its indices refer to (the
    targets, then any sparse targets). Without effort keys: the paper's L1 pairs."""
    enc = task.encoder
    schema = enc.schema_
    moves = category_moves(enc)  # the schema's never/allowed rules
    if not schema.has_effort:
        return PairSampler(sources, targets, enc.immutable_mask, p.lambda_, p.k,
                           enc.monotone, moves=moves), targets
    effort = enc.effort_terms()
    near = PairSampler(sources, targets, enc.immutable_mask, p.lambda_,
                       SPARSE_NEIGHBOURS, enc.monotone, effort=effort, moves=moves)
    neighbours = np.full((len(sources), near.neighbours_.shape[1]), -1, dtype=np.int64)
    neighbours[near.source_index_] = near.neighbours_
    cap = schema.max_changes or SPARSE_DEFAULT_CHANGES
    extra, owner = sparse_targets(
        sources, targets, neighbours,
        lambda Z: task.classifier.predict_proba(Z) > p.gamma, cap, SPARSE_COPIES, rng)
    pairs = PairSampler(sources, targets, enc.immutable_mask, p.lambda_, p.k,
                        enc.monotone, effort=effort, max_changes=schema.max_changes,
                        extra=extra, extra_owner=owner, moves=moves)
    return pairs, np.vstack([targets, extra])


@torch.no_grad()
def validation_loss(model: RecourseTransformer, x: torch.Tensor, x_plus: torch.Tensor) -> float:
    """The mean loss over (x, x_plus) in eval mode, 4096 rows at a time."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), 4096):
        total += float(model.loss(x[i:i + 4096], x_plus[i:i + 4096])) * len(x[i:i + 4096])
    return total / max(len(x), 1)
