"""Table B1 of Phan et al. (2025): hyperparameters of the fine-tuned models as configured.

One column per ``generate.models`` entry; a key the entry leaves out takes the default of
:class:`~microgen.generate.finetune.FineTuneConfig`, read from the dataclass (the one place
the defaults are stated). Sampling steps and guidance are the model's ``sampling`` block
over ``generate.sampling`` (:func:`microgen.plan.sampling_params`). Beside a model whose
base and method match a column of the paper's Table B1 (the mapping is
:mod:`microgen.generate.paper_values`) stands that column, so a difference shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from microgen.generate.finetune import FineTuneConfig
from microgen.generate.paper_values import paper_column
from microgen.generate.variants import sd_model_name
from microgen.plan import NOT_FINETUNE_SETTINGS

__all__ = [
    "NOT_LISTED",
    "NOT_TRAINED",
    "finetune_method",
    "finetune_table",
    "resolved_settings",
    "write_finetune_table",
]

NOT_TRAINED = "–"
NOT_LISTED = "not listed"


def resolved_settings(name: str, spec: Mapping) -> dict:
    """A model entry's fine-tuning settings, with the ``FineTuneConfig`` default of every key
    it leaves out (``prompt_mode`` is the entry's first mode).

    Raises
    ------
    ValueError
        naming the model and the key when the entry has a key ``FineTuneConfig`` lacks, or a
        value it refuses.
    """
    known = {f.name for f in fields(FineTuneConfig)}
    settings = {k: v for k, v in spec.items() if k not in NOT_FINETUNE_SETTINGS}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"generate.models.{name}: unknown fine-tuning key(s) {unknown}")
    modes = list(spec.get("prompt_modes") or ["full_text"])
    try:
        return asdict(FineTuneConfig(**{**settings, "prompt_mode": modes[0]}))
    except ValueError as err:
        raise ValueError(f"generate.models.{name}: {err}") from err


def finetune_method(settings: Mapping) -> str:
    """The fine-tuning method of resolved settings, named like Table B1's columns.

    ``LoRA only`` (``DoRA only``) trains denoiser adapters alone: no prior preservation and
    no text-encoder adapters (the paper's footnote 1). Otherwise ``DreamBooth + LoRA``
    (``+ DoRA`` with ``use_dora``), qualified ``(no prior preservation)`` when the text
    encoders are adapted without DreamBooth's class images.
    """
    adapter = "DoRA" if settings["use_dora"] else "LoRA"
    if not settings["prior_preservation"] and not settings["train_text_encoder"]:
        return f"{adapter} only"
    method = f"DreamBooth + {adapter}"
    return method if settings["prior_preservation"] else f"{method} (no prior preservation)"


def _rate(value) -> str:
    return NOT_TRAINED if value is None else f"{float(value):g}"


def _column(name: str, spec: Mapping) -> tuple[dict[str, str], dict[str, str] | None]:
    """(our column, the paper's column or None) of one model entry."""
    s = resolved_settings(name, spec)
    sampling = spec["sampling"]
    base = str(spec["base"])
    method = finetune_method(s)
    batch = str(s["batch_size"])
    if spec.get("gpus", 1) > 1:  # DDP: the batch is per process, as the paper's SDXL rows
        batch += f" per GPU × {spec['gpus']} GPUs"
    if s["gradient_accumulation_steps"] > 1:
        batch += f" × {s['gradient_accumulation_steps']} accumulated"
    ours = {
        "Family / base": f"{s['family'].upper()} / {base}",
        "Method": method,
        "Rank": str(s["rank"]),
        "Learning rate": _rate(s["learning_rate"]),
        "Text-encoder learning rate": _rate(
            s["text_encoder_lr"] if s["train_text_encoder"] else None
        ),
        "Batch size": batch,
        "Max steps": str(s["max_steps"]),
        "Resolution (px)": str(s["resolution"]),
        "Class images": str(s["num_class_images"]) if s["prior_preservation"] else NOT_TRAINED,
        "Sampling steps": str(sampling["steps"]),
        "Classifier-free guidance": f"{float(sampling['guidance']):g}",
        "Prompt modes": ", ".join(spec.get("prompt_modes") or [s["prompt_mode"]]),
    }
    model = sd_model_name({**spec, "family": s["family"]})
    published = paper_column(model, method)
    if published is None:
        return ours, None
    paper = dict.fromkeys(ours, NOT_LISTED)
    paper.update(
        {
            "Family / base": model,
            "Method": method.split(" (", 1)[0],
            "Rank": str(published["rank"]),
            "Learning rate": _rate(published["learning_rate"]),
            "Text-encoder learning rate": _rate(published["text_encoder_lr"]),
            "Batch size": f"{published['batch_size']} (per GPU)",
            "Sampling steps": str(published["sampling_steps"]),
            "Classifier-free guidance": f"{published['guidance']:g}",
        }
    )
    return ours, paper


def finetune_table(models: Mapping[str, Mapping]) -> pd.DataFrame:
    """Table B1: one row per hyperparameter, one column per configured model.

    Parameters
    ----------
    models : model name -> its ``generate.models`` entry with the resolved ``base`` and
        ``sampling`` (the model's over the shared, :func:`microgen.plan.finetune_table_params`),
        in column order.

    Returns
    -------
    DataFrame with a ``hyperparameter`` column, one text column per model and, right of a
    model that matches a paper column, ``{model} (paper)``: the paper's value, or
    :data:`NOT_LISTED` where Table B1 has no such row.
    """
    if not models:
        raise ValueError("Table B1 needs at least one generate.models entry")
    columns: dict[str, dict[str, str]] = {}
    for name, spec in models.items():
        ours, paper = _column(name, spec)
        columns[name] = ours
        if paper is not None:
            columns[f"{name} (paper)"] = paper
    return pd.DataFrame(columns).rename_axis("hyperparameter").reset_index()


def write_finetune_table(
    models: Mapping[str, Mapping], out_csv: str | Path, out_md: str | Path
) -> pd.DataFrame:
    """Write :func:`finetune_table` as csv and markdown; returns the table."""
    table = finetune_table(models)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    Path(out_md).write_text(table.to_markdown(index=False) + "\n")
    return table
