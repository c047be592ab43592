"""What a recourse method learns from: the data in normalised space and the classifier h."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from genre.data.encoder import Encoder


@runtime_checkable
class Classifier(Protocol):
    """Anything with predict_proba on normalised arrays returning P(favourable), shape (n,)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class SklearnClassifier:
    """Adapts a fitted scikit-learn classifier (predict_proba -> (n, 2)) to `Classifier`."""

    def __init__(self, model, favourable_index: int = 1):
        self.model = model
        self.favourable_index = favourable_index

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(np.asarray(X, dtype=float))[:, self.favourable_index]


class TorchClassifier:
    """A differentiable classifier: a torch module mapping (n, D) -> logit (n,) or (n, 1).

    Gradient-based methods (Wachter, ROAR, PROBE, guidance) use `module` directly.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module.eval()

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return self.module(X).reshape(-1)

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = []
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        for start in range(0, len(X), 65536):
            out.append(torch.sigmoid(self.logits(X[start:start + 65536])))
        return torch.cat(out).double().numpy() if out else np.zeros(0)


@dataclass
class RecourseTask:
    """Everything a recourse method may use when fitting.

    X_train is normalised (see Encoder); y_train holds 0/1 labels (1 = favourable);
    classifier is the model h whose rejections we explain.
    """

    encoder: Encoder
    X_train: np.ndarray
    y_train: np.ndarray
    classifier: Classifier
    name: str = "task"
    seed: int = 0
    classifier_report: dict | None = None  # held-out figures of a default h we chose

    @property
    def n_features(self) -> int:
        return self.encoder.n_features
