"""Training of the U-Net(+ECA) segmenter (Phan et al. 2025, App. C).

* AdamW with two parameter groups: the smp encoder (``encoder_lr``) and everything else —
  ECA modules, decoder, head (``decoder_lr``); one ``weight_decay``.
* Losses: ``jaccard`` / ``dice`` / ``focal`` from ``segmentation_models_pytorch.losses``
  (multiclass mode), ``cce`` = ``torch.nn.CrossEntropyLoss``.
* Augmentation (numpy, one explicit ``numpy.random.Generator``): random crop of ``crop``
  pixels (reflect-padded when the image is smaller), horizontal flip p=0.8, rotation by an
  angle uniform in [0°, 45°] with p=0.8 (bilinear for the image, nearest for the mask, reflect
  at the border), and brightness/contrast jitter with p=0.8: ``x' = a·x + b`` on [0, 1]
  intensities with contrast ``a ~ U(0.8, 1.2)`` and brightness ``b ~ U(-0.2, 0.2)``. Our reading
  of the paper's "0.2–0.8" is limit 0.2 and probability 0.8 (as for the other augmentations).
* One epoch draws ``steps_per_epoch × batch_size`` samples (default: one crop of each
  training image, order shuffled).
* Validation: whole images (padded to a multiple of 32), pixel-pooled confusion matrix,
  mIoU over the classes present in truth or prediction. The best epoch by val mIoU is saved
  with ``save_pretrained`` in ``out_dir/best``.
* Convergence: with ``patience`` set, training stops once the validation mIoU has not
  improved for that many epochs, but not before ``min_epochs`` (``epochs`` stays the cap). The
  floor is there because a rare class can take long to appear at all: on UHCS-24 the
  Widmanstätten IoU of the validation fold stays near 0 for the first 34–58 epochs in 9 of
  10 folds, so a validation plateau before then is not convergence. The learning rate is
  constant, so a run stopped by the cap and resumed with a larger one continues as if it had
  never stopped.
* Checkpoint after every epoch in ``out_dir/checkpoints/step-NNNNNNN/`` (NNNNNNN the epoch;
  :class:`microgen.checkpoint.Checkpoints`): ``model.safetensors`` (weights),
  ``training_state`` (AdamW state, torch CPU/CUDA and numpy generator states),
  ``state.json`` (epoch, best mIoU/epoch, config) and the log so far. No pickles anywhere.
  Resuming restores all of it, so a run stopped after any epoch and resumed ends with the
  same weights as an uninterrupted run (on the same device and library versions). The best
  epoch's weights are kept in ``checkpoints/best/``.
* Outputs, written from the checkpoints at the end of every run (also one that resumes a
  finished run whose outputs were deleted): ``best/`` and ``train_log.csv`` (epoch,
  train_loss, val_miou, val_iou_{k}, seconds). A finished run keeps its last checkpoint
  without training state, unless ``continuable``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage
from torch import nn
from tqdm.auto import tqdm

from microgen.checkpoint import (
    TRAINING_STATE,
    Checkpoints,
    export,
    load_state,
    save_state,
    write_history,
)
from microgen.device import select_device
from microgen.segment.evaluate import SegmentationScores
from microgen.segment.infer import predict_masks
from microgen.segment.model import (
    SegmenterConfig,
    autocast_dtype,
    build_segmenter,
)

LOSSES = ("jaccard", "dice", "focal", "cce")
LOG = "train_log.csv"


@dataclass
class TrainResult:
    out_dir: Path
    best_dir: Path  # save_pretrained directory of the best-val-mIoU epoch
    best_epoch: int
    best_miou: float
    log: pd.DataFrame
    checkpoint_dir: Path  # last checkpoint
    converged: bool = False  # stopped by ``patience`` (after ``min_epochs``), not by the cap


def make_loss(name: str) -> nn.Module:
    if name == "jaccard":
        return smp.losses.JaccardLoss(smp.losses.MULTICLASS_MODE)
    if name == "dice":
        return smp.losses.DiceLoss(smp.losses.MULTICLASS_MODE)
    if name == "focal":
        return smp.losses.FocalLoss(smp.losses.MULTICLASS_MODE)
    if name == "cce":
        return nn.CrossEntropyLoss()
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")


# --------------------------------------------------------------------------- augmentation


def _random_crop(
    image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape
    ph, pw = max(0, crop - h), max(0, crop - w)
    if ph or pw:
        pad = ((0, ph), (0, pw))
        image, mask = np.pad(image, pad, mode="symmetric"), np.pad(mask, pad, mode="symmetric")
        h, w = image.shape
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    return image[top : top + crop, left : left + crop], mask[top : top + crop, left : left + crop]


def augment(
    image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Appendix-C augmentation of one uint8 image and its mask → float32 [0, 1] image, int64
    mask, both ``crop``×``crop``. Every random number comes from ``rng``, drawn in a fixed
    order whatever the outcome of each coin flip."""
    image, mask = _random_crop(image, mask, crop, rng)
    flip, rotate, jitter = rng.random(3) < 0.8
    angle = float(rng.uniform(0.0, 45.0))
    contrast = float(rng.uniform(0.8, 1.2))
    brightness = float(rng.uniform(-0.2, 0.2))
    x = image.astype(np.float32) / 255.0
    m = mask.astype(np.int64)
    if flip:
        x, m = x[:, ::-1], m[:, ::-1]
    if rotate:
        x = ndimage.rotate(x, angle, reshape=False, order=1, mode="reflect")
        m = ndimage.rotate(m, angle, reshape=False, order=0, mode="reflect")
    if jitter:
        x = np.clip(contrast * x + brightness, 0.0, 1.0)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(m)


