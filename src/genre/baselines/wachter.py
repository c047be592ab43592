"""Wachter et al. (2017): counterfactuals by gradient descent on prediction loss + lambda * cost.

    minimise over x'   BCE(h(x'), 1) + lambda * ||x' - x||_1

as in CARLA's `wachter_recourse` (BCE loss, Adam with amsgrad, lr 0.01, lambda 0.01, at most
1000 steps per round). Following CARLA, an individual stops as soon as h accepts it
(h(x') > threshold). Like CARLA, which evaluates h on its encoding-constrained point
(`reconstruct_encoding_constraints`), acceptance is judged on x' snapped to the schema's grid
(categoricals and integers rounded), while the gradient acts on the continuous x'. An
individual still rejected after a round of `n_iter` steps starts another round with a smaller
cost weight (CARLA subtracts 0.05 each round; we do the same but stop at zero, where CARLA
would go negative and reward moving away). `max_rounds` replaces CARLA's wall-clock timeout
so that results do not depend on machine speed.

The search runs on the whole batch at once (one (n, D) tensor, one Adam optimiser; rows that
are done are frozen). Immutable features get a zero gradient, every step is clipped to the
feature bounds (widened to include the factual) and to the allowed side of monotone features,
and the end point is snapped onto the schema with `Encoder.project` (categoricals and integers
to their grid). A projected point that h no longer accepts is kept: validity measures it.

The helpers `gradient_problem` (with its `descend` step) and `finalise` are shared with ROAR
and PROBE, which are the same kind of search with another loss.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from genre.core.method import RecourseMethod
from genre.core.task import RecourseTask
from genre.errors import ModelError


def torch_classifier(task: RecourseTask):
    """The task's classifier as a differentiable module (gradient methods need one)."""
    clf = task.classifier
    if not hasattr(clf, "logits"):
        raise ModelError(
            f"task '{task.name}': gradient-based recourse needs a differentiable classifier "
            f"(TorchClassifier with .logits), got {type(clf).__name__}")
    return clf


class GradientProblem:
    """Tensors a batched gradient search needs: start, gradient mask and box per row."""

    def __init__(self, task: RecourseTask, X: np.ndarray):
        enc = task.encoder
        X = np.asarray(X, dtype=float)
        self.x0 = torch.as_tensor(X, dtype=torch.float32)
        mutable = ~enc.immutable_mask
        self.free = torch.as_tensor(mutable, dtype=torch.float32)  # (D,) gradient mask
        lo = np.minimum(enc.lower, X)
        hi = np.maximum(enc.upper, X)
        mono = enc.monotone
        lo = np.where(mono > 0, X, lo)  # may only increase: never below the factual
        hi = np.where(mono < 0, X, hi)  # may only decrease: never above the factual
        lo = np.where(mutable, lo, X)
        hi = np.where(mutable, hi, X)
        self.lo = torch.as_tensor(lo, dtype=torch.float32)
        self.hi = torch.as_tensor(hi, dtype=torch.float32)
        step = enc.grid_step
        self.step = torch.as_tensor(np.where(step > 0, step, 1.0), dtype=torch.float32)
        self.gridded = torch.as_tensor(step > 0)

    def clamp_(self, x: torch.Tensor) -> None:
        """Clip the search variable into the allowed box, in place, without tracking."""
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, self.hi), self.lo))


    def start(self, lr: float):
        """The search variable (at the factual), its Adam optimiser (amsgrad, as CARLA), the
        kept point of each row and the rows' done flags."""
        x = self.x0.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr, amsgrad=True)
        return x, opt, self.x0.clone(), torch.zeros(len(self.x0), dtype=torch.bool)

    def descend(self, opt, x: torch.Tensor, loss: torch.Tensor, keep: torch.Tensor,
                done: torch.Tensor) -> None:
        """One optimiser step on the rows not done yet: immutables get no gradient, the
        point stays in its box, and rows already done are put back to their kept value."""
        opt.zero_grad(set_to_none=True)
        loss[~done].sum().backward()
        x.grad.mul_(self.free)
        opt.step()
        self.clamp_(x)
        freeze_done(x, keep, done)

    @torch.no_grad()
    def snap(self, x: torch.Tensor) -> torch.Tensor:
        """The point Encoder.project would return for x (x already inside the box)."""
        rounded = torch.where(self.gridded, torch.round(x / self.step) * self.step, x)
        return torch.maximum(torch.minimum(rounded, self.hi), self.lo)


