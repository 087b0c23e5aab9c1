"""Reader of the Ultrahigh Carbon Steel micrograph database (UHCSDB, hdl:11256/940).

The deposit has ``microstructures.sqlite`` with two tables the method needs:

``sample``      label, anneal_time + anneal_time_unit (``H`` or ``M``), anneal_temperature +
                anneal_temp_unit (``C``), cool_method (Q, WQ, WQ-2C, WC, AR, FC, 650-1H)
``micrograph``  path, micron_bar + micron_bar_units + micron_bar_px (the scale bar),
                magnification as a string (``4910x``, ``1964X``) or NULL, detector,
                sample_key → sample, primary_microconstituent

961 micrographs carry one of the seven microstructure classes; the 598 of them whose sample
has an annealing temperature, time and cooling method are the set the parameter-aware paper
trains on. Images in the deposit carry a 38-px information band at the bottom, cropped here.
"""

from __future__ import annotations

import io
import re
import sqlite3
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.checks import (
    DataError,
    MissingColumnError,
    MissingFileError,
    check_categories,
    require_rows,
    to_category,
    to_integer,
    to_number,
    with_unit,
)
from microgen.data.decode import read_micrograph

#: The seven microstructure classes of the UHCSDB deposit (other rows are "crack",
#: "indent", "figure", … or NULL and have no micrograph of a microstructure).
MICROSTRUCTURE_CLASSES = (
    "spheroidite",
    "network",
    "pearlite",
    "pearlite+spheroidite",
    "spheroidite+widmanstatten",
    "pearlite+widmanstatten",
    "martensite",
)

#: Cooling methods of the database mapped onto the four of the paper's Table A1. Water
#: quench variants (WQ, WQ-2C: quenched in 2 °C water, WC: water cooled) are quenches.
COOLING_CATEGORIES = {
    "Q": "Q",
    "WQ": "Q",
    "WQ-2C": "Q",
    "WC": "Q",
    "AR": "AR",
    "FC": "FC",
    "650-1H": "650-1H",
}

#: Scale of the UHCS micrographs: a 20 µm bar is 103 px at 982×.
REFERENCE_MAGNIFICATION = 982.0
REFERENCE_PIXEL_SIZE_UM = 20.0 / 103.0

INFO_BAND_PX = 38

_MAGNIFICATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX]\s*$")
_LENGTH_UNIT_UM = {"um": 1.0, "µm": 1.0, "nm": 1e-3, "mm": 1e3}
_TIME_UNIT_MIN = {"M": 1.0, "H": 60.0}
_TEMPERATURE_UNIT_C = {"C": 1.0}

#: The database column each categorical variable is read from (named by messages).
SOURCE_COLUMNS = {"cooling": "cool_method", "microconstituent": "primary_microconstituent"}

#: Columns of each table the reader selects.
TABLE_COLUMNS = {
    "micrograph": (
        "micrograph_id",
        "path",
        "micron_bar",
        "micron_bar_units",
        "micron_bar_px",
        "magnification",
        "detector",
        "primary_microconstituent",
        "sample_key",
    ),
    "sample": (
        "sample_id",
        "label",
        "anneal_time",
        "anneal_time_unit",
        "anneal_temperature",
        "anneal_temp_unit",
        "cool_method",
    ),
}


