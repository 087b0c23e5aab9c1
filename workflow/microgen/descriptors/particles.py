"""Particle descriptors of one class of a 2D class-id mask (default: spheroidite, class 2).

Particles are connected components of the chosen class. All per-particle moments come from one
``scipy.ndimage.label`` pass plus ``np.bincount`` sums, instead of one ``regionprops`` object per
particle; the ellipse axes use exactly regionprops' inertia-tensor formula, so values agree with
scikit-image to floating-point precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ._validate import as_labels

__all__ = ["ParticleDescriptors", "particle_descriptors", "SPHEROIDITE"]

#: Class id of spheroidite particles in the UHCS label masks.
SPHEROIDITE = 2


@dataclass(frozen=True, eq=False)
class ParticleDescriptors:
    """Particle statistics of one image.

    Scalars follow the border rule except ``area_fraction`` and ``interfacial_length_per_area``,
    which always use every pixel of the image. Means over zero particles are NaN; the mean
    nearest-neighbour distance needs two particles (else NaN); ``aspect_ratios`` is NaN for a
    particle whose fitted minor axis is 0 (a single pixel or a one-pixel-wide straight line) and
    ``mean_aspect_ratio`` ignores those.
    """

    phase: int
    border: str
    pixel_size_um: float
    area_fraction: float
    n_particles: int
    number_density_per_um2: float
    mean_diameter_px: float
    mean_diameter_um: float
    median_diameter_um: float
    mean_aspect_ratio: float
    mean_nnd_px: float
    mean_nnd_um: float
    interfacial_length_per_area_per_um: float
    interface_edges: int
    diameters_px: np.ndarray = field(repr=False)
    diameters_um: np.ndarray = field(repr=False)
    aspect_ratios: np.ndarray = field(repr=False)
    areas_px: np.ndarray = field(repr=False)
    centroids_px: np.ndarray = field(repr=False)

    def to_row(self) -> dict[str, float | int | str]:
        """Scalar fields only, as a flat dict (one table row)."""
        return {
            "phase": self.phase,
            "border": self.border,
            "pixel_size_um": self.pixel_size_um,
            "area_fraction": self.area_fraction,
            "n_particles": self.n_particles,
            "number_density_per_um2": self.number_density_per_um2,
            "mean_diameter_px": self.mean_diameter_px,
            "mean_diameter_um": self.mean_diameter_um,
            "median_diameter_um": self.median_diameter_um,
            "mean_aspect_ratio": self.mean_aspect_ratio,
            "mean_nnd_px": self.mean_nnd_px,
            "mean_nnd_um": self.mean_nnd_um,
            "interfacial_length_per_area_per_um": self.interfacial_length_per_area_per_um,
            "interface_edges": self.interface_edges,
        }


def _nanmean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _interface_edges(phase_mask: np.ndarray) -> int:
    """4-connected phase/non-phase pixel edges inside the image, along rows and columns."""
    return int(
        np.count_nonzero(phase_mask[:, 1:] != phase_mask[:, :-1])
        + np.count_nonzero(phase_mask[1:, :] != phase_mask[:-1, :])
    )


def _component_shapes(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Areas (px), centroids (row, col) and aspect ratios of components ``1..n`` of ``lab``.

    All moments come from ``np.bincount`` sums over the labelled pixels; the aspect ratio is
    major / minor axis of the ellipse with the same second central moments (regionprops'
    inertia-tensor formula), NaN where the minor axis is 0.
    """
    w = lab.shape[1]
    flat = lab.ravel()
    rows, cols = np.divmod(np.arange(flat.size), w)
    sel = flat > 0
    lab_sel = flat[sel] - 1
    r_sel = rows[sel].astype(np.float64)
    c_sel = cols[sel].astype(np.float64)
    area = np.bincount(lab_sel, minlength=n).astype(np.float64)
    cr = np.bincount(lab_sel, weights=r_sel, minlength=n) / np.maximum(area, 1)
    cc = np.bincount(lab_sel, weights=c_sel, minlength=n) / np.maximum(area, 1)
    # Central moments from per-pixel deviations (no E[x^2] - E[x]^2 cancellation).
    dr = r_sel - cr[lab_sel]
    dc = c_sel - cc[lab_sel]
    a_rr = np.bincount(lab_sel, weights=dr * dr, minlength=n) / np.maximum(area, 1)
    a_cc = np.bincount(lab_sel, weights=dc * dc, minlength=n) / np.maximum(area, 1)
    a_rc = np.bincount(lab_sel, weights=dr * dc, minlength=n) / np.maximum(area, 1)
    # Eigenvalues of the inertia tensor [[a_cc, -a_rc], [-a_rc, a_rr]] (regionprops), clipped
    # at 0 as skimage does against round-off.
    half_tr = 0.5 * (a_rr + a_cc)
    disc = np.sqrt(0.25 * (a_rr - a_cc) ** 2 + a_rc**2)
    major = 4.0 * np.sqrt(np.clip(half_tr + disc, 0, None))
    minor = 4.0 * np.sqrt(np.clip(half_tr - disc, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(minor > 0, major / np.where(minor > 0, minor, 1.0), np.nan)
    return area, np.column_stack([cr, cc]), aspect


def _kept(lab: np.ndarray, n: int, border: str) -> np.ndarray:
    """Which of the ``n`` components the border rule keeps (``"exclude"``: not touching)."""
    if border == "exclude" and n:
        edge_labels = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        touching = np.zeros(n, dtype=bool)
        touching[edge_labels[edge_labels > 0] - 1] = True
        return ~touching
    return np.ones(n, dtype=bool)


def _mean_nnd_px(centroids: np.ndarray, keep: np.ndarray) -> float:
    """Mean distance from each kept centroid to the nearest other centroid (any), or NaN."""
    if len(centroids) >= 2 and keep.any():
        tree = cKDTree(centroids)
        dist, _ = tree.query(centroids[keep], k=2)
        return float(dist[:, 1].mean())
    return float("nan")


def particle_descriptors(
    mask: np.ndarray,
    pixel_size_um: float,
    phase: int = SPHEROIDITE,
    border: Literal["keep", "exclude"] = "keep",
    connectivity: Literal[1, 2] = 2,
) -> ParticleDescriptors:
    """Compute particle descriptors of class ``phase`` in a 2D class-id mask.

    Parameters
    ----------
    mask : (H, W) integer array of class ids (e.g. uint8).
    pixel_size_um : pixel edge length in micrometres per pixel (> 0), or NaN when the data
        set does not record it (Aachen-Heerlen PNGs): every descriptor in µm (number density,
        diameters and NND in µm, interfacial length per area) is then NaN, the pixel-based
        ones (area fraction, counts, diameters and NND in px, aspect ratios) are computed.
    phase : class id whose connected components are the particles.
    border : ``"keep"`` counts particles touching the image edge like any other (their sizes are
        truncated); ``"exclude"`` drops them from count, number density, diameters, aspect ratios
        and as NND query points (they still count as neighbours, so interior particles near the
        edge are not biased towards larger NND).
    connectivity : 1 (4-connected) or 2 (8-connected, scikit-image's default) particles.

    Returns
    -------
    ParticleDescriptors
        ``diameters_px = sqrt(4 A / pi)``; aspect ratio = major / minor axis of the ellipse with
        the same second central moments (``4 sqrt(eigenvalue)`` of the inertia tensor, as in
        ``skimage.measure.regionprops``); mean NND = mean distance from each particle centroid
        to the nearest other centroid (``scipy.spatial.cKDTree``).
        ``interfacial_length_per_area_per_um`` (1/um) is a Crofton estimate from the
        4-connected phase/non-phase pixel edges inside the image (image border not counted):
        ``L_A = (pi / 4) * n_edges / (H W) / pixel_size_um``. Counting edges along two
        directions equals ``P_L`` per axis, and ``L_A = (pi / 2) P_L`` holds for isotropic
        boundaries; the raw count ``interface_edges`` (which overestimates length by up to
        4/pi) is kept too.

    Raises
    ------
    ValueError
        Non-2D or non-integer mask, ``pixel_size_um <= 0`` or infinite, unknown
        ``border``/``connectivity``.
        An absent phase gives ``n_particles = 0`` and NaN means (documented, not an error).
    """
    labels_in = as_labels(mask)
    pixel_size_um = float(pixel_size_um)
    if np.isinf(pixel_size_um) or pixel_size_um <= 0:  # NaN (unknown) passes: µm values NaN
        raise ValueError(f"pixel_size_um must be a positive number or NaN, got {pixel_size_um}")
    if border not in ("keep", "exclude"):
        raise ValueError(f"border must be 'keep' or 'exclude', got {border!r}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
    h, w = labels_in.shape
    phase_mask = labels_in == phase
    area_fraction = float(phase_mask.mean())
    n_edges = _interface_edges(phase_mask)
    l_a = (np.pi / 4.0) * n_edges / (h * w) / pixel_size_um

    structure = ndimage.generate_binary_structure(2, connectivity)
    lab, n = ndimage.label(phase_mask, structure=structure)
    area, centroids, aspect = _component_shapes(lab, n)
    diam_px = np.sqrt(4.0 * area / np.pi)
    keep = _kept(lab, n, border)
    nnd_px = _mean_nnd_px(centroids, keep)

    d_px = diam_px[keep]
    d_um = d_px * pixel_size_um
    n_kept = int(keep.sum())
    return ParticleDescriptors(
        phase=int(phase),
        border=border,
        pixel_size_um=float(pixel_size_um),
        area_fraction=area_fraction,
        n_particles=n_kept,
        number_density_per_um2=n_kept / (h * w * pixel_size_um**2),
        mean_diameter_px=_nanmean(d_px),
        mean_diameter_um=_nanmean(d_um),
        median_diameter_um=float(np.median(d_um)) if d_um.size else float("nan"),
        mean_aspect_ratio=_nanmean(aspect[keep]),
        mean_nnd_px=nnd_px,
        mean_nnd_um=nnd_px * pixel_size_um,
        interfacial_length_per_area_per_um=float(l_a),
        interface_edges=n_edges,
        diameters_px=d_px,
        diameters_um=d_um,
        aspect_ratios=aspect[keep],
        areas_px=area[keep],
        centroids_px=centroids[keep],
    )
