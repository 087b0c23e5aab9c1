"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each set's manifold is the union of balls around its samples with radius = distance to the
k-th nearest *other* sample of the same set. Precision = share of generated samples inside the
real manifold (fidelity); recall = share of real samples inside the generated manifold
(coverage of the real distribution).
"""

from __future__ import annotations

import numpy as np

from ._validate import as_feature_pair, sq_dists

__all__ = ["density_coverage", "knn_radii", "precision_recall"]


def knn_radii(feats: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance of each sample to its k-th nearest other sample (self excluded)."""
    if not 1 <= k < len(feats):
        raise ValueError(f"k must be in [1, {len(feats) - 1}] for {len(feats)} samples, got {k}")
    d = np.sqrt(sq_dists(feats, feats))
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds.

    Parameters
    ----------
    real_feats, fake_feats : (N, D), (M, D) features; N, M > k.
    k : neighbour rank defining each ball's radius (3 in the paper).

    Returns
    -------
    (precision, recall), both in [0, 1]; identical sets give (1, 1).
    """
    real, fake = as_feature_pair(real_feats, fake_feats)
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    d = np.sqrt(sq_dists(real, fake))  # (N, M)
    precision = np.mean((d <= r_real[:, None]).any(axis=0))
    recall = np.mean((d <= r_fake[None, :]).any(axis=1))
    return float(precision), float(recall)


def density_coverage(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 5
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), using real-sample k-NN balls only.

    density = mean over generated samples of (number of real balls containing it) / k;
    coverage = share of real balls that contain at least one generated sample.
    """
    real, fake = as_feature_pair(real_feats, fake_feats)
    r_real = knn_radii(real, k)
    inside = np.sqrt(sq_dists(real, fake)) <= r_real[:, None]
    return float(inside.sum(0).mean() / k), float(inside.any(axis=1).mean())
