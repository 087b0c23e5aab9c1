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
* Checkpoint after every epoch in ``out_dir/checkpoints/epoch-NNNN/`` (the previous one is
  removed once ``latest.json`` points at the new one):
  ``model.safetensors`` (weights), ``optimizer.safetensors`` (AdamW state tensors, keys
  ``{param index}.{name}``), ``rng.safetensors`` (torch CPU and CUDA generator states) and
  ``state.json`` (epoch, optimizer param-group hyper-parameters, numpy generator state, best
  mIoU/epoch, config). No pickles anywhere. Resuming restores all of it, so a run stopped
  after any epoch and resumed ends with the same weights as an uninterrupted run (on the same
  device and library versions).
* ``train_log.csv``: epoch, train_loss, val_miou, val_iou_{k}, seconds.
"""

from __future__ import annotations

import json
import os
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

from microgen.segment.evaluate import SegmentationScores
from microgen.segment.infer import predict_masks
from microgen.segment.model import (
    SegmenterConfig,
    autocast_dtype,
    build_segmenter,
    select_device,
)

LOSSES = ("jaccard", "dice", "focal", "cce")
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
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


def _save_checkpoint(
    ckpt_root: Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    extra: dict,
) -> Path:
    target = ckpt_root / f"epoch-{epoch:04d}"
    tmp = ckpt_root / f".epoch-{epoch:04d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model_state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(model_state, str(tmp / "model.safetensors"))
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in opt["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng_tensors[f"torch_cuda_{i}"] = s
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {
        "epoch": epoch,
        "param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "numpy_rng": rng.bit_generator.state,
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    pointer = ckpt_root / f".{LATEST}.tmp"
    pointer.write_text(json.dumps({"checkpoint": target.name, "epoch": epoch}))
    os.replace(pointer, ckpt_root / LATEST)
    for old in ckpt_root.glob("epoch-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    root = Path(out_dir) / CHECKPOINTS
    if not (root / LATEST).is_file():
        return None
    path = root / json.loads((root / LATEST).read_text())["checkpoint"]
    return path if path.is_dir() else None


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    device: torch.device,
) -> dict:
    state = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    tensors = load_file(str(path / "optimizer.safetensors"))
    opt_state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(state["optimizer_scalars"].items()):
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    rng_tensors = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng_tensors["torch_cpu"])
    cuda = [rng_tensors[k] for k in sorted(rng_tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    rng.bit_generator.state = state["numpy_rng"]
    return state


# ------------------------------------------------------------------------------- training


def _check_pairs(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], what: str) -> None:
    if len(images) != len(masks) or not images:
        raise ValueError(f"{what}: need the same positive number of images and masks")
    for n, (im, m) in enumerate(zip(images, masks, strict=True)):
        if np.asarray(im).shape != np.asarray(m).shape or np.asarray(im).ndim != 2:
            raise ValueError(f"{what} {n}: image {np.shape(im)} and mask {np.shape(m)} differ")


def train_segmenter(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    val_images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    out_dir: str | Path,
    *,
    epochs: int,
    encoder_lr: float = 5e-5,
    decoder_lr: float = 5e-4,
    weight_decay: float = 5e-4,
    batch_size: int = 2,
    loss: str = "jaccard",
    crop: int = 256,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    resume: bool = True,
    config: SegmenterConfig | None = None,
    progress: bool = True,
    mixed_precision: bool = True,
    patience: int | None = None,
    min_epochs: int = 0,
) -> TrainResult:
    """Train a segmenter on uint8 gray images and uint8 class-id masks; see module docstring.

    ``crop`` must be a multiple of 32. ``mixed_precision`` runs the forward pass under bfloat16
    autocast where :func:`~microgen.segment.model.autocast_dtype` finds it fast (CUDA, a CPU
    with bf16 kernels), with the weights, the loss and the optimiser in float32. ``patience``:
    stop after that many epochs without a better validation mIoU, once at least ``min_epochs``
    were trained. Returns a
    :class:`TrainResult` whose ``best_dir`` can be passed to
    :func:`microgen.segment.infer.segment_images`.
    """
    _check_pairs(images, masks, "train")
    _check_pairs(val_images, val_masks, "val")
    if crop % 32:
        raise ValueError("crop must be a multiple of 32")
    config = config or SegmenterConfig()
    device = select_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = out_dir / CHECKPOINTS

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # channels-last is oneDNN's and cuDNN's native convolution layout (≈10 % faster on CPU)
    model = build_segmenter(config).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder_parameters(), "lr": encoder_lr, "name": "encoder"},
            {"params": model.decoder_parameters(), "lr": decoder_lr, "name": "decoder"},
        ],
        weight_decay=weight_decay,
    )
    criterion = make_loss(loss)
    steps = steps_per_epoch or max(1, int(np.ceil(len(images) / batch_size)))

    start, best_miou, best_epoch = 1, -1.0, 0
    log_rows: list[dict] = []
    last = latest_checkpoint(out_dir) if resume else None
    if last is not None:
        state = _load_checkpoint(last, model, optimizer, rng, device)
        if state["config"] != config.to_dict():
            raise ValueError(f"checkpoint {last} was made with another config")
        start = state["epoch"] + 1
        best_miou, best_epoch = state["best_miou"], state["best_epoch"]
        if (out_dir / LOG).is_file():
            log_rows = pd.read_csv(out_dir / LOG).query("epoch < @start").to_dict("records")
    elif not resume:
        shutil.rmtree(ckpt_root, ignore_errors=True)

    def plateaued(done: int) -> bool:  # ``done`` epochs trained, the best was ``best_epoch``
        return (
            patience is not None
            and best_epoch > 0
            and done >= min_epochs
            and done - best_epoch >= patience
        )

    amp_dtype = autocast_dtype(device) if mixed_precision else None
    autocast = dict(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    bar = tqdm(range(start, epochs + 1), desc="segmenter", disable=not progress, unit="epoch")
    for epoch in bar:
        if plateaued(epoch - 1):
            break
        t0 = time.perf_counter()
        model.train()
        order = np.concatenate(
            [rng.permutation(len(images)) for _ in range(-(-steps * batch_size // len(images)))]
        )[: steps * batch_size]
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
        scores = SegmentationScores(config.classes)
        preds = predict_masks(
            model, val_images, batch_size=batch_size, device=device, mixed_precision=mixed_precision
        )
        for truth, pred in zip(val_masks, preds, strict=True):
            scores.update(truth, pred, boundary=False)
        metrics = scores.compute()
        miou = float(metrics["miou"])
        if miou > best_miou:
            best_miou, best_epoch = miou, epoch
            model.save_pretrained(out_dir / "best")
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_miou": miou}
        row.update({f"val_iou_{k}": float(v) for k, v in enumerate(metrics["iou"])})
        row["seconds"] = time.perf_counter() - t0
        log_rows.append(row)
        _save_checkpoint(
            ckpt_root,
            epoch,
            model,
            optimizer,
            rng,
            {"best_miou": best_miou, "best_epoch": best_epoch, "config": config.to_dict()},
        )
        tmp = out_dir / f".{LOG}.tmp"
        pd.DataFrame(log_rows).to_csv(tmp, index=False)
        os.replace(tmp, out_dir / LOG)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", miou=f"{miou:.3f}")
    bar.close()
    if best_epoch == 0:  # nothing trained (epochs < 1): keep the initial model
        model.save_pretrained(out_dir / "best")
    return TrainResult(
        out_dir=out_dir,
        best_dir=out_dir / "best",
        best_epoch=best_epoch,
        best_miou=best_miou,
        log=pd.DataFrame(log_rows),
        checkpoint_dir=latest_checkpoint(out_dir) or ckpt_root,
        converged=plateaued(int(log_rows[-1]["epoch"]) if log_rows else 0),
    )


__all__ = [
    "LOSSES",
    "TrainResult",
    "augment",
    "latest_checkpoint",
    "make_loss",
    "train_segmenter",
]
