"""Table 7 of Phan et al. (2025): the schema-transfer experiment (Aachen-Heerlen, section 3.3).

* Table 7a (:func:`table7a`): per generated set, the generative metrics of Tables 1/2
  (CMMD, CLIP score, SSIM, LPIPS, precision, recall; rows ``overall`` of
  ``generative-metrics-long.csv``) and the MA IoU of our segmenter on the validation images
  (row ``all`` of ``per-group-segmenter-iou-{model}.csv``), beside the paper's row and the
  original A-H benchmark's MA IoU.
* Table 7b: :func:`microgen.evaluate.per_type.table7b` of ``per-group-area-fraction.csv``.

A metric the run did not compute (CLIP score and LPIPS need weights an offline run lacks)
is NaN, and the ``not computed`` column says so; the ``features`` column names the space of
the distribution metrics, since CMMD is "cmmd" on CLIP features only and ``mmd_rbf``
otherwise (:mod:`microgen.metrics.tables`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .fidelity import GEN_KEYS, write_table
from .per_type import ALL, PAPER_TABLE7B, table7b

__all__ = [
    "TABLE7A_COLUMNS",
    "PAPER_TABLE7A",
    "AH_BENCHMARK_MA_IOU",
    "table7a",
    "display_order",
    "transfer_tables_stage",
]

#: Table 7a column -> metric names of the long table that fill it, in preference order.
TABLE7A_COLUMNS: dict[str, tuple[str, ...]] = {
    "CMMD": ("cmmd", "mmd_rbf"),
    "CLIP score": ("clip_score",),
    "SSIM": ("ssim",),
    "LPIPS": ("lpips",),
    "precision": ("precision",),
    "recall": ("recall",),
}
#: The paper's Table 7a row (SD3.5-Large, full-text prompts, Aachen-Heerlen).
PAPER_TABLE7A: dict[str, float] = {
    "CMMD": 1.185, "CLIP score": 0.302, "SSIM": 0.778, "LPIPS": 0.415, "precision": 0.578,
    "recall": 0.647, "MA-IoU": 0.487,
}  # fmt: skip
#: MA IoU of the original A-H benchmark segmentation (Iren et al. 2021), as Table 7a cites it.
AH_BENCHMARK_MA_IOU = 0.35


def table7a(long: pd.DataFrame, iou: pd.DataFrame, group: str = "steel_type") -> pd.DataFrame:
    """Table 7a: one row per generated set, then the paper's and the A-H benchmark's rows.

    Parameters
    ----------
    long : generative metrics in long format (``model, prompt_mode, condition, metric,
        value, feature_extractor``; :func:`microgen.evaluate.generative.generative_tables`).
        The ``overall`` rows are used (the only condition's rows when a set has one).
    iou : per-group MA IoU of the segmenter (:func:`microgen.evaluate.per_type.iou_per_group`);
        its ``ALL`` row's ``iou_pooled`` is the ``MA-IoU`` of every row of this run (the
        segmenter that measures the generated images).
    group : the IoU table's group column.

    Returns
    -------
    ``source, model, prompt_mode``, the :data:`TABLE7A_COLUMNS`, ``MA-IoU``, ``features``
    (extractor of CMMD / precision / recall) and ``not computed`` (the Table 7a columns the
    run has no value for).
    """
    pooled = iou.loc[iou[group].astype(str) == ALL, "iou_pooled"]
    if pooled.empty:
        raise ValueError(f"the IoU table has no {ALL!r} row in column {group!r}")
    ma_iou = float(pooled.iloc[0])
    rows = []
    for (model, mode), t in long.groupby(list(GEN_KEYS), sort=False):
        conditions = set(t["condition"])
        if "overall" in conditions:
            t = t[t["condition"] == "overall"]
        elif len(conditions) == 1:
            pass  # a single condition: its rows are the overall ones
        else:
            raise ValueError(f"{model}/{mode}: no 'overall' rows in the generative metrics")
        values = dict(zip(t["metric"], t["value"].astype(float), strict=False))
        extractors = dict(zip(t["metric"], t["feature_extractor"], strict=False))
        row: dict = {"source": "this run", "model": model, "prompt_mode": mode}
        missing, spaces = [], []
        for column, names in TABLE7A_COLUMNS.items():
            name = next((n for n in names if n in values), None)
            row[column] = values[name] if name else np.nan
            if name is None:
                missing.append(column)
            elif column in ("CMMD", "precision", "recall"):
                spaces.append(extractors[name])
        row["MA-IoU"] = ma_iou
        row["features"] = "; ".join(dict.fromkeys(spaces))
        row["not computed"] = ", ".join(missing)
        rows.append(row)
    rows.append(
        {"source": "Phan et al. 2025 (paper)", "model": "sd35-large", "prompt_mode": "full_text",
         **PAPER_TABLE7A, "features": "clip", "not computed": ""}
    )  # fmt: skip
    rows.append(
        {"source": "A-H benchmark (Iren et al. 2021)", "model": "-", "prompt_mode": "-",
         "MA-IoU": AH_BENCHMARK_MA_IOU, "features": "",
         "not computed": "generative metrics (segmentation only)"}
    )  # fmt: skip
    columns = ["source", *GEN_KEYS, *TABLE7A_COLUMNS, "MA-IoU", "features", "not computed"]
    return pd.DataFrame(rows)[columns]


def display_order(
    order: Sequence[str], paper: Mapping[str, tuple[float, float]] | None = None
) -> list[str]:
    """Groups in the paper's Table 7b order (seen steel types, then unseen), then the other
    values of ``order`` (the schema's categories) in theirs."""
    return list(dict.fromkeys([*(PAPER_TABLE7B if paper is None else paper), *order]))


def transfer_tables_stage(
    long_csv: str,
    per_group_csv: str,
    iou_csv: str,
    group: str,
    order: Sequence[str],
    out_table7a: str,
    out_table7b: str,
    paper_7b: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write Tables 7a and 7b (csv and a markdown twin each) from the run's tables.

    ``per_group_csv`` is ``per-group-area-fraction.csv`` (with generated sets), ``iou_csv``
    the segmenter's ``per-group-segmenter-iou-{model}.csv``, ``order`` the schema's
    categories of ``group`` (rows follow :func:`display_order`).
    """
    dtypes = {group: str}
    t7a = table7a(pd.read_csv(long_csv), pd.read_csv(iou_csv, dtype=dtypes), group)
    t7b = table7b(
        pd.read_csv(per_group_csv, dtype=dtypes), group, display_order(order, paper_7b), paper_7b
    )
    for table, csv, title in (
        (t7a, out_table7a, "Table 7a: schema transfer to Aachen-Heerlen, generative metrics"),
        (t7b, out_table7b, f"Table 7b: MAE of the MA area fraction per {group} (pp)"),
    ):
        write_table(table, csv, Path(csv).with_suffix(".md"), floatfmt=".4g", title=title)
    return t7a, t7b
