"""Tiny exact-truth image sets shared by the evaluate tests (synthetic generator, 64 px)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from microgen.descriptors.tables import describe_arrays
from microgen.evaluate.ground_truth import ground_truth_set

SHAPE = (64, 64)


def condition(temperature: float, magnification: float = 4910.0, split: str = "val_seen"):
    label = f"{temperature:g}C-90M-{magnification:g}x-Q-S"
    return dict(
        temperature=temperature,
        time=90.0,
        cooling="Q",
        magnification=magnification,
        microconstituent="spheroidite",
        label=label,
        split=split,
    )


def image_set(
    conditions, n, seed, model="-", mode="-", prefix="", relabel=None, draw=0, shape=SHAPE
):
    """Index, images, masks and descriptor tables of a fresh draw (stream ``draw`` of
    ``seed``); ``relabel`` maps each drawn condition's label to the label it pretends to be
    (a deliberately wrong generator)."""
    index, images, masks = ground_truth_set(conditions, n, shape, seed, draw)
    if relabel is not None:
        index["label"] = [relabel[lab] for lab in index["label"]]
    index["model"], index["prompt_mode"] = model, mode
    index["id"] = [prefix + i for i in index["id"]]
    images = {prefix + k: v for k, v in images.items()}
    masks = {prefix + k: v for k, v in masks.items()}
    pixel_sizes = dict(zip(index["id"], index["pixel_size_um"], strict=True))
    rows, curves, particles = describe_arrays(
        ((i, m, pixel_sizes[i]) for i, m in masks.items()), r_max=20
    )
    return dict(
        index=index, images=images, masks=masks, rows=rows, curves=curves, particles=particles
    )


def by_label(s) -> dict[str, np.ndarray]:
    idx: pd.DataFrame = s["index"]
    return {lab: np.stack([s["images"][i] for i in g["id"]]) for lab, g in idx.groupby("label")}
