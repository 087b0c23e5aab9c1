"""Condition use: does a model's denoising loss depend on the conditions it is given?

A model that follows its conditions denoises an image better when told the image's own
conditions than when told nothing or a wrong value. For each held-out image the model's
training loss is measured with the image's conditions ("as requested"), with the
unconditional embedding the sampler's guidance uses ("no condition"), and with one variable at
a time changed to another value seen in training ("<variable> changed"). Every variant sees
the same latents, timesteps and noise, so the differences are paired: a variant whose loss is
no higher than "as requested" is a condition the model does not read. This needs no sampling
and no segmenter, so it separates "the model ignores temperature" from "the sampler or the
measurement hides it".

SD3 models are measured with the rectified-flow velocity loss (logit-normal timesteps), SDXL
models with their ε-prediction loss, whatever the fine-tune was trained with: the same loss
for every variant is what makes them comparable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microgen.data.split import read_split_table
from microgen.generate.adapters import FINETUNE_CONFIG
from microgen.generate.common import (
    atomic_write_csv,
    denoiser,
    encode_latent_stats,
    epsilon_loss,
    family_of,
    flow_matching_loss,
    load_base_pipeline,
    load_images,
    sdxl_time_ids,
    t5_length,
    training_scheduler,
)
from microgen.generate.pipeline import ParameterAwareText, load_parameter_aware_pipeline

VALIDATION_SPLITS = ("val_seen", "val_unseen")
REQUESTED = "as requested"
UNCONDITIONAL = "no condition"


def changed_values(values: Sequence, choices: Sequence, generator: np.random.Generator) -> list:
    """For each of ``values`` a different value drawn uniformly from ``choices``.

    Raises ``ValueError`` when ``choices`` holds no value other than one of ``values`` (the
    variable cannot be changed)."""
    choices = list(dict.fromkeys(choices))
    out = []
    for value in values:
        others = [c for c in choices if c != value]
        if not others:
            raise ValueError(f"no value other than {value!r} among {choices}")
        out.append(others[generator.integers(len(others))])
    return out


def condition_variants(
    conditions: Sequence[Mapping],
    variables: Sequence[str],
    train_values: Mapping[str, Sequence],
    seed: int = 0,
) -> dict[str, list[dict] | None]:
    """``{variant: conditions}``: the requested conditions, ``None`` for no condition, and per
    variable the conditions with that variable alone changed (:func:`changed_values`)."""
    rng = np.random.default_rng(seed)
    variants: dict[str, list[dict] | None] = {REQUESTED: [dict(c) for c in conditions],
                                              UNCONDITIONAL: None}  # fmt: skip
    for name in variables:
        new = changed_values([c[name] for c in conditions], train_values[name], rng)
        variants[f"{name} changed"] = [{**c, name: v} for c, v in zip(conditions, new, strict=True)]
    return variants


@torch.no_grad()
def paired_losses(
    pipe,
    text: ParameterAwareText,
    latents: torch.Tensor,
    variants: Mapping[str, list[dict] | None],
    prompt_mode: str,
    draws: int = 8,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Per-image denoising loss of each variant, averaged over ``draws`` (timestep, noise)
    draws that every variant shares; ``{variant: array (n_images,)}``."""
    family = family_of(pipe)
    net = denoiser(pipe)
    scheduler = training_scheduler(pipe)
    device = net.device
    out: dict[str, np.ndarray] = {}
    for name, conditions in variants.items():
        total = torch.zeros(len(latents))
        for start in range(0, len(latents), batch_size):
            rows = slice(start, start + batch_size)
            x = latents[rows].to(device, net.dtype)
            if conditions is None:
                embeds, pooled = text.negative(len(x), device=device)
            else:
                chunk = conditions[rows]
                prompts = text.prompts(chunk, prompt_mode)
                use = chunk if prompt_mode != "text_only" else None
                embeds, pooled = text.encode(prompts, use, device=device)
            for d in range(draws):
                gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + d * 9973 + start)
                if family == "sd3":
                    loss = flow_matching_loss(net, x, embeds, pooled, scheduler, gen,
                                              per_sample=True)  # fmt: skip
                else:
                    time_ids = sdxl_time_ids(x.shape[-1] * pipe.vae_scale_factor, len(x))
                    loss = epsilon_loss(net, x, embeds, pooled, time_ids, scheduler, gen,
                                        per_sample=True)  # fmt: skip
                total[rows] += loss.float().cpu() / draws
        out[name] = total.numpy()
    return out


