"""Training of the three LDM stages, in order, each with its predecessors frozen.

1. :func:`train_vae` — VAE on the train split's volumes (MSE-on-one-hot or CE + KL·1e-6).
2. :func:`train_feature_predictor` — MLP from the frozen encoder's μ latent to normalised
   features (descriptors + process parameters φ, χ, log time).
3. :func:`train_ldm` — v- (or ε-) prediction U-Net on latents scaled to unit variance, conditioned
   on the *measured* (HDF5-attribute) descriptors normalised with a
   :class:`~.models.ConditionNormalizer` fitted on the train split; conditions are dropped
   with probability ``p_uncond`` (learned null context) for classifier-free guidance. The
   paper conditions on the feature predictor's outputs and does not normalise them.

Shared loop (:func:`_fit`, its settings in one :class:`FitSettings`): Adam + per-step
cosine annealing to ``min_lr`` (paper), an optional exponential moving average of the
weights (``ema_decay``, used for validation and the saved weights), fixed number of epochs,
validation loss every epoch.
Determinism: the epoch's batch order comes from ``default_rng([seed, epoch])`` and every
step reseeds torch with ``(seed, step)``, so a resumed run reproduces the uninterrupted one.

Checkpoints (:class:`microgen.checkpoint.Checkpoints`), every ``checkpoint_every`` epochs
and after the last: ``out_dir/checkpoints/step-NNNNNNN/`` (NNNNNNN the epoch) holds
``model/`` (what ``save_fn`` writes, with the weight average applied), ``state.json``
(epoch, best validation loss, epochs, batch size), ``training_state`` (raw weights,
optimiser, LR schedule, weight average) and ``train_log.csv`` up to that epoch; the
best-validation weights are kept in ``checkpoints/best/``. Outputs, written from the
checkpoints at the end of every run that reaches ``epochs`` (also one that resumes a
finished run whose outputs were deleted): the final model in ``out_dir``, ``out_dir/best``
and ``out_dir/train_log.csv``. A finished run keeps its last checkpoint without training
state. ``stop_after`` ends a call after that many epochs (a time-sliced job), leaving only
the checkpoints; call again with ``resume=True`` to continue.
Device: :func:`microgen.device.select_device` (cuda if available); bf16 autocast on cuda only.

Augmentation (``FitSettings.augment``; VAE, feature predictor, LDM): a few hundred volumes
from a dozen runs are too few for the VAE and the predictor not to memorise them (measured on the
embedded run: VAE voxel accuracy 0.91 on train, 0.73 on held-out runs; predictor R² of φ
+1.0 on train, −0.9 on validation). :func:`lateral_symmetry` draws transformations that map
a volume to an equally likely one without touching the electrode axis 0, so the targets
keep their meaning: ``"lateral"`` flips and swaps axes 1 and 2, ``"lateral_periodic"`` adds
cyclic shifts along them (right for periodic simulations such as the Cahn–Hilliard one).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from microgen.checkpoint import (
    MODEL,
    TRAINING_STATE,
    Checkpoints,
    WeightAverage,
    load_state,
    save_state,
)
from microgen.device import select_device

from .diffusion import DiffusionConfig, LDMBundle, make_scheduler, save_ldm
from .hdf5 import VolumeFile, read_features
from .models import (
    VAE3D,
    ConditionNormalizer,
    FeaturePredictor,
    FeaturePredictorConfig,
    UNet3DConditional,
    UNet3DConfig,
    VAE3DConfig,
)
from .splits import read_split

__all__ = [
    "FitSettings",
    "LDM_FIT",
    "lateral_symmetry",
    "train_vae",
    "train_feature_predictor",
    "train_ldm",
    "load_split_table",
    "encode_volumes",
    "PROCESS_PARAMETERS",
]

PROCESS_PARAMETERS = ("phi", "chi", "log_time")
STATE = "state.json"  # epoch, best, epochs, batch size: stays after the run finishes
AUGMENTS = ("none", "lateral", "lateral_periodic")


@dataclass(frozen=True)
class FitSettings:
    """How one of the three 3D models is trained; the defaults are MicroGen3D's and are
    stated here only.

    Attributes
    ----------
    epochs, batch_size : the paper's 500 epochs of batches of 32.
    lr, min_lr : Adam's learning rate, annealed per step on a cosine to ``min_lr``
        (paper: 5e-5 → 5e-7; :data:`LDM_FIT` for the LDM).
    augment : ``"none"`` (paper), ``"lateral"`` or ``"lateral_periodic"``
        (:func:`lateral_symmetry`).
    augment_copies : feature predictor and LDM: transformed copies encoded per training
        volume (the VAE transforms every batch instead).
    seed : every random draw of the run.
    ema_decay : > 0 keeps an exponential moving average of the weights, used for
        validation, ``best/`` and the saved model.
    resume, checkpoint_every, stop_after : continue from the newest checkpoint; write one
        every that many epochs; end the call after that many epochs (a time slice).
    progress : a progress bar over the run's steps.
    """

    epochs: int = 500
    batch_size: int = 32
    lr: float = 5e-5
    min_lr: float = 5e-7
    augment: str = "none"
    augment_copies: int = 8
    seed: int = 0
    ema_decay: float = 0.0
    resume: bool = True
    checkpoint_every: int = 1
    stop_after: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.augment_copies < 1:
            raise ValueError(f"augment_copies must be at least 1, got {self.augment_copies}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


#: The LDM's learning rates: the paper's 1e-6 → 1e-7 suits 500 epochs of 26 800 volumes,
#: not short runs.
LDM_FIT = FitSettings(lr=1e-4, min_lr=1e-6)


# --------------------------------------------------------------------------- data


def load_split_table(h5: str | Path, split_csv: str | Path) -> pd.DataFrame:
    """Features of every volume (HDF5 attributes) joined with its split label."""
    feats = read_features(h5)
    feats["name"] = feats["name"].astype(str)
    split = read_split(split_csv)[["name", "split"]]
    table = feats.merge(split, on="name", how="inner", validate="one_to_one")
    missing = set(split["name"]) - set(table["name"])
    if missing:
        raise KeyError(f"{len(missing)} split name(s) not in {h5}, e.g. {sorted(missing)[:3]}")
    if not (table["split"] == "train").any():
        raise ValueError("the split has no training volumes")
    return table


class _Volumes:
    """Volumes of ``names`` from an HDF5 file, preloaded when under ``cache_bytes``."""

    def __init__(self, h5: str | Path, names: Sequence[str], cache_bytes: float = 2e9):
        self.file = VolumeFile(h5)
        self.names = list(names)
        self.shape = self.file.shape
        nbytes = len(self.names) * int(np.prod(self.shape))
        self.cache = (
            torch.from_numpy(np.stack([self.file[n] for n in self.names]))
            if nbytes <= cache_bytes and self.names
            else None
        )

    def __len__(self) -> int:
        return len(self.names)

    def get(self, idx: Sequence[int]) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[torch.as_tensor(np.asarray(idx), dtype=torch.long)]
        return torch.from_numpy(np.stack([self.file[self.names[i]] for i in idx]))


def _n_phases_of(h5: str | Path) -> int:
    import h5py

    with h5py.File(h5, "r") as f:
        if "three_phase" in f.attrs:
            return 3 if bool(f.attrs["three_phase"]) else 2
    return 3


@torch.no_grad()
def encode_volumes(
    vae: VAE3D,
    h5: str | Path,
    names: Sequence[str],
    batch_size: int = 16,
    device: str | torch.device | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Deterministic latents (encoder μ) of the named volumes, ``(N, *latent_shape)`` on CPU.

    ``transform`` maps each ``(B, Z, Y, X)`` batch of phase ids before encoding (e.g.
    :func:`lateral_symmetry` for augmented copies).
    """
    dev = select_device(device)
    vae = vae.to(dev).eval()
    vols = _Volumes(h5, names, cache_bytes=0)
    out = []
    for i in range(0, len(vols), batch_size):
        x = vols.get(range(i, min(i + batch_size, len(vols))))
        if transform is not None:
            x = transform(x)
        x = x.to(dev)
        with _autocast(dev):
            out.append(vae.encode(x)[0].float().cpu())
    if not out:
        return torch.empty((0, *vae.config.latent_shape))
    return torch.cat(out)


