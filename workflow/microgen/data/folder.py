"""The generic folder reader: labelled micrographs in sub-folders, a metadata table, and a
layout that says how its columns become the prepared data set's.

A data set folder holds the images (``images/`` by default), optionally their masks under
the same file names (``masks`` names the sub-folder), and a CSV table with one row per
image. The layout (a YAML file or a mapping in the config, :class:`FolderLayout`) names the
column holding each image's file name (the id is the file's stem) and, in the order they are
written, the prepared columns: every variable of the condition schema, ``pixel_size_um``
and any column to carry through. Each is read by a column spec (:func:`read_column`):

``{column: C}``
    a number (``type: number``, the default; ``strip_suffix: [x, X]`` for ``982x``),
    ``type: integer`` or ``type: text`` (kept as written);
``{column: C, unit_column: U, units: {H: 60, M: 1}}``
    a number times the factor of its unit in ``U``;
``{column: C, categories: {WQ: Q, Q: Q}}``
    a category (raw value → schema category);
``{scale_bar: {length: L, unit_column: U, units: {um: 1}, pixels: P}}``
    a pixel size in µm: the bar's length over its length in pixels;
``{value: 0.12}``
    one value for every row (e.g. one pixel size for the whole set);
``fallback: {inverse_of: pixel_size_um, product: 190.68}``
    (with ``column``) rows without a value get ``product / pixel_size_um`` (magnification ×
    pixel size is constant for one detector), and a ``{name}_source`` column says which
    rows were ``recorded`` and which came from the ``scale_bar``.

Every cell the layout cannot represent raises :class:`~microgen.data.checks.DataError`
naming the file, the line and image, the column and the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from microgen.data.folds import layout_mapping
from microgen.data.schema import ConditionSchema

Spec = Mapping[str, Any]


@dataclass(frozen=True)
class FolderLayout:
    """Where a data set folder keeps its files and how its metadata columns are read.

    Attributes
    ----------
    file_column : the metadata column holding each image's file name (relative to
        ``images`` and ``masks``); the image id is the name's stem.
    columns : prepared column → column spec (see the module docstring), in the order they
        are written; must cover every schema variable and ``pixel_size_um``.
    metadata : the metadata CSV, relative to the folder.
    images, masks : sub-folders of the images and of their masks (``None``: no masks).
    info_band : rows of a microscope information band to crop from every image and mask:
        ``{rows: N, side: bottom | top}``.
    folds : the cross-validation folds, from a JSON file or a column
        (:mod:`microgen.data.folds`).
    """

    file_column: str
    columns: Mapping[str, Spec]
    metadata: str = "metadata.csv"
    images: str = "images"
    masks: str | None = None
    info_band: Mapping[str, Any] = field(default_factory=dict)
    folds: Mapping[str, Any] | None = None

    @classmethod
    def load(cls, layout: str | Path | Mapping[str, Any], **overrides: Any) -> FolderLayout:
        """A layout by the name of a bundled one (:data:`microgen.data.folds.BUNDLED`), from
        a YAML file or a mapping (the config's), with ``overrides`` on top."""
        try:
            layout = layout_mapping(layout)
        except FileNotFoundError as err:
            raise MissingFileError(str(err)) from None
        known = set(cls.__dataclass_fields__)
        values = {**layout, **overrides}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"folder layout: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def band(self) -> tuple[int, str]:
        """``(rows, side)`` of the information band."""
        rows, side = int(self.info_band.get("rows", 0)), self.info_band.get("side", "bottom")
        if rows < 0 or side not in ("bottom", "top"):
            raise DataError(f"info_band: rows ≥ 0 and side bottom or top, got {self.info_band}")
        return rows, side


#: The keys a column spec may have (the module docstring says what each does).
SPEC_KEYS = (
    "column", "type", "strip_suffix", "unit_column", "units", "categories", "scale_bar",
    "value", "round", "fallback",
)  # fmt: skip


def read_column(
    raw: pd.DataFrame, name: str, spec: Spec, path: Path, rows: pd.Series, label: str = ""
) -> pd.Series:
    """One prepared column from the text table ``raw`` by its column spec (no fallback);
    ``label`` names the variable in messages (default ``name``)."""
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise DataError(
            f"folder layout, column {name}: unknown key(s) {unknown}; known: {list(SPEC_KEYS)}"
        )
    if "value" in spec:
        return pd.Series(spec["value"], index=raw.index)
    if "scale_bar" in spec:
        bar = spec["scale_bar"]
        length = with_unit(raw, bar["length"], bar["unit_column"], bar["units"], path, rows)
        return length / to_number(raw, bar["pixels"], path, rows)
    column = spec["column"]
    if "categories" in spec:
        return to_category(raw, column, spec["categories"], path, rows, label or name)
    if "unit_column" in spec:
        return with_unit(raw, column, spec["unit_column"], spec["units"], path, rows)
    kind = spec.get("type", "number")
    if kind == "text":
        return raw[column]
    if kind == "integer":
        return to_integer(raw, column, path, rows)
    if kind != "number":
        raise DataError(f"folder layout, column {name}: unknown type {kind!r}")
    return to_number(raw, column, path, rows, strip_suffix=tuple(spec.get("strip_suffix", ())))


def _source_columns(layout: FolderLayout) -> list[str]:
    """Every metadata column the layout reads."""
    names = [layout.file_column]
    for spec in layout.columns.values():
        bar = spec.get("scale_bar", {})
        names += [spec.get("column"), spec.get("unit_column"), *(bar.get(k) for k in
                  ("length", "unit_column", "pixels"))]  # fmt: skip
    return list(dict.fromkeys(n for n in names if n))


def read_folder_metadata(
    folder: str | Path, layout: FolderLayout, schema: ConditionSchema | None = None
) -> pd.DataFrame:
    """The metadata table of a data set folder in the prepared-data-set columns.

    Rows with an empty condition cell keep NaN there (their masks still serve segmentation,
    but they get no prompt). With ``schema``, every categorical value must be one of its
    categories and every variable needs a column.
    """
    path = Path(folder) / layout.metadata
    if not path.is_file():
        raise MissingFileError(f"metadata table not found: {path}")
    # Read as text so that a cell such as "970C" is reported, not parsed into a traceback.
    raw = pd.read_csv(path, dtype=str)
    require_columns(raw, _source_columns(layout), path)
    require_rows(raw, path)
    rows = csv_rows(raw, raw[layout.file_column])
    require_unique(raw[layout.file_column], layout.file_column, path, rows)
    labels = {n: schema.variable(n).label for n in schema.variables} if schema else {}
    read = {
        name: read_column(raw, name, spec, path, rows, labels.get(name, ""))
        for name, spec in layout.columns.items()
    }
    out = {"id": raw[layout.file_column].map(lambda name: Path(name).stem)}
    for name, spec in layout.columns.items():
        out[name] = read[name]
        if "fallback" in spec:
            inverse = spec["fallback"]
            derived = inverse["product"] / read[inverse["inverse_of"]]
            recorded = read[name].notna()
            out[name] = read[name].where(recorded, derived)
            out[f"{name}_source"] = np.where(recorded, "recorded", "scale_bar")
        if "round" in spec:
            out[name] = out[name].round(spec["round"])
    metadata = pd.DataFrame(out)
    if schema is not None:
        sources = {v: s["column"] for v, s in layout.columns.items() if "column" in s}
        check_categories(metadata, schema, path, rows, sources)
    return metadata


def _crop(array: np.ndarray, band: tuple[int, str]) -> np.ndarray:
    rows, side = band
    if rows == 0:
        return array
    if rows >= array.shape[0]:
        raise DataError(f"info_band of {rows} rows leaves nothing of a {array.shape} image")
    return array[:-rows] if side == "bottom" else array[rows:]


def iter_folder(
    folder: str | Path,
    layout: FolderLayout,
    files: Mapping[str, str],
    classes: int,
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """Yield ``(id, image, mask or None)`` for each ``id → file name`` of ``files``, the
    information band cropped.

    Images are decoded by :func:`~microgen.data.decode.read_micrograph` with
    ``bit_depth_scaling`` and ``color_to_gray``; masks by
    :func:`~microgen.data.decode.read_mask` and checked against the image's shape and the
    class ids 0 … ``classes - 1`` (``classes``: the number of classes of the condition
    schema).
    """
    folder, band = Path(folder), layout.band
    for image_id, name in files.items():
        image = _crop(read_micrograph(folder / layout.images / name, bit_depth_scaling,
                                      color_to_gray), band)  # fmt: skip
        if layout.masks is None:
            yield image_id, image, None
            continue
        mask_path = folder / layout.masks / name
        mask = _crop(read_mask(mask_path), band)
        if image.shape != mask.shape:
            raise DataError(f"{mask_path}: mask {mask.shape} and image {image.shape} differ")
        if mask.max() >= classes:
            raise DataError(
                f"{mask_path}: class id {mask.max()}, but the condition schema names {classes} "
                f"classes (ids 0…{classes - 1})"
            )
        yield image_id, image, mask


def image_files(folder: str | Path, layout: FolderLayout) -> dict[str, str]:
    """``id → file name`` of every row of the folder's metadata table."""
    raw = pd.read_csv(Path(folder) / layout.metadata, dtype=str)
    return {Path(name).stem: name for name in raw[layout.file_column]}


def prepare_folder(
    folder: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    layout: str | Path | Mapping[str, Any],
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
    **overrides: Any,
) -> pd.DataFrame:
    """Write a data set folder as a prepared data set.

    ``layout``: a :class:`FolderLayout` as a YAML file or a mapping, ``overrides`` on top
    (e.g. ``masks="labels"``). Every image and mask is read and checked before anything is
    written, so a refused input leaves no partial folder behind.
    """
    from microgen.data.prepared import write_prepared
    from microgen.data.schema import load_schema

    layout = layout if isinstance(layout, FolderLayout) else FolderLayout.load(layout, **overrides)
    schema = load_schema(schema_path)
    if layout.masks is not None and not schema.classes:
        raise DataError(f"{schema_path}: the folder has masks, but the schema names no classes")
    metadata = read_folder_metadata(folder, layout, schema)
    triples = list(iter_folder(folder, layout, image_files(folder, layout), len(schema.classes),
                               bit_depth_scaling, color_to_gray))  # fmt: skip
    # No masks: an empty masks/ folder, so that every reader writes the same layout.
    masks = () if layout.masks is None else ((i, m) for i, _, m in triples)
    return write_prepared(
        out_dir, metadata, ((i, image) for i, image, _ in triples), masks, schema=schema
    )
