"""The paper's split protocol on the real UHCSDB conditions (Table A1: 521 / 23 / 54)."""

from __future__ import annotations

import pandas as pd
import pytest

from microgen.data.split import matches, split_dataset, split_summary
from microgen.data.uhcsdb import read_uhcsdb

VARIABLES = ["temperature", "time", "magnification", "cooling", "microconstituent"]
PAPER_UNSEEN = {
    "time": [180],
    "temperature": [800, 970],
    "cooling": ["Q"],
    "magnification": {"min": 982, "max": 4910},
}
PAPER_SEEN = {**PAPER_UNSEEN, "time": [90, 480]}


@pytest.fixture(scope="module")
def table(uhcsdb_sqlite):
    return read_uhcsdb(uhcsdb_sqlite)


def _split(table, seed=0, seen_count=23):
    return split_dataset(table, VARIABLES, PAPER_UNSEEN, PAPER_SEEN, seen_count, seed)


def test_paper_protocol_counts(table):
    counts = _split(table)["split"].value_counts()
    # Paper: 521 train, 23 seen, 54 unseen. The database has 55 images matching the unseen
    # filter; the paper's count drops one (which one is not stated).
    assert counts["val_unseen"] == 55
    assert counts["val_seen"] == 23
    assert counts["train"] == 598 - 55 - 23


def test_seen_conditions_are_trained_on_and_unseen_are_not(table):
    joined = table.merge(_split(table), on="id")
    key = joined[VARIABLES].astype(str).agg("|".join, axis=1)
    train_keys = set(key[joined["split"] == "train"])
    assert set(key[joined["split"] == "val_seen"]) <= train_keys
    assert not set(key[joined["split"] == "val_unseen"]) & train_keys
    unseen = joined[joined["split"] == "val_unseen"]
    assert set(unseen["time"]) == {180} and set(unseen["cooling"]) == {"Q"}
    assert unseen["magnification"].between(982, 4910).all()


def test_reproducible_and_seeded(table):
    assert _split(table, seed=3).equals(_split(table, seed=3))
    assert not _split(table, seed=3).equals(_split(table, seed=4))


def test_impossible_seen_count_is_an_error(table):
    with pytest.raises(ValueError, match="seen-validation"):
        _split(table, seen_count=500)


def test_filters():
    frame = pd.DataFrame({"t": [1, 5, 10], "c": ["Q", "AR", "Q"]})
    assert matches(frame, {"t": {"min": 2, "max": 10}, "c": ["Q"]}).tolist() == [False, False, True]
    assert matches(frame, {"c": "AR"}).tolist() == [False, True, False]
    with pytest.raises(KeyError, match="'x'"):
        matches(frame, {"x": [1]})
    with pytest.raises(ValueError, match="unknown bound"):
        matches(frame, {"t": {"low": 1}})


def test_summary_lists_values_per_split(table):
    summary = split_summary(table, _split(table), ["temperature", "time"]).set_index("split")
    assert summary.loc["val_unseen", "time"] == "180"
    assert summary.loc["val_seen", "temperature"] in ("800, 970", "800", "970")
    assert summary["images"].sum() == 598