def gradient_problem(task: RecourseTask, X: np.ndarray) -> GradientProblem:
    return GradientProblem(task, X)


def freeze_done(x: torch.Tensor, keep: torch.Tensor, done: torch.Tensor) -> None:
    """Put rows already finished back to their stored value (Adam momentum moves them)."""
    with torch.no_grad():
        x.copy_(torch.where(done[:, None], keep, x))


def finalise(task: RecourseTask, X: np.ndarray, x: torch.Tensor, keep: torch.Tensor,
             done: torch.Tensor) -> np.ndarray:
    """The kept point of rows that are done, the last iterate of the others, snapped onto
    the schema; rows with non-finite values become NaN rows (no recourse)."""
    with torch.no_grad():
        X_plus = torch.where(done[:, None], keep, x.detach()).double().numpy()
    bad = ~np.isfinite(X_plus).all(axis=1)
    X_plus = np.where(bad[:, None], np.asarray(X, dtype=float), X_plus)
    out = task.encoder.project(X_plus, factual=np.asarray(X, dtype=float))
    out[bad] = np.nan
    return out


def logit_threshold(threshold: float) -> float:
    """h(x') > threshold  <=>  logit(x') > log(threshold / (1 - threshold))."""
    return float(np.log(threshold / (1.0 - threshold)))


class GradientRecourse(RecourseMethod):
    """What the gradient searches (Wachter, ROAR, PROBE) share: fit only takes h's torch
    module; all the work happens per query in generate, which runs the subclass's `_search`
    on the batch's GradientProblem and snaps what it kept onto the schema (`finalise`)."""

    def fit(self, task: RecourseTask) -> GradientRecourse:
        self.task_ = task
        self.h_ = torch_classifier(task)
        return self

    def generate(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if len(X) == 0:
            return X.copy()
        x, keep, done = self._search(X, gradient_problem(self.task_, X))
        return finalise(self.task_, X, x, keep, done)

    @abstractmethod
    def _search(self, X: np.ndarray, prob: GradientProblem
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The search on a non-empty batch: (last iterate, kept point, done flags)."""

    def _round_weights(self) -> list[float]:
        """The cost weight of each round (Wachter's schedule, PROBE's too): lambda_, lowered
        by lambda_step after every round, floored at 0; max_rounds rounds."""
        return [max(self.lambda_ - rnd * self.lambda_step, 0.0)
                for rnd in range(self.max_rounds)]


class Wachter(GradientRecourse):
    """Gradient search on BCE(h(x'), 1) + lambda * L1(x', x) with Wachter's lambda schedule.

    Hyper-parameters (defaults from CARLA's Wachter): lambda_ = 0.01 (initial cost weight),
    lambda_step = 0.05 (subtracted after a round without success, floored at 0), lr = 0.01
    (Adam, amsgrad), n_iter = 1000 steps per round, max_rounds = 5, threshold = 0.5 (stop when
    h(x') exceeds it). seed: accepted for a uniform interface; the search is deterministic
    (it starts at the factual and draws nothing), so it changes nothing.
    """

    name = "wachter"

    def __init__(self, lambda_: float = 0.01, lambda_step: float = 0.05, lr: float = 0.01,
                 n_iter: int = 1000, max_rounds: int = 5, threshold: float = 0.5, seed: int = 0):
        self.lambda_ = lambda_
        self.lambda_step = lambda_step
        self.lr = lr
        self.n_iter = n_iter
        self.max_rounds = max_rounds
        self.threshold = threshold
        self.seed = seed

    def _search(self, X: np.ndarray, prob: GradientProblem):
        h = self.h_
        thr = logit_threshold(self.threshold)
        x, opt, keep, done = prob.start(self.lr)
        for lam in self._round_weights():
            for _ in range(self.n_iter):
                logit = h.logits(x)
                with torch.no_grad():
                    newly = (h.logits(prob.snap(x.detach())) > thr) & ~done
                    keep[newly] = x.detach()[newly]
                    done |= newly
                if bool(done.all()):
                    break
                # BCE(sigmoid(logit), 1) = softplus(-logit), numerically stable.
                loss = torch.nn.functional.softplus(-logit) + lam * (x - prob.x0).abs().sum(1)
                prob.descend(opt, x, loss, keep, done)
            if bool(done.all()):
                break
        return x, keep, done
