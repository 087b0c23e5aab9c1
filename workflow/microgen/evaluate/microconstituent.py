"""Does a generated micrograph show the microconstituent it was asked for?

Each image's segmented mask (UHCS class ids: 1 network, 3 Widmanstätten laths) is read for
the two proeutectoid morphologies the primary microconstituents differ by. An image *shows*
a class when that class covers at least ``threshold`` of it; it matches its condition when

* ``spheroidite``: neither network nor laths,
* ``network``: network,
* ``spheroidite+widmanstatten``: laths.

The same rule applied to the exact masks of fresh ground truth gives the share a perfect
generator reaches (1: the synthetic generator frames every field on the feature its
microconstituent is labelled by, as a microscopist does), and to the segmented ground truth
the share a perfect generator reaches through this segmenter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray

NETWORK, WIDMANSTATTEN = 1, 3
THRESHOLD = 0.005  # 0.5 % of the image: a 1-px band across a 128-px field covers 0.8 %


def shows(mask: np.ndarray, threshold: float = THRESHOLD) -> dict[str, bool]:
    """Whether the mask shows a network and laths (area fraction ≥ ``threshold``)."""
    return {
        "network": bool((mask == NETWORK).mean() >= threshold),
        "laths": bool((mask == WIDMANSTATTEN).mean() >= threshold),
    }


def matches(microconstituent: str, seen: Mapping[str, bool]) -> bool | None:
    """Whether what an image shows is its microconstituent (``None`` for one without a rule)."""
    if microconstituent == "spheroidite":
        return not seen["network"] and not seen["laths"]
    if microconstituent == "network":
        return seen["network"]
    if microconstituent == "spheroidite+widmanstatten":
        return seen["laths"]
    return None


def set_agreement(
    index: pd.DataFrame, mask_dir: str | Path, threshold: float = THRESHOLD
) -> pd.DataFrame:
    """One row per microconstituent of an image set: images, share matching, share showing
    network and laths. ``index`` needs ``id`` and ``microconstituent``; masks are
    ``mask_dir/{id}.png``."""
    rows = []
    for r in index[["id", "microconstituent"]].itertuples(index=False):
        seen = shows(read_gray(Path(mask_dir) / f"{r.id}.png"), threshold)
        rows.append({"microconstituent": r.microconstituent, **seen,
                     "match": matches(r.microconstituent, seen)})  # fmt: skip
    table = pd.DataFrame(rows).dropna(subset=["match"])
    return (
        table.groupby("microconstituent")
        .agg(
            images=("match", "size"),
            match=("match", "mean"),
            network=("network", "mean"),
            laths=("laths", "mean"),
        )  # fmt: skip
        .reset_index()
    )


def microconstituent_table(
    sets: Mapping[str, tuple[str | Path, str | Path]], threshold: float = THRESHOLD
) -> pd.DataFrame:
    """Per set (name -> (index csv, mask folder)) and microconstituent, the share of images
    that show it, plus an ``all`` row per set (every image counted once)."""
    parts = []
    for name, (index_csv, mask_dir) in sets.items():
        part = set_agreement(pd.read_csv(index_csv), mask_dir, threshold)
        weights = part["images"]
        shares = {k: np.average(part[k], weights=weights) for k in ("match", "network", "laths")}
        total = pd.DataFrame([{"microconstituent": "all", "images": weights.sum(), **shares}])
        parts.append(pd.concat([part, total], ignore_index=True).assign(set=name))
    table = pd.concat(parts, ignore_index=True)
    return table[["set", "microconstituent", "images", "match", "network", "laths"]]
