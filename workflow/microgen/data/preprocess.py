"""Image preprocessing shared by every model: the paper's resize, centre crop and scaling."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_center_crop(
    image: np.ndarray, size: int, resample: int = Image.Resampling.BICUBIC
) -> np.ndarray:
    """Resize so the shorter side is ``size`` (aspect ratio kept), then centre-crop to a square.

    Parameters
    ----------
    image : (H, W) uint8 gray image, or (H, W) integer class mask (pass
        ``resample=Image.Resampling.NEAREST`` so no new class ids appear).
    size : side of the square output in pixels.

    Returns
    -------
    (size, size) array of the input's dtype. The pixel size grows by
    ``min(H, W) / size`` (see :func:`scaled_pixel_size`).
    """
    return resize_crop(image, size, None, resample)


def resize_crop(
    image: np.ndarray,
    size: int,
    top_left: tuple[int, int] | None = None,
    resample: int = Image.Resampling.BICUBIC,
) -> np.ndarray:
    """Resize so the shorter side is ``size``, then crop the square at ``top_left`` (row,
    column of the resized image; ``None``: the centre). :func:`crop_room` gives the largest
    offsets a crop can have."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if size <= 0:
        raise ValueError("size must be positive")
    h, w = image.shape
    new_h, new_w = _resized_shape((h, w), size)
    if (new_h, new_w) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=resample))
    if top_left is None:
        top, left = (new_h - size) // 2, (new_w - size) // 2
    else:
        top, left = top_left
        if not (0 <= top <= new_h - size and 0 <= left <= new_w - size):
            raise ValueError(
                f"crop at {top_left} leaves the {new_h}x{new_w} resized image "
                f"(offsets up to {(new_h - size, new_w - size)})"
            )
    return image[top : top + size, left : left + size]


def _resized_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    h, w = shape
    scale = size / min(h, w)
    return max(size, round(h * scale)), max(size, round(w * scale))


def crop_room(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """Largest ``(top, left)`` of a :func:`resize_crop` of an image of ``shape``."""
    new_h, new_w = _resized_shape(shape, size)
    return new_h - size, new_w - size


def scaled_pixel_size(pixel_size_um: float, shape: tuple[int, int], size: int) -> float:
    """Pixel size in µm after :func:`resize_center_crop` of an image of ``shape`` to ``size``."""
    return pixel_size_um * min(shape) / size


def to_model_range(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 image to float32 in [-1, 1] (the diffusion models' input range)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8, got {image.dtype}")
    return image.astype(np.float32) / 127.5 - 1.0


def from_model_range(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_model_range`, clipping to [-1, 1] and rounding to uint8."""
    array = np.clip(np.asarray(array, dtype=np.float32), -1.0, 1.0)
    return np.round((array + 1.0) * 127.5).astype(np.uint8)
