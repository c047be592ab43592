"""Training-pair synthesis: the distribution Q(x+ | x) over favourable targets.

No recourse labels exist, so each source x (an unfavourable training row) is paired with a
target x+ (a favourable row) drawn with weight exp(-lambda * ||x - x+||_1) among its K nearest
feasible targets. Feasible means equal immutables and, optionally, monotone features that
only move in their allowed direction (and at most max_changes changed features).

With a schema's effort keys the distance is the schema's effort (`Encoder.effort_terms`:
weighted per-unit cost plus a cost per changed feature) instead of L1, and each source may
also be offered its own sparse targets (`sparse_targets`: the source with a few features
copied from a real favourable neighbour, kept only where h accepts the result).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from genre.data.encoder import CHANGE_TOL

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
                 block_size: int = 1024, *, effort: tuple[np.ndarray, np.ndarray] | None = None,
                 max_changes: int | None = None, extra: np.ndarray | None = None,
                 extra_owner: np.ndarray | None = None,
                 moves: list[tuple[int, np.ndarray]] | None = None):
        """effort: (per_unit, per_change) of `Encoder.effort_terms`; None = plain L1.
        max_changes: targets changing more features than this are infeasible.
        extra (m, D), extra_owner (m,): targets offered only to source row extra_owner[i]
        (besides its K nearest); they are indexed len(X_tgt) + i in `neighbours_` and
        `sample`, and must be feasible for their owner (they are not checked).
        moves: [(j, table)] for categorical features with never/allowed rules: table[a, b]
        says whether category a may move to b (codes = normalised value * (n - 1))."""
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
        self.effort, self.max_changes = effort, max_changes
        self.moves = list(moves or ())
        own, n_own = _by_owner(extra_owner, len(X_src))
        extra_t = None if extra is None else torch.from_numpy(np.asarray(extra, np.float64))

        tgt = torch.from_numpy(X_tgt)
        tgt32 = tgt.float()
        k_eff = min(self.k, len(X_tgt)) + n_own
        # Outputs are preallocated and filled in place: collecting per-block pieces and
        # concatenating them would double the peak memory at adult scale.
        self.neighbours_ = np.full((len(X_src), k_eff), -1, dtype=np.int32)
        self.probs_ = np.zeros((len(X_src), k_eff), dtype=np.float32)
        keep = np.zeros(len(X_src), dtype=bool)
        n = 0  # valid sources so far; their rows are packed at the top
        # Blocks of sources keep the (block, n_tgt) distance matrix the largest temporary.
        for start in range(0, len(X_src), self.block_size):
            src = torch.from_numpy(X_src[start:start + self.block_size])
            dist = self._distance(src, tgt, tgt32)
            dist.masked_fill_(~self._feasible(src, tgt), float("inf"))
            d, idx = torch.topk(dist, k_eff - n_own, dim=1, largest=False, sorted=True)
            if n_own:  # each source's own extra targets join its nearest real ones
                mine = torch.from_numpy(own[start:start + len(src)])
                rows = extra_t[mine.clamp_min(0)]
                d_own = self._pair_distance(src[:, None, :], rows).float()
                d_own.masked_fill_(mine < 0, float("inf"))
                d, order = torch.sort(torch.cat([d, d_own], dim=1), dim=1)
                idx = torch.cat([idx, mine + len(X_tgt)], dim=1).gather(1, order)
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

    def _distance(self, src: torch.Tensor, tgt: torch.Tensor, tgt32: torch.Tensor) -> torch.Tensor:
        """(n_src, n_tgt) float32: L1, or the schema's effort when one is given."""
        if self.effort is None:
            return torch.cdist(src.float(), tgt32, p=1)
        per_unit, per_change = (torch.from_numpy(np.asarray(a, np.float64)).float()
                                for a in self.effort)
        dist = torch.cdist(src.float() * per_unit, tgt32 * per_unit, p=1)
        for j in np.flatnonzero(per_change > 0):  # the few columns whose change has a price
            dist += per_change[j] * ((src[:, j, None] - tgt[None, :, j]).abs() > CHANGE_TOL)
        return dist

    def _pair_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise distance (broadcast) between a and b (..., D), as `_distance` counts it."""
        diff = (a - b).abs()
        if self.effort is None:
            return diff.sum(-1)
        per_unit, per_change = (torch.from_numpy(np.asarray(t, np.float64)) for t in self.effort)
        return diff @ per_unit + (diff > CHANGE_TOL).double() @ per_change

    def _feasible(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """(n_src, n_tgt) bool: the target keeps the immutables, respects monotonicity and
        changes at most max_changes features."""
        ok = torch.ones(len(src), len(tgt), dtype=torch.bool)
        if self.max_changes is not None:
            n = torch.zeros(len(src), len(tgt), dtype=torch.int16)
            for j in np.flatnonzero(~self.immutable):
                n += (src[:, j, None] - tgt[None, :, j]).abs() > CHANGE_TOL
            ok &= n <= self.max_changes
        # An immutable must not move either way: it gets both one-sided checks. Loops run over
        # the few constrained columns, each a whole (n_src, n_tgt) comparison.
        for j in np.flatnonzero(self.immutable | (self.monotone > 0)):
            ok &= tgt[None, :, j] >= src[:, j, None] - TOL
        for j in np.flatnonzero(self.immutable | (self.monotone < 0)):
            ok &= tgt[None, :, j] <= src[:, j, None] + TOL
        for j, table in self.moves:  # the schema's never/allowed category rules
            n = len(table)
            def code(v, n=n):
                return (v * max(n - 1, 1)).round().clamp(0, n - 1).long()
            ok &= torch.from_numpy(table)[code(src[:, j])][:, code(tgt[:, j])]
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


def _by_owner(owner: np.ndarray | None, n_src: int) -> tuple[np.ndarray, int]:
    """(n_src, E) int64: indices of each source's extra targets, -1 padded; and E."""
    if owner is None or len(owner) == 0:
        return np.zeros((n_src, 0), dtype=np.int64), 0
    owner = np.asarray(owner, dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=n_src)
    width = int(counts.max())
    table = np.full((n_src, width), -1, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(owner)) - np.repeat(starts, counts)
    table[owner[order], slot] = order
    return table, width