AUGMENTATIONS = ("none", "lateral", "lateral_periodic")


def lateral_symmetry(
    volumes: torch.Tensor, periodic: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random lateral symmetry per volume of a ``(B, Z, Y, X)`` batch.

    Each volume gets independent flips of axes Y and X, a Y↔X swap when they have equal
    length, and with ``periodic`` a cyclic shift along Y and X. Axis Z (0 of a volume) is the
    electrode normal of the GraSPI descriptors, so it is never flipped, swapped or shifted:
    φ, χ, time and the volume fractions are invariant under all of these; the tortuosities
    are invariant under flips and swaps and, for a periodic volume, change under a lateral
    shift only where a domain crosses the lateral boundary.
    """
    out = []
    _, _, ny, nx = volumes.shape

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    for v in volumes:
        if draw(2):
            v = v.flip(1)
        if draw(2):
            v = v.flip(2)
        if ny == nx and draw(2):
            v = v.transpose(1, 2)
        if periodic:
            v = torch.roll(v, shifts=(draw(ny), draw(nx)), dims=(1, 2))
        out.append(v)
    return torch.stack(out)


def _augmented_latents(
    vae: VAE3D,
    h5: str | Path,
    names: Sequence[str],
    fit: FitSettings,
    device: torch.device,
) -> list[torch.Tensor]:
    """``fit.augment_copies − 1`` encodings of ``names``, each through a fresh
    :func:`lateral_symmetry` per volume drawn from ``fit.seed`` (none without
    augmentation)."""
    if fit.augment == "none":
        return []
    gen = torch.Generator().manual_seed(fit.seed)
    periodic = fit.augment == "lateral_periodic"
    return [
        encode_volumes(
            vae, h5, names, device=device, transform=lambda x: lateral_symmetry(x, periodic, gen)
        )
        for _ in range(fit.augment_copies - 1)
    ]


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _finite_rows(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not among the HDF5 attributes")
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce")
    ok = np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)
    return table.loc[ok].reset_index(drop=True)


# --------------------------------------------------------------------------- shared loop


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1)[0])


def _resume_fit(
    checkpoints: Checkpoints,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    ema: WeightAverage | None,
    *,
    epochs: int,
    batch_size: int,
) -> tuple[int, float, list[dict]]:
    """Restore the newest checkpoint, if any: ``(epochs done, best validation loss, log)``."""
    found = checkpoints.latest()
    if found is None:
        return 0, math.inf, []
    start_epoch, folder = found
    meta = json.loads((folder / STATE).read_text())
    # The cosine schedule spans epochs × steps per epoch: another length is another run.
    if meta["epochs"] != epochs or meta["batch_size"] != batch_size:
        raise ValueError(
            f"{folder} was written for epochs={meta['epochs']}, "
            f"batch_size={meta['batch_size']}; got {epochs}, {batch_size}"
        )
    if start_epoch < epochs:
        if not Checkpoints.has_training_state(folder):
            raise ValueError(
                f"{folder} has no training state to continue from (a finished run's "
                f"checkpoint); delete {checkpoints.root} to train from the start"
            )
        ckpt = load_state(folder / TRAINING_STATE)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            ema.shadow = {k: v.clone() for k, v in ckpt["ema"].items()}
    return start_epoch, float(meta["best"]), checkpoints.history(folder)


def _fit_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    ema: WeightAverage | None,
    step_fn: Callable[[np.ndarray], dict[str, torch.Tensor]],
    order: np.ndarray,
    epoch: int,
    batch_size: int,
    seed: int,
    bar: tqdm,
) -> dict[str, float]:
    """One epoch over ``order`` in batches, each step seeded by ``(seed, step)``; returns
    the sums of the step losses."""
    model.train()
    steps_per_epoch = math.ceil(len(order) / batch_size)
    sums: dict[str, float] = {}
    for b in range(steps_per_epoch):
        step = epoch * steps_per_epoch + b
        torch.manual_seed(_step_seed(seed, step))
        losses = step_fn(order[b * batch_size : (b + 1) * batch_size])
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model, step)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4g}")
    return sums


def _fit(
    *,
    model: nn.Module,
    n_train: int,
    step_fn: Callable[[np.ndarray], dict[str, torch.Tensor]],
    val_fn: Callable[[], dict[str, float]],
    save_fn: Callable[[Path], object],
    out_dir: Path,
    fit: FitSettings,
    desc: str,
) -> pd.DataFrame:
    """Generic deterministic loop; returns the training log.

    With ``fit.ema_decay`` > 0, validation, the best-validation weights and the saved model
    use the weight average (:class:`microgen.checkpoint.WeightAverage`). See the module
    docstring for the checkpoints and outputs.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_train < 1:
        raise ValueError("no training samples")
    epochs, batch_size, seed = fit.epochs, fit.batch_size, fit.seed
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=fit.lr)
    steps_per_epoch = math.ceil(n_train / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(1, epochs * steps_per_epoch), eta_min=fit.min_lr
    )
    ema = WeightAverage(model, fit.ema_decay) if fit.ema_decay > 0 else None

    def averaged():
        return ema.applied(model) if ema is not None else nullcontext()

    checkpoints = Checkpoints(out_dir)
    if not fit.resume:
        shutil.rmtree(checkpoints.root, ignore_errors=True)
    start_epoch, best, rows = _resume_fit(
        checkpoints, model, opt, sched, ema, epochs=epochs, batch_size=batch_size
    )
    end_epoch = epochs if fit.stop_after is None else min(epochs, start_epoch + fit.stop_after)
    total = (end_epoch - start_epoch) * steps_per_epoch
    bar = tqdm(total=total, desc=desc, disable=not fit.progress)
    for epoch in range(start_epoch, end_epoch):
        t0 = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(n_train)
        sums = _fit_epoch(model, opt, sched, ema, step_fn, order, epoch, batch_size, seed, bar)
        model.eval()
        torch.manual_seed(_step_seed(seed, 2**31 + epoch))
        with torch.no_grad(), averaged():
            val = val_fn()
        rows.append(
            {
                "epoch": epoch + 1,
                "step": (epoch + 1) * steps_per_epoch,
                **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()},
                **{f"val_{k}": v for k, v in val.items()},
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
            }
        )
        score = val.get("loss", math.nan)
        if math.isfinite(score) and score < best:
            best = score
            with checkpoints.save_best() as folder, averaged():
                save_fn(folder)
        if (epoch + 1) % fit.checkpoint_every == 0 or epoch + 1 == end_epoch:
            meta = {"epoch": epoch + 1, "best": best, "epochs": epochs, "batch_size": batch_size}
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict()}  # fmt: skip
            if ema is not None:
                state["ema"] = ema.shadow
            with checkpoints.save(epoch + 1, rows) as folder:
                with averaged():
                    save_fn(folder / MODEL)
                (folder / STATE).write_text(json.dumps(meta, indent=1))
                save_state(folder / TRAINING_STATE, state)
    bar.close()
    if end_epoch == epochs:  # not a time slice, which a later call continues
        # also when resuming a finished run (no epoch left): outputs from the checkpoints
        checkpoints.export_latest(out_dir)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- stage 1: VAE


