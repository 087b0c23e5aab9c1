# Shared helpers of the rules: config validation, Slurm resources, code inputs, and the
# parse-time reads the DAG depends on. What the workflow builds for a config (set names,
# figure references, sample grids, parameters derived from config) is microgen.plan, pure
# functions of the config; the targets of the default run are in targets.smk.
import os
from functools import cache
from pathlib import Path

from microgen import plan
from microgen.codegraph import rule_code
from microgen.config_checks import class_problems, config_problems
from microgen.data.folds import fold_numbers, folds_source, layout_mapping
from microgen.data.readers import READERS
from microgen.data.schema import load_schema
from microgen.plan import (
    CONDITIONS,
    EVALUATION_FEATURES,
    GENERATED,
    IMAGES,
    MASKS,
    METADATA,
    SPLIT,
    TARGETS,
    VAE,
    VOLUME_SPLIT,
    VOLUMES,
)
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
SCHEMA = config.get("dataset", {}).get("schema")
SEGMENTER = plan.applied_segmenter(config)
CV = plan.cross_validation(config)  # segment.cross_validation, or None
CV_LAYOUT = (CV or {}).get("layout", "uhcs24")
CV_WILDCARDS = plan.cv_wildcards(config)
SEGMENTER_MODEL = f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors"


def compute(family, gpus=None):
    """Slurm resources of a rule family from config["compute"] (defaults in the schema).

    GPU families ask for ``gpu`` and ``cpus_per_gpu``; CPU families for ``cpus_per_task``.
    ``gpus`` replaces the family's GPU count: a number, or a function of the wildcards (a
    model's own, always a GPU job). Memory and time grow with each retry (``attempt``).
    Local runs ignore these, and code picks its device itself.
    """
    spec = config["compute"][family]
    gpus = spec["gpus"] if gpus is None else gpus
    resources = {
        "mem_mb": lambda wildcards, attempt: spec["mem_mb"] * attempt,
        "runtime": lambda wildcards, attempt: spec["runtime_min"] * attempt,
    }
    if callable(gpus) or gpus > 0:
        resources.update(gpu=gpus, cpus_per_gpu=spec["cpus"])
    else:
        resources["cpus_per_task"] = spec["cpus"]
    return resources


def code(script):
    """Library files the rule's script can execute, as inputs: editing one reruns exactly the
    rules that use it (microgen.codegraph)."""
    return rule_code(script, workflow.basedir)


def script_path(script):
    """``workflow/scripts/{script}.py``, for a shell command to run (only the script
    directive finds scripts itself), found from the workflow's base directory and written
    relative to the working directory like the code inputs."""
    return os.path.relpath(
        Path(workflow.basedir, "workflow", "scripts", f"{script}.py")
    )


def finetune_gpus(wildcards):
    """GPUs, one per process, of a model's fine-tune (microgen.plan.finetune_processes)."""
    return plan.finetune_processes(config, wildcards.model)


# The condition schema is read once, at DAG build, before any job: a misspelt key or a
# template naming an unknown field stops the run naming the file and the key. Its variables
# decide which per-variable figures are targets, so they cannot wait for a job; its classes
# reach the rules that count or name them through params.
SCHEMA_VARIABLES, CLASS_NAMES, CLASS_COLORS = frozenset(), [], []
if DS:
    try:
        _schema = load_schema(SCHEMA, config_key="dataset.schema")
    except (ValueError, FileNotFoundError) as err:
        raise WorkflowError(str(err)) from None
    SCHEMA_VARIABLES = frozenset(_schema.variables)
    CLASS_NAMES, CLASS_COLORS = list(_schema.class_names), list(_schema.class_colors)
    if problems := class_problems(config, _schema.class_names, SCHEMA):
        raise WorkflowError("config, before any job:\n" + "\n".join(problems))


def figure_variables(key):
    """Variables of config["figures"][key] that the data set's condition schema has."""
    kept, skipped = plan.figure_variables(config, key, SCHEMA_VARIABLES)
    for v in skipped:
        logger.info(f"figures.{key}: {v!r} is not a variable of the data set, skipped")
    return kept


def reference_dir():
    """Real UHCS-24 folder for the real-vs-synthetic figure; None when absent here (the
    figure and the transfer score are then no targets)."""
    path = config.get("reference", {}).get("uhcs24")
    return path if path and Path(path, "metadata.csv").is_file() else None


@cache
def cv_folds():
    """Fold numbers of the cross-validation (from the folder's layout: a folds file or a
    metadata column). Read when the DAG is built, not by a job: the number of folds decides
    how many jobs there are."""
    try:
        return fold_numbers(CV["folder"], cv_layout())
    except FileNotFoundError as err:
        raise WorkflowError(
            f"segment.cross_validation.folder: {err.filename or err} does not exist (the "
            "folds are read from it when the DAG is built)"
        ) from None
    except ValueError as err:
        raise WorkflowError(f"segment.cross_validation: {err}") from None


@cache
def cv_layout():
    """The cross-validation folder's layout as a mapping, its file read once."""
    try:
        return layout_mapping(CV_LAYOUT)
    except FileNotFoundError as err:
        raise WorkflowError(f"segment.cross_validation.layout: {err}") from None


def cv_folds_file():
    """The file the folds are read from (an input of every fold job)."""
    return str(folds_source(CV["folder"], cv_layout()))


def cv_fold_files(wildcards, label_versions=None, file="scores.csv"):
    """A file of every fold per ``{labels}|{variant}`` (microgen.plan.cv_fold_files)."""
    return plan.cv_fold_files(config, wildcards.ds, cv_folds(), label_versions, file)


def base_model(wildcards):
    """Input files of a fine-tuned model's base (none for a hub id or local folder)."""
    return plan.base_model_files(config, wildcards.ds, wildcards.model)


def base_model_id(wildcards):
    """The base a fine-tuned model loads: the tiny base's folder, a hub id or a folder."""
    return plan.base_model_id(config, wildcards.ds, wildcards.model)


def set_tables(kind):
    """Input function: a table per generated set (microgen.plan.set_tables)."""
    return lambda wildcards: plan.set_tables(config, wildcards.ds, kind)


def primary_set_file(pattern):
    """Input function: ``pattern`` (``{ds}``, ``{set}``) of the primary generated set."""
    return lambda wildcards: pattern.format(
        ds=wildcards.ds, set=plan.primary_set(config)
    )
