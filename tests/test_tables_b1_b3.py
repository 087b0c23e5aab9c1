"""Tables B1 (fine-tuning hyperparameters, from the config) and B3 (parameters per
component, counted on the meta device): against the paper's values for SD3.5-Large's
published configuration, against hand-read config values, and against a brute-force count
of the modules ``fine_tune`` actually builds on the tiny base."""

from __future__ import annotations

from dataclasses import fields

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, TOY_COMBOS
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
from microgen.generate.paper_values import TABLE_B1, TABLE_B3
from microgen.generate.parameter_counts import (
    PUBLISHED,
    parameter_breakdown,
    read_component_configs,
    write_parameter_breakdown,
)

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
        ours = _cell(table, "Batch size", m)
        assert _cell(table, "Batch size", f"{m} (paper)") == f"{ours.split()[0]} (per GPU)"
        # The SDXL rows ran on four GPUs (§ 4.1), the SD3.5 ones on one.
        assert ours.endswith(" per GPU × 4 GPUs") == m.startswith("sdxl"), (m, ours)
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


# -- Table B3 --------------------------------------------------------------------------------


def _large_entry(**settings) -> dict:
    settings = {"rank": 256, "prior_preservation": True, "conditioner_hidden": 13072,
                "prompt_mode": "full_text", **settings}  # fmt: skip
    return {"base": LARGE, "load": LARGE, "settings": settings}


def test_table_b3_of_sd35_large_is_the_paper(schema):
    """SD3.5-Large's published configs with the paper's recipe (rank 256, text encoders
    trained, conditioner width 13072): Table B3's counts to its printed precision."""
    table = parameter_breakdown({"sd35-large": _large_entry()}, schema, configs=PUBLISHED)
    rows = table.set_index("component")
    mmdit = rows.loc["MM-DiT (transformer + LoRA)"]
    assert abs(mmdit["pretrained_M"] - 8056.6) < 0.05
    assert abs(mmdit["added_M"] - 377.3) < 0.05
    assert mmdit["trainable_M"] == mmdit["added_M"]
    for component, paper in TABLE_B3.items():
        ours = rows.loc[component]
        assert ours["paper_trainable_M"] == paper["trainable"]
        assert abs(ours["trainable_M"] - paper["trainable"]) < 0.5, component
        assert abs(ours["trainable_percent"] - paper["percent"]) < 0.05, component
        # The paper's CLIP totals leave their LoRA out; every other total includes it.
        ours_total = ours["pretrained_M"] if component in ("CLIP-L", "CLIP-G") else ours["total_M"]
        assert abs(ours_total - paper["total"]) < 0.5, component
    # Placeholder rows (5 per CLIP encoder) are added but frozen.
    assert rows.loc["CLIP-L", "added_M"] * 1e6 - rows.loc["CLIP-L", "trainable_M"] * 1e6 == (
        pytest.approx(5 * 768, abs=1e-3)
    )


def test_table_b3_follows_the_fine_tune_settings(schema):
    """Text encoders frozen: no CLIP LoRA; text_only: no conditioner and no placeholder rows;
    rank 128: half of rank 256's LoRA; the paper's values only beside SD3.5-Large."""
    models = {
        "frozen-text": _large_entry(train_text_encoder=False),
        "text-only": _large_entry(prompt_mode="text_only", rank=128),
        "medium": {**_large_entry(), "base": "stabilityai/stable-diffusion-3.5-medium",
                   "load": "stabilityai/stable-diffusion-3.5-medium"},
    }  # fmt: skip
    table = parameter_breakdown(models, schema, configs=PUBLISHED)
    t = table.set_index(["model", "component"])
    assert t.loc[("frozen-text", "CLIP-L"), "trainable_M"] == 0
    assert t.loc[("frozen-text", "CLIP-L"), "added_M"] == pytest.approx(5 * 768 / 1e6)
    assert t.loc[("text-only", "Parameter encoder (categorical + continuous)"), "total_M"] == 0
    assert (
        t.loc[("text-only", "CLIP-G"), "added_M"] == t.loc[("text-only", "CLIP-G"), "trainable_M"]
    )
    lora_128 = t.loc[("text-only", "MM-DiT (transformer + LoRA)"), "added_M"]
    assert lora_128 == pytest.approx(377.290752 / 2)
    assert t.loc[("text-only", "T5"), "paper_total_M"] == 4762.0
    assert t.loc[("medium", "T5"), "total_M"] == t.loc[("text-only", "T5"), "total_M"]
    assert table.loc[table["model"] == "medium", "paper_total_M"].isna().all()