def train_vae(
    h5: str | Path,
    split_csv: str | Path,
    out_dir: str | Path,
    config: VAE3DConfig | None = None,
    fit: FitSettings | None = None,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Train :class:`~.models.VAE3D` on the train split; validate on val.

    Parameters
    ----------
    config : VAE config; default :class:`~.models.VAE3DConfig` with the file's volume shape
        and phase count (file attribute ``three_phase``, else 3). A given config's
        ``volume_shape`` is replaced by the file's (its stages must divide it).
    fit : :class:`FitSettings`; with ``fit.augment`` other than ``"none"`` every training
        batch passes through :func:`lateral_symmetry` (drawn from the step's torch seed,
        so a resumed run still reproduces the uninterrupted one).

    Returns
    -------
    pandas.DataFrame
        The training log (also ``out_dir/train_log.csv``): train/val loss, recon, KL and
        val voxel accuracy per epoch. Weights: ``out_dir`` (final), ``out_dir/best``.
    """
    fit = fit or FitSettings()
    out_dir = Path(out_dir)
    dev = select_device(device)
    torch.manual_seed(fit.seed)
    table = load_split_table(h5, split_csv)
    train = _Volumes(h5, table.loc[table["split"] == "train", "name"])
    val = _Volumes(h5, table.loc[table["split"] == "val", "name"])
    # Shape and phase count come from the file: an architecture given in the config says
    # nothing about them (a 3-logit decoder on two-phase data wastes a class).
    n_phases = _n_phases_of(h5)
    if config is None:
        config = VAE3DConfig(volume_shape=tuple(train.shape), n_phases=n_phases)
    if tuple(config.volume_shape) != tuple(train.shape) or config.n_phases != n_phases:
        config = replace(config, volume_shape=tuple(train.shape), n_phases=n_phases)
    model = VAE3D(config).to(dev)

    def step_fn(idx):
        x = train.get(idx)
        if fit.augment != "none":
            x = lateral_symmetry(x, periodic=fit.augment == "lateral_periodic")
        x = x.to(dev)
        with _autocast(dev):
            out = model(x, sample=True)
        return model.loss(x, out)

    def val_fn():
        if len(val) == 0:
            return {}
        tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "acc": 0.0}
        for i in range(0, len(val), fit.batch_size):
            x = val.get(range(i, min(i + fit.batch_size, len(val)))).to(dev)
            with _autocast(dev):
                out = model(x, sample=False)
            losses = model.loss(x, out)
            for k in ("loss", "recon", "kl"):
                tot[k] += float(losses[k]) * len(x)
            tot["acc"] += float((out.logits.argmax(1) == x.long()).float().mean()) * len(x)
        return {k: v / len(val) for k, v in tot.items()}

    return _fit(
        model=model,
        n_train=len(train),
        step_fn=step_fn,
        val_fn=val_fn,
        save_fn=model.save_pretrained,
        out_dir=out_dir,
        fit=fit,
        desc="VAE",
    )


# --------------------------------------------------------------------------- stage 2: FP


def train_feature_predictor(
    h5: str | Path,
    split_csv: str | Path,
    vae_dir: str | Path,
    out_dir: str | Path,
    feature_names: Sequence[str] = ("vol_frac_D", "vol_frac_M", "CT_f_D_tort1", "CT_f_A_tort1")
    + PROCESS_PARAMETERS,
    hidden: Sequence[int] = (256, 128),
    dropout: float = 0.1,
    normalization: str = "standard",
    fit: FitSettings | None = None,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Train :class:`~.models.FeaturePredictor` on the frozen VAE encoder's μ latents.

    Targets are the HDF5 attributes ``feature_names`` normalised by a
    :class:`~.models.ConditionNormalizer` fitted on the train split
    (``out_dir/feature_normalizer.json``); volumes with a non-finite target are dropped.
    With ``fit.augment`` other than ``"none"`` every training volume is encoded as simulated
    and in ``fit.augment_copies − 1`` copies transformed by :func:`lateral_symmetry` (drawn
    once from ``seed``; encoding every step would cost more than the training), and each
    step picks one copy per volume: the flattened latent is not shift-invariant, so
    without copies the MLP ties φ, χ and time to where domains happen to sit.
    Returns the training log (val loss and per-feature val R² on normalised values).
    """
    fit = fit or FitSettings()
    out_dir = Path(out_dir)
    dev = select_device(device)
    torch.manual_seed(fit.seed)
    names = tuple(feature_names)
    table = _finite_rows(load_split_table(h5, split_csv), names)
    tr = table[table["split"] == "train"].reset_index(drop=True)
    va = table[table["split"] == "val"].reset_index(drop=True)
    norm = ConditionNormalizer.fit(tr, names, normalization)
    vae = VAE3D.from_pretrained(vae_dir, device=dev).requires_grad_(False)
    copies = [encode_volumes(vae, h5, tr["name"], device=dev)]
    copies += _augmented_latents(vae, h5, tr["name"], fit, dev)
    z_tr = torch.stack(copies, 1).flatten(2).to(dev)  # (N, copies, latent)
    z_va = encode_volumes(vae, h5, va["name"], device=dev).flatten(1).to(dev)
    y_tr = torch.from_numpy(norm.transform(tr)).to(dev)
    y_va = torch.from_numpy(norm.transform(va)).to(dev) if len(va) else None
    cfg = FeaturePredictorConfig(
        in_features=int(np.prod(vae.config.latent_shape)),
        output_names=names,
        hidden=tuple(hidden),
        dropout=dropout,
    )
    model = FeaturePredictor(cfg).to(dev)

    def step_fn(idx):
        idx = torch.as_tensor(idx, device=dev)
        # No draw without copies, so augment="none" trains exactly as before.
        copy = torch.randint(z_tr.shape[1], (len(idx),)).to(dev) if z_tr.shape[1] > 1 else 0
        with _autocast(dev):
            pred = model(z_tr[idx, copy])
        return {"loss": F.mse_loss(pred.float(), y_tr[idx])}

    def val_fn():
        if y_va is None:
            return {}
        pred = model(z_va).float()
        res = ((pred - y_va) ** 2).sum(0)
        tot = ((y_va - y_va.mean(0)) ** 2).sum(0).clamp(min=1e-12)
        r2 = 1 - res / tot
        return {"loss": float(F.mse_loss(pred, y_va))} | {
            f"r2_{n}": float(v) for n, v in zip(names, r2, strict=True)
        }

    def save_fn(d: Path):
        model.save_pretrained(d)
        norm.save(Path(d) / "feature_normalizer.json")

    return _fit(
        model=model,
        n_train=len(tr),
        step_fn=step_fn,
        val_fn=val_fn,
        save_fn=save_fn,
        out_dir=out_dir,
        fit=fit,
        desc="FP",
    )


# --------------------------------------------------------------------------- stage 3: LDM


def _ldm_latents(
    vae: VAE3D,
    h5: str | Path,
    train: pd.DataFrame,
    val: pd.DataFrame,
    fit: FitSettings,
    dev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Encoder means of the train volumes (N, copies, *latent: the volume and its augmented
    copies) and of the validation volumes, standardised by the train mean and std, which
    are returned too."""
    lat_tr = encode_volumes(vae, h5, train["name"], device=dev)
    lat_va = encode_volumes(vae, h5, val["name"], device=dev)
    shift, scale = float(lat_tr.mean()), float(lat_tr.std()) or 1.0
    copies = [lat_tr] + _augmented_latents(vae, h5, train["name"], fit, dev)
    x_tr = ((torch.stack(copies, 1) - shift) / scale).to(dev)
    return x_tr, ((lat_va - shift) / scale).to(dev), shift, scale


def _fitting_unet_config(
    config: UNet3DConfig | None, latent_shape: Sequence[int], n_conditions: int
) -> UNet3DConfig:
    """The given U-Net config, checked against the latent and the conditions, or the
    default one for them."""
    if config is None:
        return UNet3DConfig(
            in_channels=latent_shape[0], sample_shape=tuple(latent_shape[1:]),
            cond_dim=n_conditions,
        )  # fmt: skip
    if config.in_channels != latent_shape[0] or config.cond_dim != n_conditions:
        raise ValueError(
            f"unet_config (in_channels={config.in_channels}, cond_dim={config.cond_dim}) "
            f"does not fit latent {tuple(latent_shape)} / {n_conditions} conditions"
        )
    return config


def train_ldm(
    h5: str | Path,
    split_csv: str | Path,
    vae_dir: str | Path,
    out_dir: str | Path,
    condition_names: Sequence[str] = ("vol_frac_D", "vol_frac_M", "CT_f_D_tort1", "CT_f_A_tort1"),
    unet_config: UNet3DConfig | None = None,
    diffusion: DiffusionConfig | None = None,
    p_uncond: float = 0.1,
    normalization: str = "standard",
    fit: FitSettings = LDM_FIT,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Train the conditional U-Net on frozen-VAE latents; its target (v or ε) is
    ``diffusion.prediction_type``.

    Latents are the encoder μ, shifted/scaled to zero mean and unit variance with the
    train split's scalar mean/std (stored in ``latent_stats.json``). Conditions: HDF5
    attributes ``condition_names`` (rows with non-finite values dropped), normalised by a
    :class:`~.models.ConditionNormalizer` fitted on train. With probability ``p_uncond`` a
    row's condition is replaced by the learned null context (classifier-free guidance).
    ``fit`` default :data:`LDM_FIT`; its augmentation as in :func:`train_feature_predictor`
    (each training volume also encoded in transformed copies, one copy drawn per row and
    step, paired with the volume's own conditions, which the lateral symmetries keep).
    Output: :func:`.diffusion.save_ldm` layout in ``out_dir``.
    """
    out_dir = Path(out_dir)
    dev = select_device(device)
    torch.manual_seed(fit.seed)
    names = tuple(condition_names)
    diffusion = diffusion or DiffusionConfig()
    table = _finite_rows(load_split_table(h5, split_csv), names)
    tr = table[table["split"] == "train"].reset_index(drop=True)
    va = table[table["split"] == "val"].reset_index(drop=True)
    norm = ConditionNormalizer.fit(tr, names, normalization)
    vae = VAE3D.from_pretrained(vae_dir, device=dev).requires_grad_(False)
    x_tr, x_va, shift, scale = _ldm_latents(vae, h5, tr, va, fit, dev)
    c_tr = torch.from_numpy(norm.transform(tr)).to(dev)
    c_va = torch.from_numpy(norm.transform(va)).to(dev) if len(va) else None
    unet_config = _fitting_unet_config(unet_config, vae.config.latent_shape, len(names))
    unet = UNet3DConditional(unet_config).to(dev)
    sched = make_scheduler(diffusion, "ddpm")
    T = diffusion.num_train_timesteps
    acp = sched.alphas_cumprod.to(dev)

    def noisy(x0, t, noise):
        a = acp[t].view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def step_fn(idx):
        idx = torch.as_tensor(idx, device=dev)
        # No draw without copies, so augment="none" trains exactly as before.
        copy = torch.randint(x_tr.shape[1], (len(idx),)).to(dev) if x_tr.shape[1] > 1 else 0
        x0, c = x_tr[idx, copy], c_tr[idx]
        noise = torch.randn(x0.shape).to(dev)
        t = torch.randint(0, T, (len(idx),)).to(dev)
        use = (torch.rand(len(idx)) >= p_uncond).to(dev)
        with _autocast(dev):
            out = unet(noisy(x0, t, noise), t, c, use)
        target = diffusion.target(x0, noise, acp[t].view(-1, *([1] * (x0.dim() - 1))))
        return {"loss": F.mse_loss(out.float(), target)}

    def val_fn():
        if c_va is None:
            return {}
        g = torch.Generator().manual_seed(fit.seed)
        noise = torch.randn(x_va.shape, generator=g).to(dev)
        t = torch.randint(0, T, (len(x_va),), generator=g).to(dev)
        loss = 0.0
        for i in range(0, len(x_va), fit.batch_size):
            s = slice(i, i + fit.batch_size)
            with _autocast(dev):
                out = unet(noisy(x_va[s], t[s], noise[s]), t[s], c_va[s])
            a = acp[t[s]].view(-1, *([1] * (x_va.dim() - 1)))
            target = diffusion.target(x_va[s], noise[s], a)
            loss += float(F.mse_loss(out.float(), target, reduction="sum"))
        return {"loss": loss / noise.numel()}

    extra = {"condition_names": list(names), "p_uncond": p_uncond}

    def save_fn(d: Path):
        save_ldm(d, LDMBundle(unet, diffusion, norm, shift, scale, dict(extra)))

    return _fit(
        model=unet,
        n_train=len(tr),
        step_fn=step_fn,
        val_fn=val_fn,
        save_fn=save_fn,
        out_dir=out_dir,
        fit=fit,
        desc="LDM",
    )
