"""What the workflow builds for a config: image-set names, figure compositions and their
references, sample grids, and the rule parameters derived from config.

Pure functions of the config dict (validated, with the schema's defaults filled in) and of
wildcard values as plain strings; they read no files. Standard library only, so that the
Snakefile parses without the scientific stack: ``workflow/rules/common.smk`` imports this
module at parse time and the rules call it from their input and parameter functions.

Paths are relative to the working directory and follow the data contracts of DESIGN.md.
The patterns in capitals (:data:`METADATA`, …) keep the ``{ds}`` / ``{vds}`` wildcard: rules
use them as they are, and the functions here format them with a data-set name.

Image sets are named ``{model}__{mode}`` (a fine-tuned model in one prompt mode) or
``{baseline}__parameter_only``. A set lives under the same name in three folders:
``evaluation/sets/{set}.csv`` (its index), ``masks/sets/{set}/`` and
``descriptors/sets/{set}*.parquet``, so its descriptor source is ``sets/{set}``. The fresh
synthetic ground truth has one name too, ``ground-truth``, ``ground-truth-redraw`` or
``ground-truth-segmented``, for its folder under ``evaluation/`` and its descriptor source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]

#: The prepared data set (every source writes this contract).
METADATA = "results/{ds}/data/metadata.csv"
IMAGES = "results/{ds}/data/images"
MASKS = "results/{ds}/data/masks"
#: The paper's split and the validation conditions every model samples.
SPLIT = "results/{ds}/split.csv"
CONDITIONS = "results/{ds}/conditions/validation.csv"
#: Features of every image the generative metrics and Fig. B9 compare (one FeatureCache).
EVALUATION_FEATURES = "results/{ds}/evaluation/features.npz"
#: The 3D branch: volumes, their split, the VAE every later 3D model encodes with.
VOLUMES = "results/{vds}/volumes/volumes.h5"
VOLUME_SPLIT = "results/{vds}/volumes/split.csv"
VAE = "results/{vds}/models/vae/model.safetensors"
#: A user's condition table sampled by one model in one prompt mode (2D), and a table of
#: feature targets sampled by the 3D model.
GENERATED = "results/{ds}/generated/{model}/{mode}/{table}"
TARGETS = "results/{vds}/generated/{table}"

#: Least number of rows a sample grid needs to be drawn (Fig. B2 lists whatever the config
#: fine-tunes, so one Stable Diffusion model is enough).
GRID_ROWS = {"fig5": 2, "fig6": 2, "figB1": 2, "figB2": 1, "fig15": 1}


def _synthetic(config: Config) -> bool:
    return config.get("dataset", {}).get("source", "") == "synthetic"


# Names: models, sets, segmenters -------------------------------------------------------


def applied_segmenter(config: Config) -> str:
    """The segmenter (``{encoder}-{loss}``) that segments image sets for descriptors
    (``segment.apply``), or ``"none"`` without a segment stage."""
    return config.get("segment", {}).get("apply", "none")


def segmenter_models(config: Config) -> list[str]:
    """Every ``{encoder}-{loss}`` of the segmenter grid, encoders outermost; none without
    a segment stage or with a pretrained one."""
    seg = config.get("segment")
    if not seg or "pretrained" in seg:
        return []
    return [f"{e}-{loss}" for e in seg["encoders"] for loss in seg["losses"]]


def pretrained_segmenter(config: Config) -> str | None:
    """The folder of a segmenter trained by another config (``segment.pretrained``), which
    this one applies instead of training its own; None when it trains its own."""
    return (config.get("segment") or {}).get("pretrained")


def encoder_comparison(config: Config) -> dict[str, str]:
    """Fig. C1's segmenters: encoder -> ``{encoder}-{loss}`` with the applied segmenter's
    loss, for every encoder of ``segment.encoders``; empty with fewer than two encoders
    (nothing to compare) or without a grid trained here."""
    seg = config.get("segment")
    if not seg or "pretrained" in seg or len(seg["encoders"]) < 2:
        return {}
    loss = seg["apply"].split("-", 1)[1]
    return {e: f"{e}-{loss}" for e in seg["encoders"]}


def cross_validation(config: Config) -> dict | None:
    """The ``segment.cross_validation`` block, or None."""
    return (config.get("segment") or {}).get("cross_validation")


def split_group(config: Config) -> str | None:
    """Metadata column the data set is split by (``split.by``), or None for the filter split
    by condition."""
    by = config.get("split", {}).get("by", "condition")
    return None if by == "condition" else by


def model_base(config: Config, model: str) -> str:
    """Base of a fine-tuned model: its own ``base`` or ``generate.base``."""
    return config["generate"]["models"][model].get("base", config["generate"]["base"])


def model_names(config: Config, ddp: bool | None = None) -> str:
    """Regex of the configured fine-tuned model names (a wildcard constraint); one that
    matches no set name when none is configured. With ``ddp``, only the models whose
    fine-tune runs several processes (True: rule ``fine_tune_ddp``) or one (False: rule
    ``fine_tune``), and a regex that matches nothing when there are none, so that the two
    rules never claim the same model."""
    names = list(config.get("generate", {}).get("models", {}))
    if ddp is not None:
        names = [n for n in names if (finetune_processes(config, n) > 1) == ddp]
        return "|".join(re.escape(n) for n in names) or NO_MATCH
    return "|".join(re.escape(n) for n in names or ["no-models"])


#: A regex that matches no string (a wildcard constraint admitting nothing).
NO_MATCH = "(?!)"


def finetune_processes(config: Config, model: str) -> int:
    """Processes of a model's fine-tune, one per GPU: its ``gpus``, else ``compute.train``'s
    ``gpus``; at least one (``gpus: 0``, a CPU-only cluster, trains in one process). Several
    train with DDP, ``batch_size`` per process (rule ``fine_tune_ddp``)."""
    spec = config["generate"]["models"][model]
    default = config.get("compute", {}).get("train", {}).get("gpus", 1)
    return max(1, int(spec.get("gpus", default)))


def cv_wildcards(config: Config) -> dict[str, str]:
    """Regexes of the cross-validation's ``{labels}`` and ``{variant}`` wildcards: exactly the
    configured label versions and variants, so that a path such as
    ``fig7-cv-labels-particles-vgg16-…`` parses one way only."""
    cv = cross_validation(config) or {}
    return {
        key: "|".join(re.escape(v) for v in cv.get(name, [])) or "no-cross-validation"
        for key, name in (("labels", "label_versions"), ("variant", "variants"))
    }


def sd_variants(config: Config) -> dict[str, dict]:
    """Every fine-tuned model's entry with its resolved base, for Table B4's row names."""
    return {
        name: {**spec, "base": model_base(config, name)}
        for name, spec in config.get("generate", {}).get("models", {}).items()
    }


def generated_sample_sets(config: Config) -> list[tuple[str, str]]:
    """(model, prompt mode) pairs that config asks to fine-tune and sample, in config order."""
    gen = config.get("generate")
    if not gen:
        return []
    return [(m, mode) for m, spec in gen["models"].items() for mode in spec["prompt_modes"]]


def baselines(config: Config) -> list[str]:
    """Names of the configured baselines (``generate.baselines``), in config order."""
    return list(config.get("generate", {}).get("baselines", {}))


def all_sets(config: Config) -> list[str]:
    """Every generated image set: the fine-tuned models' ``{model}__{mode}`` sets, then the
    baselines' ``{baseline}__parameter_only``."""
    sets = [f"{m}__{mode}" for m, mode in generated_sample_sets(config)]
    return sets + [f"{b}__parameter_only" for b in baselines(config)]


