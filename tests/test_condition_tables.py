"""A user's condition table is checked before any model loads: what cannot be sampled stops
with the file, line and column; what lies beyond the training data warns and is sampled."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from conftest import REPO

from microgen.data.condition_tables import (
    OutOfRangeWarning,
    read_condition_table,
    read_value_table,
)
from microgen.data.schema import load_schema

SCHEMA = load_schema(REPO / "resources" / "schemas" / "uhcs.yaml")
HEADER = "temperature,time,magnification,cooling,microconstituent"
#: Training rows spanning 800-970 °C, 90-1440 min, 1964-4910x, Q and AR, two constituents.
TRAINING = pd.DataFrame(
    {
        "temperature": [800, 970],
        "time": [90, 1440],
        "magnification": [1964, 4910],
        "cooling": ["Q", "AR"],
        "microconstituent": ["spheroidite", "network"],
    }
)


def table(tmp_path, *lines: str, header: str = HEADER):
    path = tmp_path / "conditions.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def read(path, default_n=4):
    return read_condition_table(path, SCHEMA, default_n, TRAINING)


def test_conditions_within_the_training_data_read_without_warning(tmp_path):
    path = table(tmp_path, "850,300,3000,Q,spheroidite", "900,1440,4910,AR,network")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = read(path)
    assert checked.rows[0] == {
        "temperature": 850.0, "time": 300.0, "magnification": 3000.0,
        "cooling": "Q", "microconstituent": "spheroidite",
    }  # fmt: skip
    assert checked.counts == (4, 4) and checked.outside == ((), ())
    index, rows, seeds = checked.grid(seed=10)
    assert index == [0] * 4 + [1] * 4 and seeds == [10, 11, 12, 13] * 2
    assert SCHEMA.label(rows[-1]) == "900C-1440M-4910x-AR-N"


def test_the_n_column_sets_images_per_row_and_an_empty_cell_the_default(tmp_path):
    path = table(
        tmp_path,
        "850,300,3000,Q,spheroidite,2",
        "900,1440,4910,AR,network,",
        header=HEADER + ",n",
    )
    assert read(path, default_n=3).counts == (2, 3)


def test_a_temperature_beyond_the_training_range_warns_with_value_and_range(tmp_path):
    path = table(tmp_path, "850,300,3000,Q,spheroidite", "1050,480,3437,Q,spheroidite")
    with pytest.warns(OutOfRangeWarning) as caught:
        checked = read(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{path}: line 3, column 'temperature'" in message
    assert "1050 °C" in message and "800-970 °C" in message
    assert checked.outside == ((), ("temperature",))  # sampled anyway, and marked


def test_a_category_no_training_row_has_warns(tmp_path):
    path = table(tmp_path, "850,300,3000,FC,spheroidite")
    with pytest.warns(OutOfRangeWarning, match=r"line 2, column 'cooling': 'FC' occurs in no"):
        assert read(path).outside == (("cooling",),)


@pytest.mark.parametrize(
    "header, line, said",
    [
        (HEADER + ",grain", "850,300,3000,Q,spheroidite,5",
         "line 1, column 'grain' is no variable"),
        ("temperature,time,magnification,cooling", "850,300,3000,Q",
         "line 1 lacks the column of variable 'microconstituent'"),
        (HEADER, "850,300,3000,Q,bainite",
         "line 2, column 'microconstituent': unknown category 'bainite'"),
        (HEADER, "850,300,3000,,spheroidite", "line 2, column 'cooling': empty cell"),
        (HEADER, "850,long,3000,Q,spheroidite", "line 2, column 'time': 'long' is not a number"),
        (HEADER, "850,0,3000,Q,spheroidite", "line 2, column 'time': 0 must be > 0"),
        (HEADER + ",n", "850,300,3000,Q,spheroidite,2.5",
         "line 2, column 'n': '2.5' is not a positive"),
    ],
)  # fmt: skip
def test_a_table_that_cannot_be_sampled_names_file_line_and_column(tmp_path, header, line, said):
    path = table(tmp_path, line, header=header)
    with pytest.raises(ValueError) as err:
        read(path)
    assert str(err.value).startswith(str(path)) and said in str(err.value)


def test_a_repeated_condition_names_both_lines(tmp_path):
    path = table(tmp_path, "850,300,3000,Q,spheroidite", "850.0,300,3000,Q,spheroidite")
    with pytest.raises(ValueError, match="line 3 repeats the condition of line 2"):
        read(path)


def test_3d_targets_warn_beyond_the_training_volumes(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text("vol_frac_D,CT_f_D_tort1\n0.5,0.6\n0.9,0.6\n")
    spans = {"vol_frac_D": (0.4, 0.6), "CT_f_D_tort1": (0.3, 1.0)}
    with pytest.warns(OutOfRangeWarning, match=r"line 3, column 'vol_frac_D': 0.9 lies outside"):
        checked = read_value_table(path, ["vol_frac_D", "CT_f_D_tort1"], default_n=2, spans=spans)
    assert checked.counts == (2, 2) and checked.outside == ((), ("vol_frac_D",))
    path.write_text("vol_frac_D\n0.5\n")
    with pytest.raises(ValueError, match="lacks the column of variable 'CT_f_D_tort1'"):
        read_value_table(path, ["vol_frac_D", "CT_f_D_tort1"])


def test_the_shipped_examples_check(tmp_path):
    """The example tables of config/examples read against the embedded default's
    training range: one 2D row warns (1050 °C), none fails."""
    with pytest.warns(OutOfRangeWarning, match="1050 °C"):
        checked = read(REPO / "config" / "examples" / "conditions.csv")
    assert len(checked.rows) == 3
    targets = read_value_table(
        REPO / "config" / "examples" / "targets3d.csv",
        ["vol_frac_D", "CT_f_D_tort1", "CT_f_A_tort1"],
    )
    assert len(targets.rows) == 3
