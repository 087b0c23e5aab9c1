"""Tiny prepared data sets for the baseline tests (imported by tests/test_baselines_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import write_prepared

# Two conditions of the UHCS schema that differ in every variable.
DARK = {
    "temperature": 700.0,
    "time": 5.0,
    "magnification": 100.0,
    "cooling": "Q",
    "microconstituent": "spheroidite",
}
BRIGHT = {
    "temperature": 1000.0,
    "time": 5100.0,
    "magnification": 5000.0,
    "cooling": "FC",
    "microconstituent": "pearlite",
}


def make_two_condition_set(
    root: Path, schema, size: int = 16, per_condition: int = 8, seed: int = 0
) -> tuple[Path, Path]:
    """A prepared set whose DARK images have mean ≈ 60 and BRIGHT images mean ≈ 190.

    Returns ``(data_dir, split_csv)``; every row is ``train`` except one val_seen row
    per condition and one val_unseen row with an in-between condition.
    """
    rng = np.random.default_rng(seed)
    rows, images = [], []
    for name, cond, level in (("d", DARK, 60), ("b", BRIGHT, 190)):
        for k in range(per_condition):
            image_id = f"{name}{k:02d}"
            texture = rng.normal(0, 20, (size, size))
            images.append((image_id, np.clip(level + texture, 0, 255).astype(np.uint8)))
            rows.append({"id": image_id, **cond, "pixel_size_um": 0.1})
    unseen = {**DARK, "temperature": 850.0}
    images.append(("u00", np.full((size, size), 128, np.uint8)))
    rows.append({"id": "u00", **unseen, "pixel_size_um": 0.1})
    data_dir = root / "data"
    write_prepared(data_dir, pd.DataFrame(rows), images, schema=schema)
    split = ["train"] * len(rows)
    split[0] = "val_seen"
    split[per_condition] = "val_seen"
    split[-1] = "val_unseen"
    split_csv = root / "split.csv"
    pd.DataFrame({"id": [r["id"] for r in rows], "split": split}).to_csv(split_csv, index=False)
    return data_dir, split_csv