def primary_set(config: Config) -> str:
    """The generated set shown in the per-condition figures: the first fine-tuned model in
    full-text mode (the paper's choice), else the first configured set.

    Raises
    ------
    IndexError
        When the config generates no set.
    """
    full = [f"{m}__{mode}" for m, mode in generated_sample_sets(config) if mode == "full_text"]
    return (full or all_sets(config))[0]


def grid_sets(config: Config, grid: str) -> list[str]:
    """Generated sets of a sample grid, top to bottom.

    Fig. 5: the first parameter-only set of a fine-tuned model and the baselines; Fig. 6:
    every prompt mode of the primary model; Fig. B1: its full-text and text-only sets;
    Fig. B2: the full-text set of every fine-tuned (Stable Diffusion) model; Fig. 15 (the
    schema transfer, a data set split by group only): the primary set.

    Parameters
    ----------
    config
        The workflow config.
    grid
        ``"fig5"``, ``"fig6"``, ``"figB1"``, ``"figB2"`` or ``"fig15"``.

    Raises
    ------
    ValueError
        For another grid name.
    """
    fine = generated_sample_sets(config)
    primary = primary_set(config).split("__")[0] if all_sets(config) else None
    if grid == "fig5":
        sd = [f"{m}__{mode}" for m, mode in fine if mode == "parameter_only"][:1]
        return sd + [f"{b}__parameter_only" for b in baselines(config)]
    if grid == "fig6":
        return [f"{m}__{mode}" for m, mode in fine if m == primary]
    if grid == "figB1":
        return [
            f"{primary}__{mode}" for mode in ("full_text", "text_only") if (primary, mode) in fine
        ]
    if grid == "figB2":
        return [f"{m}__{mode}" for m, mode in fine if mode == "full_text"]
    if grid == "fig15":
        return [primary_set(config)] if split_group(config) and all_sets(config) else []
    raise ValueError(f"unknown sample grid {grid!r}")


