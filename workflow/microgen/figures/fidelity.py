"""Fidelity figures of Phan et al. (2025): Figs 10-13 (micrographs, size histograms, trends),
Fig 14 (S2 / L envelopes) and Fig B9 (t-SNE of real vs generated features).

Inputs are the descriptor tables and indexes of :mod:`microgen.evaluate.fidelity` (``attach``
joins them); images come as ``label -> (N, H, W) uint8`` dicts
(:func:`microgen.evaluate.generative.load_image_groups`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.evaluate.fidelity import attach, condition_mean_curves

from .style import plt, save

__all__ = [
    "REAL_STYLE",
    "GEN_STYLE",
    "plot_condition_comparison",
    "plot_descriptor_trends",
    "plot_correlation_envelopes",
    "plot_tsne_sets",
]

REAL_STYLE = dict(color="#C44E52", ls="-", label="real")
GEN_STYLE = dict(color="#4C72B0", ls="--", label="generated")
_YLABELS = {
    "area_fraction": "spheroidite area fraction (–)",
    "mean_diameter_um": "mean equivalent diameter (µm)",
    "mean_aspect_ratio": "mean aspect ratio (–)",
    "mean_nnd_um": "mean nearest-neighbour distance (µm)",
    "interfacial_length_per_area_per_um": "interfacial length per area (µm⁻¹)",
}
_XLABELS = {
    "temperature": "annealing temperature (°C)",
    "magnification": "magnification (×)",
    "time": "annealing time (min)",
}
_FUNCTION_NAMES = {
    "S2_radial": "two-point correlation $S_2(r)$",
    "S2_x": "$S_2(r)$, x",
    "S2_y": "$S_2(r)$, y",
    "L": "lineal path $L(r)$",
    "L_x": "$L(r)$, x",
    "L_y": "$L(r)$, y",
}


def _hist_bins(values: Sequence[np.ndarray], n: int = 20) -> np.ndarray:
    v = np.concatenate([np.asarray(x, float) for x in values if len(x)] or [np.zeros(1)])
    v = v[np.isfinite(v)]
    hi = float(np.quantile(v, 0.99)) if v.size else 1.0
    return np.linspace(0.0, max(hi, 1e-6), n + 1)


def plot_condition_comparison(
    labels: Sequence[str],
    real_images: Mapping[str, np.ndarray],
    gen_images: Mapping[str, np.ndarray],
    real_particles: pd.DataFrame,
    real_index: pd.DataFrame,
    gen_particles: pd.DataFrame,
    gen_index: pd.DataFrame,
    png: str | Path,
    pdf: str | Path | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Figs 10-13 (a/b): per condition a real and a generated micrograph and the particle
    equivalent-diameter histograms (µm, density over all images of the condition) overlaid.

    ``*_particles`` are the particle tables (``id, diameter_um``); the indexes map ids to labels.
    """
    n = len(labels)
    fig, axes = plt.subplots(n, 3, figsize=(8.4, 2.6 * n), squeeze=False, layout="constrained")
    rp = attach(real_particles, real_index)
    gp = attach(gen_particles, gen_index)
    for row, label in enumerate(labels):
        for ax, images, who in (
            (axes[row, 0], real_images, "real"),
            (axes[row, 1], gen_images, "generated"),
        ):
            ax.axis("off")
            if label in images and len(images[label]):
                ax.imshow(images[label][0], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{who}: {label}")
        r = rp.loc[rp["label"] == label, "diameter_um"].to_numpy()
        g = gp.loc[gp["label"] == label, "diameter_um"].to_numpy()
        bins = _hist_bins([r, g])
        ax = axes[row, 2]
        for values, style in ((r, REAL_STYLE), (g, GEN_STYLE)):
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    histtype="step",
                    lw=1.5,
                    color=style["color"],
                    ls=style["ls"],
                    label=f"{style['label']} (n={len(values)})",
                )
        ax.set_xlabel("equivalent diameter (µm)")
        ax.set_ylabel("probability density (µm⁻¹)")
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    save(fig, png, pdf)
    return fig


def _condition_stats(rows: pd.DataFrame, index: pd.DataFrame, column: str, x: str):
    t = attach(rows, index)
    conds = index.drop_duplicates("label").set_index("label")[x]
    g = t.groupby(["model", "prompt_mode", "label"])[column].agg(["mean", "std"]).reset_index()
    g["std"] = g["std"].fillna(0.0)
    g[x] = g["label"].map(conds).astype(float)
    return g


