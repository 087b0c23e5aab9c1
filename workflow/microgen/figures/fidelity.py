"""Fidelity figures of Phan et al. (2025): Figs 10-13 (micrographs, size histograms, trends),
Figs B3-B8 (descriptor trends) and Fig 14 (S2 / L envelopes); Fig B9 (t-SNE) is in
:mod:`microgen.figures.tsne`, which needs the metrics extra.

Inputs are the descriptor tables and indexes of :mod:`microgen.evaluate.fidelity` (``attach``
joins them); images come as ``label -> (N, H, W) uint8`` dicts
(:func:`microgen.data.sample_sets.load_image_groups`).
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
]

REAL_STYLE = dict(color="#C44E52", ls="-", label="real")
GEN_STYLE = dict(color="#4C72B0", ls="--", label="generated")
#: Reference series after the first (e.g. fresh ground truth beside segmented real images).
_REFERENCE_COLORS = ("#C44E52", "#222222", "#8C564B")
_REFERENCE_MARKERS = ("o", "s", "D")
#: Generated sets: blue first (the paper's colour), then hues distinct from the references.
_GEN_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#DA8BC3", "#64B5CD", "#CCB974")
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
    "cooling": "cooling method",
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


def _pixel_size(index: pd.DataFrame, label: str) -> float | None:
    if "pixel_size_um" not in index:
        return None
    px = index.loc[index["label"] == label, "pixel_size_um"].astype(float)
    return float(px.median()) if len(px) and np.isfinite(px.median()) else None


def _scale_bar(ax: plt.Axes, pixel_size_um: float, width_px: int) -> None:
    """A white bar of a round length (1-2-5 steps) near a fifth of the image width."""
    target = 0.2 * width_px * pixel_size_um
    exponent = np.floor(np.log10(target))
    length = max(s for s in (1.0, 2.0, 5.0) if s * 10**exponent <= target) * 10**exponent
    bar = length / pixel_size_um
    x0, y0 = 0.05 * width_px, 0.92 * width_px
    ax.plot([x0, x0 + bar], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    ax.text(
        x0, y0 - 0.03 * width_px, f"{length:g} µm", color="white", ha="left", va="bottom",
        fontsize=8, fontweight="bold",
    )  # fmt: skip


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
    reference_name: str = "real",
    gen_name: str = "generated",
) -> plt.Figure:
    """Figs 10-13 (a/b): per condition a reference and a generated micrograph (with a scale
    bar when the indexes carry ``pixel_size_um``) and the particle equivalent-diameter
    histograms (µm, density over all images of the condition) overlaid.

    Parameters
    ----------
    labels : conditions, one row each, in the paper's notation (``800C-180M-4910x-Q-S``).
    real_images, gen_images : label -> (N, H, W) uint8; the first image of a label is shown.
    real_particles, gen_particles : particle tables (``id, diameter_um``).
    real_index, gen_index : map ids to ``label`` (and ``pixel_size_um``).
    reference_name : what the reference is, e.g. ``"real"`` or ``"ground truth"``.
    gen_name : the generated set, e.g. ``"sd3-lora/full_text"``.
    """
    n = len(labels)
    fig, axes = plt.subplots(
        n, 3, figsize=(8.4, 2.8 * n), squeeze=False, layout="constrained",
        gridspec_kw={"width_ratios": [1, 1, 1.35]},
    )  # fmt: skip
    rp = attach(real_particles, real_index)
    gp = attach(gen_particles, gen_index)
    for row, label in enumerate(labels):
        for ax, images, index, who in (
            (axes[row, 0], real_images, real_index, reference_name),
            (axes[row, 1], gen_images, gen_index, gen_name),
        ):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{who}\n{label}")
            if label in images and len(images[label]):
                image = images[label][0]
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
                px = _pixel_size(index, label)
                if px is not None:
                    _scale_bar(ax, px, image.shape[1])
            else:
                ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
        r = rp.loc[rp["label"] == label, "diameter_um"].to_numpy()
        g = gp.loc[gp["label"] == label, "diameter_um"].to_numpy()
        bins = _hist_bins([r, g])
        ax = axes[row, 2]
        for values, name, style in ((r, reference_name, REAL_STYLE), (g, gen_name, GEN_STYLE)):
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    histtype="step",
                    lw=1.5,
                    color=style["color"],
                    ls=style["ls"],
                    label=f"{name} ({len(values)} particles)",
                )
        ax.set_xlabel("equivalent diameter (µm)")
        ax.set_ylabel("probability density (µm⁻¹)")
        ax.set_title("particle size distribution")
        if len(r) or len(g):
            # Framed: the legend often has to sit over a histogram's tail.
            ax.legend(frameon=True, framealpha=0.85, edgecolor="none", fontsize=7)
    if title:
        fig.suptitle(title)
    save(fig, png, pdf)
    return fig


def _condition_stats(rows: pd.DataFrame, index: pd.DataFrame, column: str, x: str):
    """Mean and standard deviation (ddof=0) over the images of each condition, with the
    condition's value of ``x``."""
    t = attach(rows, index)
    conds = index.drop_duplicates("label").set_index("label")[x]
    g = t.groupby("label")[column].agg(mean="mean", std=lambda v: float(np.std(v)))
    g = g.reset_index()
    g[x] = g["label"].map(conds)
    return g


