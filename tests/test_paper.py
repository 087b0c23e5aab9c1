"""The paper as one DAG: part configs (microgen.paper), the index of every table and figure
(microgen.paper_index), and the smoke config's promise to differ only in sizes and bases."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from microgen.paper import PARTS, deep_merge, part_configs, part_results
from microgen.paper_index import cell_number, compare_item, index_table, write_index

PAPER_TEXT = REPO.parent / "shared" / "papers" / "phan2025-parameter-aware-sd35.txt"
INDEX = REPO / "resources" / "paper" / "index.yaml"


def _paper(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())["paper"]


def test_deep_merge_merges_mappings_replaces_the_rest_and_copies():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    out = deep_merge(base, {"a": {"c": [3], "e": None}, "f": 2})
    assert out == {"a": {"b": 1, "c": [3], "e": None}, "d": 1, "f": 2}
    out["a"]["b"] = 9
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_part_configs_name_the_key_of_a_bad_part(tmp_path):
    with pytest.raises(ValueError, match=r"paper.parts.figures: unknown part"):
        part_configs({"parts": {"figures": {"config": "x.yaml"}}}, tmp_path)
    with pytest.raises(ValueError, match=r"paper.parts.volumes.config: none.yaml does not exist"):
        part_configs({"parts": {"volumes": {"config": "none.yaml"}}}, tmp_path)


def test_paper_parts_read_their_data_sets_and_meet_through_the_segmenter():
    parts = part_configs(_paper("paper.yaml"), REPO)
    assert list(parts) == list(PARTS)
    assert {n: part_results(p) for n, p in parts.items()} == {
        "segmentation": "uhcs24", "generation": "uhcs", "transfer": "aachen-heerlen",
        "volumes": "microgen3d-ch",
    }  # fmt: skip
    seg = parts["segmentation"]["segment"]
    pretrained = parts["generation"]["segment"]["pretrained"]
    assert pretrained == f"results/uhcs24/segmenter/{seg['apply']}/best"
    assert seg["encoder_weights"] == "imagenet"
    assert parts["generation"]["generate"]["base"] == "stabilityai/stable-diffusion-3.5-large"


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix, tree


# What config/paper-smoke.yaml may change: sizes, base models, and the inputs that cannot be
# reached offline (data paths, the simulated stand-in for the published volumes).
SIZE_KEYS = {
    "encoders", "losses", "variants", "encoder_weights", "epochs", "crop", "batch_size",
    "steps_per_epoch", "patience", "min_epochs", "r_max", "r_range", "seen_count", "base",
    "pretrain", "rank", "max_steps", "resolution", "num_class_images", "mixed_precision",
    "gradient_checkpointing", "checkpoint_every", "conditioner_hidden", "steps",
    "architecture", "n_per_condition", "diversity_samples", "batch_sizes", "samplers",
    "diffusion", "compute", "seen_per_group", "native_side", "transfer_columns", "gpus",
}  # fmt: skip
DATA_KEYS = {("dataset", "uhcsdb"), ("dataset", "aachen_heerlen"), ("volumes", "source"),
             ("volumes", "simulate"), ("volumes", "split")}  # fmt: skip


def test_smoke_config_differs_from_the_paper_only_in_sizes_bases_and_offline_inputs():
    paper = part_configs(_paper("paper.yaml"), REPO)
    smoke = part_configs(_paper("paper-smoke.yaml"), REPO)
    assert list(smoke) == list(paper)
    for name in paper:
        big, small = dict(_leaves(paper[name])), dict(_leaves(smoke[name]))
        for path in set(big) | set(small):
            if big.get(path, "<absent>") == small.get(path, "<absent>"):
                continue
            allowed = bool(SIZE_KEYS & set(path)) or path[:2] in DATA_KEYS
            assert allowed, (
                f"{name}: {'.'.join(path)} differs ({big.get(path)} -> {small.get(path)})"
            )


def test_every_table_and_figure_of_the_paper_is_in_the_index():
    if not PAPER_TEXT.is_file():
        pytest.skip(f"paper text not found at {PAPER_TEXT}")
    captions = re.findall(r"^(Table [A-D]?\d+|Fig\. [A-D]?\d+)\.", PAPER_TEXT.read_text(), re.M)
    listed = {item["id"] for item in yaml.safe_load(INDEX.read_text())["items"]}
    assert set(captions) - listed == set()
    assert len(set(captions)) >= 40  # 7 + 1 + 5 + 1 + 1 tables, 15 + 1 + 9 + 1 + 1 figures


def test_compare_item_takes_the_matching_row_the_named_column_and_leading_numbers():
    table = pd.DataFrame(
        {"model": ["ddpm", "sd35-large", "sd35-large"], "mode": ["p", "p", "full_text"],
         "mmd_rbf [vgg16]": [0.9, 0.5, 0.4], "miou": ["", "85.70 ± 1.41", "80"]}
    )  # fmt: skip
    item = {
        "id": "T",
        "compare": {
            "metrics": {"CMMD": "cmmd.*|mmd_rbf.*", "mIoU": "miou", "LPIPS": "lpips.*"},
            "rows": [
                {"row": "SD", "match": {"model": "sd35-.*", "mode": "p"},
                 "paper": {"CMMD": 0.7, "mIoU": 85.0, "LPIPS": 0.4}},
                {"row": "none", "match": {"model": "sdxl"}, "paper": {"CMMD": 0.4}},
            ],
        },
    }  # fmt: skip
    out = compare_item(item, table).set_index(["row", "metric"])
    assert out.loc[("SD", "CMMD"), "ours"] == 0.5
    assert out.loc[("SD", "CMMD"), "our column"] == "mmd_rbf [vgg16]"
    assert out.loc[("SD", "CMMD"), "ours - paper"] == pytest.approx(-0.2)
    assert out.loc[("SD", "mIoU"), "ours"] == 85.70
    assert np.isnan(out.loc[("SD", "LPIPS"), "ours"])
    assert out.loc[("SD", "LPIPS"), "note"] == "no such column here"
    assert out.loc[("none", "CMMD"), "note"] == "no such row here"
    assert compare_item(item, None)["note"].eq("table not written").all()


def test_cell_number_reads_numbers_and_mean_std_cells():
    assert cell_number(3) == 3.0
    assert cell_number("97.10 ± 0.82") == 97.10
    assert cell_number("-1.5e-3") == -0.0015
    assert np.isnan(cell_number("—"))
    assert np.isnan(cell_number(True))


def test_index_status_of_produced_missing_absent_and_unreproducible_items(tmp_path):
    (tmp_path / "results" / "a" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "a" / "tables" / "t1.csv").write_text("x\n1\n")
    items = [
        {"id": "T1", "title": "one", "part": "generation", "files": ["tables/t1.csv"]},
        {"id": "T2", "title": "two", "part": "generation", "files": ["tables/t2*.csv"]},
        {"id": "T3", "title": "three", "part": "transfer", "files": ["tables/t3.csv"]},
        {"id": "F1", "title": "schematic", "missing": "a drawing"},
    ]
    table = index_table(items, {"generation": "a"}, tmp_path).set_index("item")
    assert table.loc["T1", "status"] == "produced"
    assert table.loc["T1", "files"].endswith("results/a/tables/t1.csv")
    assert table.loc["T2", "status"] == "MISSING"
    assert table.loc["T3", "status"] == "not produced here"
    assert (table.loc["F1", "status"], table.loc["F1", "note"]) == ("not reproducible", "a drawing")


def test_write_index_says_smoke_scale_and_puts_the_paper_beside_ours(tmp_path):
    results = tmp_path / "results" / "uhcs" / "tables"
    results.mkdir(parents=True)
    pd.DataFrame({"split": ["train", "val_seen"], "images": [500, 20]}).to_csv(
        results / "split-summary.csv", index=False
    )
    index = yaml.safe_load(INDEX.read_text())
    items = [i for i in index["items"] if i["id"] == "Table A1"]
    (tmp_path / "index.yaml").write_text(yaml.safe_dump({"items": items}))
    table = write_index(
        tmp_path / "index.yaml", {"generation": "uhcs"}, tmp_path / "index.md",
        tmp_path / "index.csv", smoke=True, root=tmp_path,
    )  # fmt: skip
    text = (tmp_path / "index.md").read_text()
    assert "Smoke scale" in text and "| Training " in text
    assert table["status"].tolist() == ["produced"]
    assert re.search(r"\| Training\s+\| images\s+\|\s+521\s+\|\s+500\s+\|\s+-21\s+\|", text)


def test_unproduced_lists_missing_and_absent_items_only(tmp_path):
    from microgen.paper_index import unproduced

    pd.DataFrame(
        {"item": ["T1", "T2", "T3", "F1"],
         "status": ["produced", "MISSING", "not produced here", "not reproducible"]}
    ).to_csv(tmp_path / "index.csv", index=False)  # fmt: skip
    assert unproduced(tmp_path / "index.csv") == ["T2", "T3"]


def _index_paper(item_id: str) -> dict[str, dict]:
    item = next(i for i in yaml.safe_load(INDEX.read_text())["items"] if i["id"] == item_id)
    return {row["row"]: row["paper"] for row in item["compare"]["rows"]}


def test_the_index_quotes_the_paper_as_the_library_tables_do():
    """The paper's numbers stand in the index and, for some tables, in the library that
    writes them beside ours; the two copies must agree."""
    from microgen.evaluate.per_type import PAPER_TABLE7B
    from microgen.evaluate.transfer import PAPER_TABLE7A
    from microgen.segment.tables import PAPER_IOU, PAPER_PER_CLASS, PRIOR_METHODS

    (row7a,) = _index_paper("Table 7").values()
    names = {"Precision": "precision", "Recall": "recall"}
    assert {names.get(k, k): v for k, v in row7a.items()} == PAPER_TABLE7A
    table7b = {r.split()[1]: v["MAE (pp)"] for r, v in _index_paper("Table 7 (b)").items()}
    assert table7b == {k: mean for k, (mean, _) in PAPER_TABLE7B.items()}
    ours = PRIOR_METHODS.iloc[-1]
    assert list(_index_paper("Table 3").values()) == [
        {"mIoU": ours["miou"], "Accuracy": ours["accuracy"]}
    ]
    table5 = _index_paper("Table 5")
    for k, row in enumerate(table5.values()):
        for metric, key in (("Precision", "precision"), ("Recall", "recall"),
                            ("F1", "f1"), ("BF1", "boundary_f1")):  # fmt: skip
            assert row[metric] == PAPER_PER_CLASS[key][k][0]
    assert len(table5) == len(PAPER_IOU)
