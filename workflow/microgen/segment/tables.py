"""Segmentation tables from score rows; torch-free.

Tables 4, 5 and C1 of one data set's segmenters (:func:`segmentation_tables`), and Tables 3-5
over the cross-validation folds (:func:`cross_validation_tables`), next to the paper's and the
prior methods' published figures when the classes are UHCS-24's (:data:`PAPER_CLASSES`). Each
class is named by the data set's condition schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.segment.variants import WEIGHTS_NOTES, parse_variant

_LUENGO = "Luengo et al. 2022, Inf. Fusion 78:232"
_DECOST = "DeCost et al. 2019, Microsc. Microanal. 25:21"
PRIOR_METHODS = pd.DataFrame(
    [
        ("PixelNet", _LUENGO, 70.79, None, 90.77, None),
        ("U-Net++ (Dice)", _LUENGO, 76.46, None, 92.51, None),
        ("AMVE 3-best (K1)", _LUENGO, 76.71, None, 92.49, None),
        ("PixelNet (CCE)", _DECOST, 75.40, None, 92.60, None),
        ("PixelNet (Focal)", _DECOST, 62.60, None, 86.50, None),
        ("VGG-16 U-Net + ECA, Jaccard", "Phan et al. 2025 (paper)", 85.70, 1.41, 97.10, 0.82),
    ],
    columns=["model", "source", "miou", "miou_std", "accuracy", "accuracy_std"],
)

#: The classes, by id, of every published figure here: the UHCS-24 annotation (DeCost et al.
#: 2019). Another data set's tables show its own results alone.
PAPER_CLASSES = ("matrix", "cementite network", "spheroidite", "Widmanstätten")
#: Table 4 (Jaccard row) and Table 5 of the paper: per-class mean ± std (%), classes 0-3.
PAPER_IOU = {0: (96.34, 1.15), 1: (93.76, 2.35), 2: (85.40, 1.72), 3: (67.30, 6.04)}
PAPER_PER_CLASS = {
    "precision": {0: (97.67, 1.08), 1: (97.97, 0.38), 2: (93.53, 1.58), 3: (78.70, 6.89)},
    "recall": {0: (98.52, 0.37), 1: (96.59, 2.55), 2: (89.90, 2.24), 3: (80.02, 11.00)},
    "f1": {0: (98.09, 0.63), 1: (96.90, 1.46), 2: (91.68, 1.28), 3: (79.72, 5.19)},
    "boundary_f1": {0: (98.53, 0.44), 1: (93.06, 4.46), 2: (98.55, 0.24), 3: (91.70, 2.96)},
}


def segmentation_tables(
    score_csvs: Sequence[str | Path], out_dir: str | Path, class_names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Tables 4 (losses), 5 (per-class) and C1 (encoders) from per-model score rows.

    Values are percentages. Table 5 lists per-class IoU, precision, recall, F1 and the
    false-positive / false-negative rates of the best model by mIoU.
    """
    scores = pd.concat([pd.read_csv(p) for p in score_csvs], ignore_index=True)
    overall = ["pixel_accuracy", "miou", "mean_boundary_f1"]
    pct = scores.copy()
    numeric = pct.select_dtypes("number").columns.drop("images", errors="ignore")
    pct[numeric] = 100 * pct[numeric]
    table4 = pct.sort_values("miou", ascending=False)[["encoder", "loss", *overall]]
    best = pct.loc[pct["miou"].idxmax()]
    per_class = []
    for k, name in enumerate(class_names):
        row = {"class": f"{k} {name}"}
        for metric in ("iou", "precision", "recall", "f1", "fpr", "fnr", "boundary_f1"):
            row[metric] = best.get(f"{metric}_{k}", np.nan)
        per_class.append(row)
    table5 = pd.DataFrame(per_class)
    c1 = pct.groupby("encoder")[overall].max().reset_index()
    tables = {"table4-losses": table4, "table5-per-class": table5, "tableC1-encoders": c1}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.md").write_text(table.round(2).to_markdown(index=False) + "\n")
    return tables


