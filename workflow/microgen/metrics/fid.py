"""Fréchet distance (FID) and kernel distance (KID) between feature sets.

Both are defined on *features*: with the FID Inception-v3 (:class:`InceptionFeatures`) they are
FID/KID proper; with any other extractor they are the Fréchet/kernel distance in that feature
space and must be reported with its name. FID is biased upward for small N and needs
N > D for a full-rank covariance (Inception: D = 2048), which is why data-scarce work (Phan et
al. 2025, A2) prefers CMMD; KID is unbiased and usable with a few hundred images.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ._validate import as_feature_pair

__all__ = ["fid", "frechet_distance", "kid"]


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2)``, with
    ``scipy.linalg.sqrtm``. If the product is singular (non-finite root), ``eps * I`` is added to
    both covariances (as pytorch-fid does); a small imaginary part from round-off is dropped, a
    large one raises.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):
        warnings.warn(f"singular covariance product; adding {eps} to the diagonals", stacklevel=2)
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid(x_feats: np.ndarray, y_feats: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    Parameters
    ----------
    x_feats, y_feats : (N, D), (M, D) features, N, M >= 2 (unbiased covariances, ddof = 1,
        as torchmetrics and pytorch-fid).

    Returns
    -------
    float >= 0 (up to round-off); about 0 for identical sets.
    """
    x, y = as_feature_pair(x_feats, y_feats)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("fid needs at least 2 samples per set")
    return frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))


def _poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef: float):
    k_xx = (x @ x.T * gamma + coef) ** degree
    k_yy = (y @ y.T * gamma + coef) ** degree
    k_xy = (x @ y.T * gamma + coef) ** degree
    m, n = len(x), len(y)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return xx + yy - 2.0 * k_xy.mean()


def kid(
    x_feats: np.ndarray,
    y_feats: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Kernel distance: unbiased MMD^2 with the polynomial kernel, averaged over subsets.

    ``k(a, b) = (gamma a.b + coef)^degree`` with ``gamma = 1 / D`` by default (Binkowski et al.
    2018; torchmetrics/torch-fidelity conventions). Each subset draws ``subset_size`` samples
    without replacement from each set (capped at the set size).

    Returns
    -------
    (mean, std) over subsets (std with ddof = 0, as torchmetrics).
    """
    x, y = as_feature_pair(x_feats, y_feats)
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError("kid needs at least 2 samples per set")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    vals = np.array(
        [
            _poly_mmd2_unbiased(
                x[rng.choice(len(x), size, replace=False)],
                y[rng.choice(len(y), size, replace=False)],
                degree,
                gamma,
                coef,
            )
            for _ in range(subsets)
        ]
    )
    return float(vals.mean()), float(vals.std())
