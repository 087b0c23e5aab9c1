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

A segmenter labels a few per cent of a spheroidite field as network or laths (particle rims,
touching particles), so a set measured through it is read with thresholds calibrated on the
segmented ground truth (:func:`calibrate_thresholds`: per feature, the area fraction that
best separates the images that must show it from those that must not); exact masks keep
:data:`THRESHOLD`. The table states the thresholds each set was read with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray

NETWORK, WIDMANSTATTEN = 1, 3
THRESHOLD = 0.005  # 0.5 % of the image: a 1-px band across a 128-px field covers 0.8 %


FEATURES = {"network": NETWORK, "laths": WIDMANSTATTEN}
#: Per feature, the microconstituents whose images must show it and those that must not
#: (Widmanstätten fields may or may not cross a network, so they calibrate only the laths).
CALIBRATION = {
    "network": ({"network"}, {"spheroidite"}),
    "laths": ({"spheroidite+widmanstatten"}, {"spheroidite", "network"}),
}


def _thresholds(threshold: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(threshold, Mapping):
        return {k: float(threshold[k]) for k in FEATURES}
    return dict.fromkeys(FEATURES, float(threshold))


def feature_fractions(mask: np.ndarray) -> dict[str, float]:
    """Area fraction of the mask each feature (network, laths) covers."""
    return {name: float((mask == cls).mean()) for name, cls in FEATURES.items()}


def shows(mask: np.ndarray, threshold: float | Mapping[str, float] = THRESHOLD) -> dict[str, bool]:
    """Whether the mask shows a network and laths (area fraction ≥ the feature's threshold,
    one value for both or one per feature)."""
    limits = _thresholds(threshold)
    return {k: f >= limits[k] for k, f in feature_fractions(mask).items()}


def calibrate_thresholds(
    index: pd.DataFrame, mask_dir: str | Path, floor: float = THRESHOLD
) -> dict[str, float]:
    """Per feature, the area fraction that best separates a segmented reference set's images
    that must show the feature from those that must not (highest balanced accuracy; the
    midpoint between the two fractions it falls between), never below ``floor``.

    ``index`` needs ``id`` and ``microconstituent``; masks are ``mask_dir/{id}.png``.
    """
    fractions = pd.DataFrame(
        [feature_fractions(read_gray(Path(mask_dir) / f"{i}.png")) for i in index["id"]]
    ).assign(microconstituent=index["microconstituent"].to_numpy())
    limits = {}
    for name, (positive, negative) in CALIBRATION.items():
        pos = fractions.loc[fractions.microconstituent.isin(positive), name].to_numpy()
        neg = fractions.loc[fractions.microconstituent.isin(negative), name].to_numpy()
        if not len(pos) or not len(neg):
            limits[name] = floor
            continue
        values = np.unique(np.concatenate([pos, neg]))
        candidates = np.concatenate([[floor], (values[1:] + values[:-1]) / 2])
        candidates = candidates[candidates >= floor]
        accuracy = [((pos >= t).mean() + (neg < t).mean()) / 2 for t in candidates]
        limits[name] = float(candidates[int(np.argmax(accuracy))])
    return limits


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
    index: pd.DataFrame, mask_dir: str | Path, threshold: float | Mapping[str, float] = THRESHOLD
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
    sets: Mapping[str, tuple[str | Path, str | Path]],
    thresholds: Mapping[str, float | Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Per set (name -> (index csv, mask folder)) and microconstituent, the share of images
    that show it, plus an ``all`` row per set (every image counted once). ``thresholds``:
    per set name, one area fraction or one per feature (default :data:`THRESHOLD`); the
    table's ``network_threshold`` / ``laths_threshold`` columns say which were used."""
    parts = []
    for name, (index_csv, mask_dir) in sets.items():
        limits = _thresholds((thresholds or {}).get(name, THRESHOLD))
        part = set_agreement(pd.read_csv(index_csv), mask_dir, limits)
        weights = part["images"]
        shares = {k: np.average(part[k], weights=weights) for k in ("match", "network", "laths")}
        total = pd.DataFrame([{"microconstituent": "all", "images": weights.sum(), **shares}])
        part = pd.concat([part, total], ignore_index=True).assign(set=name)
        parts.append(part.assign(**{f"{k}_threshold": v for k, v in limits.items()}))
    table = pd.concat(parts, ignore_index=True)
    return table[["set", "microconstituent", "images", "match", "network", "laths",
                  "network_threshold", "laths_threshold"]]  # fmt: skip
