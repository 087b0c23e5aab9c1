"""Table B3 of Phan et al. (2025): total and trainable parameters per component of a
fine-tune as configured, counted without weights.

Every model component of the base (``model_index.json`` and each component's
``config.json``: the tiny base's folder, a local snapshot, or a hub id, whose configs
``huggingface_hub`` downloads or finds in its cache) is built from its config on the meta
device, so shapes exist and no memory or weights are needed. Fine-tuning then changes it
exactly as :func:`microgen.generate.finetune.fine_tune` does: the placeholder tokens are
rows appended to each CLIP embedding table (the CLIP vocabulary grows by the schema's
placeholders, as ``add_placeholder_tokens`` resizes it to the tokenizer's length, which
for these bases is the encoder's ``vocab_size``), the adapters come from
:func:`~microgen.generate.finetune.add_lora_adapters` (rank, alpha, DoRA, target modules,
``train_text_encoder``), the conditioner is a
:class:`~microgen.conditioning.conditioner.ParameterConditioner` of the schema at
``conditioner_hidden`` (none for ``text_only``), and the table is
:func:`~microgen.generate.finetune.parameter_table`, the one ``fine_tune`` writes.

:data:`PUBLISHED` holds the component configs of SD3.5-Large and -Medium as published on the
hub, for the GPU benchmark and the tests (nothing downloads there).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from microgen.conditioning.conditioner import ParameterConditioner
from microgen.conditioning.normalize import RobustNormalizer, VariableStats
from microgen.data.schema import ConditionSchema
from microgen.generate.common import DENOISER, is_local_base
from microgen.generate.finetune import FineTuneConfig, add_lora_adapters, parameter_table
from microgen.generate.finetune_table import finetune_method
from microgen.generate.paper_values import TABLE_B3, TABLE_B3_MODEL
from microgen.generate.variants import sd_model_name

__all__ = [
    "PUBLISHED",
    "Component",
    "SD35_TRANSFORMERS",
    "SD35_VAE",
    "build_components",
    "fine_tune_parameters",
    "parameter_breakdown",
    "read_component_configs",
    "write_parameter_breakdown",
]

#: ``(library, class, config)`` of one pipeline component.
Component = tuple[str, str, dict]

#: The published transformer configs (``transformer/config.json`` of the hub models).
SD35_TRANSFORMERS = {
    "large": dict(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=38,
        attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096,
        caption_projection_dim=2432, pooled_projection_dim=2048, pos_embed_max_size=192,
        qk_norm="rms_norm",
    ),
    "medium": dict(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
        attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
        caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
        qk_norm="rms_norm", dual_attention_layers=tuple(range(13)),
    ),
}  # fmt: skip
#: The SD3.5 VAE (16 latent channels, f = 8, latents ``(z - 0.0609) * 1.5305``).
SD35_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False, sample_size=1024,
    scaling_factor=1.5305, shift_factor=0.0609,
)  # fmt: skip
#: SD3.5's text encoders: CLIP-L/14, CLIP-G/14 (OpenCLIP bigG), T5-XXL v1.1 (encoder only).
#: The CLIP configs carry the legacy special ids (eos 2: pooling at ``argmax(input_ids)``,
#: which :func:`microgen.conditioning.tokens.fix_eos_pooling` corrects once tokens are added).
_CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
               hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2,
               pad_token_id=1)  # fmt: skip
_CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
               num_attention_heads=20, max_position_embeddings=77, projection_dim=1280,
               hidden_act="gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)  # fmt: skip
_T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
               relative_attention_max_distance=128)  # fmt: skip


def _sd35(size: str) -> dict[str, Component]:
    return {
        "transformer": ("diffusers", "SD3Transformer2DModel", SD35_TRANSFORMERS[size]),
        "text_encoder": ("transformers", "CLIPTextModelWithProjection", _CLIP_L),
        "text_encoder_2": ("transformers", "CLIPTextModelWithProjection", _CLIP_G),
        "text_encoder_3": ("transformers", "T5EncoderModel", _T5_XXL),
        "vae": ("diffusers", "AutoencoderKL", SD35_VAE),
    }


#: Component configs of the published SD3.5 models, as :func:`read_component_configs` reads
#: them from the hub.
PUBLISHED: dict[str, dict[str, Component]] = {
    "stabilityai/stable-diffusion-3.5-large": _sd35("large"),
    "stabilityai/stable-diffusion-3.5-medium": _sd35("medium"),
}


def _read_json(base: str, filename: str) -> dict:
    """``filename`` of a local folder or of a hub repository (downloaded or cached)."""
    if is_local_base(base):
        path = Path(base) / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"base model {base!r}: no {filename} there (a diffusers folder has "
                "model_index.json and a config.json per component)"
            )
        return json.loads(path.read_text())
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(base, filename)).read_text())
    except Exception as err:  # offline, gated, unknown repository, missing file
        raise FileNotFoundError(
            f"cannot read {filename} of base model {base!r} ({type(err).__name__}: {err}). "
            "Counting its parameters needs only its config files: go online (gated models "
            "need the licence accepted and a login), or download them once with "
            f"`huggingface-cli download {base} --include '*.json' --local-dir DIR` and give "
            "DIR as the base."
        ) from err


def _module_class(library: str, name: str):
    return getattr(importlib.import_module(library), name, None)


def read_component_configs(base: str | Path) -> dict[str, Component]:
    """The model components of a diffusers pipeline (``transformer`` / ``unet``, text
    encoders, ``vae``) with their configs; tokenizers and schedulers are left out.

    Parameters
    ----------
    base : a local diffusers folder (the tiny base, a snapshot) or a hub id.

    Raises
    ------
    FileNotFoundError
        naming the base and the file when a config cannot be read (offline for a hub id).
    """
    base = str(base)
    index = _read_json(base, "model_index.json")
    out: dict[str, Component] = {}
    for key, entry in index.items():
        if key.startswith("_") or not isinstance(entry, list) or len(entry) != 2:
            continue
        library, name = entry
        if library not in ("diffusers", "transformers"):
            continue  # absent ([null, null]) or a tokenizer / scheduler of another library
        cls = _module_class(library, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            continue
        out[key] = (library, name, _read_json(base, f"{key}/config.json"))
    return out


def build_components(
    configs: Mapping[str, Component], extra_tokens: int = 0, device: str = "meta"
) -> dict[str, torch.nn.Module]:
    """Every component built from its config (random or no weights on ``device``), the
    CLIP encoders (``text_encoder``, ``text_encoder_2``) with ``extra_tokens`` more
    embedding rows."""
    modules = {}
    with torch.device(device):
        for key, (library, name, config) in configs.items():
            cls = _module_class(library, name)
            if cls is None:
                raise ValueError(f"component {key}: {library} has no class {name!r}")
            if library == "diffusers":
                modules[key] = cls.from_config(config)
                continue
            cfg = cls.config_class.from_dict(dict(config))
            if key in ("text_encoder", "text_encoder_2"):
                cfg.vocab_size += extra_tokens
            modules[key] = cls._from_config(cfg)
    return modules


def _conditioner(schema: ConditionSchema, widths: Mapping[str, int], hidden: int | None):
    """The conditioner's architecture (its normaliser's statistics do not change its size)."""
    stats = [VariableStats(v.name, v.log, v.clip, 0.0, 0.0, 1.0) for v in schema.continuous]
    return ParameterConditioner(schema, widths, RobustNormalizer(stats), hidden=hidden)


def fine_tune_parameters(
    configs: Mapping[str, Component], settings: Mapping, schema: ConditionSchema
) -> pd.DataFrame:
    """:func:`~microgen.generate.finetune.parameter_table` of a fine-tune of the base whose
    components are ``configs`` with ``settings`` (``FineTuneConfig`` keys, ``prompt_mode``
    included), built on the meta device."""
    cfg = FineTuneConfig(**settings)
    denoiser = DENOISER[cfg.family]
    if denoiser not in configs:
        raise ValueError(
            f"a {cfg.family} fine-tune needs a {denoiser!r} component; the base has "
            f"{sorted(configs)}"
        )
    n = len(schema.placeholders) if cfg.uses_conditioner else 0
    modules = build_components(configs, extra_tokens=n)
    for m in modules.values():
        m.requires_grad_(False)
    encoders = [modules["text_encoder"], modules["text_encoder_2"]]
    add_lora_adapters(modules[denoiser], encoders, cfg)
    conditioner = token_ids = None
    if cfg.uses_conditioner:
        widths = {
            "clip_l": encoders[0].config.hidden_size,
            "clip_g": encoders[1].config.hidden_size,
        }
        with torch.device("meta"):
            conditioner = _conditioner(schema, widths, cfg.conditioner_hidden)
        token_ids = {
            enc: list(range(m.config.vocab_size - n, m.config.vocab_size))
            for enc, m in zip(("clip_l", "clip_g"), encoders, strict=True)
        }
    if cfg.family == "sd3":
        modules.setdefault("text_encoder_3", None)  # a base without T5 lists it as 0
    return parameter_table(SimpleNamespace(**modules), conditioner, token_ids)


def parameter_breakdown(
    models: Mapping[str, Mapping],
    schema: ConditionSchema,
    configs: Mapping[str, Mapping[str, Component]] | None = None,
) -> pd.DataFrame:
    """Table B3 for every configured model: one row per (model, component).

    Parameters
    ----------
    models : model name -> ``{"base": the configured base ("tiny", a hub id or folder),
        "load": what to read its configs from (the tiny base's folder, else the base),
        "settings": its fine-tuning settings with the counted ``prompt_mode``}``
        (:func:`microgen.plan.parameter_table_params`).
    schema : the condition schema (its placeholders and variables size the conditioner).
    configs : component configs of bases already known (``load`` -> configs, e.g.
        :data:`PUBLISHED`); any other base is read by :func:`read_component_configs`.

    Returns
    -------
    DataFrame with ``model``, ``prompt_mode``, ``component``, ``pretrained_M``, ``added_M``
    (LoRA, placeholder rows, conditioner), ``total_M``, ``trainable_M`` (millions, exact to
    one parameter), ``trainable_percent`` and, for the model of the paper's Table B3
    (SD3.5-Large, DreamBooth + LoRA), the paper's values (``paper_*``; empty elsewhere).
    """
    if not models:
        raise ValueError("Table B3 needs at least one generate.models entry")
    configs = dict(configs or {})
    frames = []
    for name, entry in models.items():
        load = str(entry["load"])
        if load not in configs:
            configs[load] = read_component_configs(load)
        table = fine_tune_parameters(configs[load], entry["settings"], schema)
        counts = {c: table[c] / 1e6 for c in ("pretrained", "added", "total", "trainable")}
        frame = pd.DataFrame(
            {
                "model": name,
                "prompt_mode": entry["settings"].get("prompt_mode", "full_text"),
                "component": table["component"],
                **{f"{c}_M": v.round(6) for c, v in counts.items()},
                "trainable_percent": table["percent"],
            }
        )
        settings = asdict(FineTuneConfig(**entry["settings"]))
        model = sd_model_name({"base": entry["base"], "family": settings["family"]})
        paper = (model, finetune_method(settings).split(" (", 1)[0]) == TABLE_B3_MODEL
        for key in ("pretrained", "added", "total", "trainable", "percent"):
            column = f"paper_{key}_M" if key != "percent" else "paper_trainable_percent"
            frame[column] = [
                TABLE_B3.get(c, {}).get(key) if paper else None for c in frame["component"]
            ]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _millions(value) -> str:
    if pd.isna(value):
        return ""
    if value == 0:
        return "0"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.4f}"


def write_parameter_breakdown(
    models: Mapping[str, Mapping],
    schema_path: str | Path,
    out_csv: str | Path,
    out_md: str | Path,
) -> pd.DataFrame:
    """Write :func:`parameter_breakdown` as csv (millions, exact to one parameter) and
    markdown (rounded to 0.1 M, small counts to 100 parameters); returns the table."""
    from microgen.data.schema import load_schema

    table = parameter_breakdown(models, load_schema(schema_path))
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    shown = table.copy()
    for column in shown.columns:
        if column.endswith("_M"):
            shown[column] = shown[column].map(_millions)
    for column in ("trainable_percent", "paper_trainable_percent"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    # The markdown drops the paper's columns when no model is the paper's.
    shown = shown.drop(
        columns=[c for c in shown if c.startswith("paper_") and table[c].isna().all()]
    )
    Path(out_md).write_text(shown.to_markdown(index=False, disable_numparse=True) + "\n")
    return table
