"""The Aachen-Heerlen schema-transfer experiment (paper section 3.3, Table 7, Figs 15 and D1)
as part of the workflow, on the FABRICATED sample tests/data/aachen-heerlen (written by
tests/fabricate_aachen_heerlen.py; the real A-H files are not reachable here).

Unit tests check Table 7a / 7b and the MAE against hand computations, what a group split
needs from the library (unknown pixel sizes, Fig. 15's conditions), and the plan; one
module-scoped run of the whole DAG at toy size (tests/config/aachen-heerlen-small.yaml)
checks that every Table 7 / Fig. 15 / Fig. D1 output is made and that its numbers are the
ones the masks give.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import fabricate_aachen_heerlen as fab
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_workflow
from PIL import Image

SAMPLE = REPO / "tests" / "data" / "aachen-heerlen"
SMALL = REPO / "tests" / "config" / "aachen-heerlen-small.yaml"
AH_SCHEMA = REPO / "resources" / "schemas" / "aachen-heerlen.yaml"
SEEN, UNSEEN = ["1", "CFB2", "5", "10", "11"], ["2", "3", "8", "12"]


# --- the fabricated sample ----------------------------------------------------------------


def test_committed_sample_is_what_the_seeded_script_writes(tmp_path: Path):
    out = fab.fabricate(tmp_path / "again")
    for name in (fab.METADATA_FILE, fab.POLYGON_FILE):
        assert (out / name).read_text() == (SAMPLE / name).read_text(), name
    names = sorted(p.name for p in (SAMPLE / "PNG").glob("*.png"))
    assert names == sorted(p.name for p in (out / "PNG").glob("*.png")) and len(names) == 40
    for name in names:
        a, b = (np.asarray(Image.open(d / "PNG" / name)) for d in (SAMPLE, out))
        assert a.dtype == np.uint8 and a.shape == (128, 128) and np.array_equal(a, b), name
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size <= 1_000_000
    assert "FABRICATED" in (SAMPLE / "README.md").read_text()


def test_fabricated_ma_fraction_follows_type_and_temperature(tmp_path: Path):
    """Islands are placed until their polygons cover the condition's target (per-type base
    + 4 pp per 100 °C); overlaps merge, so the masks hold a little less, never much more."""
    from microgen.data.aachen_heerlen import prepare_aachen_heerlen

    meta = prepare_aachen_heerlen(SAMPLE, AH_SCHEMA, tmp_path / "prepared")
    assert sorted(set(meta["steel_type"])) == sorted(SEEN + UNSEEN)
    for column in ("temperature", "distance", "orientation", "angle", "steel_type"):
        assert meta[column].notna().all(), column
    target = [fab.target_fraction(s, t) for s, t in zip(meta["steel_type"], meta["temperature"],
                                                         strict=True)]  # fmt: skip
    deficit = np.asarray(target) - meta["ma_area_fraction"]
    assert (deficit > -0.005).all() and (deficit < 0.02).all()
    base = meta["steel_type"].map(fab.TYPE_FRACTION)
    slope = np.polyfit((meta["temperature"] - 350) / 100, meta["ma_area_fraction"] - base, 1)[0]
    assert 0.03 < slope < fab.GAIN_PER_100C + 0.005  # 4 pp per 100 °C, less the overlaps


# --- Table 7b: the MAE by hand ------------------------------------------------------------


def _mae_frames():
    """Type 1: condition c1 real 10, 12 %, generated 13, 15 %; c2 real 20 %, generated 17,
    25, 20 %; c3 generated only (no real image: not compared)."""
    real_index = pd.DataFrame({"id": ["r1", "r2", "r3"], "label": ["c1", "c1", "c2"],
                               "split": "val_unseen", "steel_type": "1"})  # fmt: skip
    real_rows = pd.DataFrame({"id": ["r1", "r2", "r3"], "area_fraction": [0.10, 0.12, 0.20]})
    gen_index = pd.DataFrame({
        "id": [f"g{k}" for k in range(6)], "model": "m", "prompt_mode": "full_text",
        "label": ["c1", "c1", "c2", "c2", "c2", "c3"], "split": "val_unseen", "steel_type": "1",
    })  # fmt: skip
    gen_rows = pd.DataFrame({"id": gen_index["id"],
                             "area_fraction": [0.13, 0.15, 0.17, 0.25, 0.20, 0.50]})  # fmt: skip
    return real_rows, real_index, gen_rows, gen_index


def test_mae_over_conditions_and_over_images_by_hand():
    from microgen.evaluate.per_type import area_fraction_per_group

    real_rows, real_index, gen_rows, gen_index = _mae_frames()
    row = area_fraction_per_group(real_rows, real_index, "steel_type", gen_rows, gen_index)
    row = row.iloc[0]
    # per condition: |14 - 11| = 3 pp, |20.667 - 20| = 0.667 pp
    per_condition = np.array([3.0, 2 / 3])
    assert row["n_conditions"] == 2
    assert row["mae_pp"] == pytest.approx(per_condition.mean())
    assert row["mae_std_pp"] == pytest.approx(per_condition.std(ddof=1))
    # per image: |13-11|, |15-11|, |17-20|, |25-20|, |20-20| = 2, 4, 3, 5, 0 pp
    per_image = np.array([2.0, 4.0, 3.0, 5.0, 0.0])
    assert row["mae_image_pp"] == pytest.approx(2.8)
    assert row["mae_image_std_pp"] == pytest.approx(per_image.std(ddof=1))  # sqrt(14.8 / 4)
    assert row["real_mean_pp"] == pytest.approx(100 * np.mean([0.10, 0.12, 0.20]))


def test_table7b_orders_types_and_sets_the_paper_beside():
    from microgen.evaluate.per_type import area_fraction_per_group, table7b
    from microgen.evaluate.transfer import display_order

    real_rows, real_index, gen_rows, gen_index = _mae_frames()
    # A seen type "Z" the paper does not list: one condition, real 5 %, generated 7 %.
    real_index = pd.concat([real_index, pd.DataFrame(
        {"id": ["r9"], "label": ["z"], "split": ["val_seen"], "steel_type": ["Z"]})])  # fmt: skip
    real_rows = pd.concat([real_rows, pd.DataFrame({"id": ["r9"], "area_fraction": [0.05]})])
    gen_index = pd.concat([gen_index, gen_index.iloc[:1].assign(
        id="g9", label="z", split="val_seen", steel_type="Z")])  # fmt: skip
    gen_rows = pd.concat([gen_rows, pd.DataFrame({"id": ["g9"], "area_fraction": [0.07]})])
    per_group = area_fraction_per_group(real_rows, real_index, "steel_type", gen_rows, gen_index)
    order = display_order(["Z", "1", "2"])
    assert order[:9] == ["1", "CFB2", "5", "10", "11", "2", "3", "8", "12"] and order[9] == "Z"
    t = table7b(per_group, "steel_type", order).set_index("steel_type")
    assert list(t.index) == ["Z", "1"]  # seen before unseen
    assert t.loc["1", "MAE (pp)"] == "1.83 ± 1.65"
    assert t.loc["1", "MAE per image (pp)"] == "2.80 ± 1.92"
    assert t.loc["1", "paper MAE (pp)"] == "2.53 ± 3.77"
    assert t.loc["Z", "MAE (pp)"] == "2.00"  # one condition: no sd
    assert np.isnan(t.loc["Z", "paper_mae_pp"]) and t.loc["Z", "paper MAE (pp)"] == "–"
    with pytest.raises(ValueError, match="mae_pp"):
        table7b(area_fraction_per_group(real_rows, real_index), "steel_type")


# --- Table 7a by hand -----------------------------------------------------------------------


def test_table7a_takes_the_overall_metrics_and_the_pooled_ma_iou():
    from microgen.evaluate.transfer import AH_BENCHMARK_MA_IOU, PAPER_TABLE7A, table7a

    seg = "segmenter-encoder(vgg16, vgg16-jaccard)"
    rows = [("overall", "mmd_rbf", 0.5, seg), ("overall", "precision", 0.3, seg),
            ("overall", "recall", 0.2, seg), ("overall", "ssim", 0.4, "pixels"),
            ("400C-9mm-V-P-2", "ssim", 0.9, "pixels")]  # fmt: skip
    long = pd.DataFrame(rows, columns=["condition", "metric", "value", "feature_extractor"])
    long = long.assign(model="sd3", prompt_mode="full_text")
    iou = pd.DataFrame({"steel_type": ["2", "all"], "iou_pooled": [0.6, 0.55]})
    t = table7a(long, iou)
    ours = t.iloc[0]
    assert (ours["CMMD"], ours["SSIM"], ours["precision"], ours["recall"]) == (0.5, 0.4, 0.3, 0.2)
    assert ours["MA-IoU"] == 0.55 and ours["features"] == seg
    assert np.isnan(ours["CLIP score"]) and np.isnan(ours["LPIPS"])
    assert ours["not computed"] == "CLIP score, LPIPS"
    paper = t.iloc[1]
    assert {k: paper[k] for k in PAPER_TABLE7A} == PAPER_TABLE7A
    assert t.iloc[2]["MA-IoU"] == AH_BENCHMARK_MA_IOU == 0.35
    # genuine CMMD (CLIP features) wins over the kernel MMD of another space
    clip = pd.DataFrame([dict(condition="overall", metric="cmmd", value=1.2,
                              feature_extractor="clip(vit)", model="sd3",
                              prompt_mode="full_text")])  # fmt: skip
    assert table7a(pd.concat([long, clip]), iou).iloc[0]["CMMD"] == 1.2
    with pytest.raises(ValueError, match="'all'"):
        table7a(long, iou.iloc[:1])


# --- what a group split needs from the library ------------------------------------------------


def test_descriptors_without_a_pixel_size_keep_the_pixel_ones():
    """A-H PNGs record no pixel size: µm descriptors are NaN, pixel ones are measured."""
    from microgen.descriptors.particles import particle_descriptors

    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = 1  # 16 px
    mask[10:14, 10:14] = 1
    p = particle_descriptors(mask, float("nan"), phase=1)
    assert p.area_fraction == pytest.approx(32 / 400) and p.n_particles == 2
    assert p.mean_diameter_px == pytest.approx(np.sqrt(4 * 16 / np.pi))
    assert np.isnan(p.mean_diameter_um) and np.isnan(p.number_density_per_um2)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="positive number or NaN"):
            particle_descriptors(mask, bad, phase=1)


def test_table_b5_keeps_a_descriptor_that_is_nan_throughout():
    from microgen.evaluate.fidelity import table_b5

    errors = pd.DataFrame({
        "model": "m", "prompt_mode": "full_text", "split": "val_seen", "label": ["a", "a"],
        "descriptor": ["area_fraction", "nnd_um"], "real_mean": [0.1, np.nan],
        "generated_mean": [0.2, np.nan], "rel_error_pct": [100.0, np.nan],
    })  # fmt: skip
    wide = table_b5(errors)
    assert list(wide.columns[4:]) == ["area_fraction R", "area_fraction G", "area_fraction error %",
                                      "nnd_um R", "nnd_um G", "nnd_um error %"]  # fmt: skip
    assert wide.loc[0, "area_fraction error %"] == 100.0 and np.isnan(wide.loc[0, "nnd_um G"])


def _conditions() -> pd.DataFrame:
    rows = [(350, "2"), (400, "2"), (450, "2"), (350, "3"), (400, "12"), (350, "8"), (400, "1")]
    return pd.DataFrame({
        "temperature": [t for t, _ in rows], "steel_type": [s for _, s in rows],
        "label": [f"{t}C-{s}" for t, s in rows],
        "split": ["val_unseen"] * 6 + ["val_seen"],
    })  # fmt: skip


def test_fig15_shows_unseen_conditions_a_new_group_first(tmp_path: Path):
    from microgen.figures.qualitative import pick_conditions, sample_grid_stage

    conditions = _conditions()
    # a new type first, then a new temperature, then label order
    picked = pick_conditions(conditions, 0, 5, novelty=["steel_type", "temperature"])
    assert picked == ["350C-2", "400C-12", "350C-3", "350C-8", "450C-2"]
    # the UHCS default looks for microconstituents and magnifications: label order here
    assert pick_conditions(conditions, 0, 3) == ["350C-2", "350C-3", "350C-8"]
    csv = tmp_path / "validation.csv"
    conditions.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"transfer_conditions: \['400C-1'\]"):
        sample_grid_stage("fig15", str(csv), [], {}, str(tmp_path / "f.png"), labels=["400C-1"])


def test_plan_adds_fig15_and_table7_for_a_group_split_only():
    from microgen import plan

    ah = yaml.safe_load((REPO / "config" / "aachen-heerlen.yaml").read_text())
    assert plan.grid_sets(ah, "fig15") == ["sd35-large__full_text"]
    assert "fig15" in plan.sample_grids(ah)
    assert plan.grid_columns(ah, "fig15") == {"labels": None, "n_columns": 6,
                                              "group": "steel_type"}  # fmt: skip
    assert plan.grid_columns(ah, "fig6") == {}
    assert plan.transfer_outputs(ah, "aachen-heerlen") == [
        "results/aachen-heerlen/tables/table7a-ah.csv",
        "results/aachen-heerlen/tables/table7b-ah.csv",
        "results/aachen-heerlen/figures/figD1-ah.png",
    ]
    uhcs = yaml.safe_load((REPO / "config" / "uhcs-sd35-large.yaml").read_text())
    assert plan.grid_sets(uhcs, "fig15") == [] and "fig15" not in plan.sample_grids(uhcs)
    assert plan.transfer_outputs(uhcs, "uhcs") == []
    no_generation = {k: v for k, v in ah.items() if k != "generate"}
    assert plan.transfer_outputs(no_generation, "aachen-heerlen") == []


# --- the whole A-H DAG at toy size -----------------------------------------------------------


@pytest.fixture(scope="module")
def ah_run(tmp_path_factory) -> Path:
    """A copy of the workflow run once, default target, with the toy A-H config."""
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    config = yaml.safe_load(SMALL.read_text())
    config["dataset"]["aachen_heerlen"]["path"] = str(SAMPLE)
    (root / "ah.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    start = time.perf_counter()
    result = subprocess.run(
        ["snakemake", "--cores", "2", "--configfile", "ah.yaml"],
        cwd=root, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    print(f"A-H DAG on the fabricated sample: {time.perf_counter() - start:.0f} s")
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "results" / "ah-small"


def test_dag_writes_table7a_in_range(ah_run: Path):
    t = pd.read_csv(ah_run / "tables" / "table7a-ah.csv")
    assert list(t["source"]) == ["this run", "Phan et al. 2025 (paper)",
                                 "A-H benchmark (Iren et al. 2021)"]  # fmt: skip
    ours = t.iloc[0]
    assert (ours["model"], ours["prompt_mode"]) == ("sd3-lora", "full_text")
    assert np.isfinite(ours["CMMD"]) and ours["CMMD"] >= 0
    assert -1 <= ours["SSIM"] <= 1
    assert 0 <= ours["precision"] <= 1 and 0 <= ours["recall"] <= 1
    iou = pd.read_csv(ah_run / "tables" / "per-group-segmenter-iou-vgg16-jaccard.csv", dtype=str)
    assert 0 <= ours["MA-IoU"] <= 1
    assert ours["MA-IoU"] == pytest.approx(float(iou.loc[iou["steel_type"] == "all",
                                                         "iou_pooled"].iloc[0]))  # fmt: skip
    assert t.iloc[1]["MA-IoU"] == 0.487 and t.iloc[2]["MA-IoU"] == 0.35
    assert "Table 7a" in (ah_run / "tables" / "table7a-ah.md").read_text()


def test_dag_writes_table7b_per_schema_type_from_the_masks(ah_run: Path):
    from microgen.data.prepared import read_gray

    t = pd.read_csv(ah_run / "tables" / "table7b-ah.csv", dtype={"steel_type": str})
    assert list(t["steel_type"]) == SEEN + UNSEEN  # the paper's order, every type of the sample
    assert set(t.loc[t["split"] == "val_seen", "steel_type"]) == set(SEEN)
    assert t["mae_pp"].between(0, 100).all() and t["mae_image_pp"].between(0, 100).all()
    assert (t["n_conditions"] >= 1).all()
    assert t.set_index("steel_type").loc["12", "paper MAE (pp)"] == "3.18 ± 5.38"
    # Type 12 by hand: real MA fraction of the annotated masks, generated of the segmenter's.
    split = pd.read_csv(ah_run / "split.csv", dtype=str)
    meta = pd.read_csv(ah_run / "data" / "metadata.csv", dtype={"id": str, "steel_type": str})
    real = meta.merge(split, on="id").query("steel_type == '12'")
    truth = ah_run / "data" / "masks"
    real_af = {i: np.mean(read_gray(truth / f"{i}.png") == 1) for i in real["id"]}
    real_mean = real.assign(af=real["id"].map(real_af)).groupby("label")["af"].mean()
    gen = pd.read_csv(ah_run / "evaluation" / "sets" / "sd3-lora__full_text.csv", dtype=str)
    gen = gen[gen["label"].isin(real_mean.index)]
    masks = ah_run / "masks" / "sets" / "sd3-lora__full_text"
    gen_af = gen["id"].map(lambda i: np.mean(read_gray(masks / f"{i}.png") == 1))
    errors = 100 * (gen_af.groupby(gen["label"]).mean() - real_mean).abs()
    row = t.set_index("steel_type").loc["12"]
    assert row["mae_pp"] == pytest.approx(errors.mean()) and row["n_conditions"] == len(errors)
    assert row["mae_std_pp"] == pytest.approx(errors.std(ddof=1))


def test_dag_draws_fig15_and_d1(ah_run: Path):
    for name in ("fig15-samples", "figD1-ah", "figB9-tsne", "fig9-segmented-samples"):
        assert (ah_run / "figures" / f"{name}.png").stat().st_size > 5_000, name
        assert (ah_run / "figures" / f"{name}.pdf").is_file(), name
    # Fig. 15's columns are unseen conditions, a new unseen type each (4 columns configured)
    conditions = pd.read_csv(ah_run / "conditions" / "validation.csv", dtype={"steel_type": str})
    from microgen.figures.qualitative import pick_conditions

    labels = pick_conditions(conditions, 0, 4, novelty=["steel_type", "temperature", "distance",
                                                        "orientation", "angle"])  # fmt: skip
    assert sorted(lab.rsplit("-", 1)[1] for lab in labels) == sorted(UNSEEN)
    descriptors = pd.read_parquet(ah_run / "descriptors" / "real-vgg16-jaccard.parquet")
    assert descriptors["area_fraction"].notna().all()
    assert descriptors["mean_diameter_um"].isna().all()  # A-H has no pixel size
