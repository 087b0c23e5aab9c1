"""The whole DAG on a labelled data set that is not UHCS (issue 17, item 5), fabricated here:
five classes, a magnification and an etchant, a bottom information band, pixel sizes from
scale bars (two microscopes at 1000× with different pixels), folds in a metadata column.
Only YAML and the folder describe it: a condition schema, a layout and a config. The run
segments (with cross-validation on the same folder), generates in all three prompt modes,
evaluates and builds its report, and its tables and figures name its own classes and
variables."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_workflow
from PIL import Image

CLASSES = ["ferrite", "pearlite", "bainite", "martensite", "inclusion"]
INCLUSION = 4  # the particle phase the descriptors measure (above the old maximum of 3)
UHCS = yaml.safe_load((REPO / "resources" / "schemas" / "uhcs.yaml").read_text())
UHCS_CLASSES = [c["name"] for c in UHCS["classes"]]

SCHEMA = {
    "name": "steel5",
    "continuous": [
        {"name": "magnification", "label": "nominal magnification", "unit": "×",
         "placeholder": "<mag>", "log": True, "format": "{value:g}× magnification"},
    ],
    "categorical": [
        {"name": "etchant", "label": "etching reagent", "placeholder": "<etch>",
         "categories": ["nital", "picral"],
         "words": {"nital": "nital etched", "picral": "picral etched"}},
    ],
    "prompts": {
        "full_text": "optical micrograph of a dual-phase steel, {etchant} {<etch>}, "
                     "{magnification} {<mag>}",
        "text_only": "optical micrograph of a dual-phase steel, {etchant}, {magnification}",
        "parameter_only": "{<etch>} {<mag>}",
    },
    "condition_label": "{magnification:g}x-{etchant}",
    # inclusion in the default (tab10) colour
    "classes": [{"name": "ferrite", "color": "whitesmoke"}, {"name": "pearlite", "color": "k"},
                {"name": "bainite", "color": "#8c564b"}, {"name": "martensite", "color": "C3"},
                {"name": "inclusion"}],
}  # fmt: skip

LAYOUT = {
    "metadata": "records.csv",
    "images": "micrographs",
    "masks": "labels",
    "file_column": "file",
    "info_band": {"rows": 8, "side": "bottom"},
    "folds": {"column": "fold"},
    "columns": {
        "magnification": {"column": "magnification", "strip_suffix": ["x"]},
        "etchant": {"column": "etchant",
                    "categories": {"Nital 2%": "nital", "Picral 4%": "picral"}},
        "pixel_size_um": {"scale_bar": {"length": "bar_length", "unit_column": "bar_unit",
                                        "units": {"um": 1.0, "nm": 0.001}, "pixels": "bar_px"}},
        "microscope": {"column": "microscope", "type": "text"},
    },
}  # fmt: skip

#: (magnification, microscope, scale bar length, its unit, its pixels): 0.2 µm/px at 500×,
#: 0.1 (A) and 0.125 (B) µm/px at 1000×, 0.05 µm/px at 2000×.
SCOPES = [
    (500, "optical-A", 10, "um", 50),
    (1000, "optical-A", 5, "um", 50),
    (1000, "optical-B", 5000, "nm", 40),
    (2000, "optical-A", 2, "um", 40),
]
ETCHANTS = {"Nital 2%": (200, 120, 150, 80, 30), "Picral 4%": (170, 90, 210, 60, 15)}
SIDE, BAND = 64, 8
INCLUSION_RADIUS_UM = 0.5


def fabricate_mask(rng: np.random.Generator, pixel_size_um: float) -> np.ndarray:
    """A 5-class mask: a pearlite band, a bainite region, martensite islands and round
    inclusions of a fixed size in µm, so their size in pixels follows the magnification."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    mask = np.zeros((SIDE, SIDE), np.uint8)
    top = rng.integers(0, SIDE - 14)
    mask[top : top + 10] = 1
    mask[:, rng.integers(40, 52) :] = 2
    for _ in range(3):
        cy, cx = rng.uniform(0, SIDE, 2)
        mask[np.abs(yy - cy) + np.abs(xx - cx) < rng.uniform(3, 6)] = 3
    radius = INCLUSION_RADIUS_UM / pixel_size_um
    for _ in range(5):
        cy, cx = rng.uniform(radius, SIDE - radius, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = INCLUSION
    return mask


def fabricate(root: Path, per_condition: int = 3) -> Path:
    """The data set folder, its schema and its layout under ``root``; returns the folder.

    Micrographs are TIFFs of 72 × 64 px whose 8 bottom rows are a white information band;
    masks are TIFFs of the same size under the same names. Each (microscope, etchant) gets
    ``per_condition`` images; folds 0-2 in turn."""
    folder = root / "steel5"
    for sub in ("micrographs", "labels"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(17)
    rows = []
    for mag, scope, bar, unit, bar_px in SCOPES:
        pixel = bar * (1e-3 if unit == "nm" else 1.0) / bar_px
        for etchant, levels in ETCHANTS.items():
            for _ in range(per_condition):
                name = f"m{len(rows):03d}.tif"
                mask = fabricate_mask(rng, pixel)
                image = np.asarray(levels, float)[mask] + rng.normal(0, 12, mask.shape)
                banded = np.vstack([np.clip(image, 0, 255), np.full((BAND, SIDE), 255.0)])
                Image.fromarray(banded.astype(np.uint8)).save(folder / "micrographs" / name)
                band = np.vstack([mask, np.full((BAND, SIDE), 9, np.uint8)])  # cropped away
                Image.fromarray(band).save(folder / "labels" / name)
                rows.append({"file": name, "magnification": f"{mag}x", "etchant": etchant,
                             "bar_length": bar, "bar_unit": unit, "bar_px": bar_px,
                             "microscope": scope, "fold": len(rows) % 3})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "records.csv", index=False)
    (root / "steel5-schema.yaml").write_text(yaml.safe_dump(SCHEMA, allow_unicode=True))
    (root / "steel5-layout.yaml").write_text(yaml.safe_dump(LAYOUT, allow_unicode=True))
    return folder


def toy_config(root: Path, folder: Path) -> dict:
    """The DAG at toy size on the fabricated folder: the sizes of tests/config/small.yaml,
    the generator at 32 px, and without the from-scratch baselines (tests/test_workflow.py
    runs them; here each job's start-up would cost more than they add)."""
    small = yaml.safe_load((REPO / "tests" / "config" / "small.yaml").read_text())
    generate = small["generate"]
    del generate["baselines"]
    generate["pretrain"].update(resolution=32, steps=10, vae_steps=5)
    generate["models"]["sd3-lora"].update(
        prompt_modes=["full_text", "text_only", "parameter_only"], resolution=32, max_steps=2,
        num_class_images=1,
    )  # fmt: skip
    generate["sampling"].update(resolution=32, steps=2)
    # A condition table of this data set's own variables, one magnification never imaged.
    (root / "steel5-conditions.csv").write_text("magnification,etchant\n1000,nital\n3000,picral\n")
    generate["condition_tables"] = {"mine": str(root / "steel5-conditions.csv")}
    generate["probe"] = {"reference": {"magnification": 1000, "etchant": "nital"},
                         "variables": ["magnification"], "n_images": 1}  # fmt: skip
    segment = small["segment"]
    segment["cross_validation"] = {
        "folder": str(folder), "layout": str(root / "steel5-layout.yaml"),
        "label_versions": ["labels"], "variants": ["vgg16-jaccard-eca"],
        "epochs": 1, "steps_per_epoch": 1,
    }  # fmt: skip
    return {
        "dataset": {
            "name": "steel5", "source": "folder", "schema": str(root / "steel5-schema.yaml"),
            "folder": {"path": str(folder), "layout": str(root / "steel5-layout.yaml")},
        },
        "split": {"unseen": {"magnification": [2000], "etchant": ["picral"]},
                  "seen": {"magnification": [1000]}, "seen_count": 2,
                  "seed": 0},
        "preprocess": {"native_side": SIDE},
        "segment": segment,
        "generate": generate,
        "evaluate": {**small["evaluate"], "r_range": [0, 8]},
        "descriptors": {"phase": INCLUSION, "r_max": 12, "border": "keep"},
        "figures": {"segmentation_examples": 2, "comparison_variables": ["etchant"],
                    "trend_variables": ["magnification"]},
    }  # fmt: skip


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", "--cores", "2", *args, "--configfile", "steel5.yaml"],
        cwd=root, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """A copy of the workflow run once, default target, on the fabricated data set."""
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    folder = fabricate(tmp_path_factory.mktemp("data"))
    config = toy_config(folder.parent, folder)
    (root / "steel5.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    start = time.perf_counter()
    result = snakemake(root)
    print(f"whole DAG on the fabricated data set: {time.perf_counter() - start:.0f} s")
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def _names_only_its_classes(text: str) -> None:
    for name in CLASSES:
        assert name in text, name
    for name in set(UHCS_CLASSES) - set(CLASSES):
        assert name not in text, name


def test_prepared_data_set_is_read_from_yaml_alone(tmp_path):
    """The reader crops the band, reads both microscopes' pixel sizes and the folds."""
    from microgen.data.folder import prepare_folder
    from microgen.data.folds import read_folds

    folder = fabricate(tmp_path)
    written = prepare_folder(folder, tmp_path / "steel5-schema.yaml", tmp_path / "out",
                             tmp_path / "steel5-layout.yaml")  # fmt: skip
    assert len(written) == 24 and written["has_mask"].all()
    sizes = written.groupby(["magnification", "microscope"])["pixel_size_um"].unique()
    assert {k: list(v) for k, v in sizes.items()} == {
        (500.0, "optical-A"): [0.2], (1000.0, "optical-A"): [0.1],
        (1000.0, "optical-B"): [0.125], (2000.0, "optical-A"): [0.05],
    }  # fmt: skip
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{written['id'][0]}.png"))
    assert mask.shape == (SIDE, SIDE) and mask.max() == INCLUSION  # band (id 9) cropped
    assert written.loc[0, "prompt_text_only"] == (
        "optical micrograph of a dual-phase steel, nital etched, 500× magnification"
    )
    folds = read_folds(folder, LAYOUT)
    assert sorted(folds) == [0, 1, 2] and all(len(ids) == 8 for ids in folds.values())


def test_inclusions_grow_in_pixels_with_magnification():
    """The fabricated condition dependence: 0.5 µm inclusions span twice the pixels at 2000×
    as at 1000× (and 2.5× those of 500×)."""
    from microgen.descriptors import particle_descriptors

    def diameter_px(pixel_size_um: float) -> float:
        masks = [fabricate_mask(np.random.default_rng(k), pixel_size_um) for k in range(6)]
        return np.mean([particle_descriptors(m, pixel_size_um, phase=INCLUSION).mean_diameter_px
                        for m in masks])  # fmt: skip

    assert diameter_px(0.05) > 1.6 * diameter_px(0.1) > 1.6 * 1.5 * diameter_px(0.2)


def test_fig_a1_names_the_schema_s_variables_and_classes(tmp_path):
    """Fig. A1 of the fabricated set: one panel per schema variable labelled as the schema
    says, and a class panel naming its five classes."""
    import matplotlib

    from microgen.data.folder import prepare_folder
    from microgen.figures.dataset import plot_dataset_histograms

    folder = fabricate(tmp_path)
    schema = tmp_path / "steel5-schema.yaml"
    written = prepare_folder(folder, schema, tmp_path / "out", tmp_path / "steel5-layout.yaml")
    split = pd.DataFrame({"id": written["id"], "split": ["train", "val_seen"] * 12})
    split.to_csv(tmp_path / "split.csv", index=False)
    fig = plot_dataset_histograms(str(tmp_path / "out" / "metadata.csv"),
                                  str(tmp_path / "split.csv"), str(schema),
                                  str(tmp_path / "a1.png"))  # fmt: skip
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes[:2]] == ["nominal magnification (×)", "etching reagent"]
    assert [t.get_text() for t in axes[2].get_xticklabels()] == CLASSES
    assert axes[2].get_xlabel() == "class (24 labelled micrographs)"
    heights = [bar.get_height() for bar in axes[2].patches]
    assert sum(heights) == pytest.approx(100) and heights[INCLUSION] > 0
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda c, s: c["descriptors"].update(phase=5),
         "descriptors.phase: 5 is no class of {schema}, which names 5 (ids 0…4"),
        (lambda c, s: s.pop("classes"), "dataset.schema: {schema} names no classes"),
        (lambda c, s: s.update(classes=[{"name": f"c{k}"} for k in range(11)]),
         "{schema}: classes: "),
    ],
)  # fmt: skip
def test_classes_the_masks_cannot_have_stop_the_dag_naming_the_schema(tmp_path, change, said):
    (tmp_path / "wf").mkdir()
    root = copy_workflow(tmp_path / "wf")
    folder = fabricate(tmp_path)
    config, schema = toy_config(tmp_path, folder), dict(SCHEMA)
    change(config, schema)
    (tmp_path / "steel5-schema.yaml").write_text(yaml.safe_dump(schema, allow_unicode=True))
    (root / "steel5.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(root, "-n")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert said.format(schema=tmp_path / "steel5-schema.yaml") in out, out[-2000:]
    assert "Job stats" not in out


def test_whole_dag_runs_on_yaml_and_a_folder(folder_run):
    out = folder_run / "results" / "steel5"
    metadata = pd.read_csv(out / "data" / "metadata.csv")
    assert len(metadata) == 24 and set(metadata["etchant"]) == {"nital", "picral"}
    for name in ("fig-a1-dataset", "fig7-segmentation-vgg16-jaccard", "fig9-segmented-samples",
                 "fig7-cv-labels-vgg16-jaccard-eca-fold0", "cv-convergence-labels",
                 "fig14-correlation-envelopes", "figB9-tsne", "fig6-samples",
                 "conditions-etchant-seen", "descriptor-trends-magnification"):  # fmt: skip
        assert (out / "figures" / f"{name}.png").stat().st_size > 5_000, name
    for mode in ("full_text", "text_only", "parameter_only"):
        samples = pd.read_csv(out / "samples" / "sd3-lora" / f"{mode}.csv")
        assert len(samples) and samples["label"].str.fullmatch(r"\d+x-(nital|picral)").all()
    rows = pd.read_parquet(out / "descriptors" / "truth.parquet")
    assert (rows["phase"] == INCLUSION).all() and (rows["area_fraction"] > 0).all()
    # generated images at 1000× take the median of the two microscopes' pixel sizes,
    # scaled by the native over the generated side (64 / 32)
    index = pd.read_csv(out / "evaluation" / "sets" / "sd3-lora__full_text.csv")
    seen = index[index["label"].str.startswith("1000x")]
    assert len(seen) and np.allclose(seen["pixel_size_um"], 2 * (0.1 + 0.125) / 2)
    assert seen["pixel_size_source"].str.startswith("median (2 distinct").all()


def test_segmentation_tables_name_its_classes(folder_run):
    tables = folder_run / "results" / "steel5" / "tables"
    per_class = pd.read_csv(tables / "table5-per-class.csv")
    assert list(per_class["class"]) == [f"{k} {n}" for k, n in enumerate(CLASSES)]
    table4 = pd.read_csv(tables / "table4-cv-per-class-iou.csv")
    assert len(table4) == 1  # this run alone: the paper's row is of UHCS-24's classes
    assert [c for c in table4 if c.startswith("IoU ")] == [
        f"IoU {k} {n}" for k, n in enumerate(CLASSES)
    ]
    assert table4.loc[0, "folds"] == 3
    for name in ("table4-cv-per-class-iou", "table5-cv-per-class-errors", "table5-per-class"):
        _names_only_its_classes((tables / f"{name}.md").read_text())
    assert len(pd.read_csv(tables / "table3-cv-prior-methods.csv")) == 1


def test_evaluation_has_table_6_and_no_ground_truth(folder_run):
    out = folder_run / "results" / "steel5"
    table6 = pd.read_csv(out / "tables" / "table6-correlation-errors.csv")
    assert {f"sd3-lora/{mode} eps_S2" for mode in ("full_text", "text_only", "parameter_only")
            } <= set(table6.columns)  # fmt: skip
    assert set(table6["split"]) == {"val_seen", "val_unseen"}
    assert table6["label"].str.fullmatch(r"\d+x-(nital|picral)").all()
    assert not list(out.glob("tables/ground-truth*")) and not (out / "evaluation" /
                                                               "ground-truth").exists()  # fmt: skip
    probe = pd.read_csv(out / "tables" / "parameter-awareness-sd3-lora.csv")
    assert set(probe["variable"]) == {"magnification"} and "law" not in set(probe["source"])


def test_a_condition_table_of_its_own_variables_is_sampled_and_described(folder_run):
    out = folder_run / "results" / "steel5" / "generated" / "sd3-lora" / "full_text" / "mine"
    table = pd.read_csv(out / "descriptors.csv").set_index("label")
    assert sorted(set(table.index)) == ["1000x-nital", "3000x-picral"]
    assert table.groupby(level=0).size().eq(2).all()  # sampling.n_per_condition
    # 3000x lies beyond the 500-2000x trained on: flagged, and its pixel size follows
    # p = c / M with c = median(pixel size x magnification) = 100 um, times 64 / 32.
    flagged = table["outside_training_range"].fillna("")
    assert (flagged.loc["3000x-picral"] == "magnification").all()
    assert (flagged.loc["1000x-nital"] == "").all()
    far = table.loc["3000x-picral"]
    assert (far["pixel_size_source"] == "magnification").all()
    assert np.allclose(far["pixel_size_um"], 2 * 100 / 3000)
    assert np.isfinite(table["area_fraction"]).all()
    assert len(list((out / "masks").glob("*.png"))) == 4


def test_report_builds_and_names_its_classes(folder_run):
    result = snakemake(folder_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (folder_run / "report.html").read_text(errors="replace")
    assert "fig-a1-dataset.png" in html and "table4-cv-per-class-iou.csv" in html
    # the captions of the class tables and mask figures list its classes, not UHCS-24's
    listed = ", ".join(f"{k} {n}" for k, n in enumerate(CLASSES))
    assert f"per-class IoU ({listed})" in html and f"Class colours: {listed}." in html
    assert "spheroidite" not in html and "Widmanst" not in html
