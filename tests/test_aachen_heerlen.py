"""Aachen-Heerlen reader, MA masks, prompts from the A-H schema, Table D1 split.

The sample here is FABRICATED in the documented format of the release (semicolon-separated
polygon table ``image_url;point;polygon`` with Python-literal ``(x, y)`` vertex lists, a
metadata table keyed by ``image_url``, images under ``PNG/``): the real figshare files cannot
be reached from where these tests run. Four tiny 12×16 images carry polygons whose areas are
computed by hand in the comments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from microgen.data.aachen_heerlen import (
    POLYGON_FILE,
    TABLE_D1_IMAGES,
    TABLE_D1_SEEN_VALIDATION,
    TABLE_D1_UNSEEN_TYPES,
    area_fraction_by_type,
    polygons_to_mask,
    prepare_aachen_heerlen,
    read_aachen_heerlen,
    read_polygons,
    split_by_steel_type,
)
from microgen.data.prepared import read_gray, read_metadata
from microgen.data.schema import load_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "resources" / "schemas" / "aachen-heerlen.yaml"
SHAPE = (12, 16)  # rows, columns
PIXELS = SHAPE[0] * SHAPE[1]

# (x, y) vertices, x = column, y = row, origin at the top-left pixel corner.
POLYGONS = {
    "IMG_00001.png": [
        [(2, 1), (6, 1), (6, 4), (2, 4)],  # 4 × 3 = 12
        [(8, 2), (14, 2), (14, 4), (10, 4), (10, 8), (8, 8)],  # L: 6 × 2 + 2 × 4 = 20
    ],
    "IMG_00002.png": [
        [(-3, -2), (4, -2), (4, 5), (-3, 5), (-3, -2)],  # in image: 4 × 5 = 20 (closed ring)
        [(2, 2), (8, 2), (8, 6), (2, 6)],  # 6 × 4 = 24, overlaps the first in 2 × 3 = 6
    ],
    "IMG_00004.png": [[(10, 6), (16, 6), (16, 12), (10, 12)]],  # 6 × 6 = 36, touches edges
}
MA_PIXELS = {"IMG_00001": 32, "IMG_00002": 20 + 24 - 6, "IMG_00003": 0, "IMG_00004": 36}

METADATA_CSV = """image_url,type,temperature,distance,orientation,angle
IMG_00001.png,1,400,9,V,P
IMG_00002.png,1,450 °C,3mm,vertical,p
IMG_00003.png,12,350,0,H,S
IMG_00004.png,CFB2,500,12.5,V,P
"""


def _fabricate(folder: Path) -> Path:
    (folder / "PNG").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 5):
        pixels = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        mode_image = Image.fromarray(pixels, mode="L")
        if i == 4:  # one RGB file: the reader converts it to gray
            mode_image = mode_image.convert("RGB")
        mode_image.save(folder / "PNG" / f"IMG_{i:05d}.png")
    (folder / "nature_scidata_steel_metadata.csv").write_text(METADATA_CSV, encoding="utf-8")
    lines = ["Image_url;point;polygon"]  # capitalised as in one public copy of the header
    for name, polygons in POLYGONS.items():
        for polygon in polygons:
            x, y = polygon[0]
            lines.append(f"{name};({x + 1}, {y + 1});{polygon!r}")
    (folder / POLYGON_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return _fabricate(tmp_path / "aachen")


def test_mask_pixel_counts_match_hand_computed_areas():
    for name, polygons in POLYGONS.items():
        mask = polygons_to_mask(polygons, SHAPE)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert int(mask.sum()) == MA_PIXELS[Path(name).stem], name
    # Rows are y and columns x: the 4 × 3 rectangle spans columns 2-5 and rows 1-3.
    mask = polygons_to_mask([POLYGONS["IMG_00001.png"][0]], SHAPE)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 3, 2, 5)


def test_mask_conventions():
    # Pixel-centre indices: the rectangle (2, 1)-(5, 3) includes its edge pixels: 4 × 3.
    mask = polygons_to_mask([[(2, 1), (5, 1), (5, 3), (2, 3)]], SHAPE, vertex_origin="center")
    assert int(mask.sum()) == 12
    # A sloped edge: the count estimates the area (32) within half the perimeter.
    triangle = polygons_to_mask([[(0, 0), (8, 0), (0, 8)]], SHAPE)
    assert abs(int(triangle.sum()) - 32) <= (16 + 8 * np.sqrt(2)) / 2
    # Degenerate polygons cover nothing; an empty list gives an empty mask.
    assert polygons_to_mask([[(1, 1), (5, 5)]], SHAPE).sum() == 0
    assert polygons_to_mask([], SHAPE).sum() == 0
    # Entirely outside the image: clipped away.
    assert polygons_to_mask([[(20, 20), (30, 20), (30, 30)]], SHAPE).sum() == 0
    with pytest.raises(ValueError, match="vertex_origin"):
        polygons_to_mask([], SHAPE, vertex_origin="edge")


def test_read_polygons_semicolon_table(sample: Path):
    polygons = read_polygons(sample)
    assert sorted(polygons) == ["IMG_00001", "IMG_00002", "IMG_00004"]
    assert polygons["IMG_00001"][1] == [(8.0, 2.0), (14.0, 2.0), (14.0, 4.0), (10.0, 4.0),
                                        (10.0, 8.0), (8.0, 8.0)]  # fmt: skip
    (sample / "bad.csv").write_text("image_url;point;polygon\nIMG_1.png;(1, 2);[(1, 2), oops]\n")
    with pytest.raises(ValueError, match="row 2"):
        read_polygons(sample, "bad.csv")


def test_read_metadata_parses_units_and_category_words(sample: Path):
    meta = read_aachen_heerlen(sample, SCHEMA)
    assert list(meta["id"]) == [f"IMG_{i:05d}" for i in range(1, 5)]
    assert list(meta["temperature"]) == [400, 450, 350, 500]
    assert list(meta["distance"]) == [9, 3, 0, 12.5]
    assert list(meta["orientation"]) == ["V", "V", "H", "V"]  # "vertical" -> V
    assert list(meta["angle"]) == ["P", "P", "S", "P"]  # "p" -> P
    assert list(meta["steel_type"]) == ["1", "1", "12", "CFB2"]
    assert meta["pixel_size_um"].isna().all()
    assert (read_aachen_heerlen(sample, SCHEMA, pixel_size_um=0.05)["pixel_size_um"] == 0.05).all()


def test_read_metadata_column_override_and_unknown_category(sample: Path):
    path = sample / "nature_scidata_steel_metadata.csv"
    path.write_text(METADATA_CSV.replace(",distance,", ",Distance_mm,"), encoding="utf-8")
    meta = read_aachen_heerlen(sample, SCHEMA, columns={"distance": "distance_mm"})
    assert list(meta["distance"]) == [9, 3, 0, 12.5]
    with pytest.raises(KeyError, match="distance"):
        read_aachen_heerlen(sample, SCHEMA)
    path.write_text(METADATA_CSV.replace("CFB2", "CFB9"), encoding="utf-8")
    with pytest.raises(ValueError, match="CFB9"):
        read_aachen_heerlen(sample, SCHEMA)


def test_prepare_writes_contract_with_masks_and_prompts(sample: Path, tmp_path: Path):
    out = tmp_path / "prepared"
    written = prepare_aachen_heerlen(sample, SCHEMA, out)
    meta = read_metadata(out)
    assert list(meta["id"]) == list(written["id"])
    assert meta["has_mask"].all()
    for image_id, pixels in MA_PIXELS.items():
        image = read_gray(out / "images" / f"{image_id}.png")
        mask = read_gray(out / "masks" / f"{image_id}.png")
        assert image.shape == mask.shape == SHAPE
        assert int(mask.sum()) == pixels
    assert list(meta["n_polygons"]) == [2, 2, 0, 1]
    assert np.allclose(meta["ma_area_fraction"], [MA_PIXELS[i] / PIXELS for i in meta["id"]])
    # Labels and prompts come from the A-H schema alone (no A-H code in schema/prepared).
    assert list(meta["label"]) == [
        "400C-9mm-V-P-1",
        "450C-3mm-V-P-1",
        "350C-0mm-H-S-12",
        "500C-12.5mm-V-P-CFB2",
    ]
    first = meta.iloc[0]
    assert first["prompt_parameter_only"] == "<type> <temp> <dist> <orient> <angle>"
    assert "400 °C <temp>" in first["prompt_full_text"]
    assert "9 mm <dist>" in first["prompt_full_text"]
    assert "<" not in first["prompt_text_only"] and "vertical" in first["prompt_text_only"]


def test_prepare_crops_information_band(sample: Path, tmp_path: Path):
    prepare_aachen_heerlen(sample, SCHEMA, tmp_path / "prepared", info_band_px=4)
    mask = read_gray(tmp_path / "prepared" / "masks" / "IMG_00004.png")
    assert mask.shape == (8, 16)
    assert int(mask.sum()) == 6 * 2  # rows 6-7 of the 6 × 6 square remain


def test_prepare_rejects_polygons_without_metadata(sample: Path, tmp_path: Path):
    with (sample / POLYGON_FILE).open("a") as fh:
        fh.write("IMG_09999.png;(1, 1);[(0, 0), (2, 0), (2, 2)]\n")
    with pytest.raises(ValueError, match="IMG_09999"):
        prepare_aachen_heerlen(sample, SCHEMA, tmp_path / "prepared")


def test_paper_label_from_schema():
    schema = load_schema(SCHEMA)
    condition = {"temperature": 400, "distance": 9, "orientation": "V", "angle": "P",
                 "steel_type": "2"}  # fmt: skip
    assert schema.label(condition) == "400C-9mm-V-P-2"  # Fig. 15's example
    assert schema.variables == ("temperature", "distance", "orientation", "angle", "steel_type")
    for mode in ("full_text", "text_only", "parameter_only"):
        assert schema.prompt(condition, mode)


def test_table_d1_split_counts():
    assert sum(TABLE_D1_IMAGES.values()) == 1705
    ids = [f"IMG_{i:05d}" for i in range(1705)]
    types = [t for t, n in TABLE_D1_IMAGES.items() for _ in range(n)]
    meta = pd.DataFrame({"id": ids, "steel_type": types})
    split = split_by_steel_type(meta, TABLE_D1_UNSEEN_TYPES, TABLE_D1_SEEN_VALIDATION, seed=3)
    assert list(split["id"]) == ids
    counts = split["split"].value_counts()
    assert (counts["train"], counts["val_seen"], counts["val_unseen"]) == (1364, 112, 229)
    joined = meta.assign(split=split["split"].to_numpy())
    per_type = joined.groupby(["steel_type", "split"]).size()
    for steel_type, n in TABLE_D1_SEEN_VALIDATION.items():
        assert per_type[(steel_type, "val_seen")] == n
        assert per_type[(steel_type, "train")] == TABLE_D1_IMAGES[steel_type] - n
    for steel_type in TABLE_D1_UNSEEN_TYPES:
        assert per_type[(steel_type, "val_unseen")] == TABLE_D1_IMAGES[steel_type]
    again = split_by_steel_type(meta, TABLE_D1_UNSEEN_TYPES, TABLE_D1_SEEN_VALIDATION, seed=3)
    assert again.equals(split)


def test_split_rejects_impossible_requests():
    meta = pd.DataFrame({"id": ["a", "b", "c"], "steel_type": ["1", "1", "2"]})
    with pytest.raises(ValueError, match="at least one"):
        split_by_steel_type(meta, ["2"], {"1": 2})
    with pytest.raises(ValueError, match="unseen"):
        split_by_steel_type(meta, ["2"], {"2": 1})
    plain = split_by_steel_type(meta, ["2"])
    assert list(plain["split"]) == ["train", "train", "val_unseen"]


def test_area_fraction_by_type(sample: Path, tmp_path: Path):
    prepare_aachen_heerlen(sample, SCHEMA, tmp_path / "prepared")
    table = area_fraction_by_type(read_metadata(tmp_path / "prepared")).set_index("steel_type")
    type1 = np.array([MA_PIXELS["IMG_00001"], MA_PIXELS["IMG_00002"]]) / PIXELS
    assert table.loc["1", "images"] == 2
    assert table.loc["1", "mean"] == pytest.approx(type1.mean())
    assert table.loc["1", "std"] == pytest.approx(type1.std(ddof=1))
    assert table.loc["12", "mean"] == 0
    assert table.loc["CFB2", "mean"] == pytest.approx(36 / PIXELS)
    assert np.isnan(table.loc["CFB2", "std"])


# --- Table D1 split and per-type evaluation wired into the workflow ------------------------

WORKFLOW_TYPES = ["1", "1", "1", "CFB2", "CFB2", "12", "12", "2"]


def _fabricate_for_workflow(folder: Path, side: int = 64) -> Path:
    """Eight FABRICATED 64-px images in the release's format, MA rectangles of known area."""
    (folder / "PNG").mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows, lines = (
        ["image_url,type,temperature,distance,orientation,angle"],
        ["image_url;point;polygon"],
    )
    for i, steel_type in enumerate(WORKFLOW_TYPES):
        name = f"IMG_{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(
            folder / "PNG" / name
        )
        rows.append(f"{name},{steel_type},{400 + 50 * (i % 3)},{3 * i},V,P")
        for k in range(1 + i % 3):
            x, y = 4 + 20 * k, 4 + 2 * i
            polygon = [(x, y), (x + 12, y), (x + 12, y + 8), (x, y + 8)]
            lines.append(f"{name};({x + 1}, {y + 1});{polygon!r}")
    (folder / "nature_scidata_steel_metadata.csv").write_text("\n".join(rows) + "\n")
    (folder / POLYGON_FILE).write_text("\n".join(lines) + "\n")
    return folder


