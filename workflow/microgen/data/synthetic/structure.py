"""The label mask of a synthetic micrograph: the UHCS class ids and the drawing of each feature
(pearlite lamellae, cementite network, Widmanstätten laths, spheroidite particles) from the laws.

Each ``draw_*`` step paints its class into a shared :class:`Canvas`, marks where particles may
no longer go, and returns the drawn quantities for ``truth``. The steps draw from one random
generator, so :func:`microgen.data.synthetic.generator.generate` calls them in a fixed order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import Grains, hash_uniform, place_particles, raster_ellipses, smooth_noise
from .laws import (
    LATH_GRAIN_FRACTION,
    LATH_MAX_PACKETS,
    LATH_SPACING_UM,
    LATH_THICKNESS_UM,
    LSW_MEAN_RHO2,
    PARTICLE_ASPECT_MAX,
    PEARLITE_COLONY_PER_SPACING,
    PEARLITE_GRAIN_FRACTION,
    denuded_zone_width_um,
    lsw_tail,
    network_thickness_um,
    pearlite_lamella_thickness_um,
    pearlite_spacing_um,
    sample_lsw_radii,
)

__all__ = [
    "CLASS_NAMES",
    "MATRIX",
    "NETWORK",
    "PARTICLE",
    "WIDMANSTATTEN",
    "PEARLITE_LAMELLA_CLASS",
    "Canvas",
    "draw_laths",
    "draw_network",
    "draw_particles",
    "draw_pearlite",
]

MATRIX, NETWORK, PARTICLE, WIDMANSTATTEN = 0, 1, 2, 3
CLASS_NAMES: tuple[str, ...] = ("matrix", "network", "spheroidite", "widmanstatten")
#: Class id given to pearlite cementite lamellae (eutectoid cementite, see the package docstring).
PEARLITE_LAMELLA_CLASS: int = PARTICLE


@dataclass
class Canvas:
    """The mask being drawn and where particles may not be centred or drawn.

    Attributes
    ----------
    mask : numpy.ndarray
        uint8 (H, W) class ids, painted in place by the ``draw_*`` steps.
    blocked : numpy.ndarray
        bool (H, W), grown by each step that leaves no room for particles.
    yy, xx : numpy.ndarray
        float64 (H, W) pixel-centre coordinates.
    px_um : float
        Micrometres per pixel.
    """

    mask: np.ndarray
    blocked: np.ndarray
    yy: np.ndarray
    xx: np.ndarray
    px_um: float

    @classmethod
    def blank(cls, shape: tuple[int, int], px_um: float) -> Canvas:
        """An all-matrix canvas of ``shape`` with nothing blocked."""
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        return cls(np.zeros((h, w), dtype=np.uint8), np.zeros((h, w), dtype=bool), yy, xx, px_um)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.mask.shape


def draw_pearlite(
    rng: np.random.Generator,
    canvas: Canvas,
    cooling: str,
    grain_size_um: float,
    partial_grains: Grains | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pearlite: per-colony cementite lamellae, gently bent, labelled class 2.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (colonies, lamella orientation and phase, bending, lamellar grains).
    canvas : Canvas
        Painted in place; the pearlite region is blocked for particles.
    cooling : str
        Cooling method (sets the spacing).
    grain_size_um : float
        Prior-austenite grain size (colonies are never larger).
    partial_grains : Grains, optional
        When given ("pearlite+spheroidite"), only a random fraction of these grains is
        lamellar; otherwise the whole image is.

    Returns
    -------
    region : numpy.ndarray
        bool (H, W), where the image is pearlite.
    truth : dict
        Spacing, thickness (true and drawn), colony size and region fraction.
    """
    shape, px_um = canvas.shape, canvas.px_um
    lam = pearlite_spacing_um(cooling)
    t_lam = pearlite_lamella_thickness_um(cooling)
    lam_px = lam / px_um
    # Unresolved lamellae (period < 2 px) keep their true volume fraction; resolved ones
    # are at least 1 px thick so that they stay continuous.
    t_draw = t_lam / px_um if lam_px < 2 else min(max(t_lam / px_um, 1.0), 0.5 * lam_px)
    colony_px = min(PEARLITE_COLONY_PER_SPACING * lam, grain_size_um) / px_um
    colonies = Grains(rng, shape, colony_px)
    theta = rng.uniform(0, np.pi, colonies.n)[colonies.label]
    phase = rng.random(colonies.n)[colonies.label]
    # Lamellae bend gently inside a colony, as in real pearlite.
    bend = 0.8 * lam_px * smooth_noise(rng, shape, max(colony_px / 2, 4.0))
    u = (-canvas.xx * np.sin(theta) + canvas.yy * np.cos(theta) + bend) / lam_px + phase
    lamella = (u - np.floor(u)) < t_draw / lam_px
    if partial_grains is not None:
        lam_grain = rng.random(partial_grains.n) < PEARLITE_GRAIN_FRACTION
        region = lam_grain[partial_grains.label]
    else:
        region = np.ones(shape, dtype=bool)
    canvas.mask[region & lamella] = PEARLITE_LAMELLA_CLASS
    canvas.blocked |= region
    return region, {
        "lamellar_spacing_um": lam,
        "lamella_thickness_um": t_lam,
        "lamella_thickness_drawn_um": t_draw * px_um,
        "colony_size_um": colony_px * px_um,
        "pearlite_region_fraction": float(region.mean()),
    }