# ---------------------------------------------------------------------------- checkpoints


def _save_epoch(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    meta: dict,
) -> None:
    """Fill one checkpoint folder: weights, training state (AdamW, torch and numpy RNG),
    and ``state.json`` (epoch, best so far, config), which stays after the run finishes."""
    model_state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(model_state, str(folder / "model.safetensors"))
    rng_state = {"torch_cpu": torch.get_rng_state(), "numpy": rng.bit_generator.state}
    if torch.cuda.is_available():
        rng_state["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    save_state(folder / TRAINING_STATE, {"optimizer": optimizer.state_dict(), "rng": rng_state})
    (folder / "state.json").write_text(json.dumps(meta, indent=1))


def _load_epoch(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    device: torch.device,
) -> dict:
    """Restore a checkpoint folder written by :func:`_save_epoch`; returns its ``state.json``.

    A finished run's folder has no training state; its weights are restored and the
    optimiser and RNG are left as they are (such a run has nothing left to train)."""
    meta = json.loads((folder / "state.json").read_text())
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    if Checkpoints.has_training_state(folder):
        state = load_state(folder / TRAINING_STATE)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch_cpu"])
        if "torch_cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["torch_cuda"])
        rng.bit_generator.state = state["rng"]["numpy"]
    return meta


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """Folder of the newest complete checkpoint of a segmenter run, or ``None``."""
    found = Checkpoints(out_dir).latest()
    return found[1] if found else None


# ------------------------------------------------------------------------------- training


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    rng: np.random.Generator,
    steps: int,
    batch_size: int,
    crop: int,
    device: torch.device,
    autocast: dict,
) -> float:
    """One epoch of ``steps`` batches of augmented crops; returns the mean batch loss."""
    model.train()
    repeats = -(-steps * batch_size // len(images))  # whole permutations covering the epoch
    order = np.concatenate([rng.permutation(len(images)) for _ in range(repeats)])
    order = order[: steps * batch_size]
    losses = []
    for s in range(steps):
        pairs = [augment(images[i], masks[i], crop, rng) for i in order[s::steps][:batch_size]]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).unsqueeze(1)
        x = x.to(device, memory_format=torch.channels_last)
        y = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(**autocast):
            logits = model(x)
        batch_loss = criterion(logits.float(), y)
        batch_loss.backward()
        optimizer.step()
        losses.append(float(batch_loss.detach()))
    return float(np.mean(losses))


