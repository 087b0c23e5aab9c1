"""The checks run when the DAG is built (microgen.config_checks): what passes, what fails and
that each message names the key and the value; the source-read field lists agree with the
classes; and a bad config stops `snakemake -n` before any job."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, copy_workflow
from snakemake.utils import validate

from microgen.config_checks import (
    check_architectures,
    check_generation_resolutions,
    check_native_side,
    check_segment_apply,
    check_volume_shape,
    class_problems,
    config_problems,
    dataclass_fields,
    parameters,
)

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# The paper configs are checked part by part (the configs they name, with their `with`).
PAPERS = sorted((REPO / "config").glob("paper*.yaml"))
CONFIGS = [p for p in sorted((REPO / "config").glob("*.yaml")) if p not in PAPERS] + [
    REPO / "tests" / "config" / "small.yaml"
]


def _load(name: str = "config.yaml") -> dict:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(SCHEMA))  # as the workflow sees it: defaults filled in
    return copy.deepcopy(config)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_pass(path):
    config = yaml.safe_load(path.read_text())
    validate(config, str(SCHEMA))
    assert config_problems(config) == []


@pytest.mark.parametrize("path", PAPERS, ids=lambda p: p.name)
def test_every_part_of_the_paper_configs_passes(path):
    from microgen.paper import part_configs

    for name, part in part_configs(yaml.safe_load(path.read_text())["paper"], REPO).items():
        validate(part, str(SCHEMA))
        assert config_problems(part) == [], name


# --------------------------------------------------------------------------- segment.apply
def test_apply_inside_the_grid_passes():
    config = _load("uhcs24.yaml")
    config["segment"]["apply"] = "resnet152-cce"
    assert check_segment_apply(config) == []


def test_apply_outside_the_grid_names_value_and_grid():
    config = _load()
    config["segment"]["apply"] = "vgg19-dice"
    (problem,) = check_segment_apply(config)
    assert problem.startswith("segment.apply: 'vgg19-dice'")
    assert "segment.encoders × segment.losses (vgg16-jaccard)" in problem


# --------------------------------------------------------------------------- resolutions
@pytest.mark.parametrize(
    "change, key, value, factor",
    [
        # tiny base: VAE f = 4 (three vae_channels) × patch 2
        (lambda g: g["sampling"].update(resolution=100), "generate.sampling.resolution", 100, 8),
        (lambda g: g["models"]["sd3-lora"].update(resolution=132),
         "generate.models.sd3-lora.resolution", 132, 8),
        (lambda g: g["pretrain"].update(resolution=136), "generate.pretrain.resolution", 136, 16),
        # DDPM: four block_out_channels levels halve the side three times
        (lambda g: g["baselines"]["ddpm"].update(resolution=132),
         "generate.baselines.ddpm.resolution", 132, 8),
    ],
)  # fmt: skip
def test_resolution_not_a_multiple_names_key_value_and_factor(change, key, value, factor):
    config = _load()
    change(config["generate"])
    (problem,) = check_generation_resolutions(config)
    assert problem.startswith(f"{key}: {value} is not a multiple of {factor}")


def test_model_resolution_is_checked_against_its_family():
    config = _load("uhcs-sd35-large.yaml")
    assert check_generation_resolutions(config) == []
    config["generate"]["models"]["sdxl-lora"]["resolution"] = 520  # 520 = 8 × 65: SDXL passes
    config["generate"]["models"]["sd35-large"]["resolution"] = 520  # SD3 needs 16
    (problem,) = check_generation_resolutions(config)
    assert problem.startswith("generate.models.sd35-large.resolution: 520 is not a multiple of 16")
    assert "SD3: VAE factor 8 × patch 2" in problem
    config["generate"]["sampling"]["resolution"] = 1020  # neither 16 nor 8 divides it
    problems = check_generation_resolutions(config)
    assert any("generate.sampling.resolution: 1020 is not a multiple of 8" in p for p in problems)
    assert any("generate.sampling.resolution: 1020 is not a multiple of 16" in p for p in problems)


def test_tiny_base_cannot_sample_beyond_its_positional_embedding():
    config = _load()
    config["generate"]["sampling"]["resolution"] = 512  # 64 patches: the embedding's reach
    assert check_generation_resolutions(config) == []
    config["generate"]["sampling"]["resolution"] = 520
    (problem,) = check_generation_resolutions(config)
    assert problem.startswith("generate.sampling.resolution: 520 exceeds the 512 px")


def test_ddpm_levels_and_groups_are_checked():
    config = _load()
    arch = config["generate"]["baselines"]["ddpm"]["architecture"]
    arch["attention_levels"] = [False, True]
    arch["norm_num_groups"] = 12
    problems = check_generation_resolutions(config)
    assert any(
        p.startswith("generate.baselines.ddpm.architecture.attention_levels") for p in problems
    )
    assert any("norm_num_groups: 12 does not divide" in p for p in problems)


@pytest.mark.parametrize("side, ok", [(64, True), (128, True), (96, False), (4, False)])
def test_stylegan_lite_side_is_a_power_of_two(side, ok):
    config = _load()
    config["generate"]["baselines"]["stylegan-lite"]["resolution"] = side
    problems = check_generation_resolutions(config)
    assert (problems == []) == ok
    if not ok:
        assert problems[0].startswith(f"generate.baselines.stylegan-lite.resolution: {side}")


def test_sdxl_on_the_tiny_base_is_checked_against_the_tiny_sdxl_factors():
    config = _load()
    config["generate"]["models"]["x"] = {"family": "sdxl", "prompt_modes": ["full_text"]}
    assert config_problems(config) == []  # FineTuneConfig's 1024 is a multiple of 8
    config["generate"]["models"]["x"]["resolution"] = 36
    (problem,) = check_generation_resolutions(config)
    assert problem.startswith("generate.models.x.resolution: 36 is not a multiple of 8")
    assert "tiny SDXL base: the SDXL pipeline's 8, VAE factor 4 × U-Net 2" in problem
    config["generate"]["models"]["x"]["resolution"] = 1032  # 8 × 129: no pos-embed reach
    config["generate"]["pretrain"]["sdxl"] = {"resolution": 72}  # 8 × 9, not 16 × k
    assert check_generation_resolutions(config) == []
    config["generate"]["pretrain"]["sdxl"]["resolution"] = 68
    (problem,) = check_generation_resolutions(config)
    assert problem.startswith("generate.pretrain.sdxl.resolution: 68 is not a multiple of 8")
    del config["generate"]["pretrain"]["sdxl"]
    config["generate"]["pretrain"]["resolution"] = 136  # shared: both bases check it
    problems = check_generation_resolutions(config)
    assert problems == ["generate.pretrain.resolution: 136 is not a multiple of 16 (the tiny "
                        "sd3 base pre-trains on multiples of 16); use 128 or 144"]  # fmt: skip


# --------------------------------------------------------------------------- volumes
@pytest.mark.parametrize(
    "shape, mults, ok",
    [([32, 32, 32], [1, 2, 4], True), ([24, 32, 32], [1, 2, 4], True),
     ([30, 32, 32], [1, 2, 4], False), ([32, 32, 24], [1, 2, 2, 2], False)],
)  # fmt: skip
def test_volume_shape_divisible_by_the_vae_factor(shape, mults, ok):
    config = _load()
    config["volumes"]["simulate"]["shape"] = shape
    config["volumes"]["vae"]["architecture"]["channel_mults"] = mults
    problems = check_volume_shape(config)
    assert (problems == []) == ok
    if not ok:
        factor = 2 ** len(mults)
        assert problems[0].startswith(
            f"volumes.simulate.shape: {shape} has an axis not divisible by {factor}"
        )


def test_volume_shape_uses_the_vae_default_without_an_architecture():
    config = _load()
    del config["volumes"]["vae"]["architecture"]
    config["volumes"]["simulate"]["shape"] = [36, 32, 32]  # default (1, 2, 2): factor 8
    (problem,) = check_volume_shape(config)
    assert "divisible by 8" in problem and "VAE3DConfig's default" in problem


# --------------------------------------------------------------------------- architecture keys
@pytest.mark.parametrize(
    "change, section, key, allowed",
    [
        (lambda c: c["generate"]["baselines"]["ddpm"]["architecture"].update(block_out_channel=[8]),
         "generate.baselines.ddpm.architecture", "block_out_channel", "block_out_channels"),
        (lambda c: c["generate"]["baselines"]["stylegan-lite"]["architecture"]["generator"].update(
            zdim=8), "generate.baselines.stylegan-lite.architecture.generator", "zdim", "z_dim"),
        (lambda c: c["generate"]["baselines"]["stylegan-lite"]["architecture"]["discriminator"]
         .update(feature_dims=8), "generate.baselines.stylegan-lite.architecture.discriminator",
         "feature_dims", "feature_dim"),
        (lambda c: c["volumes"]["vae"]["architecture"].update(chanel_mults=[1]),
         "volumes.vae.architecture", "chanel_mults", "channel_mults"),
        (lambda c: c["volumes"]["ldm"]["architecture"].update(base_channel=8),
         "volumes.ldm.architecture", "base_channel", "base_channels"),
        (lambda c: c["volumes"]["ldm"]["diffusion"].update(prediction="epsilon"),
         "volumes.ldm.diffusion", "prediction", "prediction_type"),
        (lambda c: c["volumes"]["feature_predictor"].update(architecture={"hidden": [8]}),
         "volumes.feature_predictor", "architecture", "hidden"),
        (lambda c: c["volumes"]["vae"].update(p_uncond=0.1), "volumes.vae", "p_uncond", "epochs"),
    ],
)  # fmt: skip
def test_unknown_architecture_key_names_key_section_and_allowed(change, section, key, allowed):
    config = _load()
    assert check_architectures(config) == []
    change(config)
    (problem,) = check_architectures(config)
    assert problem.startswith(f"{section}: unknown key {key!r}")
    assert allowed in problem.split("takes", 1)[1]


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["generate"]["baselines"]["ddpm"]["architecture"].update(resolution=64),
         "generate.baselines.ddpm.architecture.resolution"),
        (lambda c: c["volumes"]["vae"]["architecture"].update(volume_shape=[8, 8, 8]),
         "volumes.vae.architecture.volume_shape"),
        (lambda c: c["volumes"]["ldm"]["architecture"].update(cond_dim=3),
         "volumes.ldm.architecture.cond_dim"),
    ],
)  # fmt: skip
def test_keys_the_workflow_sets_are_refused(change, key):
    config = _load()
    change(config)
    (problem,) = check_architectures(config)
    assert problem.startswith(f"{key}: set by the workflow")


# --------------------------------------------------------------------------- native side
def test_native_side_needed_to_evaluate_generated_images_of_real_data():
    config = _load()
    assert check_native_side(config) == []
    config["dataset"] = {"name": "u", "source": "folder", "schema": "s.yaml",
                         "folder": {"path": "x", "layout": "uhcs24"}}  # fmt: skip
    (problem,) = check_native_side(config)
    assert problem.startswith("preprocess.native_side: missing")
    config["preprocess"] = {"native_side": 645}
    assert check_native_side(config) == []


# --------------------------------------------------------------------------- classes
def test_a_data_set_with_masks_needs_its_classes_named():
    config = _load()  # synthetic: masks
    (problem,) = class_problems(config, (), "resources/schemas/mine.yaml")
    assert problem.startswith("dataset.schema: resources/schemas/mine.yaml names no classes")
    config["dataset"] = {"name": "u", "source": "uhcsdb", "schema": "s.yaml"}
    assert class_problems(config, (), "s.yaml") == []  # UHCSDB has no masks


@pytest.mark.parametrize("phase, ok", [(0, True), (4, True), (5, False), (9, False)])
def test_descriptor_phase_is_a_class_of_the_schema(phase, ok):
    config = _load()
    config["descriptors"]["phase"] = phase
    names = ("ferrite", "pearlite", "bainite", "martensite", "inclusion")
    problems = class_problems(config, names, "my-steel.yaml")
    assert (problems == []) == ok
    if not ok:
        (problem,) = problems
        assert problem.startswith(f"descriptors.phase: {phase} is no class of my-steel.yaml")
        assert "ids 0…4" in problem


# --------------------------------------------------------------------------- sources agree
def test_source_read_fields_agree_with_the_classes():
    from microgen.generate.ddpm import DDPMConfig
    from microgen.generate.finetune import FineTuneConfig
    from microgen.generate.stylegan_lite.models import (
        StyleGANLiteDiscriminator,
        StyleGANLiteGenerator,
    )
    from microgen.generate.tiny import TinyConfig
    from microgen.volumes.diffusion import DiffusionConfig
    from microgen.volumes.models import UNet3DConfig, VAE3DConfig

    for module, cls in [
        ("microgen.generate.ddpm", DDPMConfig),
        ("microgen.generate.finetune", FineTuneConfig),
        ("microgen.generate.tiny", TinyConfig),
        ("microgen.volumes.models", VAE3DConfig),
        ("microgen.volumes.models", UNet3DConfig),
        ("microgen.volumes.diffusion", DiffusionConfig),
    ]:
        read = dataclass_fields(module, cls.__name__)
        assert read == {f.name: f.default for f in dataclasses.fields(cls)}, cls.__name__
    for cls in (StyleGANLiteGenerator, StyleGANLiteDiscriminator):
        signature = inspect.signature(cls.__init__)
        expected = {n: p.default for n, p in signature.parameters.items() if n != "self"}
        module = "microgen.generate.stylegan_lite.models"
        assert parameters(module, f"{cls.__name__}.__init__") == expected


def test_factors_agree_with_the_models():
    """The factors the checks use are the ones the model code enforces."""
    from microgen.generate.ddpm import DDPMConfig
    from microgen.generate.stylegan_lite.models import _check_resolution
    from microgen.generate.tiny import build_tiny_pipeline, pretrain_tiny_base
    from microgen.volumes.models import VAE3DConfig

    with pytest.raises(ValueError, match="not divisible"):
        DDPMConfig(resolution=132)
    DDPMConfig(resolution=136)
    with pytest.raises(ValueError, match="divisible by 8"):
        VAE3DConfig(volume_shape=(30, 32, 32), channel_mults=(1, 2, 4)).validate()
    with pytest.raises(ValueError, match="power of two"):
        _check_resolution(96)
    with pytest.raises(ValueError, match="multiple of 16"):
        pretrain_tiny_base("no-data", "no-split.csv", "no-out", resolution=136)
    from microgen.config_checks import TINY_PRETRAIN_MULTIPLE
    from microgen.generate.tiny import PRETRAIN_MULTIPLE

    assert TINY_PRETRAIN_MULTIPLE == PRETRAIN_MULTIPLE
    assert "patch_size=2," in inspect.getsource(build_tiny_pipeline)


# --------------------------------------------------------------------------- at DAG build
def test_bad_config_stops_the_dry_run_before_any_job(tmp_path):
    root = tmp_path / "wf"
    root.mkdir()
    copy_workflow(root)
    config = _load()
    del config["compute"]
    config["segment"]["apply"] = "vgg19-dice"
    config["volumes"]["simulate"]["shape"] = [30, 32, 32]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "segment.apply: 'vgg19-dice'" in out, out[-2000:]
    assert "volumes.simulate.shape: [30, 32, 32]" in out, out[-2000:]
    assert "Job stats" not in out and not (root / "results").exists()
