"""ROAR (Upadhyay, Joshi & Lakkaraju, NeurIPS 2021): recourse robust to model shifts.

ROAR solves  min_{x'} max_{delta in Delta}  l(f_{W + delta}(x'), 1) + lambda * ||x' - x||_1
for a linear (logistic) model f_W(x') = sigmoid(w . x' + b) with W = (w, b), and handles a
non-linear classifier through a local linear approximation of it. Delta is the box
|delta_j| <= delta_max on every weight and the bias (CARLA solves the inner problem as a linear
program with those bounds; `delta_norm="l2"` uses the L2 ball of radius delta_max instead).

Inner maximisation, in closed form: the loss falls as the robust logit rises, so the worst
shift lowers the logit as much as it can. With x~ = (x', 1):
    box:  delta = -delta_max * sign(x~)           -> logit drops by delta_max * ||x~||_1
    L2:   delta = -delta_max * x~ / ||x~||_2      -> logit drops by delta_max * ||x~||_2
As in CARLA the optimal delta is computed, then held fixed for the gradient step on x'.

Outer minimisation: Adam (amsgrad) on x', lr 0.01, BCE loss, until the loss changes by less
than `loss_threshold` between steps (CARLA's stopping rule; `max_iter` replaces its timeout).

The linear model (`surrogate`):
  "gradient" (default) - the first-order Taylor expansion of h's logit at the current x'
      (w = grad logit(x'), b = logit(x') - w . x'), re-taken every step. For a linear h this
      is exactly ROAR; for the MLP it keeps the robust objective tied to h itself.
  "lime" - CARLA's route: one LIME-style local linear surrogate per individual, fit once at the
      factual (Gaussian samples around x with the training standard deviation, exponential
      kernel of width 0.75 sqrt(D), ridge regression with alpha 1, as lime's defaults) and
      then used for the whole search. We regress h's logit (lime regresses the probability,
      which CARLA then treats as a logit). Validity against h is not guaranteed here.
Everything is batched over individuals.
"""

from __future__ import annotations

import numpy as np
import torch

from genre.baselines.wachter import GradientProblem, GradientRecourse
from genre.core.task import RecourseTask
from genre.errors import InputError


def worst_case_shift(x_tilde: torch.Tensor, delta_max: float, norm: str) -> torch.Tensor:
    """The weight/bias perturbation in Delta that lowers w . x~ most, per row (n, D+1)."""
    if norm == "linf":
        return -delta_max * torch.sign(x_tilde)
    return -delta_max * x_tilde / x_tilde.norm(dim=1, keepdim=True).clamp_min(1e-12)


class ROAR(GradientRecourse):
    """Robust algorithmic recourse against weight shifts of size delta_max (batched).

    Hyper-parameters (defaults from CARLA's Roar): lambda_ = 0.01 (cost weight), delta_max =
    0.01, delta_norm = "linf" (CARLA's box; "l2" for the ball), lr = 0.01, loss_threshold =
    1e-3, max_iter = 1000, surrogate = "gradient" or "lime", lime_samples = 5000 (lime's
    default), seed (LIME sampling).
    """

    name = "roar"

    def __init__(self, lambda_: float = 0.01, delta_max: float = 0.01, delta_norm: str = "linf",
                 lr: float = 0.01, loss_threshold: float = 1e-3, max_iter: int = 1000,
                 surrogate: str = "gradient", lime_samples: int = 5000, seed: int = 0):
        self.lambda_ = lambda_
        self.delta_max = delta_max
        self.delta_norm = delta_norm
        self.lr = lr
        self.loss_threshold = loss_threshold
        self.max_iter = max_iter
        self.surrogate = surrogate
        self.lime_samples = lime_samples
        self.seed = seed

    def fit(self, task: RecourseTask) -> ROAR:
        if self.surrogate not in ("gradient", "lime"):
            raise InputError(
                f"ROAR: surrogate must be 'gradient' or 'lime', got {self.surrogate!r}")
        if self.delta_norm not in ("linf", "l2"):
            raise InputError(f"ROAR: delta_norm must be 'linf' or 'l2', got {self.delta_norm!r}")
        self.train_std_ = np.asarray(task.X_train, dtype=float).std(axis=0)
        return super().fit(task)

    # ---------------------------------------------------------------- surrogates
    @torch.no_grad()
    def _lime(self, X: np.ndarray, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row local linear fit of h's logit around each factual: (w (n, D), b (n,))."""
        n, D = X.shape
        x0 = torch.as_tensor(X, dtype=torch.float32)
        std = torch.as_tensor(np.where(self.train_std_ > 0, self.train_std_, 1.0),
                              dtype=torch.float32)
        m = self.lime_samples
        ws, bs = [], []
        width = 0.75 * np.sqrt(D)
        chunk = max(1, 200_000 // m)  # bounds memory only; each chunk is one batched fit
        for start in range(0, n, chunk):
            xb = x0[start:start + chunk]
            eps = torch.randn(len(xb), m, D, generator=gen) * std
            eps[:, 0] = 0.0  # lime keeps the instance itself as the first sample
            Z = xb[:, None, :] + eps
            y = self.h_.logits(Z.reshape(-1, D)).reshape(len(xb), m)
            # lime: distance on standardised features, kernel sqrt(exp(-d^2 / width^2)) used
            # as the ridge regression's sample weights.
            d = (eps / std).norm(dim=2)
            sw = torch.sqrt(torch.exp(-(d ** 2) / width ** 2))
            A = torch.cat([Z, torch.ones(len(xb), m, 1)], dim=2)
            AtW = A.transpose(1, 2) * sw[:, None, :]
            reg = torch.eye(D + 1)
            reg[D, D] = 0.0  # ridge does not penalise the intercept
            coef = torch.linalg.solve(AtW @ A + reg, AtW @ y[..., None]).squeeze(-1)
            ws.append(coef[:, :D])
            bs.append(coef[:, D])
        return torch.cat(ws), torch.cat(bs)

    # ------------------------------------------------------------------ search
    def _search(self, X: np.ndarray, prob: GradientProblem):
        gen = torch.Generator().manual_seed(self.seed)
        n = len(X)
        lime = self._lime(X, gen) if self.surrogate == "lime" else None
        x, opt, keep, done = prob.start(self.lr)
        prev = torch.zeros(n)
        ones = torch.ones(n, 1)
        for _ in range(self.max_iter):
            x_tilde = torch.cat([x.detach(), ones], dim=1)
            delta = worst_case_shift(x_tilde, self.delta_max, self.delta_norm)
            if lime is None:
                # Taylor expansion at x': logit(x') + (delta_w . x' + delta_b), delta held fixed.
                logit = self.h_.logits(x) + (delta * torch.cat([x, ones], dim=1)).sum(1)
            else:
                w, b = lime
                logit = ((w + delta[:, :-1]) * x).sum(1) + b + delta[:, -1]
            loss = torch.nn.functional.softplus(-logit) + self.lambda_ * (x - prob.x0).abs().sum(1)
            with torch.no_grad():
                conv = ((loss.detach() - prev).abs() <= self.loss_threshold) & ~done
                keep[conv] = x.detach()[conv]
                done |= conv
                prev = loss.detach()
            if bool(done.all()):
                break
            prob.descend(opt, x, loss, keep, done)
        return x, keep, done