def summarise(losses: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per variant: mean loss, its paired increase over "as requested" in % of that
    loss, and the standard error of the increase over images."""
    base = losses[REQUESTED]
    rows = []
    for name, loss in losses.items():
        diff = (loss - base) / base.mean() * 100
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
        rows.append({"variant": name, "images": len(loss), "loss": float(loss.mean()),
                     "increase_pct": float(diff.mean()), "increase_se_pct": float(se)})  # fmt: skip
    return pd.DataFrame(rows)


def image_latents(pipe, data_dir: str | Path, ids: Sequence[str], resolution: int) -> torch.Tensor:
    """Posterior-mean latents of the images, shifted and scaled as the model is trained."""
    mean, _ = encode_latent_stats(pipe.vae, load_images(data_dir, ids, resolution))
    shift = pipe.vae.config.shift_factor or 0.0
    return (mean - shift) * pipe.vae.config.scaling_factor


def condition_use_table(
    base: str | Path,
    model_dirs: Mapping[str, str | Path],
    data_dir: str | Path,
    split_csv: str | Path,
    draws: int = 8,
    seed: int = 0,
    splits: Sequence[str] = VALIDATION_SPLITS,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """The condition-use rows of the base (``text_only`` prompts) and of each fine-tune.

    Parameters
    ----------
    base : the base the fine-tunes were trained on (hub id or folder).
    model_dirs : ``{prompt_mode: fine-tune directory}`` of one model.
    data_dir, split_csv : prepared data set and split; images of ``splits`` are measured, and
        a changed variable takes another value of the ``train`` split.
    draws, seed : shared (timestep, noise) draws per image.

    Returns
    -------
    Columns ``model`` (``base`` or the prompt mode), ``variant``, ``images``, ``loss``,
    ``increase_pct``, ``increase_se_pct``.
    """
    if not model_dirs:
        raise ValueError("no fine-tuned model given")
    table = read_split_table(data_dir, split_csv)
    rows = table[table["split"].isin(list(splits))].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"{split_csv}: no images in splits {list(splits)}")
    train = table[table["split"] == "train"]
    frames = []
    variants = latents = None
    for mode, model_dir in model_dirs.items():
        pipe, text = load_parameter_aware_pipeline(base, model_dir, device)
        if variants is None:
            # Every prompt mode of one model shares the schema, the frozen VAE and the
            # resolution: the variants and latents of the first serve them all and the base.
            schema, variables = text.schema, list(text.schema.variables)
            train_values = {v: sorted(train[v].unique().tolist()) for v in variables}
            variants = condition_variants(
                rows[variables].to_dict("records"), variables, train_values, seed
            )
            config = json.loads((Path(model_dir) / FINETUNE_CONFIG).read_text())
            latents = image_latents(pipe, data_dir, rows["id"].tolist(), config["resolution"])
        losses = paired_losses(pipe, text, latents, variants, mode, draws, seed)
        frames.append(summarise(losses).assign(model=mode))
        family, net = family_of(pipe), denoiser(pipe)
        del pipe, text
    # The base, read with the text-only prompts of the same schema: what the fine-tunes start from.
    pipe = load_base_pipeline(base, net.dtype, family).to(net.device)
    text = ParameterAwareText(pipe, schema, None, None, t5_length(base))
    losses = paired_losses(pipe, text, latents, variants, "text_only", draws, seed)
    frames.insert(0, summarise(losses).assign(model="base"))
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "variant", "images", "loss", "increase_pct", "increase_se_pct"]]


def write_condition_use(table: pd.DataFrame, out_csv: str | Path, out_md: str | Path) -> None:
    """The table as CSV and as a Markdown table of increases (± standard error)."""
    atomic_write_csv(table, out_csv)
    cell = table.assign(
        value=[f"{m:+.2f} ± {s:.2f}" for m, s in zip(table["increase_pct"],
                                                      table["increase_se_pct"], strict=True)]
    )  # fmt: skip
    wide = cell.pivot(index="variant", columns="model", values="value")
    wide = wide.reindex(index=list(dict.fromkeys(table["variant"])),
                        columns=list(dict.fromkeys(table["model"])))  # fmt: skip
    n = int(table["images"].iloc[0])
    Path(out_md).write_text(
        "Increase of the denoising loss (% of the loss with the requested conditions, "
        f"paired over {n} held-out images; ± standard error) when the condition is removed or "
        "one variable is changed. Near zero: the model does not read that condition.\n\n"
        + wide.to_markdown()
        + "\n"
    )
