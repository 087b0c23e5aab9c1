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

from microgen.data.checks import (
    DataError,
    MissingFileError,
    check_categories,
    csv_rows,
    require_columns,
    require_rows,
    require_unique,
    to_category,
    to_integer,
    to_number,
    with_unit,
)
from microgen.data.decode import read_mask, read_micrograph
from microgen.data.schema import ConditionSchema
from microgen.data.uhcsdb import (
    _LENGTH_UNIT_UM,
    _TEMPERATURE_UNIT_C,
    _TIME_UNIT_MIN,
    COOLING_CATEGORIES,
    SOURCE_COLUMNS,
    magnification_from_pixel_size,
    parse_magnifications,
)

LABEL_VERSIONS = ("labels", "labels-particles")

#: Columns of ``metadata.csv`` the reader needs (joined from UHCSDB).
COLUMNS = (
    "image",
    "micrograph_id",
    "magnification",
    "micron_bar",
    "micron_bar_units",
    "micron_bar_px",
    "primary_microconstituent",
    "anneal_temperature",
    "anneal_temp_unit",
    "anneal_time",
    "anneal_time_unit",
    "cool_method",
)


def read_uhcs24(folder: str | Path, schema: ConditionSchema | None = None) -> pd.DataFrame:
    """Metadata of the UHCS-24 images in the prepared-data-set columns.

    Images without a processing record (uhcs1528) keep NaN conditions: their labels still
    serve segmentation, but they have no prompt. Anything else the table holds that the
    data set cannot represent raises :class:`~microgen.data.checks.DataError` naming the
    file, the line and image, the column and the value: an unknown unit, cooling method or
    (with ``schema``) category, a cell that is not a number, a duplicate image, a missing
    column, a table without rows.
    """
    path = Path(folder) / "metadata.csv"
    if not path.is_file():
        raise MissingFileError(f"UHCS-24 metadata not found: {path}")
    # Read as text so that a cell such as "970C" is reported, not parsed into a traceback.
    raw = pd.read_csv(path, dtype=str)
    require_columns(raw, COLUMNS, path)
    require_rows(raw, path)
    rows = csv_rows(raw, raw["image"])
    require_unique(raw["image"], "image", path, rows)
    pixel_size = with_unit(raw, "micron_bar", "micron_bar_units", _LENGTH_UNIT_UM, path, rows)
    pixel_size = pixel_size / to_number(raw, "micron_bar_px", path, rows)
    recorded = parse_magnifications(raw, path, rows)
    magnification = recorded.where(recorded.notna(), pixel_size.map(magnification_from_pixel_size))
    cooling = to_category(raw, "cool_method", COOLING_CATEGORIES, path, rows, "cooling method")
    metadata = pd.DataFrame(
        {
            "id": raw["image"].str.replace(".png", "", regex=False),
            "micrograph_id": to_integer(raw, "micrograph_id", path, rows),
            "temperature": with_unit(
                raw, "anneal_temperature", "anneal_temp_unit", _TEMPERATURE_UNIT_C, path, rows
            ),
            "time": with_unit(raw, "anneal_time", "anneal_time_unit", _TIME_UNIT_MIN, path, rows),
            "cooling": cooling,
            "cool_method_raw": raw["cool_method"],
            "magnification": magnification.round(0),
            "magnification_source": np.where(recorded.notna(), "recorded", "scale_bar"),
            "pixel_size_um": pixel_size,
            "microconstituent": raw["primary_microconstituent"],
        }
    )
    if schema is not None:
        check_categories(metadata, schema, path, rows, SOURCE_COLUMNS)
    return metadata


def iter_uhcs24(
    folder: str | Path,
    ids: list[str],
    label_version: str = "labels-particles",
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(id, image, mask)`` for each id, with masks from ``label_version``.

    Images are decoded by :func:`~microgen.data.decode.read_micrograph` with
    ``bit_depth_scaling`` and ``color_to_gray``; masks by
    :func:`~microgen.data.decode.read_mask`.
    """
    if label_version not in LABEL_VERSIONS:
        raise ValueError(f"label_version must be one of {LABEL_VERSIONS}, got {label_version!r}")
    folder = Path(folder)
    for image_id in ids:
        image_path = folder / "images" / f"{image_id}.png"
        mask_path = folder / label_version / f"{image_id}.png"
        image = read_micrograph(image_path, bit_depth_scaling, color_to_gray)
        mask = read_mask(mask_path)
        if image.shape != mask.shape:
            raise DataError(f"{mask_path}: mask {mask.shape} and image {image.shape} differ")
        if mask.max() > 3:
            raise DataError(f"{mask_path}: class id {mask.max()} > 3 (classes are 0…3)")
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
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> pd.DataFrame:
    """Write the labelled UHCS-24 images and masks as a prepared data set.

    Every image and mask is read and checked before anything is written, so a refused
    input leaves no partial folder behind.
    """
    from microgen.data.prepared import write_prepared
    from microgen.data.schema import load_schema

    schema = load_schema(schema_path)
    metadata = read_uhcs24(folder, schema)
    ids = list(metadata["id"])
    triples = list(iter_uhcs24(folder, ids, label_version, bit_depth_scaling, color_to_gray))
    return write_prepared(
        out_dir,
        metadata,
        ((i, image) for i, image, _ in triples),
        ((i, mask) for i, _, mask in triples),
        schema=schema,
    )
