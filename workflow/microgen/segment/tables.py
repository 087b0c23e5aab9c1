"""Segmentation tables (paper Tables 4, 5 and C1) from per-model score rows; torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


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
