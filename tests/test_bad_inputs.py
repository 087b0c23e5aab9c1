"""Readers refuse what a prepared data set cannot represent (issue 21, item 3).

Every bad input is made in ``tmp_path`` from a copy of the real UHCS-24 folder (images and
metadata.csv) or of the real UHCSDB database; the real data are never modified. Each test
asserts the error type and that the one-line message names the file, the row, the column
and the value, and, where the input is accepted on request, what the reader then returns.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SCHEMA
from PIL import Image

from microgen.data.aachen_heerlen import prepare_aachen_heerlen, read_aachen_heerlen
from microgen.data.checks import DataError, MissingColumnError, MissingFileError
from microgen.data.decode import ImageDataError, read_mask, read_micrograph
from microgen.data.folder import prepare_folder
from microgen.data.prepared import METADATA, read_gray, write_prepared
from microgen.data.schema import load_schema
from microgen.data.split import write_split
from microgen.data.uhcs24 import iter_uhcs24, read_uhcs24
from microgen.data.uhcsdb import iter_micrographs, read_uhcsdb

# Line 3 of metadata.csv is the second data row: uhcs0007, 970 °C, 90 min, Q, 982x.
ROW, IMAGE, LINE = 1, "uhcs0007", "line 3 (uhcs0007.png)"


@pytest.fixture
def folder(uhcs24_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the real UHCS-24 folder."""
    return Path(shutil.copytree(uhcs24_dir, tmp_path / "uhcs24"))


def edit_metadata(folder: Path, edit) -> Path:
    """Rewrite ``folder/metadata.csv`` through ``edit`` (cells kept as text)."""
    path = folder / "metadata.csv"
    table = pd.read_csv(path, dtype=str)
    edit(table).to_csv(path, index=False)
    return path


def set_cell(column: str, value: str):
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[ROW, column] = value
        return table

    return edit


def image_path(folder: Path, image_id: str = IMAGE) -> Path:
    return folder / "images" / f"{image_id}.png"


def gray(folder: Path, image_id: str = IMAGE) -> np.ndarray:
    return np.asarray(Image.open(image_path(folder, image_id)))


def names(*parts: str) -> str:
    """A regex requiring every part, in order, on the message's line."""
    return ".*".join(re.escape(p) for p in parts)


# --- images -------------------------------------------------------------------------------


def test_16bit_image_is_refused_unless_scaling_is_configured(folder, tmp_path):
    original = gray(folder)
    Image.fromarray(original.astype(np.uint16) * 257).save(image_path(folder))
    with pytest.raises(ImageDataError, match=names(f"{IMAGE}.png", "16-bit", "bit_depth_scaling")):
        prepare_folder(folder, SCHEMA, tmp_path / "out", "uhcs24")
    assert not (tmp_path / "out").exists()  # nothing is written before every image is read

    out = tmp_path / "linear"
    prepare_folder(folder, SCHEMA, out, "uhcs24", bit_depth_scaling="linear")
    np.testing.assert_array_equal(read_gray(out / "images" / f"{IMAGE}.png"), original)
    stretched = read_micrograph(image_path(folder), bit_depth_scaling="stretch")
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.corrcoef(stretched.ravel(), original.ravel())[0, 1] > 0.999


