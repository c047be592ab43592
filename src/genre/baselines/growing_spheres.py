"""Growing Spheres (Laugel, Lesot, Marsala, Renard & Detyniecki, 2018).

For an individual x rejected by h, in the subspace of its mutable features:
1. Draw `n_samples` points uniformly in the L2 ball of radius eta around x. While some of
   them are accepted by h ("enemies"), halve eta and draw again.
2. Draw points uniformly in successive spherical layers {a < ||z - x||_2 <= a + eta},
   a = eta, 2 eta, ..., until a layer holds an enemy; keep the enemy closest to x (L2).
3. Feature selection: visit the moved coordinates from the smallest move to the largest
   and set each back to x's value whenever the point stays an enemy.
"Uniformly in a layer" is uniform in volume: a Gaussian direction and a radius
r = (U (b^d - a^d) + a^d)^(1/d), as in the authors' `growingspheres` package.

Every candidate is projected onto the schema (bounds, categorical/integer grid, immutables,
monotone directions) before h judges it, so the returned point is exactly what h accepted.
Monotone features are sampled on their allowed side only (|z_j| with the allowed sign), which
keeps the draw uniform on the feasible half of the layer. All individuals advance together:
each iteration samples a (n_active, n_samples, D) block and evaluates h on it in one call.
Individuals without an enemy after `max_layers` layers get a NaN row.
"""

from __future__ import annotations

import numpy as np

from genre.core.method import RecourseMethod
from genre.core.task import RecourseTask


class GrowingSpheres(RecourseMethod):
    """Growing Spheres with the paper's halving and fixed-width layers, batched.

    Hyper-parameters: eta = 0.1 (first radius, as the authors' package), n_samples = 1000
    points per layer (CARLA's n_search_samples), max_halvings = 30, max_layers = 2000,
    feature_selection = True (the paper's sparsity step), threshold = 0.5 (h accepts when its
    probability exceeds it), seed (numpy Generator for the draws), block_points (memory bound
    for one call of h).
    """

    name = "gs"

    def __init__(self, eta: float = 0.1, n_samples: int = 1000, max_halvings: int = 30,
                 max_layers: int = 2000, feature_selection: bool = True, threshold: float = 0.5,
                 seed: int = 0, block_points: int = 500_000):
        self.eta = eta
        self.n_samples = n_samples
        self.max_halvings = max_halvings
        self.max_layers = max_layers
        self.feature_selection = feature_selection
        self.threshold = threshold
        self.seed = seed
        self.block_points = block_points

    def fit(self, task: RecourseTask) -> GrowingSpheres:
        self.task_ = task
        return self

    # ----------------------------------------------------------------- helpers
    def _accepts(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty(len(Z), dtype=bool)
        for s in range(0, len(Z), self.block_points):
            out[s:s + self.block_points] = (
                self.task_.classifier.predict_proba(Z[s:s + self.block_points]) > self.threshold)
        return out

    def _sample(self, rng: np.random.Generator, X: np.ndarray, a: np.ndarray,
                b: np.ndarray) -> np.ndarray:
        """Projected points uniform in the layers a_i < r <= b_i around rows X_i: (k, m, D)."""
        enc = self.task_.encoder
        k, D = X.shape
        m = self.n_samples
        mutable = ~enc.immutable_mask
        d = int(mutable.sum())
        z = rng.standard_normal((k, m, d))
        z /= np.linalg.norm(z, axis=2, keepdims=True).clip(1e-12)
        u = rng.random((k, m))
        lo, hi = (a[:, None] ** d), (b[:, None] ** d)
        r = (lo + u * (hi - lo)) ** (1.0 / d)
        z *= r[..., None]
        mono = enc.monotone[mutable]
        z = np.where(mono > 0, np.abs(z), np.where(mono < 0, -np.abs(z), z))
        Z = np.repeat(X[:, None, :], m, axis=1)
        Z[:, :, mutable] += z
        flat = enc.project(Z.reshape(-1, D), factual=np.repeat(X, m, axis=0))
        return flat.reshape(k, m, D)

    def _select_features(self, X: np.ndarray, E: np.ndarray) -> np.ndarray:
        """Revert moved coordinates, smallest move first, while h still accepts (batched)."""
        out = E.copy()
        move = np.abs(E - X)
        order = np.argsort(move, axis=1, kind="stable")
        rows = np.arange(len(X))
        for k in range(X.shape[1]):
            j = order[:, k]
            moved = move[rows, j] > 0
            if not moved.any():
                continue
            trial = out[moved].copy()
            trial[np.arange(len(trial)), j[moved]] = X[moved, j[moved]]
            ok = self._accepts(trial)
            idx = np.flatnonzero(moved)[ok]
            out[idx] = trial[ok]
        return out

    # ------------------------------------------------------------------ search
    def generate(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        n = len(X)
        out = np.full(X.shape, np.nan)
        if n == 0 or self.task_.encoder.immutable_mask.all():
            return out
        rng = np.random.default_rng(self.seed)
        eta = np.full(n, float(self.eta))
        a = np.zeros(n)  # inner radius of the current draw (0 = the ball)
        halvings = np.zeros(n, dtype=int)
        layers = np.zeros(n, dtype=int)
        growing = np.zeros(n, dtype=bool)  # False: still shrinking the first ball
        active = np.ones(n, dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            b = a[idx] + eta[idx]
            Z = self._sample(rng, X[idx], a[idx], b)
            k, m, D = Z.shape
            acc = self._accepts(Z.reshape(-1, D)).reshape(k, m)
            found = acc.any(axis=1)
            dist = np.where(acc, np.linalg.norm(Z - X[idx, None, :], axis=2), np.inf)
            best = Z[np.arange(k), dist.argmin(axis=1)]
            shrink = ~growing[idx] & found & (halvings[idx] < self.max_halvings)
            # Enemies inside the ball: halve the radius and draw the ball again.
            eta[idx[shrink]] /= 2.0
            halvings[idx[shrink]] += 1
            # An enemy in a layer (or in the ball once halving gave up): done.
            finish = found & ~shrink
            out[idx[finish]] = best[finish]
            active[idx[finish]] = False
            # No enemy: the ball becomes the first layer [eta, 2 eta], a layer moves out.
            empty = idx[~found]
            start = empty[~growing[empty]]
            growing[start] = True
            a[start] = eta[start]
            step = empty[layers[empty] > 0]
            a[step] += eta[step]
            layers[empty] += 1
            active[empty[layers[empty] > self.max_layers]] = False
        ok = ~np.isnan(out).any(axis=1)
        if self.feature_selection and ok.any():
            out[ok] = self._select_features(X[ok], out[ok])
        return out