def sample_grids(config: Config) -> list[str]:
    """Sample grids the config has the sets for (at least :data:`GRID_ROWS` rows)."""
    return [g for g, n in GRID_ROWS.items() if len(grid_sets(config, g)) >= n]


def grid_columns(config: Config, grid: str) -> dict[str, Any]:
    """How a sample grid picks its conditions beyond the defaults: for Fig. 15 the
    configured unseen labels (``figures.transfer_conditions``), how many to pick otherwise
    (``figures.transfer_columns``) and the group column to vary first (``split.by``); none
    for the other grids."""
    if grid != "fig15":
        return {}
    figures = config.get("figures", {})
    return {
        "labels": figures.get("transfer_conditions"),
        "n_columns": figures.get("transfer_columns", 6),
        "group": split_group(config),
    }


def transfer_outputs(config: Config, ds: str) -> list[str]:
    """Tables 7a / 7b and Fig. D1 of the schema-transfer experiment: for a data set split
    by group (``split.by``) with the segment, generate and evaluate stages; none else."""
    if not (split_group(config) and {"generate", "evaluate", "segment"} <= set(config)):
        return []
    if not all_sets(config):
        return []
    return [
        f"results/{ds}/tables/table7a-ah.csv",
        f"results/{ds}/tables/table7b-ah.csv",
        f"results/{ds}/figures/figD1-ah.png",
    ]


def figure_variables(
    config: Config, key: str, known: set[str] | frozenset[str]
) -> tuple[list[str], list[str]]:
    """Split the variables of ``config["figures"][key]`` into those of the data set's
    condition schema (``known``) and the rest, each in config order.

    Returns
    -------
    kept, skipped
    """
    wanted = config["figures"][key]
    return [v for v in wanted if v in known], [v for v in wanted if v not in known]


def sample_pixel_scale(config: Config) -> float:
    """Pixel-size factor of generated images: the data's image side over the sampled side
    (1 when the model trained at the data's native size). The side is the shorter one of
    the synthetic images, else ``preprocess.native_side``."""
    native = config["dataset"].get("synthetic", {}).get("shape")
    side = min(native) if native else config["preprocess"]["native_side"]
    return side / config["generate"]["sampling"]["resolution"]


def condition_tables(config: Config) -> dict[str, str]:
    """The user's 2D condition tables, name → CSV path (``generate.condition_tables``)."""
    return dict(config.get("generate", {}).get("condition_tables") or {})


def target_tables(config: Config) -> dict[str, str]:
    """The user's 3D target tables, name → CSV path (``volumes.target_tables``)."""
    return dict(config.get("volumes", {}).get("target_tables") or {})


def table_names(tables: Mapping[str, str]) -> str:
    """Regex of a ``{table}`` wildcard: exactly the configured names, or one that matches
    no path when none is configured."""
    return "|".join(re.escape(n) for n in tables) or "no-tables"


