"""Qualitative figures of Phan et al. (2025): grids of real and generated micrographs
(Figs 5, 6, B1, B2) and micrographs with their predicted segmentation masks (Fig. 9).

Images come as ``(row, column) -> (H, W) uint8`` mappings so that a figure only places what
it is given; choosing conditions and reading files is :mod:`microgen.figures.qualitative`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from microgen.figures.fidelity import _scale_bar
from microgen.figures.segmentation import class_legend, show_mask
from microgen.figures.style import plt, save

__all__ = ["plot_sample_grid", "plot_segmented_samples"]

Cell = tuple[str, str]


def centre_square(image: np.ndarray) -> np.ndarray:
    """The centred square of ``image`` whose side is its shorter side."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def _show(ax: plt.Axes, image: np.ndarray | None, pixel_size_um: float | None) -> None:
    """A gray micrograph with a scale bar when its pixel size is known; "no image" else.

    A non-square image shows its centred square: generated images are square and cover the
    data's shorter side (``preprocess.native_side``), so the real field of view matches
    theirs and no cell is left half empty.
    """
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
        return
    image = centre_square(image)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if pixel_size_um is not None and np.isfinite(pixel_size_um):
        _scale_bar(ax, float(pixel_size_um), image.shape[1])


def plot_sample_grid(
    images: Mapping[Cell, np.ndarray],
    rows: Sequence[str],
    columns: Sequence[str],
    png: str | Path,
    pdf: str | Path | None = None,
    pixel_sizes: Mapping[Cell, float] | None = None,
    row_names: Mapping[str, str] | None = None,
    column_names: Mapping[str, str] | None = None,
    title: str | None = None,
    panel: float = 1.9,
) -> plt.Figure:
    """Figs 5, 6, B1 and B2: one micrograph per (image set, condition) cell.

    Parameters
    ----------
    images : ``(row, column) -> (H, W) uint8``; a missing cell reads "no image".
    rows : image sets top to bottom (e.g. ``"real"``, ``"ddpm__parameter_only"``).
    columns : conditions left to right, in the paper's notation (``800C-90M-3437x-Q-N``).
    pixel_sizes : ``(row, column) -> µm per pixel``; cells with one get a scale bar.
    row_names, column_names : display text of a row (y label of its first cell) or column
        (title of its top cell); default the key itself.
    panel : side of one cell in inches.

    Returns
    -------
    The figure (already saved as ``png`` and, when given, ``pdf``).
    """
    pixel_sizes = pixel_sizes or {}
    row_names = row_names or {}
    column_names = column_names or {}
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(panel * len(columns) + 1.2, panel * len(rows) + 0.6),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            _show(ax, images.get((row, column)), pixel_sizes.get((row, column)))
            if i == 0:
                ax.set_title(column_names.get(column, column))
            if j == 0:
                ax.set_ylabel(row_names.get(row, row))
    if title:
        fig.suptitle(title)
    save(fig, png, pdf)
    return fig


def plot_segmented_samples(
    images: Mapping[Cell, np.ndarray],
    masks: Mapping[Cell, np.ndarray],
    columns: Sequence[Cell],
    class_names: Sequence[str],
    class_colors: Sequence[str],
    png: str | Path,
    pdf: str | Path | None = None,
    pixel_sizes: Mapping[Cell, float] | None = None,
    set_names: Mapping[str, str] | None = None,
    title: str | None = None,
    panel: float = 2.1,
) -> plt.Figure:
    """Fig. 9: input micrographs (top row) and the segmenter's masks (bottom row).

    Parameters
    ----------
    images, masks : ``(image set, condition) -> (H, W)`` uint8; masks hold class ids.
    columns : the ``(image set, condition)`` cells left to right, e.g. the real and the
        generated image of each of two conditions.
    class_names, class_colors : name and colour of each class id (the condition schema's).
    pixel_sizes : ``(image set, condition) -> µm per pixel`` for the scale bars.
    set_names : display name of an image set (column titles); default the key.
    """
    pixel_sizes = pixel_sizes or {}
    set_names = set_names or {}
    fig, axes = plt.subplots(
        2, len(columns), figsize=(panel * len(columns) + 0.8, 2 * panel + 1.0),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for j, cell in enumerate(columns):
        source, label = cell
        _show(axes[0, j], images.get(cell), pixel_sizes.get(cell))
        axes[0, j].set_title(f"{set_names.get(source, source)}\n{label}")
        ax = axes[1, j]
        ax.set_xticks([])
        ax.set_yticks([])
        if cell in masks:
            show_mask(ax, masks[cell], class_colors)
        else:
            ax.text(0.5, 0.5, "no mask", ha="center", va="center", transform=ax.transAxes)
    axes[0, 0].set_ylabel("(a) input micrograph")
    axes[1, 0].set_ylabel("(b) predicted mask")
    class_legend(fig, class_names, class_colors, loc="outside lower center")
    if title:
        fig.suptitle(title)
    save(fig, png, pdf)
    return fig
