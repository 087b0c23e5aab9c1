"""Reader of the labelled UHCS-24 subset (DeCost et al. 2019, hdl:11256/964) from a folder.

The folder holds ``images/uhcsNNNN.png`` (645×484, scale bar cropped), the annotations in
``labels/`` (0 matrix, 1 cementite network, 2 spheroidite regions, 3 Widmanstätten laths)
and ``labels-particles/`` (a later revision in which class 2 marks individual particles),
``metadata.csv`` joined from UHCSDB and ``cv-folds.json`` (six folds of four images).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray
from microgen.data.uhcsdb import (
    _LENGTH_UNIT_UM,
    _TIME_UNIT_MIN,
    COOLING_CATEGORIES,
    magnification_from_pixel_size,
    parse_magnification,
)

LABEL_VERSIONS = ("labels", "labels-particles")


def read_uhcs24(folder: str | Path) -> pd.DataFrame:
    """Metadata of the UHCS-24 images in the prepared-data-set columns.

    Images without a processing record (uhcs1528) keep NaN conditions: their labels still
    serve segmentation, but they have no prompt.
    """
    folder = Path(folder)
    path = folder / "metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(f"UHCS-24 metadata not found: {path}")
    raw = pd.read_csv(path)
    pixel_size = raw["micron_bar"] * raw["micron_bar_units"].map(_LENGTH_UNIT_UM)
    pixel_size = pixel_size / raw["micron_bar_px"]
    recorded = raw["magnification"].map(parse_magnification)
    magnification = recorded.where(recorded.notna(), pixel_size.map(magnification_from_pixel_size))
    return pd.DataFrame(
        {
            "id": raw["image"].str.replace(".png", "", regex=False),
            "micrograph_id": raw["micrograph_id"].astype(int),
            "temperature": raw["anneal_temperature"].astype(float),
            "time": raw["anneal_time"] * raw["anneal_time_unit"].map(_TIME_UNIT_MIN),
            "cooling": raw["cool_method"].map(COOLING_CATEGORIES),
            "cool_method_raw": raw["cool_method"],
            "magnification": magnification.round(0),
            "magnification_source": np.where(recorded.notna(), "recorded", "scale_bar"),
            "pixel_size_um": pixel_size,
            "microconstituent": raw["primary_microconstituent"],
        }
    )


def iter_uhcs24(
    folder: str | Path, ids: list[str], label_version: str = "labels-particles"
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(id, image, mask)`` for each id, with masks from ``label_version``."""
    if label_version not in LABEL_VERSIONS:
        raise ValueError(f"label_version must be one of {LABEL_VERSIONS}, got {label_version!r}")
    folder = Path(folder)
    for image_id in ids:
        image = read_gray(folder / "images" / f"{image_id}.png")
        mask = read_gray(folder / label_version / f"{image_id}.png")
        if image.shape != mask.shape:
            raise ValueError(f"{image_id}: image {image.shape} and mask {mask.shape} differ")
        if mask.max() > 3:
            raise ValueError(f"{image_id}: mask has class id {mask.max()} > 3")
        yield image_id, image, mask


def read_cv_folds(folder: str | Path) -> dict[int, list[str]]:
    """The six cross-validation folds of DeCost et al., as lists of ``uhcsNNNN`` ids."""
    with (Path(folder) / "cv-folds.json").open() as fh:
        raw = json.load(fh)
    return {
        int(k): [f"uhcs{int(name.removeprefix('micrograph')):04d}" for name in v]
        for k, v in raw.items()
    }


def prepare_uhcs24(
    folder: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    label_version: str = "labels-particles",
) -> pd.DataFrame:
    """Write the labelled UHCS-24 images and masks as a prepared data set."""
    from microgen.data.prepared import write_prepared
    from microgen.data.schema import load_schema

    metadata = read_uhcs24(folder)
    triples = list(iter_uhcs24(folder, list(metadata["id"]), label_version))
    return write_prepared(
        out_dir,
        metadata,
        ((i, image) for i, image, _ in triples),
        ((i, mask) for i, _, mask in triples),
        schema=load_schema(schema_path),
    )
