"""The prepared-data-set contract every data source writes and every later stage reads.

Layout of a prepared data set directory::

    images/{id}.png     8-bit gray micrograph
    masks/{id}.png      class ids (when labelled): the condition schema's classes[id]
    metadata.csv        id, every condition column of the schema, pixel_size_um, label,
                        prompt_full_text, prompt_text_only, prompt_parameter_only, has_mask
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from microgen.data.checks import DataError
from microgen.data.schema import PROMPT_MODES, ConditionSchema

METADATA = "metadata.csv"


def prompt_columns() -> list[str]:
    """Metadata columns holding the prompt of each prompt mode."""
    return [f"prompt_{mode}" for mode in PROMPT_MODES]


def add_prompts(metadata: pd.DataFrame, schema: ConditionSchema) -> pd.DataFrame:
    """Return ``metadata`` with the condition label and the three prompt columns filled in."""
    out = metadata.copy()
    # Rows without a complete processing record (possible in real data) get no prompt.
    complete = out[list(schema.variables)].notna().all(axis=1)
    records = out.to_dict("records")
    rows = list(zip(records, complete, strict=True))
    out["label"] = [_named(schema.label, r) if ok else "" for r, ok in rows]
    for mode, column in zip(PROMPT_MODES, prompt_columns(), strict=True):
        out[column] = [_named(schema.prompt, r, mode) if ok else "" for r, ok in rows]
    return out


def _named(make, record: dict, *args) -> str:
    """``make(record, *args)``; an invalid condition names the row's id in the error."""
    try:
        return make(record, *args)
    except (ValueError, KeyError) as err:
        raise DataError(f"metadata row {record.get('id')!r}: {err}") from err


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a 2-D uint8 array as an 8-bit gray PNG, atomically (temp file + rename)."""
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"{path}: expected a 2-D uint8 array, got {array.dtype} {array.shape}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as a 2-D uint8 array; a corrupt or unreadable file names itself."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                im = im.convert("L")
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image {path}: {err}") from err


def write_prepared(
    out_dir: str | Path,
    metadata: pd.DataFrame,
    images: Iterable[tuple[str, np.ndarray]],
    masks: Iterable[tuple[str, np.ndarray]] | None = None,
    schema: ConditionSchema | None = None,
) -> pd.DataFrame:
    """Write a prepared data set in the contract layout.

    Parameters
    ----------
    out_dir : directory to write (created).
    metadata : one row per image with an ``id`` column, the schema's condition columns and
        ``pixel_size_um``.
    images, masks : iterables of ``(id, uint8 array)``; masks are optional.
    schema : when given, the condition columns are validated and the prompts added.

    Returns
    -------
    The metadata as written.
    """
    out_dir = Path(out_dir)
    if "id" not in metadata:
        raise DataError(f"metadata of {out_dir} has no 'id' column")
    duplicated = sorted(set(metadata.loc[metadata["id"].duplicated(), "id"]))
    if duplicated:
        raise DataError(f"metadata of {out_dir}: duplicate id(s) {duplicated[:3]}")
    if schema is not None:
        # Prompts first: an invalid condition then fails before any image is written.
        metadata = add_prompts(metadata, schema)
    # A metadata file left by an earlier run would make a half-rewritten folder look whole.
    (out_dir / METADATA).unlink(missing_ok=True)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    ids = set(metadata["id"])
    written = set()
    for image_id, image in images:
        if image_id not in ids:
            raise DataError(f"image {image_id!r} has no metadata row")
        write_png(out_dir / "images" / f"{image_id}.png", image)
        written.add(image_id)
    missing = ids - written
    if missing:
        raise DataError(f"{len(missing)} metadata rows have no image, e.g. {sorted(missing)[:3]}")
    has_mask = set()
    if masks is not None:
        (out_dir / "masks").mkdir(exist_ok=True)
        for image_id, mask in masks:
            write_png(out_dir / "masks" / f"{image_id}.png", mask)
            has_mask.add(image_id)
    metadata = metadata.copy()
    metadata["has_mask"] = metadata["id"].isin(has_mask)
    # Written last and atomically: metadata.csv present means every image is there.
    tmp = out_dir / f".{METADATA}.tmp"
    try:
        metadata.to_csv(tmp, index=False)
        os.replace(tmp, out_dir / METADATA)
    finally:
        tmp.unlink(missing_ok=True)
    return metadata


def read_metadata(data_dir: str | Path) -> pd.DataFrame:
    """Read ``metadata.csv`` of a prepared data set (ids as strings)."""
    path = Path(data_dir) / METADATA if Path(data_dir).is_dir() else Path(data_dir)
    return pd.read_csv(path, dtype={"id": str})