def condition_table_outputs(config: Config, ds: str) -> list[str]:
    """What the default run makes of each condition table: per fine-tuned model and prompt
    mode, and per baseline, its descriptor table (its samples alone without a segmenter);
    none when no table is configured."""
    sets = generated_sample_sets(config) + [(b, "parameter_only") for b in baselines(config)]
    file = "descriptors.csv" if config.get("segment") else "samples.csv"
    return [
        f"{GENERATED.format(ds=ds, model=m, mode=mode, table=t)}/{file}"
        for m, mode in sets
        for t in condition_tables(config)
    ]


def target_table_outputs(config: Config, vds: str) -> list[str]:
    """The features table of each 3D target table, when a 3D LDM is configured."""
    if "ldm" not in config.get("volumes", {}):
        return []
    return [f"{TARGETS.format(vds=vds, table=t)}/features.csv" for t in target_tables(config)]


# Paths of image sets and their tables ---------------------------------------------------


def masks_of(ds: str, source: str) -> str:
    """Mask folder of an image set named by its descriptor source: the data set's own masks
    (``"truth"``), a ground-truth draw's, or a segmenter's (``real-{model}``,
    ``sets/{set}``)."""
    if source == "truth":
        return MASKS.format(ds=ds)
    if source.startswith("ground-truth"):
        return f"results/{ds}/evaluation/{source}/masks"
    return f"results/{ds}/masks/{source}"


def metadata_of(ds: str, source: str) -> str:
    """Metadata (id, pixel_size_um) of an image set named by its descriptor source."""
    if source.startswith("ground-truth"):
        return f"results/{ds}/evaluation/{source}/metadata.csv"
    if source.startswith("sets/"):
        return f"results/{ds}/evaluation/{source}.csv"
    return METADATA.format(ds=ds)


def set_tables(config: Config, ds: str, kind: str) -> list[str]:
    """A file per generated set (:func:`all_sets`): its index table (``kind="index"``), its
    descriptor rows (``"rows"``) or curves (``"curves"``)."""
    if kind == "index":
        return [f"results/{ds}/evaluation/sets/{s}.csv" for s in all_sets(config)]
    suffix = "" if kind == "rows" else "-curves"
    return [f"results/{ds}/descriptors/sets/{s}{suffix}.parquet" for s in all_sets(config)]


def grouped_sets(config: Config, ds: str, kind: str) -> list[str]:
    """Index tables (``"index"``) or mask folders (``"masks"``) of the generated sets when
    the evaluation stage is configured (their masks come from it), else none: the per-group
    table is then the real side alone."""
    if not {"generate", "evaluate", "segment"} <= set(config):
        return []
    if kind == "masks":
        return [f"results/{ds}/masks/sets/{s}" for s in all_sets(config)]
    return set_tables(config, ds, kind)


def truth_tables(config: Config, ds: str) -> list[str]:
    """Index, rows and curves of the fresh ground truth (synthetic data set only)."""
    return redraw_tables(config, ds, "ground-truth")


def redraw_tables(config: Config, ds: str, source: str = "ground-truth-redraw") -> list[str]:
    """Index, rows and curves of the independent ground-truth redraw (the noise floor), or,
    with source ``"ground-truth-segmented"``, of the same redraw measured through the
    segmenter; none unless the data set is synthetic."""
    if not _synthetic(config):
        return []
    return [
        f"results/{ds}/evaluation/{source}/metadata.csv",
        f"results/{ds}/descriptors/{source}.parquet",
        f"results/{ds}/descriptors/{source}-curves.parquet",
    ]


def grid_set_tables(config: Config, ds: str, grid: str) -> list[str]:
    """Index tables of a sample grid's sets (:func:`grid_sets`), top to bottom."""
    return [f"results/{ds}/evaluation/sets/{s}.csv" for s in grid_sets(config, grid)]


# References of the comparison figures ---------------------------------------------------


