"""Reader of the Aachen-Heerlen annotated steel microstructure data set (schema transfer).

Iren et al. 2021, "Aachen-Heerlen annotated steel microstructure dataset", Sci. Data 8:140,
doi:10.1038/s41597-021-00926-7; files in figshare collection 5185004 (CC0). SEM micrographs
of bainitic steels in which experts annotated martensite-austenite (MA) islands as polygons.
The paper (Phan et al. 2025, section 3.3, Appendix D) uses 1705 images and splits them by
steel type (Table D1): types 2, 3, 8 and 12 are unseen, the other five types give the seen
validation images.

Layout of the folder this module reads (names are parameters of :func:`read_aachen_heerlen`
and :func:`prepare_aachen_heerlen`)::

    nature_scidata_steel_metadata.csv                          one row per image
    nature_scidata_heerlen_aachen_steel_annotations_polygon.csv  one row per MA polygon
    PNG/{image_url}                                            the micrographs

What is established, and from where (the files themselves could not be reached):

* File names ``nature_scidata_steel_metadata.csv``,
  ``nature_scidata_heerlen_aachen_steel_annotations_polygon.csv`` (also shipped as
  ``.pickle``), ``..._annotations_POI.csv``, ``..._morph.pickle`` and the image folders
  ``PNG/`` and ``TIFF/`` (plus ``excluded_PNG/`` with images left out of the 1705): public
  scripts that read the release (GitHub, e.g. an mmdetection conversion script and
  ``michaelschott00/microstructures`` README / ``scripts/datasets/classification.py``).
* The polygon table is **semicolon**-separated because its cells hold unquoted commas; it has
  the columns ``image_url; point; polygon``, where ``point`` is the expert's point of
  interest ``(x, y)`` and ``polygon`` a Python literal list of ``(x, y)`` vertices, one
  polygon (MA island) per row: read with ``pd.read_csv(sep=";", converters={"polygon":
  ast.literal_eval})`` in those scripts; ``jinzzze/MicroPhaseLab`` tests the header
  ``Image_url;point;polygon`` (so the capitalisation varies: columns are matched
  case-insensitively here). Vertices are ``(x, y)`` = (column, row): the scripts take
  ``polygon[:, 0]`` as x for bounding boxes and draw them with OpenCV, which takes ``(x, y)``.
* The metadata table has an ``image_url`` column holding the image file name with extension
  (``metadata["image_url"].isin(os.listdir("PNG"))``) and a ``type`` column (steel type,
  used to stratify splits); a ``temperature`` column is used together with ``type`` to group
  samples (MicroPhaseLab report: 14 type × temperature groups in 1705 images).
* Figshare files: polygons 25214918 (3,744,453 bytes), metadata 25214927 (136,915 bytes),
  PNG archive 26094926 (1,223,165,391 bytes) — sizes and MD5s from MicroPhaseLab's pinned
  downloader; see ``resources/manifests/aachen-heerlen.yaml``.
* Image names look like ``IMG_00004.png`` (file names quoted in public repositories).

Assumptions (parameters, so a look at the real files can correct them without code changes):

* Metadata column names of distance, specimen orientation and angle: ``distance``,
  ``orientation`` and ``angle`` (``DEFAULT_COLUMNS``); matched case-insensitively.
  Temperatures and distances may carry units (``"400 °C"``, ``"9mm"``): the first number is
  taken. Category values are matched to the schema's categories or their words,
  case-insensitively (``"vertical"`` → ``V``); an unmatched value raises, naming it.
* Information band: whether the PNGs keep the SEM's data bar is not established;
  ``info_band_px`` of :func:`prepare_aachen_heerlen` crops one (0 by default).
* Pixel size: not established (the SEM TIFFs carry it, the PNGs do not); ``pixel_size_um``
  is a parameter, NaN by default.
* Polygon vertex convention: pixel units with the origin at the top-left corner of the
  top-left pixel (``vertex_origin="corner"``); ``"center"`` treats ``(x, y)`` as pixel-centre
  indices instead. Either way the mask's pixel count estimates the polygon's area.
* An image without polygon rows has no MA (an all-zero mask).
* The per-type counts of Table D1's "Training" column sum to 1476, not the stated 1364; 1476 −
  1364 = 112, the number of seen-validation images. The column therefore lists every image of
  the seen types, of which the seen-validation images are then held out:
  ``TABLE_D1_SEEN_VALIDATION`` holds those per-type counts.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.draw import polygon as draw_polygon

from microgen.data.checks import (
    DataError,
    MissingColumnError,
    MissingFileError,
    csv_rows,
    require_rows,
    require_unique,
)
from microgen.data.decode import read_micrograph
from microgen.data.schema import CategoricalVariable, ConditionSchema

METADATA_FILE = "nature_scidata_steel_metadata.csv"
POLYGON_FILE = "nature_scidata_heerlen_aachen_steel_annotations_polygon.csv"
IMAGE_DIR = "PNG"

#: Schema variable -> metadata column holding it (``image_url`` names the image).
DEFAULT_COLUMNS: dict[str, str] = {
    "image": "image_url",
    "steel_type": "type",
    "temperature": "temperature",
    "distance": "distance",
    "orientation": "orientation",
    "angle": "angle",
}

#: Table D1: steel types whose images are all unseen-validation images.
TABLE_D1_UNSEEN_TYPES: tuple[str, ...] = ("2", "3", "8", "12")
#: Table D1: seen-validation images per seen steel type (112 in all).
TABLE_D1_SEEN_VALIDATION: dict[str, int] = {"1": 28, "CFB2": 20, "5": 18, "10": 26, "11": 20}
#: Table D1: images per steel type (the "Training" column counts every image of a seen type).
TABLE_D1_IMAGES: dict[str, int] = {
    **{"1": 456, "CFB2": 207, "5": 162, "10": 433, "11": 218},
    **{"2": 87, "3": 3, "8": 13, "12": 126},
}

MA_CLASS = 1

Polygon = Sequence[Sequence[float]]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV of the release, detecting ``;``, ``,`` or tab as separator from the header."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Aachen-Heerlen table not found: {path}")
    with path.open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    sep = max((";", ",", "\t"), key=header.count)
    return pd.read_csv(path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _column(frame: pd.DataFrame, name: str, source: object) -> str:
    for column in frame.columns:
        if str(column).strip().casefold() == name.casefold():
            return column
    raise MissingColumnError(
        f"{source}: missing column {name!r} (matched case-insensitively); "
        f"columns present: {list(frame.columns)}"
    )


_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def _numbers(values: pd.Series, column: str, source: object, rows: pd.Series) -> pd.Series:
    """First number of each cell (``"400 °C"`` -> 400.0, ``"9mm"`` -> 9.0).

    An empty cell is NaN (no prompt); a cell with no number raises, naming it.
    """
    out = []
    for index, value in values.items():
        text = str(value).strip()
        match = _NUMBER.search(text)
        if text and match is None:
            raise DataError(f"{source}, {rows[index]}, column {column}: {value!r} is not a number")
        out.append(float(match.group().replace(",", ".")) if match else float("nan"))
    return pd.Series(out, index=values.index, dtype=float)


def _category(variable: CategoricalVariable, value: object) -> str | None:
    """Map a raw metadata value to one of the variable's categories (code or word).

    An empty cell gives ``None``: the image keeps no prompt, as images without a processing
    record do in the other readers. An unmatched value raises ``KeyError``.
    """
    text = str(value).strip()
    if not text or text.casefold() == "nan":
        return None
    if re.fullmatch(r"\d+\.0+", text):  # "2.0" written by a spreadsheet
        text = text.split(".")[0]
    lookup = {c.casefold(): c for c in variable.categories}
    lookup.update({w.casefold(): c for c, w in variable.words.items()})
    return lookup[text.casefold()]


def _categories(
    values: pd.Series, variable: CategoricalVariable, column: str, source: object, rows: pd.Series
) -> pd.Series:
    """:func:`_category` of each cell; an unmatched value names its file, row and column."""
    out = []
    for index, value in values.items():
        try:
            out.append(_category(variable, value))
        except KeyError:
            raise DataError(
                f"{source}, {rows[index]}, column {column}: {value!r} matches no category of "
                f"{variable.name} in the schema {list(variable.categories)} (nor their words); "
                "add it to the schema"
            ) from None
    return pd.Series(out, index=values.index, dtype=object)


def read_aachen_heerlen(
    folder: str | Path,
    schema: ConditionSchema | str | Path | None = None,
    columns: Mapping[str, str] | None = None,
    metadata_file: str = METADATA_FILE,
    pixel_size_um: float | None = None,
) -> pd.DataFrame:
    """Metadata of the Aachen-Heerlen images in the prepared-data-set columns.

    Parameters
    ----------
    folder : folder holding the metadata table (see the module docstring).
    schema : condition schema (object or YAML path) used to map category values; default
        ``resources/schemas/aachen-heerlen.yaml`` relative to the repository.
    columns : overrides of ``DEFAULT_COLUMNS`` (schema variable or ``"image"`` -> column).
    metadata_file : file name of the metadata table inside ``folder``.
    pixel_size_um : pixel size in µm of every image; NaN when ``None`` (not established).

    Returns
    -------
    DataFrame with ``id`` (image file stem), ``image_file``, ``temperature`` (°C),
    ``distance`` (mm), ``orientation``, ``angle``, ``steel_type`` and ``pixel_size_um``, one
    row per metadata row, in file order.
    """
    schema = _schema(schema)
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    path = Path(folder) / metadata_file
    raw = read_table(path)
    image_col = _column(raw, columns["image"], path)
    require_rows(raw, path)
    files = raw[image_col].str.strip().map(lambda s: Path(s.replace("\\", "/")).name)
    out = pd.DataFrame({"id": files.map(lambda s: Path(s).stem), "image_file": files})
    rows = csv_rows(raw, out["id"])
    require_unique(out["id"], image_col, path, rows)
    for v in schema.continuous:
        col = _column(raw, columns.get(v.name, v.name), path)
        out[v.name] = _numbers(raw[col], col, path, rows)
    for c in schema.categorical:
        col = _column(raw, columns.get(c.name, c.name), path)
        out[c.name] = _categories(raw[col], c, col, path, rows)
    out["pixel_size_um"] = float("nan") if pixel_size_um is None else float(pixel_size_um)
    return out


def read_polygons(
    folder: str | Path,
    polygon_file: str = POLYGON_FILE,
    image_column: str = "image_url",
    polygon_column: str = "polygon",
) -> dict[str, list[list[tuple[float, float]]]]:
    """Polygons per image id (file stem) from the semicolon-separated polygon table.

    Each cell of ``polygon_column`` is a Python literal list of ``(x, y)`` vertices; it is
    parsed with :func:`ast.literal_eval`, which evaluates literals only, never code.
    """
    raw = read_table(Path(folder) / polygon_file)
    image_col = _column(raw, image_column, Path(folder) / polygon_file)
    polygon_col = _column(raw, polygon_column, Path(folder) / polygon_file)
    out: dict[str, list[list[tuple[float, float]]]] = {}
    for row, (image, cell) in enumerate(zip(raw[image_col], raw[polygon_col], strict=True)):
        try:
            vertices = [(float(p[0]), float(p[1])) for p in ast.literal_eval(cell.strip())]
        except (ValueError, SyntaxError, TypeError, IndexError) as err:
            raise DataError(
                f"{Path(folder) / polygon_file}, row {row + 2}, column {polygon_col}: "
                f"unreadable polygon {cell!r}"
            ) from err
        key = Path(image.strip().replace("\\", "/")).stem
        out.setdefault(key, []).append(vertices)
    return out


def polygons_to_mask(
    polygons: Iterable[Polygon],
    shape: tuple[int, int],
    vertex_origin: str = "corner",
) -> np.ndarray:
    """Rasterise MA polygons into a class mask (MA = 1, everything else 0).

    Parameters
    ----------
    polygons : polygons, each a sequence of ``(x, y)`` vertices in pixels, x along columns
        (to the right) and y along rows (down). A repeated closing vertex is harmless.
    shape : ``(rows, columns)`` of the image.
    vertex_origin : ``"corner"``: ``(0, 0)`` is the top-left corner of the top-left pixel,
        pixel ``(r, c)`` covers ``[c, c+1) × [r, r+1)`` and is MA when its centre
        ``(c + 0.5, r + 0.5)`` lies inside a polygon, so an axis-aligned polygon with integer
        vertices covers exactly its area in pixels. ``"center"``: ``(x, y)`` are pixel-centre
        indices (pixel ``(r, c)`` is centred on ``(c, r)``); centres on an edge count as inside.

    Returns
    -------
    ``uint8`` array of ``shape``.

    Notes
    -----
    * Each polygon is one simple ring (the format has no holes); pixels inside any polygon are
      MA, so overlapping polygons are united. A self-intersecting ring is filled by the
      even-odd rule of :func:`skimage.draw.polygon`.
    * Vertices outside the image are kept: the polygon is rasterised as drawn and then
      clipped to the image, so only its in-image part is MA.
    * Polygons with fewer than three vertices cover no area and are skipped.
    """
    if vertex_origin not in ("corner", "center"):
        raise ValueError(f"vertex_origin must be 'corner' or 'center', got {vertex_origin!r}")
    offset = 0.5 if vertex_origin == "corner" else 0.0
    mask = np.zeros(shape, dtype=np.uint8)
    for vertices in polygons:
        pts = np.asarray(vertices, dtype=float)
        if pts.ndim != 2 or pts.shape[1] < 2:
            raise ValueError(f"a polygon must be a list of (x, y) vertices, got shape {pts.shape}")
        if len(pts) < 3:
            continue
        rows, cols = draw_polygon(pts[:, 1] - offset, pts[:, 0] - offset, shape=shape)
        mask[rows, cols] = MA_CLASS
    return mask


def ma_area_fraction(mask: np.ndarray) -> float:
    """Fraction of pixels labelled MA (class 1)."""
    return float(np.mean(np.asarray(mask) == MA_CLASS))


def prepare_aachen_heerlen(
    folder: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    columns: Mapping[str, str] | None = None,
    metadata_file: str = METADATA_FILE,
    polygon_file: str = POLYGON_FILE,
    image_dir: str = IMAGE_DIR,
    pixel_size_um: float | None = None,
    vertex_origin: str = "corner",
    info_band_px: int = 0,
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> pd.DataFrame:
    """Write the Aachen-Heerlen images and MA masks as a prepared data set.

    ``info_band_px`` rows are cropped from the bottom of every image and mask after
    rasterising (a microscope information band; whether the A-H PNGs carry one is not
    established, so 0 by default). Polygon coordinates refer to the uncropped image.

    Images are decoded with ``bit_depth_scaling`` and ``color_to_gray``
    (:func:`microgen.data.decode.read_micrograph`: by default what is not 8-bit gray is
    refused). Every metadata row needs its image in ``folder/image_dir``; polygons of images
    without a metadata row raise (they would silently vanish otherwise). The written
    metadata carries the prepared-contract columns plus ``image_file``, ``n_polygons`` and
    ``ma_area_fraction`` (of the full-resolution mask, for Fig. D1a).

    Returns
    -------
    The metadata as written (see :func:`microgen.data.prepared.write_prepared`).
    """
    from microgen.data.prepared import write_prepared
    from microgen.data.schema import load_schema

    schema = load_schema(schema_path)
    if len(schema.classes) <= MA_CLASS:
        raise DataError(
            f"{schema_path}: classes: the masks mark MA as class {MA_CLASS}, the schema names "
            f"{len(schema.classes)} class(es)"
        )
    folder = Path(folder)
    metadata = read_aachen_heerlen(folder, schema, columns, metadata_file, pixel_size_um)
    image_column = {**DEFAULT_COLUMNS, **(columns or {})}["image"]
    polygons = read_polygons(folder, polygon_file, image_column=image_column)
    orphans = sorted(set(polygons) - set(metadata["id"]))
    if orphans:
        raise DataError(
            f"{folder / polygon_file}: {len(orphans)} annotated images have no metadata row "
            f"in {metadata_file}, e.g. {orphans[:3]}"
        )
    images, masks, counts, fractions = [], [], [], []
    for image_id, name in zip(metadata["id"], metadata["image_file"], strict=True):
        image = read_micrograph(folder / image_dir / name, bit_depth_scaling, color_to_gray)
        mask = polygons_to_mask(polygons.get(image_id, []), image.shape, vertex_origin)
        if info_band_px:
            if info_band_px >= image.shape[0]:
                raise ValueError(f"{name}: info_band_px {info_band_px} >= image height")
            image, mask = image[:-info_band_px], mask[:-info_band_px]
        images.append((image_id, image))
        masks.append((image_id, mask))
        counts.append(len(polygons.get(image_id, [])))
        fractions.append(ma_area_fraction(mask))
    metadata["n_polygons"] = counts
    metadata["ma_area_fraction"] = fractions
    return write_prepared(out_dir, metadata, images, masks, schema=schema)


def split_by_steel_type(
    metadata: pd.DataFrame,
    val_types: Iterable[str] = TABLE_D1_UNSEEN_TYPES,
    seen_per_type: Mapping[str, int] | None = None,
    seed: int = 0,
    type_column: str = "steel_type",
) -> pd.DataFrame:
    """Table D1 split: whole steel types unseen, a drawn number per seen type held out.

    Parameters
    ----------
    metadata : prepared metadata with ``id`` and ``type_column``.
    val_types : steel types whose images all become ``val_unseen`` (paper: 2, 3, 8, 12).
    seen_per_type : images per remaining type drawn (seeded, uniformly) as ``val_seen``;
        every other image is ``train``. ``None``: no seen-validation images (the paper's
        counts are ``TABLE_D1_SEEN_VALIDATION``).
    seed : seed of the draw.
    type_column : column holding the steel type.

    Returns
    -------
    DataFrame with ``id`` and ``split`` (``train`` / ``val_seen`` / ``val_unseen``) in the
    metadata's row order, as :func:`microgen.data.split.split_dataset` returns.
    """
    types = metadata[type_column].astype(str)
    val_types = {str(t) for t in val_types}
    split = pd.Series("train", index=metadata.index, dtype=object)
    split[types.isin(val_types)] = "val_unseen"
    rng = np.random.default_rng(seed)
    for steel_type, count in sorted((seen_per_type or {}).items()):
        steel_type = str(steel_type)
        if steel_type in val_types:
            raise ValueError(f"steel type {steel_type} is unseen; it cannot give seen images")
        pool = np.asarray(metadata.index[(types == steel_type) & (split == "train")])
        if count >= len(pool):
            raise ValueError(
                f"steel type {steel_type}: asked for {count} seen-validation images but it has "
                f"{len(pool)}; at least one must stay in training"
            )
        split[rng.choice(pool, size=count, replace=False)] = "val_seen"
    return pd.DataFrame({"id": metadata["id"].to_numpy(), "split": split.to_numpy()})


def area_fraction_by_type(
    metadata: pd.DataFrame,
    fraction_column: str = "ma_area_fraction",
    type_column: str = "steel_type",
) -> pd.DataFrame:
    """Per steel type: image count, mean and standard deviation of the MA area fraction.

    The real-data side of Fig. D1a and of Table 7b's per-type comparison; the standard
    deviation is the sample one (``ddof=1``; NaN for a single image).
    """
    grouped = metadata.groupby(metadata[type_column].astype(str))[fraction_column]
    out = grouped.agg(images="count", mean="mean", std="std").reset_index()
    return out.rename(columns={type_column: "steel_type"})


def _schema(schema: ConditionSchema | str | Path | None) -> ConditionSchema:
    from microgen.data.schema import load_schema

    if isinstance(schema, ConditionSchema):
        return schema
    if schema is None:
        schema = Path(__file__).resolve().parents[3] / "resources/schemas/aachen-heerlen.yaml"
    return load_schema(schema)
