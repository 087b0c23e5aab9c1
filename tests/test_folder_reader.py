"""The generic folder reader on a fabricated data set that is not UHCS: another table, a
pixel size from scale bars or given directly, a magnification fallback, an information band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from microgen.data.checks import DataError, MissingColumnError
from microgen.data.folder import FolderLayout, prepare_folder, read_folder_metadata
from microgen.data.schema import load_schema

SCHEMA = {
    "name": "other-alloy",
    "continuous": [
        {"name": "magnification", "label": "magnification", "unit": "×",
         "placeholder": "<mag>", "log": True, "format": "{value:g}×"},
        {"name": "hold", "label": "holding time", "unit": "min", "placeholder": "<hold>",
         "format": "{value:g} min"},
    ],
    "categorical": [
        {"name": "etch", "label": "etchant", "placeholder": "<etch>",
         "categories": ["nital", "picral"]},
    ],
    "prompts": {
        "full_text": "{etch} <etch> etched, held {hold} <hold>, at {magnification} <mag>",
        "text_only": "{etch} etched, held {hold}, at {magnification}",
        "parameter_only": "<etch> <hold> <mag>",
    },
    "condition_label": "{magnification:g}x-{hold:g}m-{etch}",
    "classes": [{"name": "ferrite"}, {"name": "pearlite"}, {"name": "bainite"},
                {"name": "inclusion"}],
}  # fmt: skip

LAYOUT = {
    "metadata": "table.csv",
    "images": "sem",
    "masks": "annotations",
    "file_column": "file",
    "info_band": {"rows": 8, "side": "bottom"},
    "columns": {
        "hold": {"column": "hold_time", "unit_column": "hold_unit",
                 "units": {"s": 1 / 60, "min": 1}},
        "etch": {"column": "etchant", "categories": {"Nital 2%": "nital", "Picral": "picral"}},
        "pixel_size_um": {"scale_bar": {"length": "bar", "unit_column": "bar_unit",
                                        "units": {"nm": 1e-3, "um": 1.0}, "pixels": "bar_px"}},
        "magnification": {"column": "mag", "strip_suffix": ["kx", "x"], "round": 0,
                          "fallback": {"inverse_of": "pixel_size_um", "product": 100.0}},
        "microscope": {"column": "scope", "type": "text"},
    },
}  # fmt: skip

TABLE = pd.DataFrame(
    {
        "file": ["a1.tif", "b2.tif", "c3.tif"],
        "hold_time": ["120", "30", "45"],
        "hold_unit": ["s", "min", "min"],
        "etchant": ["Nital 2%", "Picral", "Nital 2%"],
        "bar": ["500", "2", "1"],
        "bar_unit": ["nm", "um", "um"],
        "bar_px": ["100", "100", "50"],
        "mag": ["1000x", "", "5000x"],
        "scope": ["sem-a", "sem-b", "sem-b"],
    }
)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "alloy"
    for sub in ("sem", "annotations"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(TABLE["file"]):
        image = rng.integers(0, 255, (48, 40), dtype=np.uint8)
        image[-8:] = 255  # the information band
        Image.fromarray(image).save(root / "sem" / name)
        Image.fromarray(np.full((48, 40), k % 4, dtype=np.uint8)).save(root / "annotations" / name)
    TABLE.to_csv(root / "table.csv", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA, allow_unicode=True))
    return root


def test_columns_are_read_by_their_specs(folder):
    metadata = read_folder_metadata(folder, FolderLayout.load(LAYOUT))
    assert list(metadata.columns) == ["id", "hold", "etch", "pixel_size_um", "magnification",
                                      "magnification_source", "microscope"]  # fmt: skip
    assert list(metadata["id"]) == ["a1", "b2", "c3"]
    np.testing.assert_allclose(metadata["hold"], [2.0, 30.0, 45.0])  # 120 s = 2 min
    assert list(metadata["etch"]) == ["nital", "picral", "nital"]
    np.testing.assert_allclose(metadata["pixel_size_um"], [0.005, 0.02, 0.02])
    # b2 records no magnification: product / pixel size = 100 / 0.02.
    np.testing.assert_allclose(metadata["magnification"], [1000.0, 5000.0, 5000.0])
    assert list(metadata["magnification_source"]) == ["recorded", "scale_bar", "recorded"]


def test_prepared_data_set_crops_the_band_and_keeps_masks(folder, tmp_path):
    written = prepare_folder(folder, tmp_path / "schema.yaml", tmp_path / "out", LAYOUT)
    assert list(written["label"]) == ["1000x-2m-nital", "5000x-30m-picral", "5000x-45m-nital"]
    for k, (image_id, name) in enumerate(zip(written["id"], TABLE["file"], strict=True)):
        image = np.asarray(Image.open(tmp_path / "out" / "images" / f"{image_id}.png"))
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{image_id}.png"))
        source = np.asarray(Image.open(folder / "sem" / name))
        np.testing.assert_array_equal(image, source[:-8])  # the 8-row band cropped
        assert mask.shape == (40, 40) and (mask == k % 4).all()
    assert written["has_mask"].all()


def test_a_mask_with_a_class_the_schema_lacks_is_refused(folder, tmp_path):
    """The schema names 4 classes: a mask holding id 4 stops the reader, naming the mask
    file, the id and the schema's number of classes; with a fifth class it is read."""
    Image.fromarray(np.full((48, 40), 4, dtype=np.uint8)).save(folder / "annotations" / "b2.tif")
    with pytest.raises(DataError, match=r"annotations/b2.tif: class id 4, but the condition "
                       r"schema names 4 classes \(ids 0…3\)"):  # fmt: skip
        prepare_folder(folder, tmp_path / "schema.yaml", tmp_path / "out", LAYOUT)
    assert not (tmp_path / "out" / "metadata.csv").exists()
    five = {**SCHEMA, "classes": [*SCHEMA["classes"], {"name": "martensite"}]}
    (tmp_path / "five.yaml").write_text(yaml.safe_dump(five, allow_unicode=True))
    written = prepare_folder(folder, tmp_path / "five.yaml", tmp_path / "out", LAYOUT)
    assert np.asarray(Image.open(tmp_path / "out" / "masks" / "b2.png")).max() == 4
    assert written["has_mask"].all()


