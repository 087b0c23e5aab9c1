# Shared helpers: config validation, dataset paths, code dependencies, rule parameters
# (the targets of the default run are in targets.smk).
import os
import re
from pathlib import Path

from microgen.codegraph import code_files
from microgen.config_checks import config_problems
from microgen.data.schema import load_schema
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.14")


validate(config, "../schemas/config.schema.yaml")
# What the schema cannot express (model factors, architecture keys, the segmenter grid),
# checked before any job: see microgen.config_checks.
if problems := config_problems(config):
    raise WorkflowError("config, before any job:\n" + "\n".join(problems))

DS = config.get("dataset", {}).get("name", "")
SOURCE = config.get("dataset", {}).get("source", "")
VDS = config.get("volumes", {}).get("name", "")
LIBRARY = Path(workflow.basedir) / "workflow" / "microgen"
SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"


def compute(family):
    """Slurm resources of a rule family from config["compute"] (defaults in the schema).

    GPU families ask for ``gpu`` and ``cpus_per_gpu``; CPU families for ``cpus_per_task``.
    Memory and time grow with each retry (``attempt``). Local runs ignore these, and code
    picks its device itself.
    """
    spec = config["compute"][family]
    resources = {
        "mem_mb": lambda wildcards, attempt: spec["mem_mb"] * attempt,
        "runtime": lambda wildcards, attempt: spec["runtime_min"] * attempt,
    }
    if spec["gpus"] > 0:
        resources.update(gpu=spec["gpus"], cpus_per_gpu=spec["cpus"])
    else:
        resources["cpus_per_task"] = spec["cpus"]
    return resources


def code(script):
    """Library files the rule's script can execute, as inputs: editing one reruns exactly the
    rules that use it. Derived from the script's imports (microgen.codegraph), followed
    through the package; paths relative to the working directory, so that a copied or moved
    checkout with its results plans nothing."""
    files = code_files(SCRIPTS / f"{script}.py", LIBRARY.parent)
    return [os.path.relpath(f) for f in files]


def schema_file(wildcards=None):
    return config["dataset"]["schema"]


# The condition schema is checked at DAG build, before any job: a misspelt key or a template
# naming an unknown field stops the run naming the file and the key.
if DS:
    try:
        load_schema(schema_file(), config_key="dataset.schema")
    except (ValueError, FileNotFoundError) as err:
        raise WorkflowError(str(err)) from None


def image_options(wildcards=None):
    """How the source readers decode images that are not 8-bit gray (default: refuse)."""
    dataset = config["dataset"]
    return {
        "bit_depth_scaling": dataset.get("bit_depth_scaling", "none"),
        "color_to_gray": dataset.get("color_to_gray", "refuse"),
    }


def synthetic_params(wildcards):
    return dict(config["dataset"]["synthetic"])


def split_params(wildcards):
    return dict(config["split"])


def split_group():
    """Metadata column the data set is split by (split.by), or None for the filter split."""
    by = config.get("split", {}).get("by", "condition")
    return None if by == "condition" else by


def uhcsdb_sqlite(wildcards):
    """The configured local database, else the downloaded one."""
    return (
        config["dataset"]["uhcsdb"]["sqlite"]
        or f"results/{DS}/raw/microstructures.sqlite"
    )


def uhcsdb_archive(wildcards):
    """Where the micrographs are: the configured folder or archive, else the download."""
    return config["dataset"]["uhcsdb"]["images"] or f"results/{DS}/raw/micrographs.zip"


def reference_dir():
    """Real UHCS-24 folder for the real-vs-synthetic figure; None when absent here."""
    path = config.get("reference", {}).get("uhcs24")
    return path if path and Path(path, "metadata.csv").is_file() else None


def descriptor_params(wildcards):
    return dict(config["descriptors"])


def masks_of(wildcards):
    """Mask folder of an image set: the data set's own masks ("truth") or a segmenter's."""
    if wildcards.source == "truth":
        return f"results/{wildcards.ds}/data/masks"
    if wildcards.source.startswith("groundtruth"):
        return f"results/{wildcards.ds}/evaluation/{truth_draw(wildcards.source)}/masks"
    return f"results/{wildcards.ds}/masks/{wildcards.source}"