def _group_split_config(sample: Path) -> dict:
    import yaml

    config = yaml.safe_load((ROOT / "config" / "aachen-heerlen.yaml").read_text())
    config["dataset"]["aachen_heerlen"]["path"] = str(sample)
    # SD3.5-Large cannot be fine-tuned here: the generation and evaluation stages run at toy
    # size in tests/test_aachen_heerlen_dag.py.
    for stage in ("generate", "evaluate"):
        config.pop(stage)
    # The fabricated sample's own Table D1: whole types 12 and 2 unseen, one image of each
    # seen type held out.
    config["split"].update(unseen={"steel_type": ["12", "2"]}, seen_per_group={"1": 1, "CFB2": 1})
    return config


def test_split_by_group_from_config(tmp_path: Path):
    from snakemake.utils import validate

    from microgen.data.split import write_split

    sample = _fabricate_for_workflow(tmp_path / "aachen")
    prepare_aachen_heerlen(sample, SCHEMA, tmp_path / "prepared")
    config = _group_split_config(sample)
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    validate(config, str(schema))
    out = {k: str(tmp_path / f"{k}.csv") for k in ("split", "summary")}
    split = write_split(
        str(tmp_path / "prepared" / "metadata.csv"), str(SCHEMA), out["split"],
        out["summary"], str(tmp_path / "summary.md"), **config["split"],
    )  # fmt: skip
    joined = split.assign(steel_type=WORKFLOW_TYPES)
    assert set(joined.loc[joined["split"] == "val_unseen", "steel_type"]) == {"12", "2"}
    assert (joined["split"] == "val_unseen").sum() == 3
    seen = joined[joined["split"] == "val_seen"]["steel_type"]
    assert sorted(seen) == ["1", "CFB2"]
    # The schema refuses a group split mixed with the filter split's keys, and the other way.
    for bad in (dict(seen_count=2), dict(seen={})):
        with pytest.raises(Exception, match="split"):
            validate({**config, "split": {**config["split"], **bad}}, str(schema))
    no_group = {k: v for k, v in config["split"].items() if k != "by"}
    with pytest.raises(Exception, match="split"):
        validate({**config, "split": no_group}, str(schema))
    with pytest.raises(ValueError, match="CFB9"):
        write_split(
            str(tmp_path / "prepared" / "metadata.csv"), str(SCHEMA), out["split"],
            out["summary"], str(tmp_path / "summary.md"),
            **{**config["split"], "seen_per_group": {"CFB9": 1}},
        )  # fmt: skip


