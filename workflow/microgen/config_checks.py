"""Checks of a workflow config that the JSON schema cannot express, run when the DAG is built.

The schema checks each key's type and spelling; these checks relate keys to each other and to
the models the keys configure: that every resolution and volume shape is divisible by the
down-sampling factor of the model that gets it, that every ``architecture`` key is a field of
the config class it is passed to, that ``segment.apply`` is one of the trained segmenters.
Each would otherwise fail only when its job runs, often after hours of upstream jobs.

The model classes live in ``generate`` and ``volumes``, which import torch; the workflow
parses its rules without it, and this module sits below every package (it imports none of
them). It therefore reads the field names and defaults it needs from the source files with
:mod:`ast`, so a field added to a class is accepted here without a second list to update.
Standard library only: ``workflow/rules/common.smk`` calls :func:`config_problems` at parse
time.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent

# Down-sampling factors of the pre-trained bases (a fine-tuned model's resolution and the
# sampling resolution must be multiples): SD3 / SD3.5 have an f = 8 VAE and a patch-2
# transformer, the pipeline's check_inputs demands height % (8 * 2) == 0; SDXL's pipeline
# demands height % 8 == 0 (its U-Net pads odd latent sizes itself).
SD3_FACTOR = 8 * 2
SDXL_FACTOR = 8
# The tiny base's transformer (microgen.generate.tiny.build_tiny_pipeline): patch size 2.
TINY_PATCH = 2
# pretrain_tiny_base refuses a resolution that is not a multiple of this, per family
# (microgen.generate.tiny.PRETRAIN_MULTIPLE).
TINY_PRETRAIN_MULTIPLE = {"sd3": 16, "sdxl": 8}
# The tiny transformer's positional embedding covers max(64, pretrain side // f) patches a side.
TINY_MIN_POS_EMBED = 64
# Smallest StyleGAN-lite side: the synthesis starts from a 4 × 4 constant and doubles.
STYLEGAN_MIN_RESOLUTION = 8

_NO_DEFAULT = object()  # a parameter without a default, or one whose default is not a literal


# --------------------------------------------------------------------------- source reading
@cache
def _tree(module: str) -> ast.Module:
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return ast.parse(path.read_text(), filename=str(path))


def _find(body: list[ast.stmt], name: str) -> ast.ClassDef | ast.FunctionDef:
    for node in body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(name)


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return _NO_DEFAULT
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _NO_DEFAULT


@cache
def dataclass_fields(module: str, name: str) -> dict[str, Any]:
    """Fields of dataclass ``name`` in ``module`` with their literal defaults.

    Parameters
    ----------
    module
        Dotted module name inside the package, e.g. ``"microgen.generate.ddpm"``.
    name
        The dataclass, e.g. ``"DDPMConfig"``.

    Returns
    -------
    dict
        Field name to default value, in declaration order; a field without a literal default
        maps to an opaque sentinel. ``ClassVar`` annotations are not fields and are left out.
    """
    node = _find(_tree(module).body, name)
    fields = {}
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if "ClassVar" in ast.unparse(stmt.annotation):
                continue
            fields[stmt.target.id] = _literal(stmt.value)
    return fields


@cache
def parameters(module: str, name: str) -> dict[str, Any]:
    """Keyword parameters of function ``name`` in ``module`` (``"Class.__init__"`` for a
    constructor) with their literal defaults; ``self`` and ``*args`` / ``**kwargs`` are left
    out, a parameter without a literal default maps to an opaque sentinel."""
    body = _tree(module).body
    for part in name.split("."):
        node = _find(body, part)
        body = node.body
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = {a.arg: _literal(d) for a, d in zip(positional, defaults, strict=True)}
    out.update({a.arg: _literal(d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)})
    out.pop("self", None)
    return out


def _default(table: Mapping[str, Any], key: str, where: str) -> Any:
    value = table[key]
    if value is _NO_DEFAULT:
        raise LookupError(f"{where}: {key} has no literal default")
    return value


# --------------------------------------------------------------------------- helpers
def _unknown_keys(
    section: str, given: Mapping | None, allowed: list[str], what: str, fixed: tuple = ()
) -> list[str]:
    """Problems for keys of ``given`` that are not in ``allowed`` (or are set by the workflow)."""
    problems = []
    for key in given or {}:
        if key in fixed:
            problems.append(
                f"{section}.{key}: set by the workflow, not by the config ({what}); "
                f"allowed keys: {', '.join(k for k in allowed if k not in fixed)}"
            )
        elif key not in allowed:
            problems.append(
                f"{section}: unknown key {key!r}; {what} takes "
                f"{', '.join(k for k in allowed if k not in fixed)}"
            )
    return problems


def _multiple(key: str, value: int, factor: int, why: str) -> list[str]:
    if value % factor:
        low = value - value % factor
        near = f"{low} or {low + factor}" if low else f"{factor}"
        return [f"{key}: {value} is not a multiple of {factor} ({why}); use {near}"]
    return []


# --------------------------------------------------------------------------- segment
def check_segment_apply(config: Mapping) -> list[str]:
    """``segment.apply`` must be one of the segmenters the grid trains.

    Parameters
    ----------
    config
        The workflow config (after schema validation).

    Returns
    -------
    list of str
        One message per problem; empty when the config passes.
    """
    seg = config.get("segment")
    if not seg or "pretrained" in seg:
        return []
    grid = [f"{e}-{l}" for e in seg["encoders"] for l in seg["losses"]]  # noqa: E741
    if seg["apply"] in grid:
        return []
    return [
        f"segment.apply: {seg['apply']!r} is not in the grid segment.encoders × segment.losses "
        f"({', '.join(grid)}); a segmenter outside it would be trained only to be applied. "
        "Apply one of these, or add its encoder and loss to the lists"
    ]


# --------------------------------------------------------------------------- generate
def model_base(config: Mapping, name: str) -> str:
    """Base of fine-tuned model ``name``: its own ``base`` or ``generate.base``."""
    gen = config["generate"]
    return gen["models"][name].get("base", gen["base"])


def model_factor(config: Mapping, name: str) -> tuple[int, str]:
    """The multiple that fine-tuned model ``name``'s image side must be, and why.

    The tiny SD3 base's factor is its VAE's down-sampling ``2 ** (len(vae_channels) - 1)``
    (``TinyConfig`` in ``microgen.generate.tiny``) times the transformer's patch size; the
    tiny SDXL base's is the SDXL pipeline's 8 or, if larger, the VAE's factor times the
    U-Net's ``2 ** (len(block_out_channels) - 1)`` (``TinyUNetConfig``).
    """
    spec = config["generate"]["models"][name]
    family = spec.get("family", "sd3")
    tiny = model_base(config, name) == "tiny"
    if tiny:
        vae = 2 ** (len(_default(_tiny_config(), "vae_channels", "TinyConfig")) - 1)
    if family == "sdxl" and tiny:
        unet_fields = dataclass_fields("microgen.generate.tiny", "TinyUNetConfig")
        unet = 2 ** (len(_default(unet_fields, "block_out_channels", "TinyUNetConfig")) - 1)
        factor = max(SDXL_FACTOR, vae * unet)
        return factor, (
            f"tiny SDXL base: the SDXL pipeline's {SDXL_FACTOR}, VAE factor {vae} × U-Net {unet}"
        )
    if family == "sdxl":
        return SDXL_FACTOR, "SDXL: VAE factor 8"
    if tiny:
        return vae * TINY_PATCH, f"tiny SD3 base: VAE factor {vae} × patch {TINY_PATCH}"
    return SD3_FACTOR, "SD3: VAE factor 8 × patch 2"


def _tiny_config() -> dict[str, Any]:
    return dataclass_fields("microgen.generate.tiny", "TinyConfig")


def _pretrain_sides(config: Mapping, families: set[str]) -> dict[str, tuple[str, int]]:
    """(key, side) of the pre-training resolution of each tiny base that ``families`` use:
    ``generate.pretrain.resolution`` (the ``pretrain_tiny_base`` default when absent), for
    SDXL its ``sdxl`` sub-block's when that sets one."""
    pretrain = config["generate"].get("pretrain")
    if pretrain is None:
        return {}
    default = _default(
        parameters("microgen.generate.tiny", "pretrain_tiny_base"), "resolution",
        "pretrain_tiny_base",
    )  # fmt: skip
    shared = ("generate.pretrain.resolution", pretrain.get("resolution", default))
    sides = {}
    for family in families:
        own = (pretrain.get("sdxl") or {}).get("resolution") if family == "sdxl" else None
        sides[family] = shared if own is None else ("generate.pretrain.sdxl.resolution", own)
    return sides