def draw_network(
    rng: np.random.Generator, canvas: Canvas, grains: Grains, grain_size_um: float
) -> dict[str, Any]:
    """Network: a cementite band along the grain boundaries with a carbon-depleted zone beside it.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (the band's thickness modulation).
    canvas : Canvas
        Painted in place; band and denuded zone are blocked for particles.
    grains : Grains
        Prior-austenite grains whose boundaries carry the band.
    grain_size_um : float
        Their size (sets band and zone widths).

    Returns
    -------
    dict
        Band thickness, zone width (µm and px) and the band's area fraction.
    """
    px_um = canvas.px_um
    w_net = network_thickness_um(grain_size_um)
    w_dz = denuded_zone_width_um(w_net)
    corr = max(grain_size_um / px_um / 3, 4.0)
    mod = 1.0 + 0.35 * np.clip(smooth_noise(rng, canvas.shape, corr), -2, 2)
    half = 0.5 * w_net / px_um * mod
    band = grains.boundary_dist < half
    canvas.mask[band] = NETWORK
    dz_px = w_dz / px_um
    canvas.blocked |= ndimage.distance_transform_edt(~band) < dz_px
    return {
        "network_thickness_um": w_net,
        "denuded_zone_um": w_dz,
        "denuded_zone_px": dz_px,
        "network_area_fraction": float(band.mean()),
    }


def draw_laths(
    rng: np.random.Generator, canvas: Canvas, grains: Grains, grain_size_um: float
) -> dict[str, Any]:
    """Widmanstätten laths: packets of parallel lenticular plates, 1-3 orientations per grain.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (which grains, packets per grain, per-packet geometry, hash salt).
    canvas : Canvas
        Painted in place (never over the network); laths and a 2 px rim are blocked.
    grains : Grains
        Prior-austenite grains the packets grow in.
    grain_size_um : float
        Their size (sets packet extent).

    Returns
    -------
    dict
        Lath thickness (true and drawn), spacing and area fraction.
    """
    h, w = canvas.shape
    px_um = canvas.px_um
    g = grains.label
    n_g = grains.n
    has = rng.random(n_g) < LATH_GRAIN_FRACTION
    n_pack = rng.integers(1, LATH_MAX_PACKETS + 1, n_g)
    sp_px = LATH_SPACING_UM / px_um
    th_px = LATH_THICKNESS_UM / px_um
    if sp_px >= 2:
        th_px = min(max(th_px, 1.0), 0.5 * sp_px)
    d_px = grain_size_um / px_um
    salt = int(rng.integers(0, 2**62))
    lath = np.zeros((h, w), dtype=bool)
    for k in range(LATH_MAX_PACKETS):
        active = (has & (n_pack > k))[g]
        th = rng.uniform(0, np.pi, n_g)
        cy = grains.seeds[:, 0] + rng.uniform(-0.35, 0.35, n_g) * d_px
        cx = grains.seeds[:, 1] + rng.uniform(-0.35, 0.35, n_g) * d_px
        rad = rng.uniform(0.25, 0.5, n_g) * d_px
        ph = rng.random(n_g)
        s, co = np.sin(th)[g], np.cos(th)[g]
        dy, dx = canvas.yy - cy[g], canvas.xx - cx[g]
        u = (-dx * s + dy * co) / sp_px + ph[g]
        v = dx * co + dy * s
        i = np.floor(u)
        hu = hash_uniform(salt, k, g, i)
        hv = hash_uniform(salt + 1, k, g, i)
        length = rad[g] * (0.8 + 1.2 * hv)
        centre = (hu - 0.5) * rad[g]
        z = (v - centre) / (0.5 * length)
        taper = np.sqrt(np.clip(1 - z * z, 0, 1))
        inplate = (u - i) * sp_px < th_px * taper
        exists = (hu < 0.8) & (np.abs(u - ph[g]) * sp_px < rad[g])
        lath |= active & exists & inplate
    lath &= canvas.mask != NETWORK
    canvas.mask[lath] = WIDMANSTATTEN
    canvas.blocked |= ndimage.binary_dilation(lath, iterations=2)
    return {
        "lath_thickness_um": LATH_THICKNESS_UM,
        "lath_spacing_um": LATH_SPACING_UM,
        "lath_thickness_drawn_um": th_px * px_um,
        "lath_area_fraction": float(lath.mean()),
    }