def sparse_targets(X_src: np.ndarray, X_tgt: np.ndarray, neighbours: np.ndarray,
                   accept: Callable[[np.ndarray], np.ndarray], max_changes: int,
                   per_neighbour: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Targets that change only a few features: for each source row i and each of its real
    neighbours t = X_tgt[neighbours[i, c]] (-1 = none), `per_neighbour` copies of X_src[i]
    with a random subset of 1..max_changes of the features where t differs copied from t
    (a subset smaller than all of them, so the copy is not t itself). A copy is kept only
    where accept(copies) is True (the caller's "h accepts it"); duplicates are dropped.

    Returns (extra (m, D), owner (m,)): each kept target and the source row it belongs to.
    Copies of a feasible neighbour stay feasible: every copied value is the neighbour's.
    """
    D = X_src.shape[1]
    src_rows = np.nonzero(neighbours >= 0)[0]
    src_rows = np.repeat(src_rows, per_neighbour)
    nbr = X_tgt[np.repeat(neighbours[neighbours >= 0], per_neighbour)]
    base = X_src[src_rows]
    differs = np.abs(nbr - base) > CHANGE_TOL
    n_diff = differs.sum(axis=1)
    size = np.minimum(rng.integers(1, max_changes + 1, len(base)), n_diff - 1)
    # A random subset of `size` of the differing features: the smallest random keys among them.
    keys = np.where(differs, rng.random(differs.shape), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    take = differs & (rank < size[:, None])
    cand = np.where(take, nbr, base)
    keep = size >= 1
    cand, src_rows = cand[keep], src_rows[keep]
    if len(cand):
        ok = np.asarray(accept(cand), dtype=bool)
        cand, src_rows = cand[ok], src_rows[ok]
    if len(cand):
        _, first = np.unique(np.column_stack([src_rows, np.round(cand, 9)]), axis=0,
                             return_index=True)
        first = np.sort(first)
        cand, src_rows = cand[first], src_rows[first]
    return cand.reshape(-1, D), src_rows


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
