"""Segmentation figures: Fig. 7 (input / ground truth / prediction) and Fig. 8 (per-class
true-positive / false-positive / false-negative overlays).

Masks are drawn in the data set's class colours and named by its class names (the condition
schema's ``classes``, by class id), which every function here is handed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from microgen.data.prepared import read_gray
from microgen.figures.style import plt, save

# Fig. 8's convention: yellow true positive, cyan false positive, magenta false negative.
OVERLAY = {"TP": (1.0, 1.0, 0.0), "FP": (0.0, 1.0, 1.0), "FN": (1.0, 0.0, 1.0)}


def class_colormap(colors: Sequence[str]) -> ListedColormap:
    """One colour per class id, for masks drawn with ``vmin=0, vmax=len(colors) - 1``."""
    return ListedColormap(list(colors), name="classes")


def show_mask(ax: plt.Axes, mask: np.ndarray, colors: Sequence[str]) -> None:
    """Draw a class-id mask in the class colours (pixel ``k`` in ``colors[k]``)."""
    ax.imshow(mask, cmap=class_colormap(colors), vmin=0, vmax=len(colors) - 1,
              interpolation="nearest")  # fmt: skip


def class_legend(fig: plt.Figure, names: Sequence[str], colors: Sequence[str], **where) -> None:
    """A legend of the classes, ``{id} {name}`` in the class colours (up to 5 a row)."""
    handles = [
        Patch(color=c, label=f"{k} {n}") for k, (n, c) in enumerate(zip(names, colors, strict=True))
    ]
    fig.legend(handles=handles, ncol=min(len(names), 5), frameon=False, **where)


def overlay_errors(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, cls: int) -> np.ndarray:
    """RGB image with class ``cls`` true positives yellow, false positives cyan, false
    negatives magenta over the gray micrograph."""
    rgb = np.repeat(image[..., None] / 255.0, 3, axis=2) * 0.6
    t, p = truth == cls, pred == cls
    for mask, color in ((t & p, "TP"), (~t & p, "FP"), (t & ~p, "FN")):
        rgb[mask] = OVERLAY[color]
    return rgb


def plot_segmentation_examples(
    data_dir: str | Path,
    pred_dir: str | Path,
    out_fig7: str,
    out_fig8: str,
    class_names: Sequence[str],
    class_colors: Sequence[str],
    n_examples: int = 3,
    classes: Sequence[int] | None = None,
    out_fig7_pdf: str | None = None,
    out_fig8_pdf: str | None = None,
) -> tuple[plt.Figure, plt.Figure]:
    """Figs 7 and 8 for the first ``n_examples`` segmented images (sorted by id) of a prepared
    data set (``data_dir/images``, ``data_dir/masks``) and their predictions in ``pred_dir``
    (:func:`plot_segmentation_triples`)."""
    data_dir, pred_dir = Path(data_dir), Path(pred_dir)
    ids = sorted(p.stem for p in pred_dir.glob("*.png"))[:n_examples]
    if not ids:
        raise ValueError(f"no predicted masks in {pred_dir}")
    triples = [
        (
            read_gray(data_dir / "images" / f"{i}.png"),
            read_gray(data_dir / "masks" / f"{i}.png"),
            read_gray(pred_dir / f"{i}.png"),
        )
        for i in ids
    ]
    return plot_segmentation_triples(ids, triples, out_fig7, out_fig8, class_names, class_colors,
                                     classes, out_fig7_pdf, out_fig8_pdf)  # fmt: skip


def plot_segmentation_triples(
    ids: Sequence[str],
    triples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    out_fig7: str,
    out_fig8: str,
    class_names: Sequence[str],
    class_colors: Sequence[str],
    classes: Sequence[int] | None = None,
    out_fig7_pdf: str | None = None,
    out_fig8_pdf: str | None = None,
    title: str | None = None,
) -> tuple[plt.Figure, plt.Figure]:
    """Fig 7 (input / ground truth / prediction per row) and Fig 8 (per-class overlays with
    IoU, precision, recall and Boundary-F1 in each panel header) of ``(image, truth, pred)``
    uint8 arrays named by ``ids``.

    Parameters
    ----------
    class_names, class_colors : name and colour of each class id (the condition schema's).
    classes : the class ids of Fig. 8's columns; default every class but 0 (the matrix or
        background, whose errors mirror the others').

    Returns
    -------
    The two figures (already saved).
    """
    from microgen.segment.evaluate import evaluate_masks

    if classes is None:
        classes = range(1, len(class_names))
    fig, axes = plt.subplots(
        len(ids), 3, figsize=(7.5, 2.6 * len(ids)), squeeze=False, layout="constrained"
    )
    for row, (image_id, (image, truth, pred)) in enumerate(zip(ids, triples, strict=True)):
        for col, (arr, name) in enumerate(
            ((image, f"input {image_id}"), (truth, "ground truth"), (pred, "prediction"))
        ):
            ax = axes[row, col]
            if col == 0:
                ax.imshow(arr, cmap="gray", vmin=0, vmax=255)
            else:
                show_mask(ax, arr, class_colors)
            ax.set_title(name)
            ax.axis("off")
    class_legend(fig, class_names, class_colors, loc="lower center", bbox_to_anchor=(0.5, -0.03))
    if title:
        fig.suptitle(title)
    save(fig, out_fig7, out_fig7_pdf)
    fig7 = fig

    fig, axes = plt.subplots(
        len(ids),
        len(classes),
        figsize=(2.8 * len(classes), 2.8 * len(ids)),
        squeeze=False,
        layout="constrained",
    )
    for row, (image_id, (image, truth, pred)) in enumerate(zip(ids, triples, strict=True)):
        scores = evaluate_masks([truth], [pred], classes=len(class_names))
        for col, cls in enumerate(classes):
            ax = axes[row, col]
            ax.imshow(overlay_errors(image, truth, pred, cls))
            ax.set_title(
                f"{image_id}: class {cls} {class_names[cls]}\n"
                f"IoU {_pct(scores['iou'][cls])}  P {_pct(scores['precision'][cls])}  "
                f"R {_pct(scores['recall'][cls])}  BF1 {_pct(scores['boundary_f1'][cls])}",
                fontsize=8,
            )
            ax.axis("off")
    handles = [
        Patch(color=c, label=k)
        for k, c in zip(
            ("true positive", "false positive", "false negative"), OVERLAY.values(), strict=True
        )
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.03)
    )
    if title:
        fig.suptitle(title)
    save(fig, out_fig8, out_fig8_pdf)
    return fig7, fig


def _pct(value: float) -> str:
    """A score in % for a panel header; '–' where it is undefined (class absent)."""
    return "–" if not np.isfinite(value) else f"{100 * value:.0f}%"


def plot_cv_convergence(
    logs: dict[str, Sequence[pd.DataFrame]],
    png: str | Path,
    pdf: str | Path | None = None,
    title: str = "",
    min_epochs: int = 0,
) -> None:
    """Validation mIoU against epoch for every fold of each cross-validation variant.

    ``logs`` maps a variant name to its folds' ``train_log.csv`` tables (columns ``epoch``,
    ``val_miou``, ``train_loss``). One panel per variant: a thin line per fold with a dot at its
    best epoch, and the mean over folds (bold) up to the epoch where the first fold stopped; a
    lower row shows the training loss the same way. A curve still rising at its end has not
    converged. Epochs before ``min_epochs`` (where the patience rule does not stop a fold yet)
    are shaded.
    """
    fig, axes = plt.subplots(
        2, len(logs), figsize=(4.2 * len(logs), 5.2), sharex="col", squeeze=False,
        gridspec_kw={"height_ratios": [2, 1]},
    )  # fmt: skip
    for col, (variant, folds) in enumerate(logs.items()):
        top, bottom = axes[0, col], axes[1, col]
        for k, log in enumerate(folds):
            color = plt.cm.tab10(k)
            top.plot(log["epoch"], 100 * log["val_miou"], color=color, lw=0.8, alpha=0.7,
                     label=f"fold {k}")  # fmt: skip
            best = log["val_miou"].idxmax()
            top.plot(log.loc[best, "epoch"], 100 * log.loc[best, "val_miou"], "o", color=color,
                     ms=4)  # fmt: skip
            bottom.plot(log["epoch"], log["train_loss"], color=color, lw=0.8, alpha=0.7)
        # the mean only while every fold trains: over the folds still training it would jump
        # with each fold that stops, and their own lines show them
        common = min(int(log["epoch"].max()) for log in folds)
        indexed = [log.set_index("epoch").loc[:common] for log in folds]
        for ax, column, scale in ((top, "val_miou", 100), (bottom, "train_loss", 1)):
            mean = scale * pd.concat([t[column] for t in indexed], axis=1).mean(axis=1)
            ax.plot(mean, color="black", lw=2, label="mean (until the first fold stops)")
        if min_epochs > 1:
            for ax in (top, bottom):
                ax.axvspan(0, min_epochs, color="0.92", zorder=0,
                           label=f"epoch < {min_epochs}: no patience stop")  # fmt: skip
        top.set_title(variant)
        top.set_ylabel("validation mIoU (%)")
        bottom.set_ylabel("training loss (Jaccard)")
        bottom.set_xlabel("epoch")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(ncol=2, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save(fig, png, pdf)


#: Paper names of the encoders (Table C1) and of the losses.
ENCODER_NAMES = {"vgg16": "VGG-16", "vgg19": "VGG-19", "resnet101": "ResNet-101",
                 "resnet152": "ResNet-152"}  # fmt: skip
LOSS_NAMES = {"jaccard": "Jaccard", "dice": "Dice", "focal": "focal", "cce": "CCE"}
#: Table C1's columns (percentages) and their axis names.
ENCODER_METRICS = {"pixel_accuracy": "pixel accuracy", "miou": "mIoU",
                   "mean_boundary_f1": "mean boundary F1"}  # fmt: skip


def plot_encoder_comparison(
    histories: Mapping[str, pd.DataFrame], table: pd.DataFrame, loss: str
) -> plt.Figure:
    """Fig. C1: (a) loss per epoch and (b) Table C1's metrics per encoder.

    Parameters
    ----------
    histories : encoder -> its segmenter's ``train_log.csv`` for ``loss`` (columns ``epoch``
        and ``train_loss``; ``val_loss`` too, if the log has it, drawn dashed in the same
        colour).
    table : Table C1 (``tableC1-encoders.csv``): one row per encoder, ``encoder`` and the
        percentages of :data:`ENCODER_METRICS`.
    loss : the loss the histories were trained with (the applied segmenter's).

    Returns
    -------
    The figure: (a) one line per encoder, in the order of ``histories``, (b) one group of
    bars per metric with one bar per encoder, in the same colours.

    Raises
    ------
    ValueError
        When a history lacks a column, or ``table`` lacks an encoder or a metric (named).
    """
    missing = [c for c in ("encoder", *ENCODER_METRICS) if c not in table.columns]
    if missing:
        raise ValueError(f"Table C1 has no column {missing}; it has {list(table.columns)}")
    rows = table.set_index("encoder")
    absent = [e for e in histories if e not in rows.index]
    if absent:
        raise ValueError(f"Table C1 has no row for encoder {absent}; it has {list(rows.index)}")
    fig, (ax_loss, ax_bar) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    width = 0.8 / len(histories)
    x = np.arange(len(ENCODER_METRICS))
    for k, (encoder, log) in enumerate(histories.items()):
        need = [c for c in ("epoch", "train_loss") if c not in log.columns]
        if need:
            raise ValueError(f"training log of encoder {encoder!r} has no column {need}")
        color, name = plt.cm.tab10(k), ENCODER_NAMES.get(encoder, encoder)
        ax_loss.plot(log["epoch"], log["train_loss"], color=color, marker="o", ms=3,
                     label=f"{name} (training)")  # fmt: skip
        if "val_loss" in log.columns:
            ax_loss.plot(log["epoch"], log["val_loss"], color=color, ls="--",
                         label=f"{name} (validation)")  # fmt: skip
        heights = rows.loc[encoder, list(ENCODER_METRICS)].to_numpy(dtype=float)
        ax_bar.bar(x + (k - (len(histories) - 1) / 2) * width, heights, width, color=color,
                   label=name)  # fmt: skip
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_xlabel("epoch")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_ylabel(f"{LOSS_NAMES.get(loss, loss)} loss (dimensionless)")
    ax_loss.set_title("(a) losses")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    ax_bar.set_xticks(x, list(ENCODER_METRICS.values()))
    ax_bar.set_ylabel("score on the validation images (%)")
    ax_bar.set_ylim(0, 118)  # room for the legend above the 100 % bars
    ax_bar.set_yticks(range(0, 101, 20))
    ax_bar.set_title("(b) performance metrics (maximum over the losses)")
    ax_bar.grid(alpha=0.3, axis="y")
    ax_bar.legend(loc="upper center", ncol=len(histories), frameon=False)
    fig.tight_layout()
    return fig
