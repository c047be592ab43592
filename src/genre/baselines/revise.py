"""REVISE (Joshi, Koyejo, Vijitbenjaronk, Kim, Ghosh, "Towards Realistic Individual Recourse
and Actionable Explanations in Black-Box Decision Making Systems", 2019): gradient descent in
a VAE's latent space.

Start from z = E[q(z | x)] and minimise, with Adam,
    BCE(h(dec(z)), 1) + lambda_ * ||dec(z) - x||_1
where dec(z) carries x's immutables. After every step the decoded point is projected onto
the schema and judged by h; among the accepted points met along the path the one with the
lowest loss is returned (CARLA's rule), NaN when none was accepted. Defaults are CARLA's:
lambda_ = 0.5, lr = 0.1, 1000 steps. All individuals descend together (the loss is a sum of
per-individual terms, so each latent code gets exactly its own gradient). See
`genre.baselines.vae` for the shared conditional VAE.
"""

from __future__ import annotations

import numpy as np

from genre.baselines.vae import VAESearchMethod


class REVISE(VAESearchMethod):
    name = "revise"

    def __init__(self, lambda_: float = 0.5, lr: float = 0.1, max_iter: int = 1000,
                 latent_dim: int = 8, vae_epochs: int = 10, block_size: int = 1024,
                 seed: int = 0, use_cache: bool = True,
                 num_threads: int | None = 1):
        self.lambda_ = lambda_
        self.lr = lr
        self.max_iter = max_iter
        self.latent_dim = latent_dim
        self.vae_epochs = vae_epochs
        self.block_size = block_size
        self.seed = seed
        self.use_cache = use_cache
        self.num_threads = num_threads

    def generate(self, X: np.ndarray) -> np.ndarray:
        vae = self.vae_

        def start(Xt):  # from the individual's own code, decoded with its immutables
            return vae.encode(Xt)[0], lambda z: vae.decode(z, Xt)

        return self.search_in_blocks(X, start, distance="l1", optimizer="adam")
