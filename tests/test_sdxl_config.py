"""Table B4 grid from config: the paper-scale config lists the paper's SD variants, Table B4
keeps only their full-text rows (an SDXL entry on the tiny base: tests/test_tiny_sdxl.py)."""

from __future__ import annotations

import pandas as pd
import yaml
from conftest import REPO

from microgen.evaluate.generative import sd_variant_label, sd_variant_table

PAPER_B4 = [
    "SD3.5-Large + DreamBooth + LoRA",
    "SD3.5-Medium + DreamBooth + LoRA",
    "SDXL + LoRA",
    "SDXL + DreamBooth + DoRA",
    "SDXL + DreamBooth + LoRA",
]


def _paper_models() -> dict[str, dict]:
    config = yaml.safe_load((REPO / "config" / "uhcs-sd35-large.yaml").read_text())
    base = config["generate"]["base"]
    return {name: {"base": base, **spec} for name, spec in config["generate"]["models"].items()}


def test_paper_config_lists_the_table_b4_grid_with_table_b1_settings():
    models = _paper_models()
    assert sorted(sd_variant_label(s) for s in models.values()) == sorted(PAPER_B4)
    lora_only = models["sdxl-lora"]
    # Table B1 (1): U-Net only, no DreamBooth prior preservation.
    assert lora_only["family"] == "sdxl"
    assert not lora_only["train_text_encoder"] and not lora_only["prior_preservation"]
    assert models["sd35-medium"]["base"] == "stabilityai/stable-diffusion-3.5-medium"
    assert {n: s["sampling"]["guidance"] for n, s in models.items()} == {
        "sd35-large": 2.0,
        "sd35-medium": 3.0,
        "sdxl-lora": 6.0,
        "sdxl-dreambooth-dora": 6.0,
        "sdxl-dreambooth-lora": 4.0,
    }


def test_table_b4_keeps_full_text_rows_of_sd_models_in_config_order():
    wide = pd.DataFrame(
        {
            "model": ["ddpm", "sd35-large", "sd35-large", "sdxl-lora", "sd35-medium"],
            "prompt_mode": [
                "parameter_only",
                "text_only",
                "full_text",
                "full_text",
                "full_text",
            ],
            "mmd_rbf [x]": [0.9, 0.8, 0.5, 0.4, 0.6],
        }
    )
    models = _paper_models()
    table = sd_variant_table(wide, models)
    assert table["model"].tolist() == ["sd35-large", "sd35-medium", "sdxl-lora"]
    assert table["model configuration"].tolist() == [
        "SD3.5-Large + DreamBooth + LoRA",
        "SD3.5-Medium + DreamBooth + LoRA",
        "SDXL + LoRA",
    ]
    assert table["mmd_rbf [x]"].tolist() == [0.5, 0.6, 0.4]


def test_an_sdxl_entry_on_the_tiny_base_is_named_so_in_table_b4():
    assert sd_variant_label({"family": "sdxl", "base": "tiny"}) == "SDXL (tiny) + LoRA"
    spec = {"family": "sdxl", "base": "stabilityai/stable-diffusion-xl-base-1.0",
            "prior_preservation": True, "use_dora": True}  # fmt: skip
    assert sd_variant_label(spec) == "SDXL + DreamBooth + DoRA"
