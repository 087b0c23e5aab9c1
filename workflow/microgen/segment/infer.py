"""Batched inference: gray micrographs in, class-id masks (PNG) out.

Images whose sides are not multiples of 32 are reflect-padded at the bottom and right and the
prediction is cropped back, so every written mask has its image's size. Images larger than
``tile`` pixels on a side are segmented in overlapping ``tile``×``tile`` windows whose central
parts (a ``margin`` of each window is discarded, except at the image border) are stitched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from microgen.data.prepared import read_gray, write_png
from microgen.device import select_device
from microgen.segment.model import Segmenter, autocast_dtype

MULTIPLE = 32


def pad_to_multiple(image: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Reflect-pad a 2-D array at the bottom/right to sides that are multiples of ``multiple``."""
    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "symmetric"
    return np.pad(image, ((0, ph), (0, pw)), mode=mode)


def _to_tensor(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).to(device=device, dtype=torch.float32)
    return (x / 255.0).unsqueeze(1)


@torch.no_grad()
def _logits(
    model: nn.Module, batch: Sequence[np.ndarray], device: torch.device, mixed_precision: bool
) -> torch.Tensor:
    x = _to_tensor(batch, device).contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(device) if mixed_precision else None
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model(x)
    return out.float()


def _tile_starts(size: int, tile: int, margin: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - 2 * margin
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


@torch.no_grad()
def predict_masks(
    model: nn.Module,
    images: Sequence[np.ndarray],
    batch_size: int = 4,
    device: str | torch.device | None = None,
    tile: int = 1024,
    margin: int = 64,
    mixed_precision: bool = True,
) -> list[np.ndarray]:
    """Class-id masks (uint8, same shape as each image) of uint8 gray ``images``.

    ``mixed_precision``: logits under bfloat16 autocast where
    :func:`~microgen.segment.model.autocast_dtype` finds it fast; the model is moved to the
    channels-last layout (same values).
    """
    if tile % MULTIPLE or tile <= 2 * margin:
        raise ValueError("tile must be a multiple of 32 larger than 2 * margin")
    device = select_device(device) if device is None or isinstance(device, str) else device
    was_training = model.training
    model.eval().to(memory_format=torch.channels_last)
    # Cut every image into windows (one window when it fits), padded to a multiple of 32.
    windows: list[tuple[int, int, int, np.ndarray]] = []  # (image index, top, left, window)
    for n, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"image {n}: expected 2-D uint8, got {image.dtype} {image.shape}")
        h, w = image.shape
        for top in _tile_starts(h, tile, margin):
            for left in _tile_starts(w, tile, margin):
                win = image[top : top + tile, left : left + tile]
                windows.append((n, top, left, pad_to_multiple(win)))
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (_, _, _, win) in enumerate(windows):
        by_shape[win.shape].append(i)
    labels: dict[int, np.ndarray] = {}
    for idx in by_shape.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            logits = _logits(model, [windows[i][3] for i in chunk], device, mixed_precision)
            pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
            labels.update(zip(chunk, pred, strict=True))
    out = [np.zeros(np.asarray(im).shape, np.uint8) for im in images]
    for i, (n, top, left, _) in enumerate(windows):
        h, w = out[n].shape
        th, tw = min(tile, h), min(tile, w)
        # keep the window's centre: drop `margin` on sides that are not the image border
        t0 = 0 if top == 0 else margin
        l0 = 0 if left == 0 else margin
        t1 = th if top + th == h else th - margin
        l1 = tw if left + tw == w else tw - margin
        out[n][top + t0 : top + t1, left + l0 : left + l1] = labels[i][t0:t1, l0:l1]
    model.train(was_training)
    return out


def segment_images(
    model_dir: str | Path,
    image_paths: Sequence[str | Path],
    out_dir: str | Path,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    mixed_precision: bool = True,
) -> list[Path]:
    """Segment image files with the model saved in ``model_dir``; write ``out_dir/{stem}.png``.

    ``mixed_precision`` as in :func:`predict_masks`.

    Returns the written mask paths, in the order of ``image_paths``.
    """
    device = select_device(device)
    model = Segmenter.from_pretrained(model_dir, device=device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    paths = [Path(p) for p in image_paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError("image file names (stems) must be unique")
    # Read and segment in groups so memory stays bounded on long lists.
    group = max(batch_size * 8, 1)
    for s in range(0, len(paths), group):
        chunk = paths[s : s + group]
        masks = predict_masks(
            model,
            [read_gray(p) for p in chunk],
            batch_size,
            device,
            mixed_precision=mixed_precision,
        )
        for p, mask in zip(chunk, masks, strict=True):
            target = out_dir / f"{p.stem}.png"
            write_png(target, mask)
            written.append(target)
    return written