def test_table_b3_of_a_hub_base_offline_names_the_base(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match=r"model_index.json of base model 'someone/sd"):
        read_component_configs("someone/sd")
    with pytest.raises(FileNotFoundError, match=r"base model '.*no-such-folder': no model_index"):
        read_component_configs(str(tmp_path / "no-such-folder"))


def _brute_force(pipe, schema, settings: dict) -> pd.DataFrame:
    """Attach what fine_tune trains (its own code) and count every parameter by hand."""
    from microgen.generate.finetune import FROZEN, _attach_trainables

    for name in FROZEN:
        if getattr(pipe, name, None) is not None:
            getattr(pipe, name).requires_grad_(False)
    columns = ["temperature", "time", "magnification", "cooling", "microconstituent"]
    rows = pd.DataFrame(TOY_COMBOS * 2, columns=columns)
    trainables = _attach_trainables(pipe, schema, rows, FineTuneConfig(**settings), "cpu")
    denoiser = "unet" if settings.get("family") == "sdxl" else "transformer"
    modules = {"denoiser": getattr(pipe, denoiser), "CLIP-L": pipe.text_encoder,
               "CLIP-G": pipe.text_encoder_2, "VAE": pipe.vae,
               "conditioner": trainables.conditioner}  # fmt: skip
    if denoiser == "transformer":
        modules["T5"] = pipe.text_encoder_3
    return pd.DataFrame(
        {
            name: {
                "total": sum(p.numel() for p in m.parameters()) if m is not None else 0,
                "trainable": sum(p.numel() for p in m.parameters() if p.requires_grad)
                if m is not None
                else 0,
            }
            for name, m in modules.items()
        }
    ).T


NAMES = {"denoiser": ["MM-DiT (transformer + LoRA)", "U-Net (unet + LoRA)"],
         "conditioner": ["Parameter encoder (categorical + continuous)"]}  # fmt: skip


@pytest.mark.parametrize(
    "family, settings",
    [
        ("sd3", {"rank": 8, "conditioner_hidden": 16, "prompt_mode": "full_text"}),
        (
            "sd3",
            {"rank": 4, "use_dora": True, "train_text_encoder": False, "prompt_mode": "text_only"},
        ),  # fmt: skip
        ("sdxl", {"family": "sdxl", "rank": 2, "prompt_mode": "parameter_only"}),
    ],
    ids=["sd3-lora", "sd3-dora-text-only", "sdxl"],
)
def test_table_b3_of_a_tiny_base_is_the_brute_force_count(schema, tmp_path, family, settings):
    """The tiny base saved as a folder, counted from its configs on the meta device, equals
    the parameters of the modules fine_tune builds on the loaded base, component by
    component."""
    torch.set_num_threads(1)
    from microgen.generate.tiny import build_tiny_pipeline, build_tiny_sdxl_pipeline

    texts = [schema.prompt(dict(zip(("temperature", "time", "magnification", "cooling",
                                     "microconstituent"), c, strict=True)), "full_text")
             for c in TOY_COMBOS]  # fmt: skip
    build = build_tiny_sdxl_pipeline if family == "sdxl" else build_tiny_pipeline
    build(texts, resolution=32, seed=0).save_pretrained(tmp_path / "base")
    models = {"m": {"base": "tiny", "load": str(tmp_path / "base"), "settings": settings}}
    write_parameter_breakdown(models, REPO / "resources" / "schemas" / "uhcs.yaml",
                              tmp_path / "b3.csv", tmp_path / "b3.md")  # fmt: skip
    ours = pd.read_csv(tmp_path / "b3.csv").set_index("component")
    assert ours["paper_total_M"].isna().all()  # the tiny base is no paper model

    from diffusers import StableDiffusion3Pipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusion3Pipeline
    truth = _brute_force(cls.from_pretrained(tmp_path / "base"), schema, settings)
    for name, counts in truth.iterrows():
        component = next(c for c in NAMES.get(name, [name]) if c in ours.index)
        got = ours.loc[component]
        assert round(got["total_M"] * 1e6) == counts["total"], name
        assert round(got["trainable_M"] * 1e6) == counts["trainable"], name
    overall = ours.loc["Overall"]
    assert round(overall["total_M"] * 1e6) == truth["total"].sum()
    assert round(overall["trainable_M"] * 1e6) == truth["trainable"].sum()
    assert (tmp_path / "b3.md").read_text().count("\n") == len(ours) + 2
