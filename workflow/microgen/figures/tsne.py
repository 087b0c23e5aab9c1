"""Fig. B9 of Phan et al. (2025): t-SNE maps of reference and generated image features, one
panel per generated set. Needs the metrics extra (scikit-learn), unlike the other figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.evaluate.generative import evaluation_images, stage_extractor
from microgen.metrics import FeatureCache, FeatureExtractor, tsne_embedding

from .style import plt, save

__all__ = ["tsne_panels", "draw_tsne_panel", "plot_tsne_sets", "tsne_features", "tsne_stage"]

_REFERENCE_STYLES = (
    dict(color="#C44E52", marker="o"),
    dict(color="#222222", marker="s"),
    dict(color="#8C564B", marker="D"),
)
_GEN_STYLE = dict(color="#4C72B0", marker="^")


def tsne_panels(
    references: Mapping[str, np.ndarray],
    gen_features: Mapping[str, np.ndarray],
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """One 2-D t-SNE per generated set of the reference features stacked with that set's.

    A separate embedding per panel, as in the paper (its panels share no axes): each map
    shows how one set sits against the same references.

    Parameters
    ----------
    references : name -> (N, D) features, e.g. ``{"real": ..., "ground truth": ...}``.
    gen_features : set name -> (M, D) features in the same feature space.
    seed : t-SNE random state (PCA initialisation, so maps are reproducible).

    Returns
    -------
    set name -> DataFrame ``x, y, group`` (``group``: a reference name or ``"generated"``).
    """
    panels = {}
    for name, generated in gen_features.items():
        parts = [*references.values(), generated]
        groups = [g for g, f in references.items() for _ in range(len(f))]
        groups += ["generated"] * len(generated)
        emb = tsne_embedding(np.concatenate(parts), groups, seed=seed)
        panels[name] = pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1], "group": groups})
    return panels


def draw_tsne_panel(
    ax: plt.Axes, emb: pd.DataFrame, name: str, references: Sequence[str], title: str | None = None
) -> None:
    """One t-SNE map (a frame of :func:`tsne_panels`) on ``ax``: the references in the order
    of ``references`` as red circles / black squares / brown diamonds, the generated set
    ``name`` as blue triangles, each labelled with its count; unitless axes."""
    styles = dict(zip(references, _REFERENCE_STYLES, strict=False))
    for group, points in emb.groupby("group", sort=False):
        style = styles.get(group, _GEN_STYLE)
        label = f"{name} (n={len(points)})" if group == "generated" else (
            f"{group} (n={len(points)})"
        )  # fmt: skip
        ax.scatter(
            points["x"], points["y"], s=16, alpha=0.75, label=label, edgecolors="none", **style
        )
    ax.set_xlabel("t-SNE 1 (–)")
    ax.set_ylabel("t-SNE 2 (–)")
    ax.set_title(name if title is None else title)
    ax.legend(frameon=False, fontsize=7, loc="best")


def plot_tsne_sets(
    references: Mapping[str, np.ndarray],
    gen_features: Mapping[str, np.ndarray],
    png: str | Path,
    pdf: str | Path | None = None,
    feature_name: str | None = None,
    seed: int = 0,
    ncols: int = 3,
) -> plt.Figure:
    """Fig B9: a grid of t-SNE panels (:func:`tsne_panels`), references as circles / squares,
    the panel's generated set as blue triangles; the title names the feature extractor,
    since the map depends on it, and the share of the feature variance along the first
    principal component (near 100 % the features are nearly one-dimensional and so is the
    map). t-SNE coordinates have no unit.
    """
    panels = tsne_panels(references, gen_features, seed=seed)
    n = len(panels)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.3 * ncols, 3.1 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (name, emb) in zip(axes.flat, panels.items(), strict=False):
        draw_tsne_panel(ax, emb, name, list(references))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    # A map squeezed onto a line is honest when the features themselves are nearly 1-D
    # (e.g. an encoder trained briefly); the title says how much the first component carries.
    stacked = np.concatenate([*references.values(), *gen_features.values()])
    sv = np.linalg.svd(stacked - stacked.mean(0), compute_uv=False)
    pc1 = 100 * sv[0] ** 2 / max(float(np.sum(sv**2)), 1e-300)
    head = f"t-SNE of image features: {feature_name}" if feature_name else "t-SNE"
    fig.suptitle(f"{head}\n(first principal component: {pc1:.1f} % of the feature variance)")
    save(fig, png, pdf)
    return fig


def _stack(groups: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([groups[k] for k in sorted(groups)])


def tsne_stage(
    generated: Sequence[str],
    references: Mapping[str, Mapping[str, str]],
    conditions_csv: str,
    resolution: int,
    png: str,
    vgg19_weights: str | None = None,
    segmenter_dir: str | None = None,
    seed: int = 0,
    features: str | None = None,
) -> str:
    """Fig B9: embed every image of the validation conditions and draw one t-SNE panel per
    generated set against the references.

    Parameters
    ----------
    generated, references, conditions_csv, resolution : the images, as
        :func:`microgen.evaluate.generative.evaluation_images` reads them.
    png : output PNG; the PDF is written beside it.
    vgg19_weights, segmenter_dir : the feature space, chosen as the generative metrics choose
        it; unused when ``features`` is given.
    features : the file of :func:`microgen.evaluate.generative.embed_stage` holding every
        image's features.

    Returns
    -------
    The feature extractor's name (also in the figure title).
    """
    extractor = FeatureCache.load(features) if features else None
    ref_features, gen_features, name = tsne_features(
        generated, references, conditions_csv, resolution, vgg19_weights, segmenter_dir,
        extractor=extractor,
    )  # fmt: skip
    plot_tsne_sets(
        ref_features, gen_features, png, str(Path(png).with_suffix(".pdf")),
        feature_name=name, seed=seed,
    )  # fmt: skip
    return name


def tsne_features(
    generated: Sequence[str],
    references: Mapping[str, Mapping[str, str]],
    conditions_csv: str,
    resolution: int,
    vgg19_weights: str | None = None,
    segmenter_dir: str | None = None,
    extractor: FeatureExtractor | FeatureCache | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """Features of the reference images at the validation conditions and of every
    generated set (arguments as :func:`tsne_stage`; ``extractor`` replaces the one
    ``vgg19_weights`` / ``segmenter_dir`` choose).

    Returns
    -------
    ``reference name -> (N, D)``, ``"{model}/{mode}" -> (M, D)`` and the extractor's name.
    """
    extractor = extractor or stage_extractor(vgg19_weights, segmenter_dir)
    groups = evaluation_images(generated, references, conditions_csv, resolution)
    features = {name: extractor(_stack(images)) for name, images in groups.items()}
    ref_features = {name: features[name] for name in references}
    gen_features = {name: f for name, f in features.items() if name not in references}
    return ref_features, gen_features, extractor.name
