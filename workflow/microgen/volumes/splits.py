"""Seeded train/validation split of the 3D data grouped by simulation run.

All snapshots of one Cahn–Hilliard run (one ``run_id``) share an initial condition and a
trajectory, so they go to the same side: no run straddles the split. The split is a CSV
with columns ``name, run_id, split`` (``split`` ∈ {``train``, ``val``}) stored next to the
HDF5 file, so later stages read it rather than redraw it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "val")
COLUMNS = ["name", "run_id", "split"]


def split_by_run(
    table: pd.DataFrame,
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify_by: str | None = None,
) -> pd.DataFrame:
    """Assign every row of ``table`` (columns ``name``, ``run_id``) to train or val.

    ``round(val_fraction · n_runs)`` runs (at least one when there are ≥ 2 runs and
    ``val_fraction > 0``, and at most ``n_runs − 1``) are drawn for validation with
    ``numpy.random.default_rng(seed)`` from the *sorted* run ids, so the draw depends only
    on the set of runs and the seed, not on row order. With ``stratify_by`` (a numeric
    column of ``table``) the runs are ordered by their mean of it and cut into ``n_val``
    consecutive strata of near-equal size, and one run is drawn from each: the validation
    runs then span the column's range (a plain draw of 12 of 48 Cahn–Hilliard runs left
    the validation ``vol_frac_D`` with half the spread of the training one, and R² of
    generated features is measured against that spread). Returns ``name, run_id, split``
    in the input's row order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    missing = {"name", "run_id"} - set(table.columns)
    if missing:
        raise KeyError(f"split table lacks column(s) {sorted(missing)}")
    if table["name"].duplicated().any():
        dup = table.loc[table["name"].duplicated(), "name"].iloc[0]
        raise ValueError(f"duplicate volume name {dup!r}")
    if table["run_id"].isna().any():
        raise ValueError("every volume needs a run_id")
    runs = np.array(sorted(table["run_id"].astype(str).unique()))
    n_val = int(round(val_fraction * len(runs)))
    if val_fraction > 0 and len(runs) >= 2:
        n_val = min(max(n_val, 1), len(runs) - 1)
    rng = np.random.default_rng(seed)
    if stratify_by is None or n_val == 0:
        val_runs = set(rng.permutation(runs)[:n_val].tolist())
    else:
        val_runs = _stratified_runs(table, runs, n_val, stratify_by, rng)
    out = pd.DataFrame({"name": table["name"].astype(str), "run_id": table["run_id"].astype(str)})
    out["split"] = np.where(out["run_id"].isin(val_runs), "val", "train")
    return out.reset_index(drop=True)


def _stratified_runs(
    table: pd.DataFrame, runs: np.ndarray, n_val: int, column: str, rng: np.random.Generator
) -> set[str]:
    """One run drawn from each of ``n_val`` strata of ``runs`` ordered by mean ``column``."""
    if column not in table.columns:
        raise KeyError(f"split table lacks the stratification column {column!r}")
    values = pd.to_numeric(table[column], errors="coerce")
    key = values.groupby(table["run_id"].astype(str)).mean().reindex(runs)
    if key.isna().any():
        raise ValueError(f"run(s) without a finite {column!r}: {list(key.index[key.isna()])[:3]}")
    ordered = key.reset_index().sort_values([column, "run_id"], kind="stable")["run_id"]
    return {str(rng.choice(stratum)) for stratum in np.array_split(ordered.to_numpy(), n_val)}


def check_split(split: pd.DataFrame) -> None:
    """Raise ``ValueError`` if columns are wrong, labels unknown or a run straddles."""
    if list(split.columns[:3]) != COLUMNS:
        raise ValueError(f"split columns must start with {COLUMNS}, got {list(split.columns)}")
    bad = set(split["split"]) - set(SPLITS)
    if bad:
        raise ValueError(f"unknown split label(s) {sorted(bad)}")
    per_run = split.groupby("run_id")["split"].nunique()
    straddle = per_run[per_run > 1]
    if len(straddle):
        raise ValueError(f"run(s) straddle the split: {sorted(straddle.index)[:5]}")


def write_split(split: pd.DataFrame, path: str | Path) -> Path:
    check_split(split)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    split[COLUMNS].to_csv(path, index=False)
    return path


def read_split(path: str | Path) -> pd.DataFrame:
    split = pd.read_csv(path, dtype=str, keep_default_na=False)
    check_split(split)
    return split


def split_h5(
    h5_path: str | Path,
    out_csv: str | Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    group_by: str = "run_id",
    stratify_by: str | None = None,
) -> pd.DataFrame:
    """Split the volumes of a microgen3D HDF5 file by the attribute ``group_by`` (the
    simulation run: ``run_id`` here, e.g. ``source`` in a published file), optionally
    stratified by the attribute ``stratify_by`` (:func:`split_by_run`); write CSV."""
    from .hdf5 import read_features

    feats = read_features(h5_path)
    for attr in (group_by, stratify_by):
        if attr is not None and attr not in feats:
            raise KeyError(f"{h5_path}: volumes carry no {attr!r} attribute")
    columns = ["name", group_by] + ([stratify_by] if stratify_by not in (None, group_by) else [])
    table = feats[columns].rename(columns={group_by: "run_id"})
    if stratify_by == group_by:
        stratify_by = "run_id"
    split = split_by_run(table, val_fraction, seed, stratify_by)
    write_split(split, out_csv)
    return split