def test_masks_without_class_names_are_refused(folder, tmp_path):
    bare = {k: v for k, v in SCHEMA.items() if k != "classes"}
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(bare, allow_unicode=True))
    with pytest.raises(DataError, match="bare.yaml: the folder has masks, but the schema names"):
        prepare_folder(folder, tmp_path / "bare.yaml", tmp_path / "out", LAYOUT)
    # without masks the classes are not needed
    prepare_folder(folder, tmp_path / "bare.yaml", tmp_path / "out", LAYOUT, masks=None)


def test_a_layout_without_masks_writes_none(folder, tmp_path):
    written = prepare_folder(folder, tmp_path / "schema.yaml", tmp_path / "out", LAYOUT, masks=None)
    assert not any((tmp_path / "out" / "masks").iterdir()) and not written["has_mask"].any()


def test_bad_cells_and_layouts_are_named(folder, tmp_path):
    table = TABLE.copy()
    table.loc[1, "etchant"] = "Keller"
    table.to_csv(folder / "table.csv", index=False)
    schema = load_schema(tmp_path / "schema.yaml")
    with pytest.raises(
        DataError, match=r"table.csv, line 3 \(b2.tif\), column etchant: unknown etchant 'Keller'"
    ):
        read_folder_metadata(folder, FolderLayout.load(LAYOUT), schema)
    table.drop(columns="bar_px").to_csv(folder / "table.csv", index=False)
    with pytest.raises(MissingColumnError, match=r"\['bar_px'\]"):
        read_folder_metadata(folder, FolderLayout.load(LAYOUT))
    with pytest.raises(DataError, match=r"unknown key\(s\) \['image_folder'\]"):
        FolderLayout.load({**LAYOUT, "image_folder": "x"})
    with pytest.raises(FileNotFoundError, match="bundled: \\['uhcs24'\\]"):
        FolderLayout.load("uhcs-25")


def test_folds_from_a_column_and_from_a_json_of_named_images(folder):
    from microgen.data.folds import fold_numbers, read_folds

    table = TABLE.assign(fold=["1", "0", "1"], uid=["u7", "u8", "u9"])
    table.to_csv(folder / "table.csv", index=False)
    by_column = {**LAYOUT, "folds": {"column": "fold"}}
    assert read_folds(folder, by_column) == {0: ["b2"], 1: ["a1", "c3"]}
    (folder / "folds.json").write_text('{"1": ["img-u9"], "0": ["img-u7", "img-u8"]}')
    by_file = {**LAYOUT, "folds": {"file": "folds.json", "name": "img-{uid}"}}
    assert read_folds(folder, by_file) == {0: ["a1", "b2"], 1: ["c3"]}
    assert fold_numbers(folder, by_file) == [0, 1]
    (folder / "folds.json").write_text('{"0": ["img-u7", "img-u5"]}')
    with pytest.raises(ValueError, match=r"folds.json: 1 name\(s\) match no image.*'img-u5'"):
        read_folds(folder, by_file)


def test_uhcs24_folds_are_the_published_ones(uhcs24_dir):
    """The bundled layout names DeCost et al.'s folds by micrograph id: six folds of four."""
    import json

    from microgen.data.folds import layout_mapping, read_folds

    folds = read_folds(uhcs24_dir, layout_mapping("uhcs24"))
    raw = json.loads((uhcs24_dir / "cv-folds.json").read_text())
    assert sorted(folds) == list(range(6)) and all(len(v) == 4 for v in folds.values())
    for k, names in raw.items():
        assert folds[int(k)] == [f"uhcs{int(n.removeprefix('micrograph')):04d}" for n in names]