def _mean_std(values: pd.Series) -> tuple[float, float]:
    v = 100 * values.astype(float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _fmt(mean: float, std: float | None) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    return f"{mean:.2f}" if std is None or not np.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def _paper_table4(class_names: Sequence[str]) -> dict[str, object]:
    """The paper's Table 4 row (Jaccard loss) in the columns of :func:`cross_validation_tables`."""
    row = {"labels": "labels", "variant": "paper Table 4 (Jaccard)", "folds": 6}
    for k, name in enumerate(class_names):
        row[f"IoU {k} {name}"] = _fmt(*PAPER_IOU[k])
    row.update({"mIoU": _fmt(85.70, 1.41), "accuracy": _fmt(97.10, 0.82)})
    return row


def cross_validation_tables(
    fold_scores: Mapping[tuple[str, str], Sequence[str | Path]],
    out_dir: str | Path,
    class_names: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Tables 3, 4 and 5 from fold score files keyed by ``(label_version, variant)``.

    Writes ``table3-cv-prior-methods``, ``table4-cv-per-class-iou`` and
    ``table5-cv-per-class-errors`` as ``.csv`` and ``.md`` to ``out_dir``; values are % as
    mean ± std (ddof 1) over folds, and what each variant's encoder started from.
    ``class_names`` names each class id; when they are :data:`PAPER_CLASSES` the paper's
    values and the prior methods' stand alongside.
    """
    paper = tuple(class_names) == PAPER_CLASSES
    rows3, rows4, rows5 = [], [], []
    for (labels, variant), files in sorted(fold_scores.items()):
        folds = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        weights = parse_variant(variant)["encoder_weights"]
        started = WEIGHTS_NOTES.get(weights, "random initialisation")
        miou, acc = _mean_std(folds["miou"]), _mean_std(folds["pixel_accuracy"])
        rows3.append(
            {
                "model": f"{variant} [{labels}] (this run)",
                "source": f"{len(folds)}-fold CV here; encoder from {started}",
                "miou": miou[0],
                "miou_std": miou[1],
                "accuracy": acc[0],
                "accuracy_std": acc[1],
            }
        )
        row4 = {"labels": labels, "variant": variant, "folds": len(folds)}
        for k, name in enumerate(class_names):
            row4[f"IoU {k} {name}"] = _fmt(*_mean_std(folds[f"iou_{k}"]))
        row4["mIoU"] = _fmt(*miou)
        row4["accuracy"] = _fmt(*acc)
        row4["mean best epoch"] = float(folds["best_epoch"].mean())
        if "converged" in folds:  # scores written before patience existed lack it
            row4["epochs trained"] = " ".join(str(e) for e in folds["epochs_trained"])
            row4["folds converged"] = f"{int(folds['converged'].sum())}/{len(folds)}"
        row4["train hours per fold"] = float(folds["train_seconds"].mean() / 3600)
        rows4.append(row4)
        for k, name in enumerate(class_names):
            row5 = {"labels": labels, "variant": variant, "class": f"{k} {name}"}
            for metric in ("precision", "recall", "f1", "fpr", "fnr", "boundary_f1"):
                col = f"{metric}_{k}"
                row5[metric] = _fmt(*_mean_std(folds[col])) if col in folds else ""
                if paper and metric in PAPER_PER_CLASS:
                    row5[f"{metric} (paper)"] = _fmt(*PAPER_PER_CLASS[metric][k])
            rows5.append(row5)
    if paper:
        rows3 = [*PRIOR_METHODS.to_dict("records"), *rows3]
        rows4 = [_paper_table4(class_names), *rows4]
    tables = {
        "table3-cv-prior-methods": pd.DataFrame(rows3, columns=PRIOR_METHODS.columns),
        "table4-cv-per-class-iou": pd.DataFrame(rows4),
        "table5-cv-per-class-errors": pd.DataFrame(rows5),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.md").write_text(table.round(2).to_markdown(index=False) + "\n")
    return tables