def test_area_fraction_and_iou_per_group(tmp_path: Path):
    from microgen.data.prepared import write_png
    from microgen.evaluate.per_type import ALL, area_fraction_per_group, iou_per_group

    sample = _fabricate_for_workflow(tmp_path / "aachen")
    meta = prepare_aachen_heerlen(sample, SCHEMA, tmp_path / "prepared")
    split = ["train", "val_seen", "train", "train", "val_seen", "val_unseen", "val_unseen",
             "val_unseen"]  # fmt: skip
    index = meta[["id", "label", "steel_type"]].assign(split=split)
    rows = meta[["id"]].assign(area_fraction=meta["ma_area_fraction"])
    # Generated: each validation condition's real fraction + 2 pp (image 1: + 1 pp and + 3 pp).
    val = index[index["split"] != "train"]
    gen_index = pd.concat([val.assign(id=val["id"] + f"-g{k}") for k in (0, 1)])
    gen_index = gen_index.assign(model="m", prompt_mode="full_text")
    bump = np.where(gen_index["id"].str.endswith("g0"), 0.01, 0.03)
    gen_rows = pd.DataFrame(
        {"id": gen_index["id"], "area_fraction": rows.set_index("id").loc[
            gen_index["id"].str[:-3], "area_fraction"].to_numpy() + bump}
    )  # fmt: skip
    table = area_fraction_per_group(rows, index, "steel_type", gen_rows, gen_index)
    assert set(table["steel_type"]) == {"1", "CFB2", "12", "2"}
    assert np.allclose(table["mae_pp"], 2.0)
    real = area_fraction_per_group(rows, index, "steel_type").set_index(["steel_type", "split"])
    assert real.loc[("12", "val_unseen"), "n_real"] == 2
    assert real.loc[("1", "val_seen"), "real_mean_pp"] == pytest.approx(
        100 * meta.loc[1, "ma_area_fraction"]
    )
    # IoU: a prediction that is the truth shifted by 4 columns; rectangles are 12 wide.
    pred = tmp_path / "pred"
    pred.mkdir()
    for image_id in meta["id"]:
        mask = read_gray(tmp_path / "prepared" / "masks" / f"{image_id}.png")
        write_png(pred / f"{image_id}.png", np.roll(mask, 4, axis=1))
    iou = iou_per_group(tmp_path / "prepared" / "masks", pred, index).set_index("steel_type")
    assert iou.loc[ALL, "images"] == 5
    assert iou.loc[ALL, "iou_pooled"] == pytest.approx(8 / 16)  # overlap 8, union 16 columns
    assert iou.loc["2", "iou_mean_image"] == pytest.approx(0.5)


