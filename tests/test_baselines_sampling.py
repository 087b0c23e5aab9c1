"""Samples contract (paths + samples.csv) and the validation conditions to sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from baselines_data import BRIGHT, DARK, make_two_condition_set
from conftest import SCHEMA

from microgen.data.prepared import read_gray
from microgen.generate.sampling import (
    SAMPLES_CSV,
    sample_grid,
    validation_conditions,
    write_samples,
)


def test_validation_conditions_unique_with_split(tmp_path, schema):
    data_dir, split_csv = make_two_condition_set(tmp_path, schema, per_condition=3)
    # a second val_seen image of the DARK condition must not duplicate it
    split = pd.read_csv(split_csv)
    split.loc[split["id"] == "d01", "split"] = "val_seen"
    split.to_csv(split_csv, index=False)
    conds = validation_conditions(data_dir, split_csv, SCHEMA)
    assert [c["split"] for c in conds] == ["val_seen", "val_seen", "val_unseen"]
    labels = [c["label"] for c in conds]
    assert labels[:2] == sorted([schema.label(DARK), schema.label(BRIGHT)])
    assert labels[2] == "850C-5M-100x-Q-S"
    assert conds[2]["temperature"] == 850.0 and conds[2]["cooling"] == "Q"
    # a condition in both validation splits is an error
    split.loc[split["id"] == "u00", "split"] = "val_seen"
    split.loc[split["id"] == "d01", "split"] = "val_unseen"
    split.to_csv(split_csv, index=False)
    with pytest.raises(ValueError, match="both"):
        validation_conditions(data_dir, split_csv, SCHEMA)


def test_write_samples_layout_and_csv(tmp_path, schema):
    conditions = {schema.label(c): c for c in (DARK, BRIGHT)}
    conds, seeds = sample_grid(list(conditions.values()), [0, 7])
    assert seeds == [0, 7, 0, 7] and conds[1] is DARK
    images = {
        ("parameter_only", schema.label(c), s): np.full((8, 8), 10 * i, np.uint8)
        for i, (c, s) in enumerate(zip(conds, seeds, strict=True))
    }
    table = write_samples(tmp_path / "s", images, conditions, schema=schema)
    assert list(table.columns) == [
        "prompt_mode", "label", *schema.variables, "seed", "path",
    ]  # fmt: skip
    on_disk = pd.read_csv(tmp_path / "s" / SAMPLES_CSV)
    assert len(on_disk) == 4
    row = on_disk[(on_disk["label"] == "700C-5M-100x-Q-S") & (on_disk["seed"] == 7)].iloc[0]
    assert row["path"] == "parameter_only/700C-5M-100x-Q-S/7.png"
    assert row["temperature"] == 700 and row["microconstituent"] == "spheroidite"
    assert (read_gray(tmp_path / "s" / row["path"]) == 10).all()
    for p in on_disk["path"]:
        assert (tmp_path / "s" / p).is_file()


def test_write_samples_rejects_bad_input(tmp_path, schema):
    good = {schema.label(DARK): DARK}
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="prompt mode"):
        write_samples(tmp_path, {("words", schema.label(DARK), 0): img}, good)
    with pytest.raises(ValueError, match="no condition"):
        write_samples(tmp_path, {("parameter_only", "other", 0): img}, good)
    with pytest.raises(ValueError, match="does not match"):
        write_samples(tmp_path, {}, {"wrong": DARK}, schema=schema)
