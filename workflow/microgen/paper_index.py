"""The paper index: every table and figure of the paper, the file of the paper DAG that
reproduces it, and the paper's numbers beside ours.

The items are listed in ``resources/paper/index.yaml``::

    items:
      - id: Table 1
        title: Parameter-only comparison of StyleGAN3, DDPM and SD3.5-Large
        part: generation                 # the part of config/paper.yaml that writes it
        files: [tables/table1-2-generative-metrics.csv]   # globs under results/{dataset}/
        compare:                         # optional: the paper's numbers, cell by cell
          file: tables/table1-2-generative-metrics.csv
          metrics: {CMMD: "cmmd.*|mmd_rbf.*", SSIM: "ssim.*"}   # paper column -> our column
          rows:
            - {row: StyleGAN3, match: {model: stylegan-lite}, paper: {CMMD: 1.555, SSIM: 0.125}}
      - id: Fig. 1
        title: Two-stage workflow
        missing: a schematic of the method, not a result

An item may carry a ``note`` (shown beside it when produced), e.g. where one of our figures
stands for several of the paper's.

``match`` values and ``metrics`` patterns are regular expressions matched against the whole
cell or column name; a cell such as ``85.70 ± 1.41`` reads as its leading number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SMOKE_NOTE = (
    "**Smoke scale.** This index comes from `config/paper-smoke.yaml`: tiny models built in "
    "code, a few training steps, 64-px images, the 23 UHCS-24 micrographs with UHCSDB "
    "records, a fabricated Aachen-Heerlen sample and simulated volumes. Its numbers show that "
    "every stage runs and connects; they say nothing about the paper's claims."
)
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def item_files(
    item: Mapping[str, Any], datasets: Mapping[str, str | None], root: str | Path
) -> list[Path]:
    """The files of an index item that exist: its globs under its part's results folder."""
    dataset = datasets.get(item.get("part", ""))
    if not dataset:
        return []
    base = Path(root, "results", dataset)
    return sorted(p for pattern in item.get("files", []) for p in base.glob(pattern))


def cell_number(value: object) -> float:
    """A table cell as a number: floats as they are, ``"85.70 ± 1.41"`` as 85.70, else NaN."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    found = _NUMBER.match(str(value))
    return float(found.group(1)) if found else float("nan")


def _column(table: pd.DataFrame, pattern: str) -> str | None:
    matches = [c for c in table.columns if re.fullmatch(pattern, str(c))]
    return matches[0] if matches else None


def _rows(table: pd.DataFrame, match: Mapping[str, str]) -> pd.DataFrame:
    keep = np.ones(len(table), dtype=bool)
    for column, pattern in match.items():
        if column not in table.columns:
            return table.iloc[0:0]
        cells = table[column].astype(str)
        keep &= cells.map(lambda c, p=str(pattern): re.fullmatch(p, c) is not None).to_numpy()
    return table[keep]


def compare_item(item: Mapping[str, Any], table: pd.DataFrame | None) -> pd.DataFrame:
    """The paper's numbers of an item beside ours, one row per (paper row, metric).

    Our value is the first row of ``table`` whose key columns match (``match``) in the column
    the metric's pattern names; ``ours`` is NaN, with the reason in ``note``, when the table,
    the row or the column is absent.
    """
    spec = item["compare"]
    records = []
    for row in spec["rows"]:
        for metric, paper in row["paper"].items():
            ours, note, column = float("nan"), "", ""
            if table is None:
                note = "table not written"
            else:
                column = _column(table, spec["metrics"][metric]) or ""
                hits = _rows(table, row.get("match", {}))
                if not column:
                    note = "no such column here"
                elif hits.empty:
                    note = "no such row here"
                else:
                    ours = cell_number(hits.iloc[0][column])
                    note = "" if np.isfinite(ours) else "our cell holds no number"
            records.append(
                {"item": item["id"], "row": row["row"], "metric": metric,
                 "paper": float(paper), "ours": ours, "ours - paper": ours - float(paper),
                 "our column": column, "note": note}
            )  # fmt: skip
    return pd.DataFrame(records)


def index_table(
    items: Sequence[Mapping[str, Any]], datasets: Mapping[str, str | None], root: str | Path
) -> pd.DataFrame:
    """One row per item: id, title, part, the files found, and its status: ``produced``,
    ``not produced here`` (its part is not in this paper config), ``MISSING`` (the part ran
    but wrote no file matching the item) or ``not reproducible`` (with the reason)."""
    records = []
    for item in items:
        files = item_files(item, datasets, root)
        if "missing" in item:
            status, note = "not reproducible", item["missing"]
        elif not datasets.get(item["part"]):
            status, note = "not produced here", f"part {item['part']} is not in this config"
        else:
            status, note = (
                ("produced", item.get("note", "")) if files else ("MISSING", "no file matches")
            )
        records.append(
            {"item": item["id"], "title": item["title"], "part": item.get("part", ""),
             "files": " ".join(str(f) for f in files), "status": status, "note": note}
        )  # fmt: skip
    return pd.DataFrame(records)


def comparisons(
    items: Sequence[Mapping[str, Any]], datasets: Mapping[str, str | None], root: str | Path
) -> pd.DataFrame:
    """The paper-beside-ours rows of every item that has a ``compare`` block."""
    frames = []
    for item in items:
        if "compare" not in item or not datasets.get(item.get("part", "")):
            continue
        path = Path(root, "results", datasets[item["part"]], item["compare"]["file"])
        frames.append(compare_item(item, pd.read_csv(path) if path.is_file() else None))
    columns = ["item", "row", "metric", "paper", "ours", "ours - paper", "our column", "note"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def write_index(
    index_yaml: str | Path,
    datasets: Mapping[str, str | None],
    out_md: str | Path,
    out_csv: str | Path,
    smoke: bool = False,
    root: str | Path = ".",
) -> pd.DataFrame:
    """Write ``index.md`` (the item table, then the paper's numbers beside ours, item by
    item) and ``index.csv`` (the item table) for the parts in ``datasets`` (part → data set
    name). Returns the item table."""
    import yaml

    items = yaml.safe_load(Path(index_yaml).read_text(encoding="utf-8"))["items"]
    table = index_table(items, datasets, root)
    compared = comparisons(items, datasets, root)
    lines = ["# Phan et al. (2025) and MicroGen3D, reproduced: tables and figures", ""]
    if smoke:
        lines += [SMOKE_NOTE, ""]
    counts = table["status"].value_counts()
    lines += [", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    lines += [table.to_markdown(index=False), ""]
    lines += ["## The paper's numbers beside ours", ""]
    for item_id, rows in compared.groupby("item", sort=False):
        lines += [
            f"### {item_id}",
            "",
            rows.drop(columns="item").round(4).to_markdown(index=False),
            "",
        ]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text("\n".join(lines), encoding="utf-8")
    table.to_csv(out_csv, index=False)
    return table


def unproduced(index_csv: str | Path) -> list[str]:
    """The items of a written index that a run should have produced and did not: status
    ``MISSING`` or ``not produced here`` (the schematics, ``not reproducible``, are fine)."""
    table = pd.read_csv(index_csv)
    return table.loc[table["status"].isin(["MISSING", "not produced here"]), "item"].tolist()


if __name__ == "__main__":
    import sys

    left = unproduced(sys.argv[1])
    if left:
        sys.exit(f"{sys.argv[1]}: not produced: {', '.join(left)}")
    print(f"{sys.argv[1]}: every item of the paper index was produced")
