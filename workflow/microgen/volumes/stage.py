"""Stage functions of the 3D rules: plain settings in, model folders, tables and figures out.

Training order (each stage frozen for the next): VAE → feature predictor → latent DDPM.
Evaluation samples the LDM at the validation volumes' measured features, measures every
generated volume with the GraSPI-equivalent descriptors (never with the predictor), and
reports R² per conditioned feature for each sampler, the predictor's recovery of the
process parameters (φ, χ, log time), diversity at one fixed input and time per sample
against batch size.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.checkpoint import reset_stale_checkpoints
from microgen.volumes.diffusion import DiffusionConfig
from microgen.volumes.evaluate import (
    measure_volumes,
    predict_process_parameters,
    r2_table,
    sample_volumes,
    time_sampling,
)
from microgen.volumes.models import VAE3D, UNet3DConfig, VAE3DConfig
from microgen.volumes.train import (
    LDM_FIT,
    FitSettings,
    load_split_table,
    train_feature_predictor,
    train_ldm,
    train_vae,
)


def _config(cls: type, values: Mapping | None, **fixed: object):
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(values or {}).items()}
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{**values, **fixed})


def _split_fit(
    train: Mapping[str, object], base: FitSettings | None = None
) -> tuple[FitSettings, dict]:
    """A config block's :class:`FitSettings` fields (over ``base``) and the model's own
    settings."""
    names = {f.name for f in fields(FitSettings)}
    fit = replace(base or FitSettings(), **{k: v for k, v in train.items() if k in names})
    return fit, {k: v for k, v in train.items() if k not in names}


def train_vae_stage(
    h5: str, split_csv: str, out_dir: str, architecture: Mapping | None = None, **train: object
) -> None:
    """Train the 3D VAE; ``architecture`` holds :class:`VAE3DConfig` fields."""
    reset_stale_checkpoints(
        out_dir, {"architecture": architecture, **train}, inputs=(h5, split_csv)
    )
    fit, rest = _split_fit(train)
    if rest:
        raise ValueError(f"volumes.vae has no setting(s) {sorted(rest)}")
    train_vae(h5, split_csv, out_dir, config=_config(VAE3DConfig, architecture), fit=fit)


def train_feature_predictor_stage(
    h5: str, split_csv: str, vae_dir: str, out_dir: str, **train: object
) -> None:
    """Train the feature predictor on the frozen VAE's latents."""
    reset_stale_checkpoints(
        out_dir, dict(train), inputs=(h5, split_csv, Path(vae_dir) / "model.safetensors")
    )
    fit, model = _split_fit(train)
    train_feature_predictor(h5, split_csv, vae_dir, out_dir, fit=fit, **model)


def train_ldm_stage(
    h5: str,
    split_csv: str,
    vae_dir: str,
    out_dir: str,
    condition_names: Sequence[str],
    architecture: Mapping | None = None,
    diffusion: Mapping | None = None,
    **train: object,
) -> None:
    """Train the conditional latent DDPM; ``architecture`` holds :class:`UNet3DConfig`
    widths (channels and shapes are fixed by the VAE and the conditions)."""
    reset_stale_checkpoints(
        out_dir,
        {"conditions": list(condition_names), "architecture": architecture,
         "diffusion": diffusion, **train},
        inputs=(h5, split_csv, Path(vae_dir) / "model.safetensors"),
    )  # fmt: skip
    fit, model = _split_fit(train, LDM_FIT)
    vae = VAE3D.from_pretrained(vae_dir)
    latent = tuple(vae.config.latent_shape)
    unet = _config(
        UNet3DConfig,
        architecture,
        in_channels=latent[0],
        sample_shape=latent[1:],
        cond_dim=len(condition_names),
    )
    train_ldm(
        h5, split_csv, vae_dir, out_dir,
        condition_names=tuple(condition_names),
        unet_config=unet,
        diffusion=_config(DiffusionConfig, diffusion),
        fit=fit,
        **model,
    )  # fmt: skip


