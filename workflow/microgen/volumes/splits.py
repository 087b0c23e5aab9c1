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


def split_by_run(table: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Assign every row of ``table`` (columns ``name``, ``run_id``) to train or val.

    ``round(val_fraction · n_runs)`` runs (at least one when there are ≥ 2 runs and
    ``val_fraction > 0``, and at most ``n_runs − 1``) are drawn for validation with
    ``numpy.random.default_rng(seed)`` from the *sorted* run ids, so the draw depends only
    on the set of runs and the seed, not on row order. Returns ``name, run_id, split`` in
    the input's row order.
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
    val_runs = set(rng.permutation(runs)[:n_val].tolist())
    out = pd.DataFrame({"name": table["name"].astype(str), "run_id": table["run_id"].astype(str)})
    out["split"] = np.where(out["run_id"].isin(val_runs), "val", "train")
    return out.reset_index(drop=True)


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
) -> pd.DataFrame:
    """Split the volumes of a microgen3D HDF5 file by the attribute ``group_by`` (the
    simulation run: ``run_id`` here, e.g. ``source`` in a published file); write CSV."""
    from .hdf5 import read_features

    feats = read_features(h5_path)
    if group_by not in feats:
        raise KeyError(f"{h5_path}: volumes carry no {group_by!r} attribute to group runs by")
    table = feats[["name", group_by]].rename(columns={group_by: "run_id"})
    split = split_by_run(table, val_fraction, seed)
    write_split(split, out_csv)
    return split
