"""A standardised, class-balanced logistic head on frozen features, and the same head as one Dense layer.

The statistics head of the shipped model is one of these (training.stats_head), folded into the model's Dense
layer; the probes in training/experiments fit the same head on other features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LinearHead:
    """A fitted logistic head on standardised features: sigmoid(((x - mean) / scale) . coef + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(features)))

    def logit(self, features: np.ndarray) -> np.ndarray:
        kernel, bias = self.dense_weights()
        return np.asarray(features, np.float64) @ kernel + bias

    def dense_weights(self) -> tuple[np.ndarray, float]:
        """The same head as one Dense layer on raw features: the standardisation folded into kernel and bias."""
        kernel = self.coef / self.scale
        return kernel, float(self.intercept - np.dot(kernel, self.mean))


def fit_head(features: np.ndarray, labels: np.ndarray, c: float) -> LinearHead:
    """A standardised, class-balanced logistic regression on ``features``."""
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, np.float64)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    head = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit((features - mean) / scale, labels)
    return LinearHead(mean, scale, head.coef_[0].astype(np.float64), float(head.intercept_[0]))