def segmenter_params(wildcards):
    seg = config["segment"]
    keys = (
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
    return {
        "encoder": wildcards.encoder,
        "loss": wildcards.loss,
        **{k: seg[k] for k in keys},
    }


def segmenter_models():
    seg = config.get("segment")
    if not seg:
        return []
    return [f"{e}-{l}" for e in seg["encoders"] for l in seg["losses"]]


def segmenter_scores(wildcards):
    return [
        f"results/{wildcards.ds}/segmenter/{m}/scores.csv" for m in segmenter_models()
    ]


def cross_validation():
    """The segment.cross_validation block, or None."""
    return (config.get("segment") or {}).get("cross_validation")


def cv_folds():
    """Fold numbers of the UHCS-24 cross-validation (keys of cv-folds.json)."""
    import json

    path = Path(cross_validation()["folder"], "cv-folds.json")
    if not path.is_file():
        raise WorkflowError(
            f"segment.cross_validation.folder: {path} does not exist (the UHCS-24 folds)"
        )
    return sorted(int(k) for k in json.loads(path.read_text()))


def cv_fold_params(wildcards):
    """Training settings of a cross-validation fold; the variant wildcard adds the encoder,
    loss, ECA switch and encoder weights (parsed by microgen.segment.crossval)."""
    seg, cv = config["segment"], cross_validation()
    keys = ("batch_size", "encoder_lr", "decoder_lr", "weight_decay", "seed")
    return {
        "epochs": cv.get("epochs", seg["epochs"]),
        "patience": cv.get("patience"),
        "min_epochs": cv.get("min_epochs", 0),
        "crop": cv.get("crop", seg["crop"]),
        "steps_per_epoch": cv.get("steps_per_epoch", seg["steps_per_epoch"]),
        **{k: seg[k] for k in keys},
    }


def cv_fold_scores(wildcards, label_versions=None, file="scores.csv"):
    """A file of every fold (its scores, or ``file``) per ``{labels}|{variant}``, for all or
    the given label versions."""
    cv = cross_validation()
    return {
        f"{labels}|{variant}": [
            f"results/{wildcards.ds}/segmenter-cv/{labels}/{variant}/fold{k}/{file}"
            for k in cv_folds()
        ]
        for labels in (label_versions or cv["label_versions"])
        for variant in cv["variants"]
    }


def model_base(model):
    """Base of a fine-tuned model: its own ``base`` or ``generate.base``."""
    return config["generate"]["models"][model].get("base", config["generate"]["base"])


def base_model(wildcards):
    """Input files of the base model: the pre-trained tiny base, or none for a hub id or a
    local SD3.5 / SDXL folder (checked when the job starts)."""
    if model_base(wildcards.model) == "tiny":
        return f"results/{wildcards.ds}/models/tiny-base/model_index.json"
    return []


def base_model_id(wildcards):
    base = model_base(wildcards.model)
    return f"results/{wildcards.ds}/models/tiny-base" if base == "tiny" else base


def finetune_params(wildcards):
    spec = dict(config["generate"]["models"][wildcards.model])
    for key in ("prompt_modes", "base", "sampling", "label"):
        spec.pop(key, None)
    return {**spec, "prompt_mode": wildcards.mode}


def sampling_params(wildcards):
    """Shared sampling settings with the model's own steps and guidance (Table B1)."""
    own = config["generate"]["models"][wildcards.model].get("sampling", {})
    return {**config["generate"]["sampling"], **own}


def sd_variants():
    """Every fine-tuned model's entry with its resolved base, for Table B4's row names."""
    return {
        name: {**spec, "base": model_base(name)}
        for name, spec in config.get("generate", {}).get("models", {}).items()
    }


def model_names():
    """Regex of the configured fine-tuned model names (a wildcard constraint)."""
    names = list(config.get("generate", {}).get("models", {})) or ["no-models"]
    return "|".join(re.escape(n) for n in names)


def generated_sample_sets():
    """(model, prompt mode) pairs that config asks to train and sample."""
    gen = config.get("generate")
    if not gen:
        return []
    return [
        (m, mode) for m, spec in gen["models"].items() for mode in spec["prompt_modes"]
    ]


def baseline_train_params(wildcards):
    spec = dict(config["generate"]["baselines"][wildcards.baseline])
    spec.pop("sampling", None)
    return spec


def baseline_sampling_params(wildcards):
    shared = config["generate"]["sampling"]
    spec = dict(config["generate"]["baselines"][wildcards.baseline].get("sampling", {}))
    return {
        "n_per_condition": shared["n_per_condition"],
        "seed": shared["seed"],
        "batch_size": shared["batch_size"],
        **spec,
    }


SEGMENTER = config.get("segment", {}).get("apply", "none")


def sample_pixel_scale(wildcards):
    """Pixel-size factor of generated images: the data's image side over the sampled side
    (1 when the model trained at the data's native size)."""
    native = config["dataset"].get("synthetic", {}).get("shape")
    side = min(native) if native else config["preprocess"]["native_side"]
    return side / config["generate"]["sampling"]["resolution"]


def all_sets():
    sets = [f"{m}__{mode}" for m, mode in generated_sample_sets()]
    sets += [
        f"{b}__parameter_only" for b in config.get("generate", {}).get("baselines", {})
    ]
    return sets


def set_tables(wildcards, kind):
    prefix = f"results/{wildcards.ds}"
    if kind == "index":
        return [f"{prefix}/evaluation/sets/{s}.csv" for s in all_sets()]
    suffix = "" if kind == "rows" else "-curves"
    return [f"{prefix}/descriptors/gen__{s}{suffix}.parquet" for s in all_sets()]


def grouped_sets(wildcards, kind):
    """Index tables ("index") or mask folders ("masks") of the generated sets when the
    evaluation stage is configured (their masks come from it), else none: the per-group
    table is then the real side alone."""
    if not {"generate", "evaluate", "segment"} <= set(config):
        return []
    if kind == "masks":
        return [f"results/{wildcards.ds}/masks/gen__{s}" for s in all_sets()]
    return set_tables(wildcards, kind)


def truth_tables(wildcards):
    if SOURCE != "synthetic":
        return []
    prefix = f"results/{wildcards.ds}"
    return [  # order: index, rows, curves
        f"{prefix}/evaluation/ground-truth/metadata.csv",
        f"{prefix}/descriptors/groundtruth.parquet",
        f"{prefix}/descriptors/groundtruth-curves.parquet",
    ]


def redraw_tables(wildcards, source="groundtruth-redraw"):
    """Index, rows and curves of the independent ground-truth redraw (the noise floor), or,
    with source "groundtruth-segmented", of the same redraw measured through the segmenter.
    """
    if SOURCE != "synthetic":
        return []
    prefix = f"results/{wildcards.ds}"
    return [
        f"{prefix}/evaluation/{truth_draw(source)}/metadata.csv",
        f"{prefix}/descriptors/{source}.parquet",
        f"{prefix}/descriptors/{source}-curves.parquet",
    ]


def truth_draw(source):
    """Folder under evaluation/ of a ground-truth descriptor source: "groundtruth" ->
    "ground-truth", "groundtruth-redraw" -> "ground-truth-redraw"."""
    return f"ground-truth{source.removeprefix('groundtruth')}"


def ground_truth_params(wildcards):
    """Size and stream of a ground-truth draw. The redraw holds as many images per
    condition as a generated set (like for like against the same reference) and is
    stream 1 of the same seed, so its images are independent of the reference's."""
    ev = config["evaluate"]
    redraw = wildcards.draw == "ground-truth-redraw"
    return {
        "n_per_condition": (
            config["generate"]["sampling"]["n_per_condition"]
            if redraw
            else ev["truth_per_condition"]
        ),
        "shape": [config["generate"]["sampling"]["resolution"]] * 2,
        "seed": ev["seed"],
        "draw": int(redraw),
    }


def metadata_of(wildcards):
    """Metadata (id, pixel_size_um) of an image set named by its descriptor source."""
    source = wildcards.source
    if source.startswith("groundtruth"):
        return f"results/{wildcards.ds}/evaluation/{truth_draw(source)}/metadata.csv"
    if source.startswith("gen__"):
        return f"results/{wildcards.ds}/evaluation/sets/{source[len('gen__'):]}.csv"
    return f"results/{wildcards.ds}/data/metadata.csv"


def figure_variables(key):
    """Variables of config["figures"][key] that the data set's condition schema has."""
    import yaml

    with open(config["dataset"]["schema"]) as fh:
        schema = yaml.safe_load(fh)
    known = {
        v["name"]
        for part in ("continuous", "categorical")
        for v in schema.get(part, [])
    }
    wanted = config["figures"][key]
    for v in wanted:
        if v not in known:
            logger.info(
                f"figures.{key}: {v!r} is not a variable of the data set, skipped"
            )
    return [v for v in wanted if v in known]


def primary_set():
    """The generated set shown in the per-condition figures: the first fine-tuned model in
    full-text mode (the paper's choice), else the first configured set."""
    full = [
        f"{m}__{mode}" for m, mode in generated_sample_sets() if mode == "full_text"
    ]
    return (full or all_sets())[0]


def _real_reference(wildcards):
    prefix = f"results/{wildcards.ds}"
    return {
        "ref_metadata": f"{prefix}/data/metadata.csv",
        "ref_split": f"{prefix}/split.csv",
        "ref_rows": f"{prefix}/descriptors/real-{SEGMENTER}.parquet",
        "ref_particles": f"{prefix}/descriptors/real-{SEGMENTER}-particles.parquet",
        "ref_images": f"{prefix}/data/images",
    }


def _truth_reference(wildcards):
    prefix = f"results/{wildcards.ds}"
    return {
        "ref_metadata": f"{prefix}/evaluation/ground-truth/metadata.csv",
        "ref_rows": f"{prefix}/descriptors/groundtruth.parquet",
        "ref_particles": f"{prefix}/descriptors/groundtruth-particles.parquet",
        "ref_images": f"{prefix}/evaluation/ground-truth/images",
    }


def comparison_reference(wildcards):
    """Reference of Figs 10-13: the real images at seen conditions; fresh ground truth at
    unseen ones where the synthetic generator can draw it, else the real images."""
    if wildcards.split == "unseen" and SOURCE == "synthetic":
        return _truth_reference(wildcards)
    return _real_reference(wildcards)


def comparison_reference_name(wildcards):
    if wildcards.split == "unseen" and SOURCE == "synthetic":
        return "ground truth"
    return "real"


def figure_references(wildcards):
    """References of the trend and t-SNE figures: the real images and, for the synthetic
    data set, fresh ground truth, each as ``real_*`` / ``truth_*`` inputs."""
    refs = {
        k.replace("ref_", "real_"): v for k, v in _real_reference(wildcards).items()
    }
    if SOURCE == "synthetic":
        refs.update(
            {
                k.replace("ref_", "truth_"): v
                for k, v in _truth_reference(wildcards).items()
            }
        )
    return refs


def grid_sets(grid):
    """Generated sets (``model__mode``) of a sample grid, top to bottom: Fig. 5 the
    parameter-aware model's parameter-only set and the baselines; Fig. 6 every prompt mode
    of the primary model; Fig. B1 its full-text and text-only sets; Fig. B2 the full-text
    set of every fine-tuned (Stable Diffusion) model."""
    fine = generated_sample_sets()
    primary = primary_set().split("__")[0] if all_sets() else None
    if grid == "fig5":
        sd = [f"{m}__{mode}" for m, mode in fine if mode == "parameter_only"][:1]
        return sd + [
            f"{b}__parameter_only"
            for b in config.get("generate", {}).get("baselines", {})
        ]
    if grid == "fig6":
        return [f"{m}__{mode}" for m, mode in fine if m == primary]
    if grid == "figB1":
        return [
            f"{primary}__{mode}"
            for mode in ("full_text", "text_only")
            if (primary, mode) in fine
        ]
    if grid == "figB2":
        return [f"{m}__{mode}" for m, mode in fine if mode == "full_text"]
    raise ValueError(f"unknown sample grid {grid!r}")


def sample_grids():
    """Sample grids the config has the sets for: two or more rows to compare (Fig. B2: one
    Stable Diffusion model is enough, it lists whatever the config fine-tunes)."""
    need = {"fig5": 2, "fig6": 2, "figB1": 2, "figB2": 1}
    return [g for g, n in need.items() if len(grid_sets(g)) >= n]


def grid_set_tables(wildcards, grid):
    return [f"results/{wildcards.ds}/evaluation/sets/{s}.csv" for s in grid_sets(grid)]


def grid_reference(wildcards):
    """Reference images of the sample grids: the real validation images (``real_*``) and,
    for the synthetic data set, the fresh ground truth at unseen conditions (``truth_*``).
    """
    prefix = f"results/{wildcards.ds}"
    refs = {
        "real_metadata": f"{prefix}/data/metadata.csv",
        "real_split": f"{prefix}/split.csv",
        "real_images": f"{prefix}/data/images",
    }
    if SOURCE == "synthetic":
        refs["truth_metadata"] = f"{prefix}/evaluation/ground-truth/metadata.csv"
        refs["truth_images"] = f"{prefix}/evaluation/ground-truth/images"
    return refs