def plot_descriptor_trends(
    real_rows: pd.DataFrame,
    real_index: pd.DataFrame,
    gen_rows: pd.DataFrame,
    gen_index: pd.DataFrame,
    x: str,
    png: str | Path,
    pdf: str | Path | None = None,
    descriptors: Sequence[str] = ("area_fraction", "mean_diameter_um"),
    title: str | None = None,
) -> plt.Figure:
    """Figs 10-13 (c): condition means of descriptors vs a process variable, real vs each
    generated set; error bars are the standard deviation over the images of a condition.

    ``x`` is a numeric condition column present in both indexes (``temperature``,
    ``magnification``...). Points of conditions that differ in other variables are plotted
    at the same ``x``; select the conditions of one series before calling.
    """
    fig, axes = plt.subplots(
        1,
        len(descriptors),
        figsize=(3.6 * len(descriptors), 3.0),
        squeeze=False,
        layout="constrained",
    )
    for ax, column in zip(axes[0], descriptors, strict=True):
        real = _condition_stats(real_rows, real_index, column, x).sort_values(x)
        ax.errorbar(
            real[x],
            real["mean"],
            yerr=real["std"],
            marker="o",
            capsize=3,
            color=REAL_STYLE["color"],
            ls=REAL_STYLE["ls"],
            label="real",
        )
        gen = _condition_stats(gen_rows, gen_index, column, x)
        sets = list(gen.groupby(["model", "prompt_mode"]))
        for k, ((model, mode), g) in enumerate(sets):
            g = g.sort_values(x)
            name = model if mode == "-" else f"{model}/{mode}"
            ax.errorbar(
                g[x],
                g["mean"],
                yerr=g["std"],
                marker="^",
                capsize=3,
                ls="--",
                color=GEN_STYLE["color"] if len(sets) == 1 else f"C{k}",
                label=f"generated ({name})",
            )
        ax.set_xlabel(_XLABELS.get(x, x))
        ax.set_ylabel(_YLABELS.get(column, column))
        if x == "magnification":
            ax.set_xscale("log")
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    save(fig, png, pdf)
    return fig


def plot_correlation_envelopes(
    labels: Sequence[str],
    real_curves: pd.DataFrame,
    real_index: pd.DataFrame,
    gen_curves: pd.DataFrame,
    gen_index: pd.DataFrame,
    png: str | Path,
    pdf: str | Path | None = None,
    functions: Sequence[str] = ("S2_radial", "L"),
    r_unit: str = "px",
) -> plt.Figure:
    """Fig 14: condition-mean S2 / L curves with ± one standard deviation envelopes, real
    (red, solid) vs generated (blue, dashed); one panel per (function, condition).

    ``r_unit`` is ``"px"`` or ``"um"`` (lags times the condition's pixel size) and labels the
    x axis. With several generated sets in ``gen_index`` each gets its own colour.
    """
    nrow, ncol = len(functions), len(labels)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.3 * ncol, 2.8 * nrow), squeeze=False, layout="constrained"
    )
    for i, function in enumerate(functions):
        real = condition_mean_curves(real_curves, real_index, function, r_unit)
        gen = condition_mean_curves(gen_curves, gen_index, function, r_unit)
        sets = list(gen.groupby(["model", "prompt_mode"]))
        for j, label in enumerate(labels):
            ax = axes[i, j]
            r = real[real["label"] == label].sort_values("r")
            if len(r):
                ax.plot(
                    r["r"],
                    r["mean"],
                    color=REAL_STYLE["color"],
                    ls="-",
                    label=f"real (n={int(r['n'].max())})",
                )
                ax.fill_between(
                    r["r"],
                    r["mean"] - r["std"],
                    r["mean"] + r["std"],
                    color=REAL_STYLE["color"],
                    alpha=0.2,
                    lw=0,
                )
            for k, ((model, mode), g) in enumerate(sets):
                g = g[g["label"] == label].sort_values("r")
                if g.empty:
                    continue
                color = GEN_STYLE["color"] if len(sets) == 1 else f"C{k}"
                name = model if mode == "-" else f"{model}/{mode}"
                ax.plot(
                    g["r"], g["mean"], color=color, ls="--", label=f"{name} (n={int(g['n'].max())})"
                )
                ax.fill_between(
                    g["r"],
                    g["mean"] - g["std"],
                    g["mean"] + g["std"],
                    color=color,
                    alpha=0.15,
                    lw=0,
                )
            ax.set_xlabel(f"r ({'µm' if r_unit == 'um' else 'px'})")
            ax.set_ylabel(_FUNCTION_NAMES.get(function, function) + " (–)")
            ax.set_title(label)
            ax.legend(frameon=False)
    save(fig, png, pdf)
    return fig


def plot_tsne_sets(
    real_features: np.ndarray,
    gen_features: Mapping[str, np.ndarray],
    png: str | Path,
    pdf: str | Path | None = None,
    feature_name: str | None = None,
    seed: int = 0,
) -> plt.Figure:
    """Fig B9: one t-SNE panel per generated set, real (circles) vs generated (triangles).

    Each panel embeds the real features together with that set's features (a separate t-SNE
    per panel, as the paper's panels are not on shared axes).
    """
    from microgen.metrics import plot_tsne, tsne_embedding

    names = list(gen_features)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes[0], names, strict=True):
        feats = np.concatenate([real_features, gen_features[name]])
        labels = ["real"] * len(real_features) + ["generated"] * len(gen_features[name])
        emb = tsne_embedding(feats, labels, seed=seed)
        plot_tsne(emb, labels, ax=ax, title=name, feature_name=feature_name)
    save(fig, png, pdf)
    return fig
