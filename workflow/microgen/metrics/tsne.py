"""t-SNE maps of real vs generated features (as in Phan et al. 2025, Fig. B9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._validate import as_features

__all__ = ["plot_tsne", "tsne_embedding"]


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
    labels : optional per-row labels; only checked for length here (for :func:`plot_tsne`).
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


def plot_tsne(
    embedding: np.ndarray,
    labels: Sequence[str],
    ax=None,
    title: str | None = None,
    feature_name: str | None = None,
):
    """Scatter a t-SNE embedding with one colour per label (e.g. "real", "generated").

    Returns the matplotlib Figure. Axes are labelled "t-SNE 1/2"; the title names the feature
    extractor when ``feature_name`` is given, since the map depends on it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb = np.asarray(embedding)
    labels = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(labels) != len(emb):
        raise ValueError("embedding must be (N, 2) with one label per row")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    else:
        fig = ax.figure
    markers = {"real": "o", "generated": "^"}
    for lab in dict.fromkeys(labels.tolist()):
        sel = labels == lab
        ax.scatter(
            emb[sel, 0],
            emb[sel, 1],
            s=12,
            alpha=0.75,
            label=str(lab),
            marker=markers.get(str(lab), "o"),
        )
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    parts = [p for p in (title, f"features: {feature_name}" if feature_name else None) if p]
    if parts:
        ax.set_title("\n".join(parts))
    ax.legend(frameon=False)
    return fig