def test_false_colour_rgb_is_refused_unless_luminance_is_configured(folder, tmp_path):
    a = gray(folder)
    rgb = np.stack([a, a // 2, 255 - a], axis=-1)
    Image.fromarray(rgb).save(image_path(folder))
    with pytest.raises(ImageDataError, match=names(f"{IMAGE}.png", "colour", "color_to_gray")):
        prepare_folder(folder, SCHEMA, tmp_path / "out", "uhcs24")

    luma = read_micrograph(image_path(folder), color_to_gray="luminance")
    np.testing.assert_array_equal(luma, np.asarray(Image.fromarray(rgb).convert("L")))


def test_rgb_with_equal_channels_is_gray_and_accepted(folder, tmp_path):
    original = gray(folder)
    Image.fromarray(np.stack([original] * 3, axis=-1)).save(image_path(folder))
    out = tmp_path / "out"
    prepare_folder(folder, SCHEMA, out, "uhcs24")
    np.testing.assert_array_equal(read_gray(out / "images" / f"{IMAGE}.png"), original)


def test_transparent_image_and_colour_mask_are_refused(folder, tmp_path):
    a = gray(folder)
    alpha = np.full_like(a, 255)
    alpha[:10] = 0
    Image.fromarray(np.stack([a, alpha], axis=-1), mode="LA").save(tmp_path / "la.png")
    with pytest.raises(ImageDataError, match=names("la.png", "transparency")):
        read_micrograph(tmp_path / "la.png")
    mask = np.asarray(Image.open(folder / "labels" / f"{IMAGE}.png"))
    Image.fromarray(np.stack([mask, mask, mask * 0], axis=-1)).save(tmp_path / "mask.png")
    with pytest.raises(ImageDataError, match=names("mask.png", "colour", "class mask")):
        read_mask(tmp_path / "mask.png")


def test_uhcsdb_reader_refuses_a_16bit_micrograph(uhcsdb_sqlite, uhcs24_dir, tmp_path):
    # The deposit's images are not here: the real UHCS-24 image of micrograph 7, at 16 bits
    # under the name the database gives it.
    row = read_uhcsdb(uhcsdb_sqlite).query("micrograph_id == 7")
    (tmp_path / "images").mkdir()
    a = np.asarray(Image.open(uhcs24_dir / "images" / f"{IMAGE}.png")).astype(np.uint16)
    Image.fromarray(a * 257).save(tmp_path / "images" / "micrograph7.png")
    with pytest.raises(ImageDataError, match=names("micrograph7.png", "16-bit")):
        next(iter_micrographs(row, tmp_path / "images"))
    image_id, image = next(iter_micrographs(row, tmp_path / "images", bit_depth_scaling="linear"))
    assert image_id == "uhcs0007" and image.dtype == np.uint8 and image.max() > 200


# --- metadata tables ----------------------------------------------------------------------


def test_unknown_time_unit_names_file_row_column_and_value(folder):
    path = edit_metadata(folder, set_cell("anneal_time_unit", "D"))
    with pytest.raises(DataError, match=names(str(path), LINE, "anneal_time_unit", "'D'")):
        read_uhcs24(folder)


def test_cooling_method_outside_the_schema_is_refused(folder):
    path = edit_metadata(folder, set_cell("cool_method", "OQ"))
    with pytest.raises(DataError, match=names(str(path), LINE, "cool_method", "'OQ'")):
        read_uhcs24(folder)


def test_non_numeric_temperature_names_its_row(folder):
    path = edit_metadata(folder, set_cell("anneal_temperature", "970C"))
    with pytest.raises(DataError, match=names(str(path), LINE, "anneal_temperature", "'970C'")):
        read_uhcs24(folder)


def test_unknown_category_names_its_row(folder):
    path = edit_metadata(folder, set_cell("primary_microconstituent", "bainite"))
    read_uhcs24(folder)  # without a schema the reader cannot judge categories
    with pytest.raises(
        DataError, match=names(str(path), LINE, "primary_microconstituent", "'bainite'")
    ):
        read_uhcs24(folder, load_schema(SCHEMA))


def test_duplicate_image_names_the_id_and_both_lines(folder):
    path = edit_metadata(folder, lambda t: pd.concat([t, t.iloc[[ROW]]], ignore_index=True))
    with pytest.raises(
        DataError, match=names(str(path), "image", f"'{IMAGE}.png'", "line 3", "line 26")
    ):
        read_uhcs24(folder)


def test_missing_column_names_file_column_and_columns_present(folder):
    path = edit_metadata(folder, lambda t: t.drop(columns="cool_method"))
    with pytest.raises(
        MissingColumnError, match=names(str(path), "['cool_method']", "present", "'anneal_time'")
    ):
        read_uhcs24(folder)


def test_header_only_metadata_is_an_error_naming_the_file(folder, tmp_path):
    path = edit_metadata(folder, lambda t: t.iloc[:0])
    with pytest.raises(DataError, match=names(str(path), "no data rows")):
        prepare_folder(folder, SCHEMA, tmp_path / "out", "uhcs24")
    assert not (tmp_path / "out").exists()


def test_split_refuses_an_empty_prepared_data_set(tmp_path):
    metadata = tmp_path / METADATA
    metadata.write_text("id,temperature,time,magnification,cooling,microconstituent\n")
    out = [str(tmp_path / n) for n in ("split.csv", "summary.csv", "summary.md")]
    with pytest.raises(DataError, match=names(str(metadata), "no images")):
        write_split(str(metadata), str(SCHEMA), *out, unseen=None)
    assert not any(Path(p).exists() for p in out)


def test_missing_schema_file_names_the_config_key(tmp_path):
    missing = tmp_path / "schemas" / "uhcs.yaml"
    with pytest.raises(MissingFileError, match=names(str(missing), "dataset.schema")):
        load_schema(missing, config_key="dataset.schema")
    with pytest.raises(FileNotFoundError):  # still a FileNotFoundError for callers
        load_schema(missing)


def test_uhcsdb_unknown_time_unit_names_the_micrograph(uhcsdb_sqlite, tmp_path):
    db = Path(shutil.copy(uhcsdb_sqlite, tmp_path / "microstructures.sqlite"))
    with sqlite3.connect(db) as con:
        sample = con.execute("SELECT sample_key FROM micrograph WHERE micrograph_id = 7").fetchone()
        con.execute("UPDATE sample SET anneal_time_unit = 'D' WHERE sample_id = ?", sample)
    with pytest.raises(
        DataError, match=names(str(db), "micrograph_id 7", "anneal_time_unit", "'D'")
    ):
        read_uhcsdb(db)


def test_uhcsdb_missing_column_names_table_and_column(uhcsdb_sqlite, tmp_path):
    db = Path(shutil.copy(uhcsdb_sqlite, tmp_path / "microstructures.sqlite"))
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE sample DROP COLUMN cool_method")
    with pytest.raises(MissingColumnError, match=names(str(db), "sample", "['cool_method']")):
        read_uhcsdb(db)


def test_aachen_heerlen_non_numeric_value_and_unknown_category(uhcs24_dir, tmp_path):
    # The real A-H release is not here: one real UHCS-24 micrograph in its layout.
    (tmp_path / "PNG").mkdir()
    shutil.copy(uhcs24_dir / "images" / f"{IMAGE}.png", tmp_path / "PNG" / "IMG_00001.png")
    polygons = tmp_path / "nature_scidata_heerlen_aachen_steel_annotations_polygon.csv"
    polygons.write_text("image_url;point;polygon\nIMG_00001.png;(1, 1);[(0, 0), (9, 0), (9, 9)]\n")
    metadata = tmp_path / "nature_scidata_steel_metadata.csv"
    header = "image_url,type,temperature,distance,orientation,angle\n"
    schema = Path(__file__).resolve().parents[1] / "resources/schemas/aachen-heerlen.yaml"
    metadata.write_text(header + "IMG_00001.png,1,warm,9,V,P\n")
    with pytest.raises(DataError, match=names(str(metadata), "line 2 (IMG_00001)", "'warm'")):
        read_aachen_heerlen(tmp_path, schema)
    metadata.write_text(header + "IMG_00001.png,1,400,9,diagonal,P\n")
    with pytest.raises(DataError, match=names(str(metadata), "orientation", "'diagonal'")):
        read_aachen_heerlen(tmp_path, schema)
    metadata.write_text(header + "IMG_00001.png,1,400,9,V,P\n")
    a = np.asarray(Image.open(tmp_path / "PNG" / "IMG_00001.png"))
    Image.fromarray(np.stack([a, a, 255 - a], axis=-1)).save(tmp_path / "PNG" / "IMG_00001.png")
    with pytest.raises(ImageDataError, match=names("IMG_00001.png", "colour")):
        prepare_aachen_heerlen(tmp_path, schema, tmp_path / "out")


# --- nothing partial is left --------------------------------------------------------------


def test_failed_rewrite_leaves_no_complete_looking_folder(folder, tmp_path):
    out = tmp_path / "out"
    prepare_folder(folder, SCHEMA, out, "uhcs24")
    assert (out / METADATA).is_file()
    # A bad condition found while writing (after the reader's own checks): the earlier
    # metadata.csv must not survive beside a folder that is being rewritten.
    edit_metadata(folder, set_cell("primary_microconstituent", "bainite"))
    metadata = read_uhcs24(folder)
    images = ((i, im) for i, im, _ in iter_uhcs24(folder, list(metadata["id"])))
    with pytest.raises(DataError, match=names("metadata row 'uhcs0007'", "bainite")):
        write_prepared(out, metadata, images, schema=load_schema(SCHEMA))
    assert (out / METADATA).is_file()  # refused before touching the folder: still whole
    bad = image_path(folder, "uhcs0124")
    Image.fromarray(gray(folder, "uhcs0124").astype(np.uint16) * 257).save(bad)
    metadata = metadata.assign(microconstituent="spheroidite")
    images = ((i, read_micrograph(image_path(folder, i))) for i in metadata["id"])
    with pytest.raises(ImageDataError, match="uhcs0124.png"):
        write_prepared(out, metadata, images)
    assert not (out / METADATA).exists()
    assert not list(out.glob(".*tmp"))


def test_other_depths_are_refused_and_masks_are_never_scaled(uhcs24_dir, tmp_path):
    a = np.asarray(Image.open(uhcs24_dir / "images" / f"{IMAGE}.png"))
    Image.fromarray(a).convert("1").save(tmp_path / "bits1.png")
    Image.fromarray(a.astype(np.float32) / 255).save(tmp_path / "float.tif")
    with pytest.raises(ImageDataError, match=names("bits1.png", "1-bit")):
        read_micrograph(tmp_path / "bits1.png")
    assert set(np.unique(read_micrograph(tmp_path / "bits1.png", "linear"))) == {0, 255}
    with pytest.raises(ImageDataError, match=names("float.tif", "no nominal range", "stretch")):
        read_micrograph(tmp_path / "float.tif", "linear")
    assert read_micrograph(tmp_path / "float.tif", "stretch").max() == 255
    # 16-bit class maps (common in label tools) keep their ids; ids beyond 8 bits are refused.
    mask = np.asarray(Image.open(uhcs24_dir / "labels" / f"{IMAGE}.png")).astype(np.uint16)
    Image.fromarray(mask).save(tmp_path / "mask16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "mask16.png"), mask)
    Image.fromarray(mask + 300).save(tmp_path / "mask300.png")
    with pytest.raises(ImageDataError, match=names("mask300.png", "300", "8 bits")):
        read_mask(tmp_path / "mask300.png")
