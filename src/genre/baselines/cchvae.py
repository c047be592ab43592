"""CCHVAE (Pawelczyk, Broelemann, Kasneci, "Learning Model-Agnostic Counterfactual
Explanations for Tabular Data", WWW 2020): growing-sphere search in a VAE's latent space.

For an individual x with latent code z = E[q(z | x)], sample `n_search_samples` points
uniformly in radius from the shell [r, r + step) around z (random directions, L2 radius),
decode them (immutables copied from x), project them onto the schema and ask h. The first
shell that contains at least one accepted point ends the search; the accepted point closest
to x in L1 (normalised input space) is the recourse. The radius grows by `step` per round,
for at most `max_iter` rounds. Hyper-parameters default to CARLA's (300 samples, step 0.1,
1000 rounds). The search is model-agnostic: h is only queried via predict_proba.

Differences from CARLA's code, on purpose: only z is perturbed (CARLA also perturbs the
immutable conditioning values it appends to z); all individuals are searched together, each
leaving the batch as soon as its shell holds an accepted point; candidates are projected
onto the schema (categoricals/integers on their grid, monotone moves respected) before h
judges them, so what is returned is exactly what was judged. See `genre.baselines.vae` for
the shared conditional VAE.
"""

from __future__ import annotations

import numpy as np
import torch

from genre.baselines.vae import VAESearchMethod, finite_rows
from genre.utils.threads import torch_threads


class CCHVAE(VAESearchMethod):
    name = "cchvae"
    needs_logits = False  # a search over decoded samples: h is only queried

    def __init__(self, n_search_samples: int = 300, step: float = 0.1, max_iter: int = 1000,
                 threshold: float = 0.5, latent_dim: int = 8, vae_epochs: int = 10,
                 block_size: int = 256, seed: int = 0, use_cache: bool = True,
                 num_threads: int | None = 1):
        self.n_search_samples = n_search_samples
        self.step = step
        self.max_iter = max_iter
        self.threshold = threshold
        self.latent_dim = latent_dim
        self.vae_epochs = vae_epochs
        self.block_size = block_size
        self.seed = seed
        self.use_cache = use_cache
        self.num_threads = num_threads

    def generate(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        out = np.full(X.shape, np.nan)
        ok = np.flatnonzero(finite_rows(X))
        gen = torch.Generator().manual_seed(self.seed)
        with torch_threads(self.num_threads):
            for start in range(0, len(ok), self.block_size):
                rows = ok[start:start + self.block_size]
                out[rows] = self._search(X[rows], gen)
        return self.task_.encoder.project(out, factual=X)

    @torch.no_grad()
    def _search(self, X: np.ndarray, gen: torch.Generator) -> np.ndarray:
        enc, h, vae = self.task_.encoder, self.task_.classifier, self.vae_
        n, D = X.shape
        S = self.n_search_samples
        Xt = torch.as_tensor(X, dtype=torch.float32)
        z0 = vae.encode(Xt)[0]
        L = z0.shape[1]
        out = np.full((n, D), np.nan)
        active = np.arange(n)
        low = 0.0
        for _ in range(self.max_iter):
            if active.size == 0:
                break
            high = low + self.step
            k = active.size
            direction = torch.randn((k, S, L), generator=gen)
            direction /= direction.norm(dim=2, keepdim=True).clamp_min(1e-12)
            radius = low + (high - low) * torch.rand((k, S, 1), generator=gen)
            z = (z0[active, None, :] + direction * radius).reshape(k * S, L)
            factual = np.repeat(X[active], S, axis=0)
            decoded = vae.decode(z, torch.as_tensor(factual, dtype=torch.float32))
            cand = enc.project(decoded.double().numpy(), factual=factual)
            valid = (h.predict_proba(cand) > self.threshold).reshape(k, S)
            dist = np.abs(cand - factual).sum(axis=1).reshape(k, S)
            dist = np.where(valid, dist, np.inf)
            found = valid.any(axis=1)
            if found.any():
                pick = np.argmin(dist[found], axis=1)
                flat = np.flatnonzero(found) * S + pick
                out[active[found]] = cand[flat]
                active = active[~found]
            low = high
        return out