def test_workflow_runs_the_group_split_and_lists_per_type_outputs(tmp_path: Path):
    """The shipped A-H config pointed at a FABRICATED folder: a dry run lists the per-type
    outputs (with a segmenter configured), and a real run writes the split and Table 7b's
    real side without any code change."""
    import subprocess

    import yaml
    from conftest import copy_workflow

    sample = _fabricate_for_workflow(tmp_path / "aachen")
    (tmp_path / "wf").mkdir()
    root = copy_workflow(tmp_path / "wf")
    config = _group_split_config(sample)
    config["segment"] = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["segment"]
    (root / "config" / "ah-test.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args):
        return subprocess.run(
            # Targets before --configfile, which takes every argument after it.
            ["snakemake", "--cores", "1", *args, "--configfile", "config/ah-test.yaml"],
            cwd=root, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    dry = snakemake("-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    for rule in ("prepare_dataset", "split_dataset", "per_group_area_fraction",
                 "per_group_segmenter_iou"):  # fmt: skip
        assert rule in dry.stdout, rule
    assert "per-group-segmenter-iou-vgg16-jaccard.csv" in dry.stdout
    target = "results/aachen-heerlen/tables/per-group-area-fraction.csv"
    run = snakemake(target)
    assert run.returncode == 0, run.stderr[-3000:]
    split = pd.read_csv(root / "results/aachen-heerlen/split.csv", dtype=str)
    assert (split["split"] == "val_unseen").sum() == 3
    table = pd.read_csv(root / target, dtype={"steel_type": str})
    assert set(table["steel_type"]) == {"1", "CFB2", "12", "2"}
    assert table["real_mean_pp"].between(0, 100).all()
