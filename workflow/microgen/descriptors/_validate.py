"""Shared input checks: every public descriptor rejects ambiguous masks loudly."""

from __future__ import annotations

import numpy as np


def as_binary(mask: np.ndarray, name: str = "mask", ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """Return ``mask`` as a C-contiguous bool array, or raise ``ValueError``.

    Accepted: bool arrays, or integer arrays whose values are only 0 and 1. Float arrays are
    refused even if they hold 0.0/1.0, because a probability map passed by mistake would
    otherwise be thresholded silently.
    """
    arr = np.asarray(mask)
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must have ndim in {ndim}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype == bool:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be bool or integer 0/1, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{name} is not binary: values outside {{0, 1}} found")
    return np.ascontiguousarray(arr.astype(bool))


def as_labels(mask: np.ndarray, name: str = "mask", ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """Return an integer label/class mask unchanged, or raise ``ValueError``."""
    arr = np.asarray(mask)
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must have ndim in {ndim}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer class-id mask, got dtype {arr.dtype}")
    return arr
