"""Evaluation of the 3D LDM: generate, *measure*, score, time.

* :func:`sample_volumes` — conditional generation for a table of raw target values
  (``n_per_target`` volumes each), DDIM or DDPM, classifier-free guidance ``w``, seeded.
* :func:`measure_volumes` — GraSPI descriptors of every generated volume with
  :func:`microgen.descriptors.volumes.graspi_descriptors`. The reference code instead
  scores generated volumes with its own feature predictor, which grades the model with a
  network trained on the same latents; here the features are measured on the voxels.
* :func:`r2_table` — per feature: coefficient of determination R² (target as truth),
  squared Pearson correlation (what the paper reports as "R²") and MAE.
* :func:`predict_process_parameters` — feature predictor on validation latents vs the true
  φ, χ, log time (score with :func:`r2_table`).
* :func:`time_sampling` — seconds per sample, denoising and decoding apart, vs batch size
  (paper Fig. 7).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microgen.device import select_device

from ..descriptors.volumes import graspi_descriptors
from .diffusion import LatentDiffusion3DPipeline, Sampler
from .models import VAE3D, ConditionNormalizer, FeaturePredictor
from .train import PROCESS_PARAMETERS, encode_volumes, load_split_table

__all__ = [
    "GeneratedVolumes",
    "sample_volumes",
    "measure_volumes",
    "r2_score",
    "pearson_r2",
    "r2_table",
    "predict_process_parameters",
    "time_sampling",
]


@dataclass
class GeneratedVolumes:
    """Output of :func:`sample_volumes`.

    ``volumes``: ``(N, D, H, W)`` uint8 phase ids. ``table``: one row per volume —
    ``target_id``, ``sample``, the raw target values (condition names), and, with a feature
    predictor, ``pred_<name>`` for each predicted column. ``timing``: one row per batch —
    ``batch_size``, ``denoise_s``, ``decode_s``.
    """

    volumes: np.ndarray
    table: pd.DataFrame
    timing: pd.DataFrame


def _batch_generator(seed: int, batch: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(batch)]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def sample_volumes(
    vae_dir: str | Path,
    ldm_dir: str | Path,
    targets: pd.DataFrame,
    n_per_target: int = 1,
    sampler: Sampler = "ddim",
    steps: int | None = 50,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    fp_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    pipeline: LatentDiffusion3DPipeline | None = None,
) -> GeneratedVolumes:
    """Generate ``n_per_target`` volumes per row of ``targets`` (raw condition values).

    Parameters
    ----------
    targets : DataFrame holding the LDM's condition columns (other columns are ignored).
    sampler, steps : ``"ddim"`` (η = 0) or ``"ddpm"`` (ancestral); ``steps=None`` = all
        training timesteps.
    guidance : classifier-free guidance scale ``w`` (1 = conditional only).
    seed : batch ``b`` uses the generator seeded by ``SeedSequence([seed, b])``; the result
        depends on ``batch_size`` as well.
    fp_dir : optional feature-predictor directory → ``pred_*`` columns (e.g. φ, χ, log time).
    pipeline : a ready pipeline (skips loading from the directories).
    """
    pipe = pipeline or LatentDiffusion3DPipeline.from_pretrained(vae_dir, ldm_dir, fp_dir, device)
    names = list(pipe.condition_names)
    missing = [n for n in names if n not in targets.columns]
    if missing:
        raise KeyError(f"targets lack condition column(s) {missing}")
    rows = targets[names].reset_index(drop=True)
    rep = rows.loc[rows.index.repeat(n_per_target)].reset_index(names="target_id")
    rep.insert(1, "sample", np.tile(np.arange(n_per_target), len(rows)))
    vols, preds, timing = [], [], []
    iterator = range(0, len(rep), batch_size)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"sample ({sampler})")
    for b, i in enumerate(iterator):
        chunk = rep.iloc[i : i + batch_size]
        out = pipe(chunk[names], sampler, steps, guidance, _batch_generator(seed, b))
        vols.append(out.volumes)
        if out.predicted is not None:
            preds.append(out.predicted.add_prefix("pred_"))
        timing.append(
            {
                "batch_size": len(chunk),
                "denoise_s": out.denoise_seconds,
                "decode_s": out.decode_seconds,
            }
        )
    table = rep
    if preds:
        table = pd.concat([rep, pd.concat(preds, ignore_index=True)], axis=1)
    volumes = np.concatenate(vols) if vols else np.empty((0,), np.uint8)
    return GeneratedVolumes(volumes, table, pd.DataFrame(timing))


def measure_volumes(
    volumes: np.ndarray | Sequence[np.ndarray],
    n_phases: int | None = None,
    neighbourhood: str = "full",
    progress: bool = False,
) -> pd.DataFrame:
    """GraSPI descriptors (``ABS_f_D``, ``vol_frac_*``, ``CT_f_*_tort1``, …) per volume.

    ``n_phases`` fixes the phase count for all volumes (a generated three-phase volume may
    happen to lack the mixed phase); default: inferred per volume.
    """
    it = list(volumes)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="GraSPI")
    rows = [
        graspi_descriptors(np.asarray(v), n_phases=n_phases, neighbourhood=neighbourhood).to_row()
        for v in it
    ]
    return pd.DataFrame(rows)


def r2_score(y_true, y_pred) -> float:
    """Coefficient of determination ``1 − SS_res / SS_tot`` (NaN pairs dropped)."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if len(t) < 2:
        return float("nan")
    ss_tot = float(((t - t.mean()) ** 2).sum())
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(((t - p) ** 2).sum()) / ss_tot


