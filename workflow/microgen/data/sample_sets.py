"""Generated sample sets as image sets: ids, conditions and pixel sizes for the descriptors.

A samples table ``samples/{model}/{mode}.csv`` (see :mod:`microgen.generate.sampling`) names
each image by ``prompt_mode, label, seed`` and a ``path`` relative to ``samples/{model}``. The
descriptor tables and the segmenter need one flat, filesystem-safe ``id`` per image (masks are
written as ``{id}.png``), and a pixel size in µm for every image.

Id mapping
----------
``sample_id(mode, label, seed) = f"{mode}__{quote(label)}__{seed}"`` where ``quote`` is
:func:`urllib.parse.quote` keeping only ``A-Z a-z 0-9 - _ . +`` (everything else, including
``/``, ``%``, spaces and ``×``, is percent-encoded). Prompt modes contain no ``__`` and the seed
is an integer, so :func:`parse_sample_id` splits at the first and the last ``__`` and unquotes
the middle: the mapping round-trips for every label (even one containing ``__``), e.g.
``full_text/800C-180M-4910x-Q-S/3`` -> ``full_text__800C-180M-4910x-Q-S__3``.

Pixel size
----------
Generated images carry no scale bar; their pixel size is that of a real micrograph of the same
magnification, times ``scale = original side / generated side`` when the training images were
resized (:func:`microgen.data.preprocess.resize_center_crop` grows the pixel size by
``min(H, W) / resolution``; see :func:`resize_scale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray
from microgen.data.preprocess import resize_center_crop

__all__ = [
    "SEPARATOR",
    "sample_id",
    "parse_sample_id",
    "resize_scale",
    "condition_pixel_sizes",
    "pixel_size_from_metadata",
    "samples_metadata",
    "load_image_groups",
]

SEPARATOR = "__"
_SAFE = "-_.+"


def sample_id(mode: str, label: str, seed: int) -> str:
    """Filesystem-safe id of the generated image ``{mode}/{label}/{seed}``.

    Raises ``ValueError`` when ``mode`` is empty or contains the separator ``__`` or ``/``.
    """
    if not mode or SEPARATOR in mode or "/" in mode:
        raise ValueError(f"prompt mode {mode!r} cannot be part of a sample id")
    return f"{mode}{SEPARATOR}{quote(str(label), safe=_SAFE)}{SEPARATOR}{int(seed)}"


def parse_sample_id(image_id: str) -> tuple[str, str, int]:
    """Inverse of :func:`sample_id`: ``(mode, label, seed)``."""
    head, sep1, rest = image_id.partition(SEPARATOR)
    middle, sep2, seed = rest.rpartition(SEPARATOR)
    if not (sep1 and sep2 and head) or not seed.lstrip("-").isdigit():
        raise ValueError(f"{image_id!r} is not a sample id (mode__label__seed)")
    return head, unquote(middle), int(seed)


def resize_scale(original_shape: Sequence[int], resolution: int) -> float:
    """Pixel-size factor of :func:`~microgen.data.preprocess.resize_center_crop`: min(H, W) / R."""
    if resolution <= 0:
        raise ValueError("resolution must be positive")
    return float(min(original_shape)) / float(resolution)


def pixel_size_from_metadata(metadata: pd.DataFrame | str | Path) -> Callable[[float], float]:
    """Magnification -> pixel size (µm) as recorded for real images of a prepared data set.

    The median ``pixel_size_um`` of the real images at each magnification; a magnification the
    data set lacks is interpolated as ``p(M) = c / M`` with ``c`` the median of
    ``pixel_size_um * magnification`` (SEM pixel size is inversely proportional to it).
    """
    if not isinstance(metadata, pd.DataFrame):
        metadata = pd.read_csv(metadata, dtype={"id": str})
    table = metadata.dropna(subset=["magnification", "pixel_size_um"])
    if table.empty:
        raise ValueError("metadata has no rows with magnification and pixel_size_um")
    by_mag = table.groupby("magnification")["pixel_size_um"].median().to_dict()
    constant = float(np.median(table["pixel_size_um"] * table["magnification"]))

    def pixel_size(magnification: float) -> float:
        m = float(magnification)
        return float(by_mag[m]) if m in by_mag else constant / m

    return pixel_size


def condition_pixel_sizes(
    samples: pd.DataFrame, metadata: pd.DataFrame
) -> tuple[list[float], list[str]]:
    """Native pixel size (µm) of each generated row, from the real images of a prepared data
    set, and where it came from (``pixel_size_source``).

    A condition's real images (same ``label``) give it their pixel size, their median when
    they differ (a condition imaged on two microscopes; ``"median (k distinct values)"``
    says so); a condition without real images takes the value at its magnification
    (:func:`pixel_size_from_metadata`) or, for a schema without magnification, the data
    set's median.
    """
    real = metadata.dropna(subset=["pixel_size_um"])
    real = real[real["label"].fillna("").astype(str) != ""] if "label" in real else real.iloc[:0]
    by_label = real.groupby("label")["pixel_size_um"].agg(["median", "nunique"])
    has_mag = "magnification" in metadata and "magnification" in samples
    by_mag = pixel_size_from_metadata(metadata) if has_mag else None
    overall = float(metadata["pixel_size_um"].median())
    sizes, sources = [], []
    for _, row in samples.iterrows():
        label = str(row["label"])
        if label in by_label.index:
            median, distinct = by_label.loc[label]
            sizes.append(float(median))
            many = f"median ({int(distinct)} distinct values)"
            sources.append("condition" if distinct == 1 else many)
        elif by_mag is not None:
            sizes.append(by_mag(row["magnification"]))
            sources.append("magnification")
        else:
            sizes.append(overall)
            sources.append("data set median")
    return sizes, sources


def samples_metadata(
    samples_csv: str | Path,
    pixel_size_of: Callable[[float], float] | pd.DataFrame | str | Path,
    scale: float = 1.0,
    model: str | None = None,
    conditions: Sequence[Mapping] | pd.DataFrame | None = None,
    samples_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Image-set metadata of a generated samples table.

    Parameters
    ----------
    samples_csv : ``samples/{model}/{mode}.csv`` (columns prompt_mode, label, condition
        columns, seed, path relative to ``samples/{model}``).
    pixel_size_of : magnification -> native pixel size in µm (e.g.
        :func:`microgen.data.synthetic.laws.pixel_size_um`), or a prepared ``metadata.csv`` /
        DataFrame: then each condition takes its real images' pixel size
        (:func:`condition_pixel_sizes`) and a ``pixel_size_source`` column says how.
    scale : factor applied to that pixel size (original side / generated side when training
        images were resized; 1 when not).
    model : model name written to a ``model`` column (default: the folder of ``samples_csv``).
    conditions : validation conditions with ``label`` and ``split`` (as from
        :func:`microgen.generate.sampling.validation_conditions` or
        ``conditions/validation.csv``); adds the ``split`` column (``NaN`` for unknown labels).
    samples_dir : folder the ``path`` column is relative to (default: the parent of
        ``samples_csv``, i.e. ``samples/{model}``).

    Returns
    -------
    DataFrame ``id, model, prompt_mode, label, [split], condition columns, seed, path,
    image_path, pixel_size_um``; ``id`` from :func:`sample_id`, ``image_path`` is
    ``samples_dir`` joined with ``path``.
    """
    samples_csv = Path(samples_csv)
    table = pd.read_csv(samples_csv)
    needed = {"prompt_mode", "label", "seed", "path"}
    if callable(pixel_size_of):  # a law of the magnification
        needed.add("magnification")
    if not needed <= set(table.columns):
        raise ValueError(f"{samples_csv}: lacks columns {sorted(needed - set(table.columns))}")
    root = Path(samples_dir) if samples_dir is not None else samples_csv.parent
    out = table.copy()
    out.insert(
        0,
        "id",
        [
            sample_id(m, lab, s)
            for m, lab, s in zip(out["prompt_mode"], out["label"], out["seed"], strict=True)
        ],
    )
    if out["id"].duplicated().any():
        raise ValueError(f"{samples_csv}: duplicate (prompt_mode, label, seed) rows")
    out.insert(1, "model", model if model is not None else samples_csv.parent.name)
    if conditions is not None:
        cond = (
            pd.DataFrame(list(conditions))
            if not isinstance(conditions, pd.DataFrame)
            else conditions
        )
        split = dict(zip(cond["label"], cond["split"], strict=True))
        out.insert(4, "split", out["label"].map(split))
    # as given (relative in the workflow), so the table does not depend on the clone's place
    out["image_path"] = [str(root / p) for p in out["path"]]
    if callable(pixel_size_of):
        native = [float(pixel_size_of(m)) for m in out["magnification"]]
    else:
        metadata = pixel_size_of
        if not isinstance(metadata, pd.DataFrame):
            metadata = pd.read_csv(metadata, dtype={"id": str})
        native, out["pixel_size_source"] = condition_pixel_sizes(out, metadata)
    out["pixel_size_um"] = [p * float(scale) for p in native]
    return out


def load_image_groups(
    index: pd.DataFrame,
    path_column: str = "image_path",
    root: str | Path | None = None,
    resolution: int | None = None,
    group: str = "label",
) -> dict[str, np.ndarray]:
    """Read the images of an index, grouped by condition label.

    Parameters
    ----------
    index : rows with ``group`` and ``path_column`` (e.g. :func:`samples_metadata`), or a real
        index with ``id`` (then give ``path_column="id"`` and ``root=data/images`` to read
        ``root/{id}.png``).
    resolution : square side to bring every image to with
        :func:`~microgen.data.preprocess.resize_center_crop` (the generator's training
        transform); ``None`` keeps them as they are (they must then share one shape per group).

    Returns
    -------
    label -> uint8 array (N, H, W), in index order.
    """
    out: dict[str, list[np.ndarray]] = {}
    for label, value in zip(index[group], index[path_column], strict=True):
        path = Path(root) / f"{value}.png" if root is not None else Path(value)
        image = read_gray(path)
        if resolution is not None and image.shape != (resolution, resolution):
            image = resize_center_crop(image, resolution)
        out.setdefault(str(label), []).append(image)
    return {k: np.stack(v) for k, v in out.items()}