def draw_particles(
    rng: np.random.Generator,
    canvas: Canvas,
    mean_radius_um: float,
    area_fraction: float,
    pearlite_region: np.ndarray,
) -> dict[str, Any]:
    """Spheroidite particles: LSW sizes placed without contact, the unresolved tail as speckle.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (particle count, radii, placement, tail pixel count and positions).
    canvas : Canvas
        Painted in place; particles go only where nothing is blocked.
    mean_radius_um : float
        LSW mean radius ``<r>``.
    area_fraction : float
        Target class-2 area fraction of the unblocked region.
    pearlite_region : numpy.ndarray
        bool (H, W), left out of the drawn particle fraction (its lamellae are class 2 too).

    Returns
    -------
    dict
        Particle and pixel counts, the unresolved number fraction and the drawn fraction.
    """
    mask = canvas.mask
    h, w = canvas.shape
    allowed = ~canvas.blocked
    a_free = float(allowed.sum())
    r_px = mean_radius_um / canvas.px_um
    mean_area = math.pi * r_px**2 * LSW_MEAN_RHO2
    rho_c = 0.5 / r_px  # unresolved below 1 px equivalent diameter
    f_sub, m2_sub = lsw_tail(rho_c)
    # Same number density outside the frame so that particles cut by the border are fair.
    n_total = area_fraction * a_free / mean_area
    n_res_img = n_total * (1 - f_sub)
    r_max = 1.5 * r_px * math.sqrt(PARTICLE_ASPECT_MAX)
    ext = (h + 2 * r_max) * (w + 2 * r_max) / (h * w)
    n_res = int(rng.poisson(n_res_img * ext)) if n_res_img > 0 else 0
    radii = sample_lsw_radii(rng, n_res, r_px, rho_min=rho_c)
    pos, a, b, ang, n_drop = place_particles(rng, (h, w), None if allowed.all() else allowed, radii)
    raster_ellipses(mask, PARTICLE, pos, a, b, ang)
    # Unresolved tail: its total area as isolated single pixels in still-free matrix.
    sub_area = n_total * math.pi * r_px**2 * m2_sub
    n_pix = int(rng.poisson(sub_area)) if sub_area > 0 else 0
    if n_pix:
        free = np.flatnonzero((allowed & (mask == MATRIX)).ravel())
        n_pix = min(n_pix, free.size)
        pick = rng.choice(free, size=n_pix, replace=False)
        mask.ravel()[pick] = PARTICLE
    part = (mask == PARTICLE) & ~pearlite_region
    return {
        "n_particles_resolved": int(pos.shape[0]),
        "n_particles_dropped": n_drop,
        "n_unresolved_pixels": n_pix,
        "unresolved_number_fraction": f_sub,
        "particle_region_fraction": a_free / (h * w),
        "particle_area_fraction_drawn": float(part.sum() / max(a_free, 1.0)),
    }
