"""Shared input checks for feature arrays."""

from __future__ import annotations

import numpy as np


def as_features(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Return ``x`` as a finite float64 ``(N, D)`` array with N >= 1."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def as_feature_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two feature sets of equal dimension."""
    x, y = as_features(x, "x_feats"), as_features(y, "y_feats")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return x, y


def sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(x), len(y))``, clipped at 0 against round-off."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)