def real_reference(config: Config, ds: str) -> dict[str, str]:
    """The real images as a figure's reference: metadata, split, descriptor rows and
    particles through the applied segmenter, images (``ref_*`` inputs)."""
    segmenter = applied_segmenter(config)
    return {
        "ref_metadata": METADATA.format(ds=ds),
        "ref_split": SPLIT.format(ds=ds),
        "ref_rows": f"results/{ds}/descriptors/real-{segmenter}.parquet",
        "ref_particles": f"results/{ds}/descriptors/real-{segmenter}-particles.parquet",
        "ref_images": IMAGES.format(ds=ds),
    }


def truth_reference(ds: str) -> dict[str, str]:
    """Fresh synthetic ground truth as a figure's reference (``ref_*`` inputs)."""
    return {
        "ref_metadata": f"results/{ds}/evaluation/ground-truth/metadata.csv",
        "ref_rows": f"results/{ds}/descriptors/ground-truth.parquet",
        "ref_particles": f"results/{ds}/descriptors/ground-truth-particles.parquet",
        "ref_images": f"results/{ds}/evaluation/ground-truth/images",
    }


def _truth_compares(config: Config, split: str) -> bool:
    return split == "unseen" and _synthetic(config)


def comparison_reference(config: Config, ds: str, split: str) -> dict[str, str]:
    """Reference of Figs 10-13 at ``split`` (``"seen"`` or ``"unseen"``): the real images
    at seen conditions; fresh ground truth at unseen ones where the synthetic generator can
    draw it, else the real images."""
    if _truth_compares(config, split):
        return truth_reference(ds)
    return real_reference(config, ds)


def comparison_reference_name(config: Config, split: str) -> str:
    """What :func:`comparison_reference` compares with, in words."""
    return "ground truth" if _truth_compares(config, split) else "real"


def figure_references(config: Config, ds: str) -> dict[str, str]:
    """References of the trend and t-SNE figures: the real images and, for the synthetic
    data set, fresh ground truth, as ``real_*`` / ``truth_*`` inputs."""
    refs = {k.replace("ref_", "real_"): v for k, v in real_reference(config, ds).items()}
    if _synthetic(config):
        refs.update({k.replace("ref_", "truth_"): v for k, v in truth_reference(ds).items()})
    return refs


def grid_reference(config: Config, ds: str) -> dict[str, str]:
    """Reference images of the sample grids: the real validation images (``real_*``) and,
    for the synthetic data set, the fresh ground truth at unseen conditions (``truth_*``)."""
    refs = {
        "real_metadata": METADATA.format(ds=ds),
        "real_split": SPLIT.format(ds=ds),
        "real_images": IMAGES.format(ds=ds),
    }
    if _synthetic(config):
        refs["truth_metadata"] = f"results/{ds}/evaluation/ground-truth/metadata.csv"
        refs["truth_images"] = f"results/{ds}/evaluation/ground-truth/images"
    return refs


# Rule parameters and inputs that derive from config -------------------------------------


def reader_options(config: Config) -> dict[str, Any]:
    """Options of the folder reader of ``dataset.source`` (microgen.data.readers): its config
    block without ``path`` (the rule's input) and ``manifest`` (the downloads')."""
    block = config["dataset"][config["dataset"]["source"]]
    return {k: v for k, v in block.items() if k not in ("path", "manifest")}


def image_options(config: Config) -> dict[str, str]:
    """How the source readers decode images that are not 8-bit gray (default: refuse)."""
    dataset = config["dataset"]
    return {
        "bit_depth_scaling": dataset.get("bit_depth_scaling", "none"),
        "color_to_gray": dataset.get("color_to_gray", "refuse"),
    }


_SEGMENTER_KEYS = (
    "eca",
    "encoder_weights",
    "epochs",
    "crop",
    "batch_size",
    "encoder_lr",
    "decoder_lr",
    "weight_decay",
    "steps_per_epoch",
    "seed",
)


def segmenter_params(config: Config, encoder: str, loss: str) -> dict:
    """Training settings of the segmenter ``{encoder}-{loss}``."""
    seg = config["segment"]
    return {"encoder": encoder, "loss": loss, **{k: seg[k] for k in _SEGMENTER_KEYS}}


