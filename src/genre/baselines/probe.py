"""PROBE (Pawelczyk, Datta, van den Heuvel, Kasneci & Lakkaraju, ICLR 2023): probabilistically
robust recourse.

A person implements x' only approximately, as x' + eps with eps ~ N(0, sigma^2 I). The
recourse invalidation rate IR(x') = P(h(x' + eps) rejects) is approximated to first order:
the logit is Gaussian with mean logit(x') and std sigma * ||grad logit(x')||_2, so
    IR(x') ~= 1 - Phi( logit(x') / (sigma * ||grad logit(x')||_2) ).
The search minimises (as in the authors' code, `wachter_rip_recourse` in their CARLA fork)
    w_ir * max(IR(x') - target, 0) + BCE(h(x'), 1) + lambda * ||x' - x||_1
(their code offers MSE or BCE for the validity term; BCE is used here, as in Wachter/ROAR)
with Adam (amsgrad) for `n_iter` steps per round. After a round an individual is finished if
h accepts it (on the point snapped to the schema's grid, the one that will be returned) and
IR(x') <= target + eps; otherwise another round starts with lambda lowered by `lambda_step`
(floored at 0). The noise is taken on the mutable features only (nobody implements an
immutable attribute), so the gradient norm covers those coordinates.

Batched over individuals: one (n, D) variable, the closed-form IR for every row from one
autograd call (create_graph so the IR term is differentiated too). Immutables get a zero
gradient, steps are clipped to the bounds and monotone directions, and the result is
projected onto the schema.
"""

from __future__ import annotations

import numpy as np
import torch

from genre.baselines.wachter import GradientProblem, GradientRecourse, logit_threshold


def invalidation_rate(h, x: torch.Tensor, free: torch.Tensor, noise_variance: float,
                      create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(logit, closed-form invalidation rate) per row; x must require grad."""
    logit = h.logits(x)
    (grad,) = torch.autograd.grad(logit.sum(), x, create_graph=create_graph)
    scale = np.sqrt(noise_variance) * (grad * free).norm(dim=1).clamp_min(1e-12)
    return logit, torch.special.ndtr(-logit / scale)


class PROBE(GradientRecourse):
    """Probabilistically robust recourse with the Gaussian closed-form invalidation rate.

    Hyper-parameters: invalidation_target = 0.05 and noise_variance = 0.01, n_iter = 200 (the
    GenRe paper's setting); inval_target_eps = 0.005 and invalidation_weight = 3 (the authors'
    code); lambda_ = 0.01 (their CARLA default), lambda_step = 0.1 per extra round (theirs),
    max_rounds = 5 (bounds their time-out loop); lr = 0.001 (their CARLA default);
    threshold = 0.5; seed (uniform interface only: the closed-form search draws nothing).
    """

    name = "probe"

    def __init__(self, lambda_: float = 0.01, invalidation_target: float = 0.05,
                 noise_variance: float = 0.01, n_iter: int = 200, lr: float = 0.001,
                 invalidation_weight: float = 3.0, inval_target_eps: float = 0.005,
                 lambda_step: float = 0.1, max_rounds: int = 5, threshold: float = 0.5,
                 seed: int = 0):
        self.lambda_ = lambda_
        self.invalidation_target = invalidation_target
        self.noise_variance = noise_variance
        self.n_iter = n_iter
        self.lr = lr
        self.invalidation_weight = invalidation_weight
        self.inval_target_eps = inval_target_eps
        self.lambda_step = lambda_step
        self.max_rounds = max_rounds
        self.threshold = threshold
        self.seed = seed

    def _search(self, X: np.ndarray, prob: GradientProblem):
        thr = logit_threshold(self.threshold)
        x, opt, keep, done = prob.start(self.lr)
        for lam in self._round_weights():
            for _ in range(self.n_iter):
                logit, ir = invalidation_rate(self.h_, x, prob.free, self.noise_variance)
                hinge = torch.relu(ir - self.invalidation_target)
                loss = (self.invalidation_weight * hinge + torch.nn.functional.softplus(-logit)
                        + lam * (x - prob.x0).abs().sum(1))
                prob.descend(opt, x, loss, keep, done)
            _, ir = invalidation_rate(self.h_, x, prob.free, self.noise_variance,
                                          create_graph=False)
            with torch.no_grad():
                accepted = self.h_.logits(prob.snap(x.detach())) > thr
                ok = (accepted & (ir <= self.invalidation_target + self.inval_target_eps)
                      & ~done)
                keep[ok] = x.detach()[ok]
                done |= ok
            if bool(done.all()):
                break
        return x, keep, done
