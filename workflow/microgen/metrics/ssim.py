"""Paired structural similarity (SSIM) between real and generated micrographs."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from ._pairing import check_pair_sets

__all__ = ["ssim_matrix", "ssim_paired"]


def ssim_matrix(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """SSIM of every real x generated pair, ``(N_real, N_fake)``.

    ``skimage.metrics.structural_similarity`` with ``data_range=255`` and its defaults (7x7
    uniform window, K1 = 0.01, K2 = 0.03).
    """
    real, fake = check_pair_sets(real, fake, "all")
    return np.array([[structural_similarity(r, f, data_range=255) for f in fake] for r in real])


def ssim_paired(real: np.ndarray, fake: np.ndarray, pairing: str = "all") -> float:
    """Mean SSIM between real and generated gray uint8 images of one condition.

    Parameters
    ----------
    real, fake : (N, H, W), (M, H, W) uint8, same H, W.
    pairing : ``"all"`` (default) = mean over all N x M real/generated pairs of the condition;
        ``"index"`` = mean over ``(real[i], fake[i])`` (needs N = M).

    Returns
    -------
    float in [-1, 1]; 1 for identical images. Low-level only: a generated micrograph can score
    low against every real one and still be a faithful sample (review, sections 7-8).
    """
    real, fake = check_pair_sets(real, fake, pairing)
    if pairing == "index":
        vals = [
            structural_similarity(r, f, data_range=255) for r, f in zip(real, fake, strict=True)
        ]
        return float(np.mean(vals))
    return float(ssim_matrix(real, fake).mean())