def cv_fold_params(config: Config) -> dict:
    """Training settings of a cross-validation fold: the cross-validation's own epochs,
    stopping and crop over the segmenter's (the variant wildcard adds the encoder, loss,
    ECA switch and encoder weights, parsed by microgen.segment.crossval)."""
    seg, cv = config["segment"], cross_validation(config)
    keys = ("batch_size", "encoder_lr", "decoder_lr", "weight_decay", "seed")
    return {
        "epochs": cv.get("epochs", seg["epochs"]),
        "patience": cv.get("patience"),
        "min_epochs": cv.get("min_epochs", 0),
        "crop": cv.get("crop", seg["crop"]),
        "steps_per_epoch": cv.get("steps_per_epoch", seg["steps_per_epoch"]),
        **{k: seg[k] for k in keys},
    }


def cv_fold_files(
    config: Config,
    ds: str,
    folds: list[int],
    label_versions: list[str] | None = None,
    file: str = "scores.csv",
) -> dict[str, list[str]]:
    """A file of every fold (its scores, or ``file``) per ``{labels}|{variant}``, for all or
    the given label versions of the cross-validation."""
    cv = cross_validation(config)
    return {
        f"{labels}|{variant}": [
            f"results/{ds}/segmenter-cv/{labels}/{variant}/fold{k}/{file}" for k in folds
        ]
        for labels in (label_versions or cv["label_versions"])
        for variant in cv["variants"]
    }


#: Folder under ``results/{ds}/models/`` of the tiny base of each model family.
TINY_BASES = {"sd3": "tiny-base", "sdxl": "tiny-sdxl-base"}


def model_family(config: Config, model: str) -> str:
    """``sd3`` or ``sdxl``: a fine-tuned model's ``family`` (default ``sd3``)."""
    return config["generate"]["models"][model].get("family", "sd3")


def base_model_files(config: Config, ds: str, model: str) -> str | list[str]:
    """Input files of a fine-tuned model's base: the pre-trained tiny base of its family
    (:data:`TINY_BASES`), or none for a hub id or a local SD3.5 / SDXL folder (checked
    when the job starts)."""
    if model_base(config, model) == "tiny":
        return f"{base_model_id(config, ds, model)}/model_index.json"
    return []


def base_model_id(config: Config, ds: str, model: str) -> str:
    """What the trainer and sampler load as a model's base: the folder of its family's tiny
    base, else the configured hub id or folder."""
    base = model_base(config, model)
    if base != "tiny":
        return base
    return f"results/{ds}/models/{TINY_BASES[model_family(config, model)]}"


def pretrain_params(config: Config, family: str) -> dict:
    """``pretrain_tiny_base`` arguments of the tiny base of ``family``: ``generate.pretrain``
    for both, with its ``sdxl`` sub-block's keys replacing the shared ones for SDXL
    (``adaln_zero`` initialises the SD3 transformer and is not passed to SDXL)."""
    shared = dict(config["generate"]["pretrain"])
    own = shared.pop("sdxl", None) or {}
    if family == "sdxl":
        shared.pop("adaln_zero", None)
        shared.update(own)
    return {**shared, "family": family}


#: Keys of a ``generate.models`` entry that are not fine-tuning settings (``FineTuneConfig``
#: fields): ``gpus`` says how many processes train, not what they compute.
NOT_FINETUNE_SETTINGS = ("prompt_modes", "base", "sampling", "label", "gpus")


def finetune_params(config: Config, model: str, mode: str) -> dict:
    """Fine-tuning settings of a model in a prompt mode: its entry without the keys that
    are not training settings (:data:`NOT_FINETUNE_SETTINGS`)."""
    spec = dict(config["generate"]["models"][model])
    for key in NOT_FINETUNE_SETTINGS:
        spec.pop(key, None)
    return {**spec, "prompt_mode": mode}


def sampling_params(config: Config, model: str) -> dict:
    """Shared sampling settings with the model's own steps and guidance (Table B1)."""
    own = config["generate"]["models"][model].get("sampling", {})
    return {**config["generate"]["sampling"], **own}


