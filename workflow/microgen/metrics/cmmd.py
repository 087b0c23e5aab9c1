"""CMMD: maximum mean discrepancy between (CLIP) embeddings, Jayasumana et al. (CVPR 2024).

Reference constants of google-research/cmmd: embeddings are L2-normalised, Gaussian RBF kernel
``k(x, y) = exp(-gamma ||x - y||^2)`` with ``gamma = 1 / (2 sigma^2)``, ``sigma = 10``, the
biased (minimum-variance, V-statistic) estimator of MMD^2 (Gretton et al. 2012, eq. 5; all
diagonal terms included), multiplied by 1000. Identical sets give exactly 0.

"CMMD" strictly means CLIP ViT-L/14-336 embeddings; with any other extractor report it as
MMD on those features (the tables name the extractor next to every number).
"""

from __future__ import annotations

import numpy as np

from ._validate import as_feature_pair, sq_dists

__all__ = ["cmmd", "mmd_rbf"]


def mmd_rbf(x_feats: np.ndarray, y_feats: np.ndarray, sigma: float = 10.0) -> float:
    """Biased MMD^2 with the Gaussian kernel ``exp(-||x - y||^2 / (2 sigma^2))``.

    Parameters
    ----------
    x_feats, y_feats : (N, D), (M, D) features (used as given, no normalisation).
    sigma : kernel bandwidth.

    Returns
    -------
    float, ``mean K_xx + mean K_yy - 2 mean K_xy`` (all pairs, diagonals included).
    """
    x, y = as_feature_pair(x_feats, y_feats)
    gamma = 1.0 / (2.0 * sigma**2)
    k_xx = np.exp(-gamma * sq_dists(x, x)).mean()
    k_yy = np.exp(-gamma * sq_dists(y, y)).mean()
    k_xy = np.exp(-gamma * sq_dists(x, y)).mean()
    return float(k_xx + k_yy - 2.0 * k_xy)


def cmmd(
    x_feats: np.ndarray,
    y_feats: np.ndarray,
    sigma: float = 10.0,
    scale: float = 1000.0,
    normalize: bool = True,
) -> float:
    """CMMD between two embedding sets (reference: sigma = 10, scale = 1000).

    Parameters
    ----------
    x_feats, y_feats : (N, D), (M, D) image embeddings, e.g. from :class:`CLIPFeatures`.
    sigma : RBF bandwidth; ``gamma = 1 / (2 sigma^2)``.
    scale : multiplier making the number readable (1000 in the paper).
    normalize : L2-normalise each embedding first (CLIP embeddings are already unit-norm;
        the reference implementation relies on that).

    Returns
    -------
    float, ``scale * MMD^2`` (biased estimator), >= 0 up to round-off, 0 for identical sets.
    """
    x, y = as_feature_pair(x_feats, y_feats)
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return scale * mmd_rbf(x, y, sigma=sigma)