def check_generation_resolutions(config: Mapping) -> list[str]:
    """Every generation and sampling resolution is a multiple of its model's factor.

    Checks the pre-training resolution of each tiny base a model uses (SD3 and SDXL,
    ``generate.pretrain``), each fine-tuned model's ``resolution`` (the ``FineTuneConfig``
    default when absent) and ``generate.sampling.resolution`` against each model that
    samples at it, the tiny SD3 base's positional-embedding reach (the tiny SDXL base's
    U-Net is convolutional and has none), the DDPM baseline's U-Net down-sampling and
    StyleGAN-lite's power-of-two side.

    Parameters
    ----------
    config
        The workflow config (after schema validation).

    Returns
    -------
    list of str
        One message per problem, naming the key, its value and the factor.
    """
    gen = config.get("generate")
    if not gen:
        return []
    problems: list[str] = []
    models = gen.get("models", {})
    tiny_models = [n for n in models if model_base(config, n) == "tiny"]
    finetune = dataclass_fields("microgen.generate.finetune", "FineTuneConfig")
    sides = _pretrain_sides(config, {models[n].get("family", "sd3") for n in tiny_models})
    for family, (key, side) in sorted(sides.items()):
        multiple = TINY_PRETRAIN_MULTIPLE[family]
        problems += _multiple(
            key, side, multiple, f"the tiny {family} base pre-trains on multiples of {multiple}"
        )
    pretrain_side = sides.get("sd3", (None, None))[1]
    sampling = gen["sampling"]["resolution"]
    sampled_by: dict[tuple[int, str], list[str]] = {}  # (factor, why) -> models
    for name, spec in models.items():
        factor, why = model_factor(config, name)
        side = spec.get("resolution", _default(finetune, "resolution", "FineTuneConfig"))
        key = f"generate.models.{name}.resolution"
        problems += _multiple(key, side, factor, why)
        sampled_by.setdefault((factor, why), []).append(name)
        sd3_tiny = name in tiny_models and spec.get("family", "sd3") == "sd3"
        if sd3_tiny and pretrain_side:
            vae = factor // TINY_PATCH
            reach = max(TINY_MIN_POS_EMBED, pretrain_side // vae) * factor
            for k, v in ((key, side), ("generate.sampling.resolution", sampling)):
                if v > reach:
                    problems.append(
                        f"{k}: {v} exceeds the {reach} px that the tiny base pre-trained at "
                        f"generate.pretrain.resolution {pretrain_side} can place (its "
                        f"positional embedding covers {reach // factor} patches a side)"
                    )
    for (factor, why), names in sampled_by.items():
        problems += _multiple(
            "generate.sampling.resolution",
            sampling,
            factor,
            f"model{'s' * (len(names) > 1)} {', '.join(names)}; {why}",
        )
    baselines = gen.get("baselines", {})
    if "ddpm" in baselines:
        problems += _check_ddpm(baselines["ddpm"])
    if "stylegan-lite" in baselines:
        side = baselines["stylegan-lite"]["resolution"]
        if side < STYLEGAN_MIN_RESOLUTION or side & (side - 1):
            problems.append(
                f"generate.baselines.stylegan-lite.resolution: {side} is not a power of two "
                f">= {STYLEGAN_MIN_RESOLUTION} (the generator doubles a 4 × 4 constant)"
            )
    # Two messages for one value say the same thing twice.
    return list(dict.fromkeys(problems))


def _check_ddpm(spec: Mapping) -> list[str]:
    fields = dataclass_fields("microgen.generate.ddpm", "DDPMConfig")
    arch = spec.get("architecture") or {}
    channels = arch.get("block_out_channels") or _default(fields, "block_out_channels", "DDPM")
    attention = arch.get("attention_levels") or _default(fields, "attention_levels", "DDPM")
    groups = arch.get("norm_num_groups") or _default(fields, "norm_num_groups", "DDPM")
    problems = _multiple(
        "generate.baselines.ddpm.resolution",
        spec["resolution"],
        2 ** (len(channels) - 1),
        f"the U-Net halves it {len(channels) - 1} times for block_out_channels {list(channels)}",
    )
    if len(attention) != len(channels):
        problems.append(
            f"generate.baselines.ddpm.architecture.attention_levels: {list(attention)} needs "
            f"one entry per block_out_channels level ({len(channels)})"
        )
    odd = [c for c in channels if groups < 1 or c % groups]
    if odd:
        problems.append(
            f"generate.baselines.ddpm.architecture.norm_num_groups: {groups} does not divide "
            f"the block_out_channels {odd} (GroupNorm)"
        )
    return problems


# --------------------------------------------------------------------------- volumes
def check_volume_shape(config: Mapping) -> list[str]:
    """``volumes.simulate.shape`` is divisible by the 3D VAE's factor ``2 ** len(channel_mults)``.

    A published volumes file (``source: hdf5``) has its shape in the file, which is read only
    when the VAE trains: that case is left to the job.

    Parameters
    ----------
    config
        The workflow config (after schema validation).

    Returns
    -------
    list of str
        One message per problem, naming the key, the shape and the factor.
    """
    vol = config.get("volumes")
    if not vol or vol["source"] != "simulate":
        return []
    arch = (vol.get("vae") or {}).get("architecture") or {}
    fields = dataclass_fields("microgen.volumes.models", "VAE3DConfig")
    mults = arch.get("channel_mults") or _default(fields, "channel_mults", "VAE3DConfig")
    factor = 2 ** len(mults)
    shape = vol["simulate"]["shape"]
    if all(s % factor == 0 for s in shape):
        return []
    source = "volumes.vae.architecture" if "channel_mults" in arch else "VAE3DConfig's default"
    return [
        f"volumes.simulate.shape: {list(shape)} has an axis not divisible by {factor}, "
        f"which the 3D VAE needs (2 ** {len(mults)} stride-2 stages, channel_mults "
        f"{list(mults)} from {source}); use "
        f"{[max(factor, s - s % factor) for s in shape]}"
    ]


# --------------------------------------------------------------------------- architectures
# Keys the workflow sets itself; the config giving them would be ignored or clash.
_VAE_FIXED = ("volume_shape", "n_phases")  # from the volumes file (train_vae)
_UNET_FIXED = ("in_channels", "sample_shape", "cond_dim")  # from the VAE and conditions
_STYLEGAN_FIXED = ("resolution", "n_continuous", "category_sizes")  # resolution, schema
_DDPM_FIXED = ("resolution",)  # generate.baselines.ddpm.resolution

# Parameters of the 3D training functions and FitSettings fields that the rule passes, not
# the config (``fit`` is built from the config's FitSettings fields).
_RUN_FIXED = ("fit", "device", "resume", "progress", "stop_after")
_STAGE_FIXED = {
    "vae": ("h5", "split_csv", "out_dir", "config", *_RUN_FIXED),
    "feature_predictor": ("h5", "split_csv", "vae_dir", "out_dir", *_RUN_FIXED),
    "ldm": ("h5", "split_csv", "vae_dir", "out_dir", "condition_names", "unet_config",
            *_RUN_FIXED),
}  # fmt: skip
_STAGE_FUNCTION = {
    "vae": "train_vae",
    "feature_predictor": "train_feature_predictor",
    "ldm": "train_ldm",
}
# Sub-mappings each 3D stage turns into a config class (microgen.volumes.stage).
_STAGE_CLASSES = {
    "vae": {"architecture": ("microgen.volumes.models", "VAE3DConfig", _VAE_FIXED)},
    "feature_predictor": {},
    "ldm": {
        "architecture": ("microgen.volumes.models", "UNet3DConfig", _UNET_FIXED),
        "diffusion": ("microgen.volumes.diffusion", "DiffusionConfig", ()),
    },
}


def check_architectures(config: Mapping) -> list[str]:
    """Every ``architecture`` key is a field of the class it configures.

    ``generate.baselines.ddpm.architecture``: ``DDPMConfig``;
    ``generate.baselines.stylegan-lite.architecture.{generator,discriminator}``: the
    ``StyleGANLiteGenerator`` / ``StyleGANLiteDiscriminator`` constructor;
    ``volumes.vae.architecture``: ``VAE3DConfig``; ``volumes.ldm.architecture``:
    ``UNet3DConfig``; ``volumes.ldm.diffusion``: ``DiffusionConfig``. Every other key of a
    3D stage must be an argument of its training function or a field of its
    ``FitSettings`` (``microgen.volumes.train``):
    the feature predictor takes no ``architecture`` (its layers are ``hidden``).

    Parameters
    ----------
    config
        The workflow config (after schema validation).

    Returns
    -------
    list of str
        One message per unknown key, naming the key, the section and the allowed keys.
    """
    problems: list[str] = []
    baselines = config.get("generate", {}).get("baselines", {})
    if "ddpm" in baselines:
        fields = list(dataclass_fields("microgen.generate.ddpm", "DDPMConfig"))
        problems += _unknown_keys(
            "generate.baselines.ddpm.architecture", baselines["ddpm"].get("architecture"),
            fields, "DDPMConfig", _DDPM_FIXED,
        )  # fmt: skip
    if "stylegan-lite" in baselines:
        arch = baselines["stylegan-lite"].get("architecture") or {}
        for part, cls in (("generator", "Generator"), ("discriminator", "Discriminator")):
            name = f"StyleGANLite{cls}"
            allowed = list(parameters("microgen.generate.stylegan_lite.models", f"{name}.__init__"))
            problems += _unknown_keys(
                f"generate.baselines.stylegan-lite.architecture.{part}", arch.get(part),
                allowed, name, _STYLEGAN_FIXED,
            )  # fmt: skip
    for stage, classes in _STAGE_CLASSES.items():
        spec = (config.get("volumes") or {}).get(stage)
        if spec is None:
            continue
        accepted = parameters("microgen.volumes.train", _STAGE_FUNCTION[stage])
        fit = dataclass_fields("microgen.volumes.train", "FitSettings")
        allowed = list(dict.fromkeys([*accepted, *fit, *classes]))
        allowed = [k for k in allowed if k not in _STAGE_FIXED[stage]]
        problems += _unknown_keys(f"volumes.{stage}", spec, allowed, _STAGE_FUNCTION[stage])
        for key, (module, cls, fixed) in classes.items():
            problems += _unknown_keys(
                f"volumes.{stage}.{key}", spec.get(key), list(dataclass_fields(module, cls)),
                cls, fixed,
            )  # fmt: skip
    return problems


# --------------------------------------------------------------------------- evaluation
def check_native_side(config: Mapping) -> list[str]:
    """Evaluated generated images of a data set without a synthetic ``shape`` need
    ``preprocess.native_side`` to scale their pixel size (``sample_pixel_scale``)."""
    if "dataset" not in config or not {"generate", "evaluate", "segment"} <= set(config):
        return []
    if config["dataset"].get("synthetic", {}).get("shape"):
        return []
    if (config.get("preprocess") or {}).get("native_side"):
        return []
    return [
        "preprocess.native_side: missing; the generated images of a "
        f"{config['dataset']['source']} data set are evaluated, and their pixel size is the "
        "data's shorter image side (px) over generate.sampling.resolution"
    ]


# --------------------------------------------------------------------------- classes
#: Sources whose prepared data set has masks (and so classes to name).
MASKED_SOURCES = ("synthetic", "folder", "aachen_heerlen")


def class_problems(config: Mapping, class_names: tuple[str, ...], schema_path: str) -> list[str]:
    """The data set's masks have their classes named by its condition schema, and the
    descriptor phase is one of them.

    Parameters
    ----------
    config
        The workflow config (after schema validation).
    class_names
        The ``classes`` of the condition schema ``schema_path``, by class id (empty when it
        names none).
    schema_path
        The condition schema file (``dataset.schema``), named in the messages.

    Returns
    -------
    list of str
        One line per problem, starting with the config key it is about.
    """
    dataset = config.get("dataset")
    if not dataset:
        return []
    masked = dataset["source"] in MASKED_SOURCES or (config.get("segment") or {}).get(
        "cross_validation"
    )
    if masked and not class_names:
        return [
            f"dataset.schema: {schema_path} names no classes (key classes), but the "
            f"{dataset['source']} data set's masks need their class names"
        ]
    phase = config["descriptors"]["phase"]
    if class_names and phase >= len(class_names):
        return [
            f"descriptors.phase: {phase} is no class of {schema_path}, which names "
            f"{len(class_names)} (ids 0…{len(class_names) - 1}: {', '.join(class_names)})"
        ]
    return []


CHECKS = (
    check_segment_apply,
    check_generation_resolutions,
    check_volume_shape,
    check_architectures,
    check_native_side,
)


def config_problems(config: Mapping) -> list[str]:
    """Every problem the checks of this module find in ``config``.

    Parameters
    ----------
    config
        The workflow config, validated against ``workflow/schemas/config.schema.yaml``
        (defaults filled in).

    Returns
    -------
    list of str
        One line per problem, each starting with the dotted key it is about; empty when the
        config passes.
    """
    return [problem for check in CHECKS for problem in check(config)]