def _categories(values: Sequence) -> list:
    """Sorted distinct values: numerically when they are numbers, else as text."""
    distinct = pd.unique(pd.Series(list(values)).dropna())
    try:
        return sorted(float(v) for v in distinct)
    except (TypeError, ValueError):
        return sorted(str(v) for v in distinct)


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_descriptor_trends(
    references: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    gen_rows: pd.DataFrame,
    gen_index: pd.DataFrame,
    x: str,
    png: str | Path,
    pdf: str | Path | None = None,
    descriptors: Sequence[str] = ("area_fraction", "mean_diameter_um"),
    title: str | None = None,
) -> plt.Figure:
    """Figs B3-B8 (b): descriptors of each condition against one process variable, for the
    reference sets (solid) and every generated set (dashed).

    Each marker is one condition: mean over its images, error bar one standard deviation.
    The values of ``x`` sit at equally spaced positions (validation sets have two to four
    levels; categorical variables such as cooling work the same way), series are shifted
    sideways so their markers do not hide each other, and the line joins the mean over the
    conditions at each level. Conditions at one level may differ in other variables; the
    line then averages over them.

    Parameters
    ----------
    references : name -> (rows, index), e.g. ``{"real (segmented)": ..., "ground truth": ...}``.
    gen_rows, gen_index : descriptor rows and index of the generated sets (``model``,
        ``prompt_mode`` tell the sets apart).
    x : a condition column present in every index (``temperature``, ``time``, ``cooling``,
        ``magnification``...).
    descriptors : row columns, one panel each.
    """
    series = [
        (name, rows, index, dict(color=_REFERENCE_COLORS[k % 3], ls="-",
                                 marker=_REFERENCE_MARKERS[k % 3]))
        for k, (name, (rows, index)) in enumerate(references.items())
    ]  # fmt: skip
    sets = attach(gen_index[["id"]], gen_index).groupby(["model", "prompt_mode"], sort=False)
    for k, ((model, mode), members) in enumerate(sets):
        index = gen_index[gen_index["id"].isin(members["id"])]
        name = model if mode == "-" else f"{model}/{mode}"
        style = dict(color=_GEN_COLORS[k % len(_GEN_COLORS)], ls="--", marker="^")
        series.append((name, gen_rows, index, style))
    levels = _categories(pd.concat([s[2][x] for s in series]))
    position = {v: i for i, v in enumerate(levels)}
    width = min(0.5, 0.08 * len(series))
    fig, axes = plt.subplots(
        1, len(descriptors), figsize=(max(3.6, 1.2 + 0.9 * len(levels)) * len(descriptors), 3.3),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, column in zip(axes[0], descriptors, strict=True):
        for k, (name, rows, index, style) in enumerate(series):
            stats = _condition_stats(rows, index, column, x)
            if stats.empty:
                continue
            value = stats[x].map(lambda v: float(v) if isinstance(levels[0], float) else str(v))
            shift = (k - (len(series) - 1) / 2) * width / max(len(series) - 1, 1)
            pos = value.map(position) + shift
            ax.errorbar(
                pos, stats["mean"], yerr=stats["std"], ls="none", marker=style["marker"],
                ms=5, capsize=2, color=style["color"], alpha=0.9,
            )  # fmt: skip
            level_mean = stats.groupby(value)["mean"].mean()
            ax.plot(
                [position[v] + shift for v in level_mean.index], level_mean.to_numpy(),
                color=style["color"], ls=style["ls"], lw=1.3, marker=style["marker"], ms=5,
                label=name,
            )  # fmt: skip
        ax.set_xticks(range(len(levels)), [_tick(v) for v in levels])
        ax.set_xlim(-0.6, len(levels) - 0.4)
        ax.set_xlabel(_XLABELS.get(x, x))
        ax.set_ylabel(_YLABELS.get(column, column))
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(3, len(names)), frameon=False)
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
    reference_name: str = "real",
) -> plt.Figure:
    """Fig 14: condition-mean S2 / L curves with ± one standard deviation envelopes, real
    (red, solid) vs generated (blue, dashed); one panel per (function, condition).

    ``r_unit`` is ``"px"`` or ``"um"`` (lags times the condition's pixel size) and labels the
    x axis. With several generated sets in ``gen_index`` each gets its own colour.
    ``reference_name`` labels the reference curves (``"ground truth"`` for fresh synthetic
    truth).
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
                    label=f"{reference_name} (n={int(r['n'].max())})",
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
                color = _GEN_COLORS[k % len(_GEN_COLORS)]
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
