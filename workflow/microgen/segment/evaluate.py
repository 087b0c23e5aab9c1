"""Segmentation metrics from confusion matrices and Boundary-F1; the fold partition of k-fold CV.

Conventions
-----------
* The confusion matrix ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``;
  matrices of several images are summed (pixel-pooled metrics over a data set).
* Per class k: TP = cm[k, k], FP = column sum − TP, FN = row sum − TP, TN = rest.
  IoU = TP/(TP+FP+FN), precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN),
  FPR = FP/(FP+TN), FNR = FN/(FN+TP). A ratio with a zero denominator is NaN, and means
  (mIoU, mean F1, ...) are over the classes where it is defined (``nanmean``); so a class
  absent from both truth and prediction does not count.
* Boundary-F1 (Csurka et al. 2013): the boundary of class k is the set of class-k pixels with
  a 4-neighbour of another class (the image border is not a boundary). A predicted boundary
  pixel is matched when a true boundary pixel lies within Euclidean distance ``tolerance``
  (default d = 2 px, via a distance transform), and vice versa; boundary precision and recall
  are pooled over images, F1 = 2PR/(P+R) per class, and the mean is over classes with any
  boundary in truth or prediction. Identical masks give 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

BOUNDARY_TOLERANCE = 2


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """``(classes, classes)`` int64 matrix, rows true class, columns predicted class."""
    truth = np.asarray(truth).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ")
    if truth.size and (truth.min() < 0 or truth.max() >= classes):
        raise ValueError(f"truth has class ids outside 0..{classes - 1}")
    if pred.size and (pred.min() < 0 or pred.max() >= classes):
        raise ValueError(f"prediction has class ids outside 0..{classes - 1}")
    return np.bincount(truth * classes + pred, minlength=classes * classes).reshape(
        classes, classes
    )


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def metrics_from_confusion(cm: np.ndarray) -> dict[str, float | np.ndarray]:
    """Pixel accuracy, and per class IoU, precision, recall, F1, FPR, FNR (+ their means)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    tn = cm.sum() - tp - fp - fn
    out: dict[str, float | np.ndarray] = {
        "pixel_accuracy": float(_div(tp.sum(), cm.sum())),
        "iou": _div(tp, tp + fp + fn),
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "fpr": _div(fp, fp + tn),
        "fnr": _div(fn, fn + tp),
    }
    out["miou"] = _nanmean(out["iou"])
    for name in ("precision", "recall", "f1", "fpr", "fnr"):
        out[f"mean_{name}"] = _nanmean(out[name])
    return out


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of a different value (the image border is not a boundary)."""
    mask = np.asarray(mask)
    b = np.zeros(mask.shape, bool)
    dv = mask[1:, :] != mask[:-1, :]
    dh = mask[:, 1:] != mask[:, :-1]
    b[1:, :] |= dv
    b[:-1, :] |= dv
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    return b


def boundary_counts(
    truth: np.ndarray, pred: np.ndarray, classes: int, tolerance: float = BOUNDARY_TOLERANCE
) -> np.ndarray:
    """``(classes, 4)`` counts: matched predicted, all predicted, matched true, all true
    boundary pixels of each class (sum them over images, then :func:`boundary_f1`)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ")
    counts = np.zeros((classes, 4), np.int64)
    for k in range(classes):
        bt = boundary(truth == k)
        bp = boundary(pred == k)
        bt &= truth == k  # the class-k side of the edge
        bp &= pred == k
        nt, np_ = int(bt.sum()), int(bp.sum())
        if nt == 0 and np_ == 0:
            continue
        dist_t = ndimage.distance_transform_edt(~bt) if nt else np.full(bt.shape, np.inf)
        dist_p = ndimage.distance_transform_edt(~bp) if np_ else np.full(bp.shape, np.inf)
        counts[k] = (
            int((dist_t[bp] <= tolerance).sum()),
            np_,
            int((dist_p[bt] <= tolerance).sum()),
            nt,
        )
    return counts


def boundary_f1(counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class boundary F1 and its mean from summed :func:`boundary_counts`."""
    counts = np.asarray(counts, float)
    precision = _div(counts[:, 0], counts[:, 1])
    recall = _div(counts[:, 2], counts[:, 3])
    present = (counts[:, 1] + counts[:, 3]) > 0
    # A class with boundary on one side only has precision or recall NaN: F1 = 0.
    p = np.where(np.isnan(precision), 0.0, precision)
    r = np.where(np.isnan(recall), 0.0, recall)
    f1 = _div(2 * p * r, p + r)
    f1 = np.where(present & np.isnan(f1), 0.0, f1)
    f1 = np.where(present, f1, np.nan)
    return f1, _nanmean(f1)


@dataclass
class SegmentationScores:
    """Accumulates confusion matrix and boundary counts over images."""

    classes: int
    tolerance: float = BOUNDARY_TOLERANCE
    confusion: np.ndarray = field(init=False)
    boundary: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.classes, self.classes), np.int64)
        self.boundary = np.zeros((self.classes, 4), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray, boundary: bool = True) -> None:
        self.confusion += confusion_matrix(truth, pred, self.classes)
        if boundary:
            self.boundary += boundary_counts(truth, pred, self.classes, self.tolerance)

    def compute(self) -> dict[str, float | np.ndarray]:
        out = metrics_from_confusion(self.confusion)
        out["boundary_f1"], out["mean_boundary_f1"] = boundary_f1(self.boundary)
        return out


def evaluate_masks(
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    classes: int,
    tolerance: float = BOUNDARY_TOLERANCE,
) -> dict[str, float | np.ndarray]:
    """Pixel-pooled metrics of predicted masks against true masks with class ids
    0 … ``classes - 1`` (see module docstring)."""
    scores = SegmentationScores(classes, tolerance)
    for t, p in zip(truths, preds, strict=True):
        scores.update(t, p)
    return scores.compute()


def flatten_metrics(metrics: Mapping[str, float | np.ndarray]) -> dict[str, float]:
    """One float per key: per-class arrays become ``{name}_{class}`` columns."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        arr = np.asarray(value, float)
        if arr.ndim == 0:
            flat[name] = float(arr)
        else:
            flat.update({f"{name}_{k}": float(v) for k, v in enumerate(arr)})
    return flat


def fold_partition(
    folds: Mapping[int, Sequence[str]], test_fold: int, val_fold: str | None = "next"
) -> tuple[list[str], list[str], list[str]]:
    """Train, validation and test ids when fold ``test_fold`` is held out.

    ``val_fold="next"``: the next fold (cyclically, in sorted key order) validates, i.e. picks
    the best epoch, and the remaining folds train. ``val_fold=None``: all other folds train
    and the test fold doubles as validation (optimistic: model selection sees the test fold).
    """
    keys = sorted(folds)
    if test_fold not in folds:
        raise KeyError(f"fold {test_fold} not in folds {keys}")
    test_ids = list(folds[test_fold])
    if val_fold == "next":
        v = keys[(keys.index(test_fold) + 1) % len(keys)]
        val_ids = list(folds[v])
        train_ids = [i for j in keys if j not in (test_fold, v) for i in folds[j]]
    elif val_fold is None:
        val_ids = test_ids
        train_ids = [i for j in keys if j != test_fold for i in folds[j]]
    else:
        raise ValueError(f"val_fold must be 'next' or None, got {val_fold!r}")
    return train_ids, val_ids, test_ids
