"""Tables B1 (fine-tuning hyperparameters, from the config) and B3 (parameters per
component, counted on the meta device): against the paper's values for SD3.5-Large's
published configuration, against hand-read config values, and against a brute-force count
of the modules ``fine_tune`` actually builds on the tiny base."""

from __future__ import annotations

from dataclasses import fields

import pandas as pd
import pytest
import yaml
from conftest import REPO
from snakemake.utils import validate

from microgen import plan
from microgen.generate.finetune import FineTuneConfig
from microgen.generate.finetune_table import (
    NOT_LISTED,
    NOT_TRAINED,
    finetune_method,
    finetune_table,
    write_finetune_table,
)
from microgen.generate.paper_values import TABLE_B1

LARGE = "stabilityai/stable-diffusion-3.5-large"


def _config(name: str) -> dict:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def _cell(table: pd.DataFrame, row: str, column: str) -> str:
    return table.set_index("hyperparameter").loc[row, column]


# -- Table B1 --------------------------------------------------------------------------------


def test_table_b1_of_the_paper_config_is_the_paper(tmp_path):
    """config/uhcs-sd35-large.yaml sets Table B1's values: every model has its paper column
    beside it, and every row the paper lists agrees (values read off the config by hand)."""
    config = _config("uhcs-sd35-large.yaml")
    table = write_finetune_table(
        plan.finetune_table_params(config), tmp_path / "b1.csv", tmp_path / "b1.md"
    )
    models = ["sd35-large", "sd35-medium", "sdxl-lora", "sdxl-dreambooth-dora",
              "sdxl-dreambooth-lora"]  # fmt: skip
    assert list(table.columns) == ["hyperparameter"] + [
        c for m in models for c in (m, f"{m} (paper)")
    ]
    large = table.set_index("hyperparameter")["sd35-large"].to_dict()
    assert large == {
        "Family / base": f"SD3 / {LARGE}",
        "Method": "DreamBooth + LoRA",
        "Rank": "256",
        "Learning rate": "8e-05",
        "Text-encoder learning rate": "8e-06",
        "Batch size": "6",
        "Max steps": "4000",
        "Resolution (px)": "512",
        "Class images": "100",
        "Sampling steps": "50",
        "Classifier-free guidance": "2",
        "Prompt modes": "full_text, text_only, parameter_only",
    }
    assert _cell(table, "Method", "sdxl-lora") == "LoRA only"
    assert _cell(table, "Text-encoder learning rate", "sdxl-lora") == NOT_TRAINED
    assert _cell(table, "Class images", "sdxl-lora") == NOT_TRAINED
    assert _cell(table, "Method", "sdxl-dreambooth-dora") == "DreamBooth + DoRA"
    assert _cell(table, "Sampling steps", "sdxl-lora") == "250"
    assert _cell(table, "Family / base", "sd35-medium (paper)") == "SD3.5-Medium"
    for m in models:
        for row in ("Method", "Rank", "Learning rate", "Text-encoder learning rate",
                    "Sampling steps", "Classifier-free guidance"):  # fmt: skip
            assert _cell(table, row, m) == _cell(table, row, f"{m} (paper)"), (m, row)
        assert (
            _cell(table, "Batch size", f"{m} (paper)")
            == f"{_cell(table, 'Batch size', m)} (per GPU)"
        )
        assert _cell(table, "Max steps", f"{m} (paper)") == NOT_LISTED
    # The paper's own values, as printed in its Table B1.
    assert TABLE_B1[("SD3.5-Large", "DreamBooth + LoRA")]["rank"] == 256
    assert (tmp_path / "b1.md").read_text().startswith("| hyperparameter")
    assert pd.read_csv(tmp_path / "b1.csv").shape == table.shape


def test_table_b1_defaults_come_from_finetune_config():
    """A key an entry leaves out shows FineTuneConfig's default; the embedded default's
    tiny-base model matches no paper column."""
    defaults = {f.name: f.default for f in fields(FineTuneConfig)}
    sampling = {"steps": 20, "guidance": 5.0}
    table = finetune_table(
        {"bare": {"prompt_modes": ["text_only"], "base": "tiny", "sampling": sampling}}
    )
    assert list(table.columns) == ["hyperparameter", "bare"]
    assert _cell(table, "Rank", "bare") == str(defaults["rank"])
    assert _cell(table, "Learning rate", "bare") == f"{defaults['learning_rate']:g}"
    assert _cell(table, "Text-encoder learning rate", "bare") == f"{defaults['text_encoder_lr']:g}"
    assert _cell(table, "Max steps", "bare") == str(defaults["max_steps"])
    assert _cell(table, "Resolution (px)", "bare") == str(defaults["resolution"])
    assert _cell(table, "Classifier-free guidance", "bare") == "5"
    # Defaults: no prior preservation but text encoders trained.
    assert _cell(table, "Method", "bare") == "DreamBooth + LoRA (no prior preservation)"
    assert _cell(table, "Class images", "bare") == NOT_TRAINED
    embedded = finetune_table(plan.finetune_table_params(_config("config.yaml")))
    assert list(embedded.columns) == ["hyperparameter", "sd3-lora"]
    assert _cell(embedded, "Rank", "sd3-lora") == "8"
    assert _cell(embedded, "Sampling steps", "sd3-lora") == "20"  # the shared sampling


def test_table_b1_methods_and_errors():
    base = {f.name: f.default for f in fields(FineTuneConfig)}
    assert finetune_method(base | {"train_text_encoder": False}) == "LoRA only"
    assert finetune_method(base | {"prior_preservation": True}) == "DreamBooth + LoRA"
    assert finetune_method(base | {"prior_preservation": True, "use_dora": True}) == (
        "DreamBooth + DoRA"
    )
    # An SDXL DreamBooth + LoRA at another rank is still shown beside its paper column.
    spec = {"prompt_modes": ["full_text"], "family": "sdxl", "base": "sdxl-folder",
            "prior_preservation": True, "rank": 16,
            "sampling": {"steps": 5, "guidance": 1}}  # fmt: skip
    table = finetune_table({"x": spec})
    assert _cell(table, "Rank", "x") == "16" and _cell(table, "Rank", "x (paper)") == "4"
    with pytest.raises(ValueError, match=r"generate.models.x: unknown .*'rnak'"):
        finetune_table({"x": {**spec, "rnak": 3}})
    with pytest.raises(ValueError, match=r"generate.models.x: .*lr_scheduler"):
        finetune_table({"x": {**spec, "lr_scheduler": "sometimes"}})