def pearson_r2(y_true, y_pred) -> float:
    """Squared Pearson correlation (the paper's "Pearson R²"); NaN pairs dropped."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if len(t) < 2 or t.std() == 0 or p.std() == 0:
        return float("nan")
    return float(np.corrcoef(t, p)[0, 1] ** 2)


def r2_table(
    targets: pd.DataFrame, measured: pd.DataFrame, features: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per feature: ``n``, ``r2`` (target as truth), ``pearson_r2``, ``mae``.

    ``targets`` and ``measured`` are aligned by row position; ``features`` default to the
    columns they share. Rows where either value is NaN are left out of that feature.
    """
    if len(targets) != len(measured):
        raise ValueError(f"{len(targets)} targets vs {len(measured)} measured rows")
    if features is None:
        features = [c for c in targets.columns if c in measured.columns]
    out = []
    for f in features:
        t = pd.to_numeric(targets[f], errors="coerce").to_numpy(float)
        m = pd.to_numeric(measured[f], errors="coerce").to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(m)
        out.append(
            {
                "feature": f,
                "n": int(ok.sum()),
                "r2": r2_score(t, m),
                "pearson_r2": pearson_r2(t, m),
                "mae": float(np.abs(t[ok] - m[ok]).mean()) if ok.any() else float("nan"),
            }
        )
    return pd.DataFrame(out)


@torch.no_grad()
def predict_process_parameters(
    h5: str | Path,
    split_csv: str | Path,
    vae_dir: str | Path,
    fp_dir: str | Path,
    split: str = "val",
    device: str | torch.device | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature predictor on the encoder μ of the ``split`` volumes.

    Returns ``(true, predicted)``: two aligned DataFrames with ``name`` and every FP output
    column (process parameters φ, χ, log time and any descriptors); feed them to
    :func:`r2_table`.
    """
    dev = select_device(device)
    table = load_split_table(h5, split_csv)
    table = table[table["split"] == split].reset_index(drop=True)
    vae = VAE3D.from_pretrained(vae_dir, device=dev)
    fp = FeaturePredictor.from_pretrained(fp_dir, device=dev)
    norm = ConditionNormalizer.load(Path(fp_dir) / "feature_normalizer.json")
    z = encode_volumes(vae, h5, table["name"], device=dev).to(dev)
    pred = pd.DataFrame(norm.inverse_transform(fp(z)), columns=list(norm.names))
    pred.insert(0, "name", table["name"])
    true = pd.DataFrame({"name": table["name"]})
    for n in norm.names:
        true[n] = pd.to_numeric(table[n], errors="coerce") if n in table else np.nan
    return true, pred


def time_sampling(
    vae_dir: str | Path,
    ldm_dir: str | Path,
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    sampler: Sampler = "ddim",
    steps: int | None = 50,
    repeats: int = 3,
    guidance: float = 1.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    warmup: bool = True,
) -> pd.DataFrame:
    """Seconds per sample vs batch size, denoising and decoding timed apart (Fig. 7).

    Conditions: the train-split mean of every condition (the normaliser's ``loc`` for
    ``standard`` normalisation). Returns ``batch_size, repeat, denoise_s_per_sample,
    decode_s_per_sample, total_s_per_sample, device, sampler, steps``.
    """
    pipe = LatentDiffusion3DPipeline.from_pretrained(vae_dir, ldm_dir, None, device)
    loc = np.asarray(pipe.ldm.normalizer.loc, float)
    cols = list(pipe.condition_names)
    if warmup:
        pipe(pd.DataFrame([loc], columns=cols), sampler, 2, guidance, _batch_generator(seed, 0))
    rows = []
    for bs in batch_sizes:
        cond = pd.DataFrame(np.repeat(loc[None], bs, 0), columns=cols)
        for r in range(repeats):
            t0 = time.perf_counter()
            out = pipe(cond, sampler, steps, guidance, _batch_generator(seed, r))
            wall = time.perf_counter() - t0
            rows.append(
                {
                    "batch_size": int(bs),
                    "repeat": r,
                    "denoise_s_per_sample": out.denoise_seconds / bs,
                    "decode_s_per_sample": out.decode_seconds / bs,
                    "total_s_per_sample": wall / bs,
                    "device": str(pipe.device),
                    "sampler": sampler,
                    "steps": steps,
                }
            )
    return pd.DataFrame(rows)


__all__ += ["PROCESS_PARAMETERS"]
