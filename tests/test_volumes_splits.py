"""Run-grouped, seeded train/validation split of the 3D data."""

from __future__ import annotations

import pandas as pd
import pytest

from microgen.volumes.splits import check_split, read_split, split_by_run, write_split


def _table(n_runs=10, per_run=5):
    rows = [(f"r{r}_s{s}", f"r{r}") for r in range(n_runs) for s in range(per_run)]
    return pd.DataFrame(rows, columns=["name", "run_id"])


def test_grouped_fraction_and_no_straddle():
    split = split_by_run(_table(), val_fraction=0.2, seed=0)
    assert list(split.columns) == ["name", "run_id", "split"]
    per_run = split.groupby("run_id")["split"].nunique()
    assert (per_run == 1).all()
    val_runs = split.loc[split.split == "val", "run_id"].unique()
    assert len(val_runs) == 2
    assert (split.split == "val").sum() == 10
    check_split(split)


def test_seeded_reproducible_and_order_independent():
    t = _table()
    a = split_by_run(t, seed=3)
    b = split_by_run(t.sample(frac=1.0, random_state=1), seed=3)
    assert a.equals(split_by_run(t, seed=3))
    assert dict(zip(a.name, a.split, strict=True)) == dict(zip(b.name, b.split, strict=True))
    draws = {
        tuple(sorted(split_by_run(t, seed=s).query("split == 'val'").run_id.unique()))
        for s in range(8)
    }
    assert len(draws) > 1  # the seed matters


def test_small_and_edge_cases():
    assert set(split_by_run(_table(2, 3), 0.1).split) == {"train", "val"}  # ≥1 val run
    assert set(split_by_run(_table(1, 3), 0.5).split) == {"train"}  # cannot split one run
    assert set(split_by_run(_table(3, 3), 0.0).split) == {"train"}
    with pytest.raises(ValueError):
        split_by_run(_table(), 1.0)
    dup = pd.concat([_table(2, 2), _table(1, 1)])
    with pytest.raises(ValueError, match="duplicate"):
        split_by_run(dup)


def test_csv_round_trip_and_straddle_detection(tmp_path):
    split = split_by_run(_table(), seed=1)
    path = write_split(split, tmp_path / "split.csv")
    assert read_split(path).equals(split)
    bad = split.copy()
    bad.loc[0, "split"] = "val" if bad.loc[0, "split"] == "train" else "train"
    with pytest.raises(ValueError, match="straddle"):
        write_split(bad, tmp_path / "bad.csv")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="straddle"):
        read_split(tmp_path / "bad.csv")


def test_stratified_split_draws_one_run_per_stratum():
    t = _table(n_runs=12, per_run=2)
    t["phi"] = t["run_id"].str[1:].astype(int) / 20.0  # run r has phi r/20
    for seed in range(5):
        split = split_by_run(t, val_fraction=0.25, seed=seed, stratify_by="phi")
        check_split(split)
        val = sorted(int(r[1:]) for r in split.loc[split.split == "val", "run_id"].unique())
        # three strata of the phi order: runs 0-3, 4-7, 8-11, one validation run in each
        assert [v // 4 for v in val] == [0, 1, 2], val
    draws = {
        tuple(split_by_run(t, 0.25, s, "phi").query("split == 'val'").run_id.unique())
        for s in range(8)
    }
    assert len(draws) > 1  # still a seeded draw within the strata
    with pytest.raises(KeyError, match="stratification"):
        split_by_run(t, 0.25, 0, stratify_by="chi")