def finetune_table_params(config: Config) -> dict[str, dict]:
    """Table B1's inputs: every fine-tuned model's entry with its resolved base
    (:func:`sd_variants`), its sampling settings (:func:`sampling_params`) and, when it
    trains on several GPUs, their number ``gpus`` (:func:`finetune_processes`), in config
    order."""
    table = {}
    for name, spec in sd_variants(config).items():
        gpus = finetune_processes(config, name)
        table[name] = {**spec, "sampling": sampling_params(config, name)}
        table[name].update({"gpus": gpus} if gpus > 1 else {})
    return table


def parameter_table_mode(config: Config, model: str) -> str:
    """The prompt mode whose fine-tune Table B3 counts: the model's first mode that trains
    the conditioner (``full_text`` and ``parameter_only`` count alike), else ``text_only``."""
    modes = config["generate"]["models"][model]["prompt_modes"]
    return next((m for m in modes if m != "text_only"), modes[0])


def parameter_table_params(config: Config, ds: str) -> dict[str, dict]:
    """Table B3's inputs per fine-tuned model: its configured ``base``, the base it
    ``load``s (:func:`base_model_id`) and its fine-tuning ``settings``
    (:func:`finetune_params`) in the mode :func:`parameter_table_mode` picks."""
    return {
        name: {
            "base": model_base(config, name),
            "load": base_model_id(config, ds, name),
            "settings": finetune_params(config, name, parameter_table_mode(config, name)),
        }
        for name in config.get("generate", {}).get("models", {})
    }


def parameter_table_files(config: Config, ds: str) -> list[str]:
    """Input files of Table B3: the bases built here (the tiny base), once each."""
    files: list[str] = []
    for name in config.get("generate", {}).get("models", {}):
        found = base_model_files(config, ds, name)
        for f in [found] if isinstance(found, str) else found:
            if f not in files:
                files.append(f)
    return files


def table_sampling_params(config: Config, model: str) -> dict:
    """A fine-tuned model's sampling settings (:func:`sampling_params`) and the pixel-size
    factor of its images (:func:`sample_pixel_scale`), for a condition table."""
    return {**sampling_params(config, model), "scale": sample_pixel_scale(config)}


def baseline_table_params(config: Config, baseline: str) -> dict:
    """A baseline's sampling settings and the pixel-size factor, for a condition table."""
    return {**baseline_sampling_params(config, baseline), "scale": sample_pixel_scale(config)}


def target_sampling_params(config: Config) -> dict:
    """How the 3D model samples a target table: the first sampler of
    ``volumes.evaluate.samplers`` (the one the target-vs-measured scatter shows), its
    guidance, batch size and seed, ``n_per_target`` volumes per row unless the table says."""
    ev = config["volumes"]["evaluate"]
    first = ev["samplers"][0]
    return {
        "sampler": first["sampler"],
        "steps": first["steps"],
        "n_per_target": ev.get("n_per_target", 1),
        "guidance": ev.get("guidance", 1.0),
        "batch_size": ev.get("batch_size", 16),
        "seed": ev.get("seed", 0),
    }


def baseline_train_params(config: Config, baseline: str) -> dict:
    """A baseline's entry without its sampling settings."""
    spec = dict(config["generate"]["baselines"][baseline])
    spec.pop("sampling", None)
    return spec


def baseline_sampling_params(config: Config, baseline: str) -> dict:
    """A baseline's sampling settings over the shared count, seed and batch size."""
    shared = config["generate"]["sampling"]
    spec = dict(config["generate"]["baselines"][baseline].get("sampling", {}))
    return {
        "n_per_condition": shared["n_per_condition"],
        "seed": shared["seed"],
        "batch_size": shared["batch_size"],
        **spec,
    }


def ground_truth_params(config: Config, draw: str) -> dict:
    """Size and stream of a ground-truth draw (``"ground-truth"`` or
    ``"ground-truth-redraw"``). The redraw holds as many images per condition as a
    generated set (like for like against the same reference) and is stream 1 of the same
    seed, so its images are independent of the reference's."""
    ev, sampling = config["evaluate"], config["generate"]["sampling"]
    redraw = draw == "ground-truth-redraw"
    return {
        "n_per_condition": sampling["n_per_condition"] if redraw else ev["truth_per_condition"],
        "shape": [sampling["resolution"]] * 2,
        "seed": ev["seed"],
        "draw": int(redraw),
    }