def _validate(
    model: nn.Module,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    classes: int,
    batch_size: int,
    device: torch.device,
    mixed_precision: bool,
) -> dict:
    """Pixel-pooled scores of whole validation images (no boundary metrics)."""
    scores = SegmentationScores(classes)
    preds = predict_masks(
        model, images, batch_size=batch_size, device=device, mixed_precision=mixed_precision
    )
    for truth, pred in zip(masks, preds, strict=True):
        scores.update(truth, pred, boundary=False)
    return scores.compute()


def _check_pairs(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], what: str) -> None:
    if len(images) != len(masks) or not images:
        raise ValueError(f"{what}: need the same positive number of images and masks")
    for n, (im, m) in enumerate(zip(images, masks, strict=True)):
        if np.asarray(im).shape != np.asarray(m).shape or np.asarray(im).ndim != 2:
            raise ValueError(f"{what} {n}: image {np.shape(im)} and mask {np.shape(m)} differ")


@dataclass(frozen=True)
class SegmenterTraining:
    """How a segmenter is trained; the defaults (Phan et al. 2025, App. C) are stated here
    only.

    Attributes
    ----------
    epochs : the cap on epochs.
    encoder_lr, decoder_lr, weight_decay : AdamW, the encoder's group and the rest.
    batch_size, crop : batch of ``crop``-pixel crops (a multiple of 32).
    loss : one of :data:`LOSSES`.
    steps_per_epoch : batches per epoch (default: one crop of each training image).
    seed : every random draw of the run.
    mixed_precision : bfloat16 autocast of the forward pass where
        :func:`~microgen.segment.model.autocast_dtype` finds it fast (CUDA, a CPU with bf16
        kernels); weights, loss and optimiser stay float32.
    patience, min_epochs : stop after ``patience`` epochs without a better validation mIoU,
        but not before ``min_epochs``.
    """

    epochs: int = 10
    encoder_lr: float = 5e-5
    decoder_lr: float = 5e-4
    weight_decay: float = 5e-4
    batch_size: int = 2
    loss: str = "jaccard"
    crop: int = 256
    steps_per_epoch: int | None = None
    seed: int = 0
    mixed_precision: bool = True
    patience: int | None = None
    min_epochs: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.crop % 32:
            raise ValueError(f"crop must be a multiple of 32, got {self.crop}")


