"""t-SNE maps of real vs generated features (as in Phan et al. 2025, Fig. B9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._validate import as_features

__all__ = ["tsne_embedding"]


def tsne_embedding(
    features: np.ndarray,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    perplexity: float = 30.0,
    method: str = "auto",
) -> np.ndarray:
    """2-D t-SNE of features (scikit-learn, PCA initialisation, fixed seed).

    Parameters
    ----------
    features : (N, D), N >= 3 (e.g. real and generated features stacked).
    labels : optional per-row labels; only checked for length here (the figure's legend uses them).
    perplexity : capped at ``(N - 1) / 3`` so small sets work.
    method : ``"exact"``, ``"barnes_hut"`` or ``"auto"`` (exact up to 1000 samples: faster and
        deterministic at the sizes of per-condition evaluation sets).

    Returns
    -------
    (N, 2) float64 embedding; deterministic for a given seed and input.
    """
    from sklearn.manifold import TSNE

    x = as_features(features)
    if len(x) < 3:
        raise ValueError("t-SNE needs at least 3 samples")
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"{len(labels)} labels for {len(x)} samples")
    perp = float(min(perplexity, (len(x) - 1) / 3.0))
    if method == "auto":
        method = "exact" if len(x) <= 1000 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, method=method)
    return tsne.fit_transform(x).astype(np.float64)