def parse_magnification(text: str | None) -> float | None:
    """Magnification from the database's string form (``'4910x'``, ``'1964X'``); None for NULL.

    Raises ``ValueError`` for a string that is not a magnification.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    match = _MAGNIFICATION.match(str(text))
    if match is None:
        raise ValueError(f"not a magnification: {text!r} (expected e.g. '4910x')")
    return float(match.group(1))


def parse_magnifications(raw: pd.DataFrame, source: object, rows: pd.Series) -> pd.Series:
    """:func:`parse_magnification` of the ``magnification`` column; a value that is not a
    magnification raises :class:`~microgen.data.checks.DataError` naming its row."""
    out = []
    for index, text in raw["magnification"].items():
        try:
            out.append(parse_magnification(text))
        except ValueError as err:
            raise DataError(f"{source}, {rows[index]}, column magnification: {err}") from None
    return pd.Series(out, index=raw.index, dtype=float)


def magnification_from_pixel_size(pixel_size_um: float) -> float:
    """Nominal magnification of a UHCS micrograph with this pixel size (pixel size ∝ 1/M)."""
    return REFERENCE_MAGNIFICATION * REFERENCE_PIXEL_SIZE_UM / pixel_size_um


def pixel_size_from_magnification(magnification: float) -> float:
    """Pixel size in µm of a UHCS micrograph at ``magnification``."""
    return REFERENCE_PIXEL_SIZE_UM * REFERENCE_MAGNIFICATION / magnification


def read_uhcsdb(sqlite_path: str | Path, require_processing: bool = True) -> pd.DataFrame:
    """Micrographs of UHCSDB with their processing and imaging conditions.

    Parameters
    ----------
    sqlite_path : path of ``microstructures.sqlite``.
    require_processing : keep only micrographs whose sample has an annealing temperature,
        time and cooling method (the paper's 598); otherwise all 961 of the seven classes.

    Returns
    -------
    DataFrame, one row per micrograph: ``id`` (``uhcsNNNN``), ``micrograph_id``, ``path``,
    ``temperature`` (°C), ``time`` (min), ``cooling`` (Table A1 category),
    ``cool_method_raw``, ``magnification`` (×), ``magnification_source`` (``recorded`` or
    ``scale_bar`` where the database has NULL), ``pixel_size_um`` (micron_bar /
    micron_bar_px), ``microconstituent``, ``detector``, ``sample_label``.
    """
    sqlite_path = Path(sqlite_path)
    if not sqlite_path.is_file():
        raise MissingFileError(f"UHCSDB database not found: {sqlite_path}")
    query = """
        SELECT m.micrograph_id, m.path, m.micron_bar, m.micron_bar_units, m.micron_bar_px,
               m.magnification, m.detector, m.primary_microconstituent,
               s.label AS sample_label, s.anneal_time, s.anneal_time_unit,
               s.anneal_temperature, s.anneal_temp_unit, s.cool_method
        FROM micrograph m LEFT JOIN sample s ON m.sample_key = s.sample_id
        ORDER BY m.micrograph_id
    """
    with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True) as con:
        _check_tables(con, sqlite_path)
        raw = pd.read_sql_query(query, con)
    raw = raw[raw["primary_microconstituent"].isin(MICROSTRUCTURE_CLASSES)]
    if require_processing:
        complete = raw[["anneal_time", "anneal_temperature", "cool_method"]].notna().all(axis=1)
        raw = raw[complete]
    require_rows(raw, sqlite_path, "micrograph of the seven classes with processing metadata")
    return _conditions(raw, sqlite_path).reset_index(drop=True)


def _check_tables(con: sqlite3.Connection, path: Path) -> None:
    """Each table the query reads has its columns; otherwise name file, table and columns."""
    for table, columns in TABLE_COLUMNS.items():
        present = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
        missing = [c for c in columns if c not in present]
        if missing:
            raise MissingColumnError(
                f"{path}: table {table} lacks column(s) {missing}; columns present: {present}"
            )


def _conditions(raw: pd.DataFrame, source: object = "UHCSDB") -> pd.DataFrame:
    """Prepared-data-set columns of the joined rows; bad units or values name their row."""
    pairs = zip(raw["micrograph_id"], raw["sample_label"], strict=True)
    rows = pd.Series(
        [f"micrograph_id {m} (sample {s})" for m, s in pairs], index=raw.index, dtype=object
    )
    bar = with_unit(raw, "micron_bar", "micron_bar_units", _LENGTH_UNIT_UM, source, rows)
    pixel_size = bar / to_number(raw, "micron_bar_px", source, rows)
    recorded = parse_magnifications(raw, source, rows)
    magnification = recorded.where(recorded.notna(), pixel_size.map(magnification_from_pixel_size))
    return pd.DataFrame(
        {
            "id": [f"uhcs{int(i):04d}" for i in to_integer(raw, "micrograph_id", source, rows)],
            "micrograph_id": to_integer(raw, "micrograph_id", source, rows),
            "path": raw["path"],
            "temperature": with_unit(
                raw, "anneal_temperature", "anneal_temp_unit", _TEMPERATURE_UNIT_C, source, rows
            ),
            "time": with_unit(raw, "anneal_time", "anneal_time_unit", _TIME_UNIT_MIN, source, rows),
            "cooling": to_category(
                raw, "cool_method", COOLING_CATEGORIES, source, rows, "cooling method"
            ),
            "cool_method_raw": raw["cool_method"],
            "magnification": magnification.round(0),
            "magnification_source": np.where(recorded.notna(), "recorded", "scale_bar"),
            "pixel_size_um": pixel_size,
            "microconstituent": raw["primary_microconstituent"],
            "detector": raw["detector"],
            "sample_label": raw["sample_label"],
        }
    )


def crop_info_band(image: np.ndarray, band_px: int = INFO_BAND_PX) -> np.ndarray:
    """Remove the microscope's information band (scale bar, labels) at the image bottom."""
    if band_px <= 0:
        return image
    if image.shape[0] <= band_px:
        raise ValueError(f"image of height {image.shape[0]} has no room for a {band_px}-px band")
    return image[:-band_px]


def iter_micrographs(
    metadata: pd.DataFrame,
    images: str | Path,
    band_px: int = INFO_BAND_PX,
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, image)`` for each row with the information band cropped.

    Parameters
    ----------
    metadata : rows of :func:`read_uhcsdb` (``id``, ``path``).
    images : the deposit's archive (``.zip``) or a folder it was extracted to. Files are
        found by name (``micrographN.tif``, or a ``.png`` copy) anywhere inside.
    band_px : height of the information band to crop.
    bit_depth_scaling, color_to_gray : how images that are not 8-bit gray are decoded
        (:func:`microgen.data.decode.read_micrograph`; by default they are refused).
    """
    images = Path(images)
    options = {"bit_depth_scaling": bit_depth_scaling, "color_to_gray": color_to_gray}
    if images.suffix == ".zip":
        with zipfile.ZipFile(images) as archive:
            members = {Path(n).name: n for n in archive.namelist()}
            for row in metadata.itertuples():
                member = members[_find(row, members)]
                with archive.open(member) as fh:
                    data = io.BytesIO(fh.read())
                image = read_micrograph(data, name=f"{images}:{member}", **options)
                yield row.id, crop_info_band(image, band_px)
    else:
        members = {p.name: p for p in images.rglob("*") if p.is_file()}
        for row in metadata.itertuples():
            image = read_micrograph(members[_find(row, members)], **options)
            yield row.id, crop_info_band(image, band_px)


def _names(row) -> tuple[str, ...]:
    """File names a micrograph may have: the deposit's (``micrographN.tif``), a ``.png``
    copy of it, or its id (``uhcsNNNN.png``, as the UHCS-24 annotations name it)."""
    return (Path(row.path).name, Path(row.path).with_suffix(".png").name, f"{row.id}.png")


def image_names(images: str | Path) -> set[str]:
    """The file names in a micrograph archive (``.zip``) or folder (searched recursively)."""
    images = Path(images)
    if images.suffix == ".zip":
        with zipfile.ZipFile(images) as archive:
            return {Path(n).name for n in archive.namelist()}
    return {p.name for p in images.rglob("*") if p.is_file()}


def with_images(metadata: pd.DataFrame, names: set[str]) -> pd.DataFrame:
    """The rows of ``metadata`` whose micrograph is among the file ``names``."""
    keep = [any(n in names for n in _names(row)) for row in metadata.itertuples()]
    return metadata[keep].reset_index(drop=True)


def _find(row, members: dict) -> str:
    for name in _names(row):
        if name in members:
            return name
    raise FileNotFoundError(
        f"micrograph {row.id} ({row.path}) is not among the UHCSDB images; download the "
        "micrograph archive (rule download_uhcsdb) or set dataset.uhcsdb.images to the "
        "folder or archive that holds it"
    )


def prepare_uhcsdb(
    sqlite_path: str | Path,
    images: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    info_band_px: int = INFO_BAND_PX,
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
    missing_images: str = "error",
) -> pd.DataFrame:
    """Write the 598 UHCSDB micrographs with processing metadata as a prepared data set.

    The metadata is checked against the schema before any image is written; images are
    streamed (598 full-size micrographs), and ``metadata.csv``, written last, is what marks
    the folder complete. ``missing_images="skip"`` keeps only the micrographs found in
    ``images`` (a subset of the deposit) and logs how many were left out; ``"error"`` stops
    at the first one missing.
    """
    from tqdm.auto import tqdm

    from microgen.data.prepared import write_prepared
    from microgen.data.schema import load_schema

    schema = load_schema(schema_path)
    metadata = read_uhcsdb(sqlite_path)
    if missing_images == "skip":
        total = len(metadata)
        metadata = with_images(metadata, image_names(images))
        require_rows(metadata, images, f"micrograph of {sqlite_path} with an image")
        print(
            f"{images}: {len(metadata)} of the {total} micrographs with processing metadata "
            f"have an image here; {total - len(metadata)} left out",
            file=sys.stderr,
        )
    rows = "micrograph_id " + metadata["micrograph_id"].astype(str)
    check_categories(metadata, schema, sqlite_path, rows, SOURCE_COLUMNS)
    frames = iter_micrographs(metadata, images, info_band_px, bit_depth_scaling, color_to_gray)
    return write_prepared(
        out_dir,
        metadata,
        tqdm(frames, total=len(metadata), desc="micrographs"),
        schema=schema,
    )
