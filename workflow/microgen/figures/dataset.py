"""Figures of a prepared data set: Fig. A1 histograms and real-vs-synthetic micrographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray, read_metadata
from microgen.data.schema import CategoricalVariable, load_schema
from microgen.data.split import SPLITS
from microgen.figures.style import SPLIT_COLORS, SPLIT_NAMES, plt, save

#: A continuous variable with at most this many distinct values gets a bar per value
#: (synthetic grids, a handful of magnifications), more a histogram.
MAX_BARS = 12


def _stacked_counts(ax, joined: pd.DataFrame, column: str, values: list) -> None:
    labels = [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in values]
    bottom = np.zeros(len(values))
    for split in SPLITS:
        part = joined[joined["split"] == split][column]
        counts = np.array([(part == v).sum() for v in values], dtype=float)
        ax.bar(labels, counts, bottom=bottom, color=SPLIT_COLORS[split], label=SPLIT_NAMES[split])
        bottom += counts
    ax.tick_params(axis="x", labelrotation=45)


def _stacked_histogram(ax, joined: pd.DataFrame, column: str, log: bool) -> None:
    values = joined[column].astype(float)
    lo, hi = values.min(), values.max()
    bins = np.geomspace(lo, hi, 16) if log and lo > 0 else np.linspace(lo, hi, 16)
    parts = [values[joined["split"] == split] for split in SPLITS]
    colors = [SPLIT_COLORS[split] for split in SPLITS]
    names = [SPLIT_NAMES[split] for split in SPLITS]
    ax.hist(parts, bins=bins, stacked=True, color=colors, label=names)
    if log and lo > 0:
        ax.set_xscale("log")


def _variable_panel(ax, joined: pd.DataFrame, variable) -> None:
    """Micrographs per value of one schema variable, stacked by split."""
    column = variable.name
    if isinstance(variable, CategoricalVariable):
        present = set(joined[column].dropna().astype(str))
        _stacked_counts(ax, joined, column, [c for c in variable.categories if c in present])
        ax.set_xlabel(variable.label)
    else:
        values = sorted(joined[column].dropna().unique())
        if len(values) <= MAX_BARS:
            _stacked_counts(ax, joined, column, values)
        else:
            _stacked_histogram(ax, joined, column, variable.log)
        ax.set_xlabel(f"{variable.label} ({variable.unit})")
    ax.set_ylabel("micrographs")


def _class_panel(ax, joined: pd.DataFrame, data_dir: Path, names: tuple[str, ...]) -> None:
    """Share of labelled pixels per class (``names`` by class id), over the micrographs
    that have a mask."""
    masked = joined[joined.get("has_mask", False) == True]  # noqa: E712
    counts = np.zeros(len(names))
    for image_id in masked["id"]:
        mask = read_gray(data_dir / "masks" / f"{image_id}.png")
        counts += np.bincount(mask.ravel(), minlength=len(names))[: len(names)]
    ax.bar(names, 100 * counts / counts.sum(), color="#8172B2")
    ax.set_ylabel("labelled pixels (%)")
    ax.set_xlabel(f"class ({len(masked)} labelled micrographs)")
    ax.tick_params(axis="x", labelrotation=30)


def plot_dataset_histograms(
    metadata_csv: str,
    split_csv: str,
    schema_path: str,
    out_png: str,
    out_pdf: str | None = None,
) -> plt.Figure:
    """Fig. A1: micrographs per value of every variable of the data set's condition schema
    (bars per category or value, a histogram where a continuous variable has more than
    :data:`MAX_BARS` values; stacked by split) and, where masks exist, the share of
    labelled pixels per class of the schema's ``classes``."""
    schema = load_schema(schema_path)
    metadata = read_metadata(metadata_csv)
    joined = metadata.merge(pd.read_csv(split_csv, dtype={"id": str}), on="id")
    has_masks = bool((joined.get("has_mask", False) == True).any())  # noqa: E712
    variables = [schema.variable(name) for name in schema.variables]
    n = len(variables) + has_masks
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 3.1 * rows + 0.4), layout="constrained", squeeze=False
    )
    for ax, variable in zip(axes.ravel(), variables, strict=False):
        _variable_panel(ax, joined, variable)
    if has_masks:
        _class_panel(axes.ravel()[len(variables)], joined, Path(metadata_csv).parent,
                     schema.class_names)  # fmt: skip
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=3, frameon=False)
    for label, ax in zip("abcdefghijkl", axes.ravel()[:n], strict=False):
        ax.set_title(f"({label})", loc="left")
    save(fig, out_png, out_pdf)
    return fig


def plot_real_vs_synthetic(
    synthetic_metadata_csv: str,
    real_folder: str,
    out_png: str,
    out_pdf: str | None = None,
    per_row: int = 3,
    seed: int = 0,
) -> None:
    """Real UHCS-24 micrographs beside synthetic ones of the same condition and size.

    One real image per (microconstituent, magnification) of UHCS-24, up to ``per_row``
    pairs per row; its synthetic twin is generated at the real image's processing condition,
    magnification and pixel count, so both show the same physical field of view.
    ``synthetic_metadata_csv`` ties the figure to the synthetic data set it illustrates.
    """
    from microgen.data.synthetic.conditions import Condition
    from microgen.data.synthetic.generator import generate
    from microgen.data.uhcs24 import read_uhcs24

    del synthetic_metadata_csv  # the dependency matters, not the content
    real = read_uhcs24(real_folder).dropna(subset=["temperature", "time", "cooling"])
    picks = (
        real.sort_values(["microconstituent", "magnification", "id"])
        .groupby(["microconstituent", "magnification"], as_index=False)
        .head(1)
    )
    n = len(picks)
    rows = int(np.ceil(n / per_row))
    fig, axes = plt.subplots(
        rows * 2,
        per_row,
        figsize=(3.2 * per_row, 2.6 * rows * 2),
        layout="constrained",
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for k, row in enumerate(picks.itertuples()):
        image = read_gray(Path(real_folder) / "images" / f"{row.id}.png")
        condition = Condition(
            temperature=row.temperature,
            time=row.time,
            cooling=row.cooling,
            magnification=row.magnification,
            microconstituent=row.microconstituent,
        )
        twin = generate(condition, shape=image.shape, seed=seed + k)
        r, c = 2 * (k // per_row), k % per_row
        title = (
            f"{row.temperature:g} °C, {row.time:g} min, {row.cooling}, "
            f"{row.magnification:g}×\n{row.microconstituent}"
        )
        for ax, img, px, who in (
            (axes[r, c], image, row.pixel_size_um, f"real {row.id}"),
            (axes[r + 1, c], twin.image, twin.pixel_size_um, "synthetic"),
        ):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{who}: {title}" if who != "synthetic" else who)
            _scale_bar(ax, img.shape, px)
    save(fig, out_png, out_pdf)


def _scale_bar(ax, shape: tuple[int, int], pixel_size_um: float) -> None:
    """Draw a scale bar of a round length (µm) about a fifth of the image width."""
    target = shape[1] * pixel_size_um / 5
    length = min((1, 2, 5, 10, 20, 50, 100), key=lambda v: abs(np.log(v / target)))
    px = length / pixel_size_um
    y, x0 = shape[0] * 0.92, shape[1] * 0.05
    ax.plot([x0, x0 + px], [y, y], color="white", linewidth=3)
    ax.text(
        x0 + px / 2,
        y - shape[0] * 0.03,
        f"{length} µm",
        color="white",
        ha="center",
        va="bottom",
        fontsize=8,
    )
