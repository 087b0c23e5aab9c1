"""The UHCSDB reader on the real database: the paper's 598 micrographs, every string parsed."""

from __future__ import annotations

import sqlite3
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import SCHEMA
from PIL import Image

from microgen.data.prepared import read_gray, read_metadata
from microgen.data.uhcsdb import (
    INFO_BAND_PX,
    parse_magnification,
    pixel_size_from_magnification,
    prepare_uhcsdb,
    read_uhcsdb,
)


def test_598_micrographs_with_full_processing_metadata(uhcsdb_sqlite):
    table = read_uhcsdb(uhcsdb_sqlite)
    assert len(table) == 598
    assert table["id"].is_unique
    for column in ("temperature", "time", "cooling", "magnification", "pixel_size_um"):
        assert table[column].notna().all(), column
    assert set(table["cooling"]) == {"Q", "AR", "FC", "650-1H"}  # Table A1's four methods
    assert set(table["temperature"]) == {700, 750, 800, 900, 970, 1000, 1100}
    # Times in minutes: "3H" → 180, "90M" → 90.
    assert {90, 180, 480, 1440, 5100} <= set(table["time"])
    assert len(read_uhcsdb(uhcsdb_sqlite, require_processing=False)) == 961


def test_every_magnification_string_parses(uhcsdb_sqlite):
    with sqlite3.connect(uhcsdb_sqlite) as con:
        strings = [r[0] for r in con.execute("SELECT magnification FROM micrograph")]
    non_null = [s for s in strings if s is not None]
    assert len(non_null) > 1400
    parsed = [parse_magnification(s) for s in non_null]
    assert all(p is not None and p > 0 for p in parsed)
    assert parse_magnification("4910x") == 4910 and parse_magnification("1964X") == 1964
    assert parse_magnification(None) is None
    with pytest.raises(ValueError, match="not a magnification"):
        parse_magnification("about 5k")


def test_units_and_scale_against_the_raw_rows(uhcsdb_sqlite):
    table = read_uhcsdb(uhcsdb_sqlite).set_index("micrograph_id")
    with sqlite3.connect(uhcsdb_sqlite) as con:
        raw = pd.read_sql_query(
            "SELECT m.micrograph_id, m.micron_bar, m.micron_bar_px, m.micron_bar_units, "
            "s.anneal_time, s.anneal_time_unit FROM micrograph m JOIN sample s "
            "ON m.sample_key = s.sample_id",
            con,
        ).set_index("micrograph_id")
    raw = raw.loc[table.index]
    factor = raw["anneal_time_unit"].map({"H": 60.0, "M": 1.0})
    np.testing.assert_allclose(table["time"], raw["anneal_time"] * factor)
    um = raw["micron_bar_units"].map({"um": 1.0, "nm": 1e-3, "mm": 1e3})
    np.testing.assert_allclose(
        table["pixel_size_um"], raw["micron_bar"] * um / raw["micron_bar_px"]
    )
    # Where the magnification is recorded, the scale bar agrees with pixel size ∝ 1/M
    # (UHCS: 20 µm = 103 px at 982×) to within the bar's pixel rounding.
    recorded = table[table["magnification_source"] == "recorded"]
    ratio = recorded["pixel_size_um"] / recorded["magnification"].map(pixel_size_from_magnification)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    missing = table[table["magnification_source"] == "scale_bar"]
    assert len(missing) > 0 and missing["magnification"].gt(0).all()


def test_prepare_crops_the_info_band_from_fabricated_images(uhcsdb_sqlite, tmp_path):
    # The deposit's images are not available offline: fabricate one small TIFF per
    # micrograph (the metadata stays real) with a white information band at the bottom.
    table = read_uhcsdb(uhcsdb_sqlite)
    archive = tmp_path / "micrographs.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in table["path"]:
            image = rng.integers(0, 200, size=(48 + INFO_BAND_PX, 64), dtype=np.uint8)
            image[-INFO_BAND_PX:] = 255
            tif = tmp_path / "x.tif"
            Image.fromarray(image).save(tif)
            zf.write(tif, f"micrographs/{path}")
    out = tmp_path / "prepared"
    written = prepare_uhcsdb(uhcsdb_sqlite, archive, SCHEMA, out)
    assert len(written) == 598
    metadata = read_metadata(out)
    assert len(metadata) == 598 and metadata["prompt_full_text"].str.len().gt(0).all()
    first = read_gray(out / "images" / f"{metadata['id'][0]}.png")
    assert first.shape == (48, 64) and first.max() < 255


def test_missing_image_names_the_micrograph(uhcsdb_sqlite, tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="micrograph uhcs0002"):
        prepare_uhcsdb(uhcsdb_sqlite, tmp_path / "images", SCHEMA, tmp_path / "out")
