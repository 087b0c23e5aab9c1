# Shared helpers: config validation, dataset paths, code dependencies, rule parameters.
import re
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, "../schemas/config.schema.yaml")

DS = config.get("dataset", {}).get("name", "")
SOURCE = config.get("dataset", {}).get("source", "")
VDS = config.get("volumes", {}).get("name", "")
LIBRARY = Path(workflow.basedir) / "workflow" / "microgen"


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


def code(*modules):
    """Library files of a stage, used as its inputs so that editing one reruns just that stage.

    Modules are named relative to the package, e.g. "data.split" for microgen/data/split.py.
    """
    files = []
    for module in modules:
        path = LIBRARY.joinpath(*module.split("."))
        files.append(str(path.with_suffix(".py")) if path.with_suffix(".py").exists()
                     else str(path / "__init__.py"))
    return files


def schema_file(wildcards=None):
    return config["dataset"]["schema"]


def synthetic_params(wildcards):
    return dict(config["dataset"]["synthetic"])


def split_params(wildcards):
    return dict(config["split"])


def uhcsdb_sqlite(wildcards):
    """The configured local database, else the downloaded one."""
    return config["dataset"]["uhcsdb"]["sqlite"] or f"results/{DS}/raw/microstructures.sqlite"


def uhcsdb_archive(wildcards):
    """Where the micrographs are: the configured folder or archive, else the download."""
    return config["dataset"]["uhcsdb"]["images"] or f"results/{DS}/raw/micrographs.zip"


def reference_dir():
    """Real UHCS-24 folder for the real-vs-synthetic figure; None when absent here."""
    path = config.get("reference", {}).get("uhcs24")
    return path if path and Path(path, "metadata.csv").is_file() else None


def all_outputs():
    return dataset_outputs() + volume_outputs()


def dataset_outputs():
    if not DS:
        return []
    outputs = [
        f"results/{DS}/split.csv",
        f"results/{DS}/tables/split-summary.md",
        f"results/{DS}/figures/fig-a1-dataset.png",
    ]
    if SOURCE in ("synthetic", "folder"):
        # Data sets with masks: descriptors of the ground-truth / annotated masks, and the
        # segmenters trained and scored on them.
        outputs.append(f"results/{DS}/descriptors/truth.parquet")
        if config.get("segment"):
            outputs += [
                f"results/{DS}/tables/table4-losses.csv",
                f"results/{DS}/descriptors/real-{config['segment']['apply']}.parquet",
                f"results/{DS}/figures/fig7-segmentation-{config['segment']['apply']}.png",
            ]
        if cross_validation():
            outputs.append(f"results/{DS}/tables/table3-cv-prior-methods.csv")
    outputs += [f"results/{DS}/samples/{m}/{mode}.csv" for m, mode in generated_sample_sets()]
    if config.get("generate", {}).get("probe"):
        outputs += [
            f"results/{DS}/tables/parameter-awareness-{m}.csv"
            for m, mode in generated_sample_sets()
            if mode == "full_text"
        ]
    if config.get("evaluate") and config.get("segment") and all_sets():
        outputs += [
            f"results/{DS}/tables/table6-correlation-errors.csv",
            f"results/{DS}/tables/table1-2-generative-metrics.csv",
        ]
    outputs += [
        f"results/{DS}/samples/{b}/parameter_only.csv"
        for b in config.get("generate", {}).get("baselines", {})
    ]
    if SOURCE == "synthetic":
        if reference_dir():
            outputs.append(f"results/{DS}/figures/real-vs-synthetic.png")
        else:
            logger.info("reference.uhcs24 not found here: skipping real-vs-synthetic.png")
    return outputs


def volume_outputs():
    outputs = []
    if VDS:
        outputs += [
            f"results/{VDS}/volumes/features.parquet",
            f"results/{VDS}/volumes/split.csv",
        ]
        if "ldm" in config["volumes"]:
            outputs.append(f"results/{VDS}/tables/r2-samplers.csv")
    return outputs


def descriptor_params(wildcards):
    return dict(config["descriptors"])


def masks_of(wildcards):
    """Mask folder of an image set: the data set's own masks ("truth") or a segmenter's."""
    if wildcards.source == "truth":
        return f"results/{wildcards.ds}/data/masks"
    if wildcards.source == "groundtruth":
        return f"results/{wildcards.ds}/evaluation/ground-truth/masks"
    return f"results/{wildcards.ds}/masks/{wildcards.source}"


