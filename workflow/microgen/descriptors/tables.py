"""Descriptor tables for a set of label masks: per-image rows, long curves, per-particle rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .correlations import lineal_path, two_point_correlation
from .particles import SPHEROIDITE, particle_descriptors

__all__ = [
    "CURVE_FUNCTIONS",
    "describe_arrays",
    "describe_masks",
    "read_mask",
    "write_descriptor_tables",
]

#: Values of the ``function`` column of the curves table.
CURVE_FUNCTIONS = ("S2_x", "S2_y", "S2_radial", "L_x", "L_y", "L")


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-id mask from ``.npy`` or an image file (PNG/TIFF, read without rescaling)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path)
    from skimage.io import imread  # deferred: only needed for image files

    arr = imread(path)
    if arr.ndim == 3:
        raise ValueError(f"{path}: expected a single-channel class-id mask, got shape {arr.shape}")
    return arr


def describe_masks(
    mask_paths: Sequence[str],
    ids: Sequence[str],
    pixel_sizes_um: Sequence[float],
    phase: int = SPHEROIDITE,
    r_max: int = 64,
    border: str = "keep",
    return_particles: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame] | tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Compute particle scalars and S2/L curves of class ``phase`` for each mask file
    (read one at a time); see :func:`describe_arrays`.

    Returns
    -------
    rows, curves : as :func:`describe_arrays`; particles too with ``return_particles=True``.

    Raises
    ------
    ValueError
        When the three input lists differ in length or ids are not unique.
    """
    if not (len(mask_paths) == len(ids) == len(pixel_sizes_um)):
        raise ValueError(
            f"mask_paths, ids, pixel_sizes_um differ in length: "
            f"{len(mask_paths)}, {len(ids)}, {len(pixel_sizes_um)}"
        )
    if len(set(ids)) != len(ids):  # before any mask is read
        raise ValueError("ids must be unique")
    items = (
        (image_id, read_mask(path), px)
        for path, image_id, px in zip(mask_paths, ids, pixel_sizes_um, strict=True)
    )
    rows, curves, particles = describe_arrays(items, phase=phase, r_max=r_max, border=border)
    return (rows, curves, particles) if return_particles else (rows, curves)


def describe_arrays(
    items: Iterable[tuple[str, np.ndarray, float]],
    phase: int = SPHEROIDITE,
    r_max: int = 64,
    border: str = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Particle scalars and S2/L curves of class ``phase`` for each ``(id, class-id mask,
    pixel size in µm)``.

    Returns
    -------
    rows : one row per image: ``id`` plus :meth:`ParticleDescriptors.to_row` scalars.
    curves : long table ``id, function, r, value`` with ``function`` in :data:`CURVE_FUNCTIONS`
        (``r`` in pixels, 0..r_max).
    particles : long table ``id, diameter_px, diameter_um, aspect_ratio`` (one row per
        particle kept by the border rule), for histograms (``{source}-particles.parquet``).

    Raises
    ------
    ValueError
        When ids are not unique.
    """
    rows, curves, particles, seen = [], [], [], set()
    for image_id, labels, px in items:
        if image_id in seen:
            raise ValueError(f"ids must be unique: {image_id!r} repeats")
        seen.add(image_id)
        p = particle_descriptors(labels, pixel_size_um=px, phase=phase, border=border)
        rows.append({"id": image_id, **p.to_row()})
        phase_mask = np.asarray(labels) == phase
        s2 = two_point_correlation(phase_mask, r_max=r_max)
        lp = lineal_path(phase_mask, r_max=r_max)
        for name, values in zip(
            CURVE_FUNCTIONS, (s2.x, s2.y, s2.radial, lp.x, lp.y, lp.mean), strict=True
        ):
            curves.append(
                pd.DataFrame({"id": image_id, "function": name, "r": s2.r, "value": values})
            )
        particles.append(
            pd.DataFrame(
                {
                    "id": image_id,
                    "diameter_px": p.diameters_px,
                    "diameter_um": p.diameters_um,
                    "aspect_ratio": p.aspect_ratios,
                }
            )
        )
    curve_cols = {"id": str, "function": str, "r": np.int64, "value": np.float64}
    part_cols = {"id": str, "diameter_px": float, "diameter_um": float, "aspect_ratio": float}
    curves_df = (
        pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=list(curve_cols))
    ).astype(curve_cols)
    parts_df = (
        pd.concat(particles, ignore_index=True)
        if particles
        else pd.DataFrame(columns=list(part_cols))
    ).astype(part_cols)
    return pd.DataFrame(rows), curves_df, parts_df


def write_descriptor_tables(
    rows: pd.DataFrame,
    curves: pd.DataFrame,
    out_rows: str | Path,
    out_curves: str | Path,
    particles: pd.DataFrame | None = None,
    out_particles: str | Path | None = None,
) -> None:
    """Write the tables from :func:`describe_masks` to parquet (parent folders are created)."""
    if (particles is None) != (out_particles is None):
        raise ValueError("give both particles and out_particles, or neither")
    pairs = [(rows, out_rows), (curves, out_curves)]
    if particles is not None:
        pairs.append((particles, out_particles))
    for df, out in pairs:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(out, index=False)


def describe_image_set(
    metadata_csv: str | Path,
    masks_dir: str | Path,
    out_rows: str | Path,
    out_curves: str | Path,
    out_particles: str | Path,
    phase: int = SPHEROIDITE,
    r_max: int = 64,
    border: str = "keep",
) -> pd.DataFrame:
    """Descriptor tables of every image of a set that has a mask in ``masks_dir``.

    The pixel size of each image comes from ``metadata.csv`` (``id``, ``pixel_size_um``);
    the masks are ``{masks_dir}/{id}.png``. ``r_max`` is clipped to what the smallest mask
    allows, so a set of small images still gets curves on one shared grid.
    """
    metadata = pd.read_csv(metadata_csv, dtype={"id": str})
    masks_dir = Path(masks_dir)
    present = metadata[[(masks_dir / f"{i}.png").is_file() for i in metadata["id"]]]
    if present.empty:
        raise ValueError(f"no mask in {masks_dir} matches an id of {metadata_csv}")
    paths = [masks_dir / f"{i}.png" for i in present["id"]]
    from PIL import Image  # header reads only: cheap

    smallest = min(min(Image.open(p).size) for p in paths) - 1
    rows, curves, particles = describe_masks(
        paths,
        list(present["id"]),
        list(present["pixel_size_um"]),
        phase=phase,
        r_max=min(r_max, smallest),
        border=border,
        return_particles=True,
    )
    write_descriptor_tables(rows, curves, out_rows, out_curves, particles, out_particles)
    return rows