def train_segmenter(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    val_images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    out_dir: str | Path,
    training: SegmenterTraining | None = None,
    *,
    config: SegmenterConfig,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
    continuable: bool = False,
    **settings: object,
) -> TrainResult:
    """Train a segmenter on uint8 gray images and uint8 class-id masks; see module docstring.

    ``training`` (or its fields as keyword ``settings``): :class:`SegmenterTraining`;
    ``config``: the model, its ``classes`` those of the masks. ``continuable``: keep the
    optimiser state of the finished run, so that a larger ``epochs``, ``patience`` or
    ``min_epochs`` continues it exactly (cross-validation does; otherwise the state is
    dropped, and a larger cap is an error). Returns a :class:`TrainResult` whose ``best_dir``
    can be passed to :func:`microgen.segment.infer.segment_images`.
    """
    if training is None:
        training = SegmenterTraining(**settings)
    elif settings:
        raise TypeError(f"give either training or settings, not both: {sorted(settings)}")
    t = training
    _check_pairs(images, masks, "train")
    _check_pairs(val_images, val_masks, "val")
    device = select_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(out_dir)

    torch.manual_seed(t.seed)
    rng = np.random.default_rng(t.seed)
    # channels-last is oneDNN's and cuDNN's native convolution layout (≈10 % faster on CPU)
    model = build_segmenter(config).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder_parameters(), "lr": t.encoder_lr, "name": "encoder"},
            {"params": model.decoder_parameters(), "lr": t.decoder_lr, "name": "decoder"},
        ],
        weight_decay=t.weight_decay,
    )
    criterion = make_loss(t.loss)
    steps = t.steps_per_epoch or max(1, int(np.ceil(len(images) / t.batch_size)))

    if not resume:
        shutil.rmtree(checkpoints.root, ignore_errors=True)
    meta = {"epoch": 0, "best_miou": -1.0, "best_epoch": 0}
    log_rows: list[dict] = []
    found = checkpoints.latest()
    if found is not None:
        meta = _load_epoch(found[1], model, optimizer, rng, device)
        if meta["config"] != config.to_dict():
            raise ValueError(f"checkpoint {found[1]} was made with another config")
        log_rows = checkpoints.history(found[1])
    finished = found is not None and not Checkpoints.has_training_state(found[1])
    start, best_miou, best_epoch = meta["epoch"] + 1, meta["best_miou"], meta["best_epoch"]

    def plateaued(done: int) -> bool:  # ``done`` epochs trained, the best was ``best_epoch``
        return (
            t.patience is not None
            and best_epoch > 0
            and done >= t.min_epochs
            and done - best_epoch >= t.patience
        )

    amp_dtype = autocast_dtype(device) if t.mixed_precision else None
    autocast = dict(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    bar = tqdm(range(start, t.epochs + 1), desc="segmenter", disable=not progress, unit="epoch")
    for epoch in bar:
        if plateaued(epoch - 1):
            break
        if finished:  # and not plateaued: there is an epoch left to train
            raise ValueError(
                f"{found[1]} is the end of a finished run (no optimiser state is kept); "
                f"delete {checkpoints.root} to train {t.epochs} epochs from the start"
            )
        t0 = time.perf_counter()
        epoch_loss = _train_epoch(
            model, optimizer, criterion, images, masks, rng, steps, t.batch_size, t.crop, device,
            autocast,
        )  # fmt: skip
        metrics = _validate(model, val_images, val_masks, config.classes, t.batch_size, device,
                            t.mixed_precision)  # fmt: skip
        miou = float(metrics["miou"])
        if miou > best_miou:
            best_miou, best_epoch = miou, epoch
            with checkpoints.save_best() as folder:
                model.save_pretrained(folder)
        row = {"epoch": epoch, "train_loss": epoch_loss, "val_miou": miou}
        row.update({f"val_iou_{k}": float(v) for k, v in enumerate(metrics["iou"])})
        row["seconds"] = time.perf_counter() - t0
        log_rows.append(row)
        meta = {"epoch": epoch, "best_miou": best_miou, "best_epoch": best_epoch,
                "config": config.to_dict()}  # fmt: skip
        with checkpoints.save(epoch, log_rows) as folder:
            _save_epoch(folder, model, optimizer, rng, meta)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", miou=f"{miou:.3f}")
    bar.close()
    if best_epoch == 0:  # nothing trained (epochs < 1): keep the initial model
        with checkpoints.save_best() as folder:
            model.save_pretrained(folder)
    converged = plateaued(int(log_rows[-1]["epoch"]) if log_rows else 0)
    checkpoints.finish(keep_training_state=continuable)
    export(checkpoints.best, out_dir / "best")
    write_history(log_rows, out_dir / LOG)
    return TrainResult(
        out_dir=out_dir,
        best_dir=out_dir / "best",
        best_epoch=best_epoch,
        best_miou=best_miou,
        log=pd.DataFrame(log_rows),
        checkpoint_dir=latest_checkpoint(out_dir) or checkpoints.root,
        converged=converged,
    )


__all__ = [
    "LOSSES",
    "SegmenterTraining",
    "TrainResult",
    "augment",
    "latest_checkpoint",
    "make_loss",
    "train_segmenter",
]