def evaluate_ldm_stage(
    h5: str,
    split_csv: str,
    vae_dir: str,
    fp_dir: str,
    ldm_dir: str,
    out_tables: Mapping[str, str],
    condition_names: Sequence[str],
    samplers: Sequence[Mapping],
    n_per_target: int = 1,
    guidance: float = 1.0,
    diversity_samples: int = 32,
    batch_sizes: Sequence[int] = (1, 4, 16),
    batch_size: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate the LDM on the validation volumes; write the tables the 3D figures draw.

    ``samplers``: e.g. ``[{"sampler": "ddim", "steps": 50}, {"sampler": "ddpm",
    "steps": 1000}]``. ``out_tables`` keys: ``r2``, ``process``, ``timing``, and
    ``measured`` (requested ``target_{f}`` and measured ``{f}`` features of each volume of
    the first sampler) and ``diversity`` (features measured on volumes sampled for one
    fixed request, with that request as ``target_{f}``).
    """
    table = load_split_table(h5, split_csv)
    names = list(condition_names)
    val = table[table["split"] == "val"].dropna(subset=names).reset_index(drop=True)
    if val.empty:
        raise ValueError("no validation volume has every condition feature")
    targets = val[names]
    rows, scatter = [], None
    for spec in samplers:
        t0 = time.perf_counter()
        generated = sample_volumes(
            vae_dir, ldm_dir, targets, n_per_target=n_per_target, sampler=spec["sampler"],
            steps=spec["steps"], guidance=guidance, seed=seed, batch_size=batch_size,
            progress=False,
        )  # fmt: skip
        seconds = (time.perf_counter() - t0) / len(generated.volumes)
        measured = measure_volumes(generated.volumes)
        wanted = generated.table[names].reset_index(drop=True)
        scores = r2_table(wanted, measured, names)
        scores.insert(0, "sampler", spec["sampler"])
        scores.insert(1, "steps", spec["steps"])
        scores["seconds_per_sample"] = seconds
        rows.append(scores)
        if scatter is None:
            scatter = (wanted, measured, spec)
    r2 = pd.concat(rows, ignore_index=True)
    _write(r2, out_tables["r2"])
    wanted, measured, spec = scatter
    _write(_beside_targets(measured[names], wanted, spec), out_tables["measured"])

    # Diversity at one fixed input: the validation volume closest to the median features.
    median = targets.median()
    pick = targets.iloc[[int(((targets - median) ** 2).sum(axis=1).argmin())]]
    fixed = pick.loc[pick.index.repeat(diversity_samples)].reset_index(drop=True)
    first = samplers[0]
    diverse = sample_volumes(
        vae_dir, ldm_dir, fixed, n_per_target=1, sampler=first["sampler"], steps=first["steps"],
        guidance=guidance, seed=seed + 1, batch_size=batch_size, progress=False,
    )  # fmt: skip
    diverse_measured = measure_volumes(diverse.volumes)[names]
    _write(_beside_targets(diverse_measured, fixed, first), out_tables["diversity"])

    true, predicted = predict_process_parameters(h5, split_csv, vae_dir, fp_dir)
    process = r2_table(true.drop(columns="name"), predicted.drop(columns="name"))
    _write(process, out_tables["process"])

    timing = time_sampling(
        vae_dir, ldm_dir, batch_sizes=batch_sizes, sampler=first["sampler"],
        steps=first["steps"], repeats=2, guidance=guidance, seed=seed,
    )  # fmt: skip
    _write(timing, out_tables["timing"])
    return r2


def sample_target_table_stage(
    h5: str,
    split_csv: str,
    vae_dir: str,
    fp_dir: str,
    ldm_dir: str,
    table_csv: str,
    out_h5: str,
    out_features: str,
    condition_names: Sequence[str],
    sampler: str = "ddim",
    steps: int | None = 50,
    n_per_target: int = 1,
    guidance: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Sample the LDM at a user's feature targets and measure what it drew.

    ``table_csv`` has one column per conditioned feature (and optionally ``n``, volumes per
    row, default ``n_per_target``); it is checked before the models load
    (:func:`microgen.data.condition_tables.read_value_table`), and a target outside the
    training volumes' min / max warns and is sampled. Every volume is measured on its voxels
    (:func:`measure_volumes`) and the feature predictor reads its latent (the process
    parameters φ, χ, log time and the features it was trained on).

    Writes ``out_h5`` (the data's microgen3D schema: the measured features as attributes, the
    request as ``target_{f}``, the predictions as ``pred_{p}``) and ``out_features``: per
    volume its ``name``, ``target_id`` (the table row), ``sample``, the variables outside the
    training range, ``{f}_target`` beside ``{f}_measured`` for each conditioned feature, the
    other measured features (``{g}_measured``) and ``{p}_predicted``.
    """
    from microgen.data.condition_tables import read_value_table, training_ranges
    from microgen.volumes.hdf5 import VolumeWriter

    names = list(condition_names)
    train = load_split_table(h5, split_csv)
    spans, _ = training_ranges(train[train["split"] == "train"], names)
    table = read_value_table(table_csv, names, default_n=n_per_target, spans=spans)
    index, rows, _ = table.grid(seed)
    generated = sample_volumes(
        vae_dir, ldm_dir, pd.DataFrame(rows, columns=names), sampler=sampler, steps=steps,
        guidance=guidance, seed=seed, batch_size=batch_size, fp_dir=fp_dir, progress=False,
    )  # fmt: skip
    measured = measure_volumes(generated.volumes)
    predicted = generated.table.filter(like="pred_")
    samples = [k for n in table.counts for k in range(n)]  # the grid is row by row
    out = pd.DataFrame(
        {"name": [f"target{i:03d}-sample{k:02d}" for i, k in zip(index, samples, strict=True)],
         "target_id": index, "sample": samples,
         "outside_training_range": [" ".join(table.outside[i]) for i in index]}
    )  # fmt: skip
    for f in names:
        out[f"{f}_target"] = [table.rows[i][f] for i in index]
        out[f"{f}_measured"] = measured[f].to_numpy()
    for g in (c for c in measured.columns if c not in names):
        out[f"{g}_measured"] = measured[g].to_numpy()
    for p in predicted.columns:
        out[f"{p.removeprefix('pred_')}_predicted"] = predicted[p].to_numpy()
    with VolumeWriter(out_h5, shape=generated.volumes.shape[1:]) as writer:
        for k, volume in enumerate(generated.volumes):
            attrs = {**measured.iloc[k].to_dict(), **predicted.iloc[k].to_dict(),
                     **{f"target_{f}": table.rows[index[k]][f] for f in names},
                     "source": "generated"}  # fmt: skip
            writer.add(out["name"].iloc[k], volume, attrs)
    _write(out, out_features)
    return out


def _beside_targets(measured: pd.DataFrame, targets: pd.DataFrame, spec: Mapping) -> pd.DataFrame:
    """Measured features with the requested ones as ``target_{f}`` and the sampler."""
    table = measured.reset_index(drop=True).copy()
    for name in targets.columns:
        table[f"target_{name}"] = targets[name].to_numpy()
    table["sampler"], table["steps"] = spec["sampler"], spec["steps"]
    return table


def _write(table: pd.DataFrame, csv: str) -> None:
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    Path(csv).with_suffix(".md").write_text(
        table.round(4).replace({np.nan: None}).to_markdown(index=False) + "\n"
    )