def segmenter_params(wildcards):
    seg = config["segment"]
    keys = ("eca", "encoder_weights", "epochs", "crop", "batch_size", "encoder_lr",
            "decoder_lr", "weight_decay", "steps_per_epoch", "seed")
    return {"encoder": wildcards.encoder, "loss": wildcards.loss, **{k: seg[k] for k in keys}}


def segmenter_models():
    seg = config.get("segment")
    if not seg:
        return []
    return [f"{e}-{l}" for e in seg["encoders"] for l in seg["losses"]]


def segmenter_scores(wildcards):
    return [f"results/{wildcards.ds}/segmenter/{m}/scores.csv" for m in segmenter_models()]


def cross_validation():
    """The segment.cross_validation block, or None."""
    return (config.get("segment") or {}).get("cross_validation")


def cv_folds():
    """Fold numbers of the UHCS-24 cross-validation (keys of cv-folds.json)."""
    import json

    with open(Path(cross_validation()["folder"], "cv-folds.json")) as fh:
        return sorted(int(k) for k in json.load(fh))


def cv_fold_params(wildcards):
    """Training settings of a cross-validation fold; the variant wildcard adds the encoder,
    loss, ECA switch and encoder weights (parsed by microgen.segment.crossval)."""
    seg, cv = config["segment"], cross_validation()
    keys = ("batch_size", "encoder_lr", "decoder_lr", "weight_decay", "seed")
    return {
        "epochs": cv.get("epochs", seg["epochs"]),
        "crop": cv.get("crop", seg["crop"]),
        "steps_per_epoch": cv.get("steps_per_epoch", seg["steps_per_epoch"]),
        **{k: seg[k] for k in keys},
    }


def cv_fold_scores(wildcards):
    cv = cross_validation()
    return {
        f"{labels}|{variant}": [
            f"results/{wildcards.ds}/segmenter-cv/{labels}/{variant}/fold{k}/scores.csv"
            for k in cv_folds()
        ]
        for labels in cv["label_versions"]
        for variant in cv["variants"]
    }


def model_base(model):
    """Base of a fine-tuned model: its own ``base`` or ``generate.base``."""
    return config["generate"]["models"][model].get("base", config["generate"]["base"])


def check_model_bases():
    """SDXL entries need an SDXL base: the tiny base built here is an SD3 pipeline."""
    for name, spec in config.get("generate", {}).get("models", {}).items():
        if spec.get("family", "sd3") == "sdxl" and model_base(name) == "tiny":
            raise ValueError(
                f"generate.models.{name}: family sdxl needs an SDXL base; give `base:` a hub id "
                "(stabilityai/stable-diffusion-xl-base-1.0) or the local folder of a diffusers "
                "snapshot (`huggingface-cli download <id> --local-dir DIR`)"
            )


check_model_bases()


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
    return [(m, mode) for m, spec in gen["models"].items() for mode in spec["prompt_modes"]]


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
    sets += [f"{b}__parameter_only" for b in config.get("generate", {}).get("baselines", {})]
    return sets


def set_tables(wildcards, kind):
    prefix = f"results/{wildcards.ds}"
    if kind == "index":
        return [f"{prefix}/evaluation/sets/{s}.csv" for s in all_sets()]
    suffix = "" if kind == "rows" else "-curves"
    return [f"{prefix}/descriptors/gen__{s}{suffix}.parquet" for s in all_sets()]


def truth_tables(wildcards):
    if SOURCE != "synthetic":
        return []
    prefix = f"results/{wildcards.ds}"
    return [  # order: index, rows, curves
        f"{prefix}/evaluation/ground-truth/metadata.csv",
        f"{prefix}/descriptors/groundtruth.parquet",
        f"{prefix}/descriptors/groundtruth-curves.parquet",
    ]


def metadata_of(wildcards):
    """Metadata (id, pixel_size_um) of an image set named by its descriptor source."""
    source = wildcards.source
    if source == "groundtruth":
        return f"results/{wildcards.ds}/evaluation/ground-truth/metadata.csv"
    if source.startswith("gen__"):
        return f"results/{wildcards.ds}/evaluation/sets/{source[len('gen__'):]}.csv"
    return f"results/{wildcards.ds}/data/metadata.csv"
