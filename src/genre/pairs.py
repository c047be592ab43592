"""Training-pair synthesis: the distribution Q(x+ | x) over favourable targets.

No recourse labels exist, so each source x (an unfavourable training row) is paired with a
target x+ (a favourable row) drawn with weight exp(-lambda * ||x - x+||_1) among its K nearest
feasible targets. Feasible means equal immutables and, optionally, monotone features that
only move in their allowed direction.
"""

from __future__ import annotations

import numpy as np
import torch

TOL = 1e-9  # values are normalised to [0, 1]; equal categories compare exactly in practice


class PairSampler:
    """Q(x+|x) over targets: weights exp(-lambda*L1) over the K nearest feasible targets.

    After construction:
      neighbours_   (n_valid, k_eff) target indices sorted by distance; -1 pads rows with
                    fewer than k_eff feasible targets
      probs_        (n_valid, k_eff) float32 normalised weights, 0 on padding
      source_index_ (n_valid,) rows of X_src that have at least one feasible target
    """

    def __init__(self, X_src: np.ndarray, X_tgt: np.ndarray, immutable: np.ndarray,
                 lambda_: float = 5.0, k: int = 1000, monotone: np.ndarray | None = None,
                 block_size: int = 1024):
        X_src, X_tgt = np.asarray(X_src, dtype=np.float64), np.asarray(X_tgt, dtype=np.float64)
        D = X_src.shape[1]
        if X_src.ndim != 2 or X_tgt.ndim != 2 or X_tgt.shape[1] != D:
            raise ValueError(f"X_src {X_src.shape} and X_tgt {X_tgt.shape} must be (n, D)")
        if len(X_tgt) == 0:
            raise ValueError("no targets to pair with")
        if k < 1 or block_size < 1 or lambda_ < 0:
            raise ValueError("need k >= 1, block_size >= 1 and lambda_ >= 0")
        self.immutable = np.asarray(immutable, dtype=bool).reshape(D)
        self.monotone = (np.zeros(D, dtype=int) if monotone is None
                         else np.asarray(monotone, dtype=int).reshape(D))
        self.lambda_, self.k, self.block_size = float(lambda_), int(k), int(block_size)

        tgt = torch.from_numpy(X_tgt)
        tgt32 = tgt.float()
        k_eff = min(self.k, len(X_tgt))
        # Outputs are preallocated and filled in place: collecting per-block pieces and
        # concatenating them would double the peak memory at adult scale.
        self.neighbours_ = np.full((len(X_src), k_eff), -1, dtype=np.int32)
        self.probs_ = np.zeros((len(X_src), k_eff), dtype=np.float32)
        keep = np.zeros(len(X_src), dtype=bool)
        n = 0  # valid sources so far; their rows are packed at the top
        # Blocks of sources keep the (block, n_tgt) distance matrix the largest temporary.
        for start in range(0, len(X_src), self.block_size):
            src = torch.from_numpy(X_src[start:start + self.block_size])
            dist = torch.cdist(src.float(), tgt32, p=1)
            dist.masked_fill_(~self._feasible(src, tgt), float("inf"))
            d, idx = torch.topk(dist, k_eff, dim=1, largest=False, sorted=True)
            ok = torch.isfinite(d)
            w = torch.where(ok, torch.exp(-self.lambda_ * (d - d[:, :1])), torch.zeros_like(d))
            valid = ok[:, 0]  # sorted ascending: a finite first entry means >= 1 feasible
            m = int(valid.sum())
            self.neighbours_[n:n + m] = torch.where(ok, idx, -1)[valid].numpy()
            self.probs_[n:n + m] = (w / w.sum(dim=1, keepdim=True).clamp_min(1e-30))[valid].numpy()
            keep[start:start + len(src)] = valid.numpy()
            n += m
        self.neighbours_, self.probs_ = self.neighbours_[:n], self.probs_[:n]
        self.source_index_ = np.flatnonzero(keep)

    def _feasible(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """(n_src, n_tgt) bool: the target keeps the immutables and respects monotonicity."""
        ok = torch.ones(len(src), len(tgt), dtype=torch.bool)
        # An immutable must not move either way: it gets both one-sided checks. Loops run over
        # the few constrained columns, each a whole (n_src, n_tgt) comparison.
        for j in np.flatnonzero(self.immutable | (self.monotone > 0)):
            ok &= tgt[None, :, j] >= src[:, j, None] - TOL
        for j in np.flatnonzero(self.immutable | (self.monotone < 0)):
            ok &= tgt[None, :, j] <= src[:, j, None] + TOL
        return ok

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One target index per valid source (aligned with source_index_), drawn from Q."""
        cdf = np.cumsum(self.probs_, axis=1)
        # Scale u by each row's total so float32 round-off can never step past the last
        # positive weight; zero weights add no width to the CDF, so they are never picked.
        u = rng.random(len(cdf)) * cdf[:, -1] if len(cdf) else np.zeros(0)
        col = (cdf <= u[:, None]).sum(axis=1)
        # Positive weights form a prefix of each row (sorted by distance); stay inside it even
        # in the 2**-53 case where u rounds up to the row total.
        col = np.minimum(col, (self.probs_ > 0).sum(axis=1) - 1)
        return self.neighbours_[np.arange(len(col)), col].astype(np.int64)


def split_holdout(n: int, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random (train_idx, val_idx) split of range(n) with round(frac * n) rows held out
    (at least one, and never all, when frac > 0 and n >= 2). Both sorted."""
    if not 0 <= frac < 1:
        raise ValueError(f"frac must be in [0, 1), got {frac}")
    n_val = int(round(frac * n))
    if frac > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
