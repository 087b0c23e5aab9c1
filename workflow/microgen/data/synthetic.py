"""Synthetic ultra-high-carbon-steel (UHCS) SEM micrographs with exact ground truth.

The generator stands in for the UHCS micrograph data set (Hecht et al. / DeCost et al.): it maps a
processing condition (anneal temperature, anneal time, cooling, magnification, primary
microconstituent; value sets from the paper's Table A1) to an 8-bit SEM-like image and a label
mask with the UHCS class ids

=====  =========================================================
 id     class
=====  =========================================================
 0      ferritic matrix (incl. the ferrite between pearlite lamellae)
 1      proeutectoid cementite network (prior-austenite grain boundaries)
 2      eutectoid cementite: spheroidite particles and pearlite lamellae
 3      Widmanstätten cementite laths
=====  =========================================================

Structure is built from a small set of stated process->structure laws (each a public function
with its equation and constants): LSW coarsening of spheroidite particles, LSW particle size
distribution, lever-rule cementite fraction with an effective (Cr-shifted) Acm line,
prior-austenite grain growth, network band and denuded zone widths, Widmanstätten lath geometry
and a cooling-dependent pearlite interlamellar spacing. The mask is the exact truth of what was
drawn: rendering (edge brightening, texture, blur, noise) only reads it.

Pearlite labelling
------------------
Pearlite cementite lamellae are labelled class 2 (:data:`PEARLITE_LAMELLA_CLASS`). Spheroidite is
spheroidised *eutectoid* cementite, i.e. the same phase with the same origin as the lamellae it
forms from, whereas class 1 (network) and class 3 (Widmanstätten) are *proeutectoid* cementite
morphologies; labelling lamellae as 1 would therefore contradict the UHCS semantics, and
labelling them 0 would make the mask disagree with the bright lamellae drawn in the image.
Consequence for users: class-2 connected components in images whose microconstituent contains
"pearlite" include elongated lamellae, so particle-size statistics should be taken from
"spheroidite", "network" and "spheroidite+widmanstatten" images (or filtered by elongation).

Sub-pixel features
------------------
Particles whose equivalent diameter is below one pixel are *unresolved*: instead of one pixel per
particle (which would inflate the area fraction by orders of magnitude at low magnification) their
total area is drawn as single random class-2 pixels, so the class-2 area fraction keeps following
the law while connected-component sizes are only physical for resolved particles. Every resolved
particle covers at least the pixel containing its centre. Resolved pearlite lamellae and laths
(period >= 2 px) are drawn at least 1 px thick (never more than half the period) so that they stay
continuous; unresolved ones keep their true thickness/period ratio, so pixel-centre sampling
gives the right area fraction as speckle. Drawn values are reported in ``truth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "TEMPERATURES_C",
    "TIMES_MIN",
    "COOLING_METHODS",
    "MAGNIFICATIONS",
    "MICROCONSTITUENTS",
    "CLASS_NAMES",
    "MATRIX",
    "NETWORK",
    "PARTICLE",
    "WIDMANSTATTEN",
    "PEARLITE_LAMELLA_CLASS",
    "Condition",
    "SyntheticMicrograph",
    "pixel_size_um",
    "coarsening_rate_um3_per_s",
    "mean_particle_radius_um",
    "lsw_pdf",
    "sample_lsw_radii",
    "equilibrium_cementite_fraction",
    "spheroidite_area_fraction",
    "prior_austenite_grain_size_um",
    "network_thickness_um",
    "denuded_zone_width_um",
    "pearlite_spacing_um",
    "pearlite_lamella_thickness_um",
    "generate",
    "sample_conditions",
]

# --------------------------------------------------------------------------------------------
# Table A1 value sets
# --------------------------------------------------------------------------------------------
TEMPERATURES_C: tuple[float, ...] = (700.0, 750.0, 800.0, 900.0, 970.0, 1000.0, 1100.0)
TIMES_MIN: tuple[float, ...] = (5.0, 60.0, 90.0, 180.0, 480.0, 1440.0, 2800.0, 5100.0)
COOLING_METHODS: tuple[str, ...] = ("Q", "AR", "FC", "650-1H")
MAGNIFICATIONS: tuple[float, ...] = (
    49.0,
    64.0,
    74.0,
    98.0,
    118.0,
    147.0,
    246.0,
    344.0,
    491.0,
    638.0,
    786.0,
    982.0,
    1178.0,
    1473.0,
    1964.0,
    2455.0,
    3437.0,
    4910.0,
    7856.0,
    9820.0,
    11785.0,
    19641.0,
    34372.0,
)
MICROCONSTITUENTS: tuple[str, ...] = (
    "spheroidite",
    "network",
    "pearlite",
    "pearlite+spheroidite",
    "spheroidite+widmanstatten",
    "pearlite+widmanstatten",
)

MATRIX, NETWORK, PARTICLE, WIDMANSTATTEN = 0, 1, 2, 3
CLASS_NAMES: tuple[str, ...] = ("matrix", "network", "spheroidite", "widmanstatten")
#: Class id given to pearlite cementite lamellae (eutectoid cementite, see module docstring).
PEARLITE_LAMELLA_CLASS: int = PARTICLE

# --------------------------------------------------------------------------------------------
# Law constants
# --------------------------------------------------------------------------------------------
R_GAS = 8.314  # J/(mol K)
KELVIN = 273.15

#: UHCS calibration: a 20 um scale bar spans 103 px at 982x.
PIXEL_SIZE_REF_UM = 20.0 / 103.0
MAGNIFICATION_REF = 982.0

#: LSW coarsening r^3 - r0^3 = k0 exp(-Q/RT) t.
COARSENING_R0_UM = 0.05
COARSENING_Q_J_PER_MOL = 105_000.0
# k0 puts 800 C / 90 min at d = 0.30 um; with Q above 970 C / 5100 min lands at d ~ 1.9 um.
COARSENING_K0_UM3_PER_S = (
    (0.15**3 - COARSENING_R0_UM**3) * math.exp(COARSENING_Q_J_PER_MOL / (R_GAS * 1073.15)) / 5400.0
)

#: Lever rule constants (wt% C).
CARBON_NOMINAL_WT = 1.40
CARBON_CEMENTITE_WT = 6.67
CARBON_FERRITE_WT = 0.02
EUTECTOID_T_C = 727.0
EUTECTOID_C_WT = 0.77
#: Effective Acm slope (wt% C per K); a third of binary Fe-C (3.2e-3) because ~1.5 % Cr
#: stabilises cementite, which is why UHCS keeps network and particles up to 1100 C.
ACM_SLOPE_WT_PER_K = 6.0e-4

#: Prior-austenite grain growth d^3 - d0^3 = kg exp(-Qg/RT) t (exponent 3: particle drag).
GRAIN_D0_UM = 5.0
GRAIN_Q_J_PER_MOL = 150_000.0
# kg puts 970 C / 90 min at d = 40 um (grains a third of the field at 982x, as in uhcs0007).
GRAIN_KG_UM3_PER_S = (40.0**3 - 5.0**3) * math.exp(GRAIN_Q_J_PER_MOL / (R_GAS * 1243.15)) / 5400.0

#: Network band thickness as a fraction of grain size; boundary length per area of a Voronoi
#: tessellation is ~2/d, so 0.07 gives a network area fraction ~0.14 (uhcs0007: 0.18).
NETWORK_THICKNESS_PER_GRAIN = 0.07
#: Carbon-depleted, particle-free zone each side of the band, as a fraction of band thickness.
DENUDED_PER_THICKNESS = 0.45

#: Pearlite interlamellar spacing (um): faster cooling, lower transformation temperature, finer.
PEARLITE_SPACING_UM: dict[str, float] = {"Q": 0.15, "AR": 0.25, "650-1H": 0.40, "FC": 0.60}
#: Volume fraction of cementite in eutectoid pearlite (lever rule at 727 C, ~0.11 by mass).
PEARLITE_CEMENTITE_FRACTION = 0.12
#: Colony size as a multiple of the spacing (colonies grow ~ as a fixed number of lamellae).
PEARLITE_COLONY_PER_SPACING = 40.0
#: Fraction of prior-austenite grains that are lamellar in "pearlite+spheroidite".
PEARLITE_GRAIN_FRACTION = 0.5

#: Widmanstätten laths: thickness, in-packet spacing, packets per grain, fraction of grains.
LATH_THICKNESS_UM = 0.45
LATH_SPACING_UM = 2.5
LATH_GRAIN_FRACTION = 0.6
LATH_MAX_PACKETS = 3

#: Particle shape: aspect ratio uniform on [1, 1.6], orientation uniform.
PARTICLE_ASPECT_MAX = 1.6
#: Minimum gap (px) between circumscribed circles so that particles never 8-connect.
PARTICLE_GAP_PX = 1.5
_PLACEMENT_ROUNDS = 10


def _check(value: Any, name: str, allowed: tuple | None = None, lo=None, hi=None) -> None:
    if allowed is not None:
        if value not in allowed:
            raise ValueError(f"Condition.{name}={value!r} is not one of {allowed}")
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Condition.{name}={value!r} is not a number") from None
    if not math.isfinite(v) or v < lo or v > hi:
        raise ValueError(f"Condition.{name}={value!r} outside the Table A1 range [{lo}, {hi}]")


@dataclass(frozen=True)
class Condition:
    """A processing condition.

    Categorical fields must be members of :data:`COOLING_METHODS` / :data:`MICROCONSTITUENTS`;
    numeric fields must lie within the closed range of their Table A1 value set (values between
    the set members are accepted so that held-out conditions can be interpolated).

    Parameters
    ----------
    temperature : float
        Anneal temperature in °C.
    time : float
        Anneal time in minutes.
    cooling : str
        Cooling method: "Q", "AR", "FC" or "650-1H".
    magnification : float
        Nominal SEM magnification.
    microconstituent : str
        Primary microconstituent.
    """

    temperature: float
    time: float
    cooling: str
    magnification: float
    microconstituent: str

    def __post_init__(self) -> None:
        _check(self.temperature, "temperature", lo=min(TEMPERATURES_C), hi=max(TEMPERATURES_C))
        _check(self.time, "time", lo=min(TIMES_MIN), hi=max(TIMES_MIN))
        _check(self.cooling, "cooling", allowed=COOLING_METHODS)
        _check(self.magnification, "magnification", lo=min(MAGNIFICATIONS), hi=max(MAGNIFICATIONS))
        _check(self.microconstituent, "microconstituent", allowed=MICROCONSTITUENTS)


@dataclass(frozen=True)
class SyntheticMicrograph:
    """A generated micrograph.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 (H, W) SEM-like image.
    mask : numpy.ndarray
        uint8 (H, W) class ids 0..3 (see module docstring).
    pixel_size_um : float
        Micrometres per pixel.
    truth : dict
        Law values used to build the structure (and a few drawn-quantity summaries).
    """

    image: np.ndarray
    mask: np.ndarray
    pixel_size_um: float
    truth: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Laws
# --------------------------------------------------------------------------------------------
def pixel_size_um(magnification: float) -> float:
    """Pixel size of a UHCS micrograph.

    ``p = (20 / 103) * 982 / M`` µm/px: a 20 µm bar is 103 px at 982x and ``p`` scales as 1/M.

    Parameters
    ----------
    magnification : float
        Nominal magnification M.

    Returns
    -------
    float
        Micrometres per pixel.
    """
    if not magnification > 0:
        raise ValueError(f"magnification must be positive, got {magnification!r}")
    return PIXEL_SIZE_REF_UM * MAGNIFICATION_REF / float(magnification)


def coarsening_rate_um3_per_s(temperature_c: float) -> float:
    """Arrhenius LSW rate constant ``K(T) = k0 exp(-Q / (R T))``.

    ``k0`` = :data:`COARSENING_K0_UM3_PER_S` (≈ 7.77e-2 µm³/s), ``Q`` = 105 kJ/mol, T in K.
    Q is lower than for carbon diffusion in austenite (~140 kJ/mol) because a larger value
    cannot put both 800 °C/90 min at d ≈ 0.3 µm and 970 °C/5100 min at d ≈ 2 µm.

    Parameters
    ----------
    temperature_c : float
        Temperature in °C.

    Returns
    -------
    float
        Rate constant in µm³/s.
    """
    t_k = float(temperature_c) + KELVIN
    return COARSENING_K0_UM3_PER_S * math.exp(-COARSENING_Q_J_PER_MOL / (R_GAS * t_k))


def mean_particle_radius_um(temperature_c: float, time_min: float) -> float:
    """Mean spheroidite particle radius from LSW coarsening.

    ``<r>^3 - r0^3 = K(T) t`` with ``r0 = 0.05 µm``, ``K`` from
    :func:`coarsening_rate_um3_per_s` and ``t`` in seconds. Resulting mean equivalent diameters
    ``2<r>``: 0.30 µm at 800 °C/90 min, ≈ 1.9 µm at 970 °C/5100 min, ≈ 0.1 µm at 700 °C/5 min.

    Parameters
    ----------
    temperature_c : float
        Anneal temperature in °C.
    time_min : float
        Anneal time in minutes.

    Returns
    -------
    float
        Mean radius in µm.
    """
    r3 = COARSENING_R0_UM**3 + coarsening_rate_um3_per_s(temperature_c) * 60.0 * float(time_min)
    return float(r3 ** (1.0 / 3.0))


def lsw_pdf(rho: np.ndarray) -> np.ndarray:
    """Lifshitz–Slyozov–Wagner particle size density of ``rho = r / <r>``.

    ``P(rho) = (4/9) rho^2 (3/(3+rho))^(7/3) (3/2/(3/2-rho))^(11/3) exp(-rho/(3/2-rho))``
    on ``0 <= rho < 3/2`` and 0 elsewhere; it integrates to 1 and has mean 1.

    Parameters
    ----------
    rho : numpy.ndarray
        Reduced radii.

    Returns
    -------
    numpy.ndarray
        Density values.
    """
    rho = np.asarray(rho, dtype=float)
    out = np.zeros_like(rho)
    ok = (rho >= 0) & (rho < 1.5)
    x = rho[ok]
    out[ok] = (
        (4.0 / 9.0)
        * x**2
        * (3.0 / (3.0 + x)) ** (7.0 / 3.0)
        * (1.5 / (1.5 - x)) ** (11.0 / 3.0)
        * np.exp(-x / (1.5 - x))
    )
    return out


def _lsw_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rho = np.linspace(0.0, 1.5, 20001)
    pdf = lsw_pdf(rho)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(rho))])
    cdf /= cdf[-1]
    # Partial second moment, for the area of the unresolved (small) tail.
    m2 = np.concatenate(
        [[0.0], np.cumsum(0.5 * (pdf[1:] * rho[1:] ** 2 + pdf[:-1] * rho[:-1] ** 2) * np.diff(rho))]
    )
    m2 /= np.trapezoid(pdf, rho) if hasattr(np, "trapezoid") else np.trapz(pdf, rho)
    return rho, cdf, m2


_LSW_RHO, _LSW_CDF, _LSW_M2 = _lsw_tables()
_LSW_MEAN_RHO2 = float(_LSW_M2[-1])


def sample_lsw_radii(
    rng: np.random.Generator, n: int, mean_radius: float, rho_min: float = 0.0
) -> np.ndarray:
    """Draw radii from the LSW distribution by inverse CDF on a 20 001-point grid.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    n : int
        Number of radii.
    mean_radius : float
        ``<r>`` (any unit; output in the same unit).
    rho_min : float, optional
        Truncate to ``rho >= rho_min`` (conditional distribution), default 0.

    Returns
    -------
    numpy.ndarray
        ``n`` radii.
    """
    u0 = float(np.interp(rho_min, _LSW_RHO, _LSW_CDF))
    u = u0 + (1.0 - u0) * rng.random(n)
    return np.interp(u, _LSW_CDF, _LSW_RHO) * mean_radius


def _acm_carbon_wt(temperature_c: float) -> float:
    return EUTECTOID_C_WT + ACM_SLOPE_WT_PER_K * (float(temperature_c) - EUTECTOID_T_C)


def equilibrium_cementite_fraction(temperature_c: float) -> float:
    """Lever-rule cementite fraction at the anneal temperature.

    Above A1 (727 °C), cementite coexists with austenite of carbon content on the effective Acm
    line ``C_gamma(T) = 0.77 + 6.0e-4 (T - 727)`` wt%; below A1 with ferrite (0.02 wt%):
    ``f = (C0 - C_m) / (6.67 - C_m)`` with ``C0 = 1.40`` wt%. Values: 0.208 at 700 °C,
    0.105 at 750 °C, 0.083 at 970 °C, 0.072 at 1100 °C.

    Parameters
    ----------
    temperature_c : float
        Temperature in °C.

    Returns
    -------
    float
        Cementite fraction (mass ≈ volume ≈ area fraction).
    """
    c_m = CARBON_FERRITE_WT if temperature_c < EUTECTOID_T_C else _acm_carbon_wt(temperature_c)
    f = (CARBON_NOMINAL_WT - c_m) / (CARBON_CEMENTITE_WT - c_m)
    return float(min(max(f, 0.0), 1.0))


def spheroidite_area_fraction(temperature_c: float) -> float:
    """Target area fraction of spheroidite particles in spheroidised regions.

    The particles are the cementite in equilibrium at the anneal temperature, so this is
    :func:`equilibrium_cementite_fraction` (0.07–0.21 over Table A1); carbon dissolved in
    austenite re-precipitates on cooling as network, laths or pearlite, not as particles.

    Parameters
    ----------
    temperature_c : float
        Anneal temperature in °C.

    Returns
    -------
    float
        Area fraction of class 2 in regions open to particles.
    """
    return equilibrium_cementite_fraction(temperature_c)


def prior_austenite_grain_size_um(temperature_c: float, time_min: float) -> float:
    """Prior-austenite grain size (square root of mean grain area).

    ``d^3 - d0^3 = kg exp(-Qg/(R T)) t`` (cubic law: growth retarded by cementite particles),
    ``d0 = 5 µm``, ``Qg = 150 kJ/mol``, ``kg`` calibrated to 40 µm at 970 °C/90 min; t in s.
    Gives ≈ 19 µm at 800 °C/90 min and ≈ 240 µm at 1100 °C/5100 min.

    Parameters
    ----------
    temperature_c : float
        Anneal temperature in °C.
    time_min : float
        Anneal time in minutes.

    Returns
    -------
    float
        Grain size in µm.
    """
    t_k = float(temperature_c) + KELVIN
    k = GRAIN_KG_UM3_PER_S * math.exp(-GRAIN_Q_J_PER_MOL / (R_GAS * t_k))
    return float((GRAIN_D0_UM**3 + k * 60.0 * float(time_min)) ** (1.0 / 3.0))


def network_thickness_um(grain_size_um: float) -> float:
    """Mean thickness of the grain-boundary cementite band: ``w = 0.07 d``.

    Parameters
    ----------
    grain_size_um : float
        Prior-austenite grain size in µm.

    Returns
    -------
    float
        Band thickness in µm (locally modulated by ±35 % when drawn).
    """
    return NETWORK_THICKNESS_PER_GRAIN * float(grain_size_um)


def denuded_zone_width_um(network_thickness: float) -> float:
    """Particle-free zone width on each side of the network: ``w_dz = 0.45 w``.

    The growing band drains carbon from a zone whose width scales with the amount of cementite
    it collected, i.e. with its thickness.

    Parameters
    ----------
    network_thickness : float
        Band thickness in µm.

    Returns
    -------
    float
        Zone width in µm.
    """
    return DENUDED_PER_THICKNESS * float(network_thickness)


def pearlite_spacing_um(cooling: str) -> float:
    """Interlamellar spacing of pearlite by cooling method.

    Q 0.15, AR 0.25, 650-1H 0.40, FC 0.60 µm: spacing scales inversely with undercooling, and
    quench < air < isothermal hold at 650 °C < furnace cooling in transformation temperature.

    Parameters
    ----------
    cooling : str
        Cooling method.

    Returns
    -------
    float
        Spacing in µm.
    """
    if cooling not in PEARLITE_SPACING_UM:
        raise ValueError(f"cooling={cooling!r} is not one of {COOLING_METHODS}")
    return PEARLITE_SPACING_UM[cooling]


def pearlite_lamella_thickness_um(cooling: str) -> float:
    """Cementite lamella thickness ``t = 0.12 * spacing`` (eutectoid cementite fraction).

    Parameters
    ----------
    cooling : str
        Cooling method.

    Returns
    -------
    float
        Thickness in µm.
    """
    return PEARLITE_CEMENTITE_FRACTION * pearlite_spacing_um(cooling)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _condition_key(c: Condition, shape: tuple[int, int]) -> list[int]:
    return [
        int(round(float(c.temperature) * 1000)),
        int(round(float(c.time) * 1000)),
        COOLING_METHODS.index(c.cooling),
        int(round(float(c.magnification) * 1000)),
        MICROCONSTITUENTS.index(c.microconstituent),
        int(shape[0]),
        int(shape[1]),
    ]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Unit-variance smooth noise with correlation length ~corr_px (cubic upsampling)."""
    h, w = shape
    corr = max(float(corr_px), 1.0)
    gh, gw = int(math.ceil(h / corr)) + 4, int(math.ceil(w / corr)) + 4
    coarse = rng.standard_normal((gh, gw))
    yy = np.arange(h) / corr + 1.5
    xx = np.arange(w) / corr + 1.5
    out = ndimage.map_coordinates(
        coarse, np.meshgrid(yy, xx, indexing="ij"), order=3, mode="nearest"
    )
    s = out.std()
    return out / s if s > 0 else out


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _hash_uniform(*keys: np.ndarray) -> np.ndarray:
    """Deterministic uniform [0, 1) per integer key tuple (splitmix64 mixing)."""
    with np.errstate(over="ignore"):
        h = np.uint64(0x9E3779B97F4A7C15)
        for k in keys:
            h = h ^ np.asarray(k).astype(np.int64).astype(np.uint64)
            h = (h ^ (h >> np.uint64(30))) * _M1
            h = (h ^ (h >> np.uint64(27))) * _M2
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


class _Grains:
    """Voronoi tessellation of prior-austenite grains in pixel coordinates."""

    def __init__(
        self, rng: np.random.Generator, shape: tuple[int, int], size_px: float, warp: bool = True
    ):
        h, w = shape
        margin = min(2.0 * size_px, 2.0 * max(h, w))
        area = (h + 2 * margin) * (w + 2 * margin)
        n = max(int(rng.poisson(area / size_px**2)), 2)
        seeds = np.column_stack(
            [
                rng.uniform(-margin, h + margin, n),
                rng.uniform(-margin, w + margin, n),
            ]
        )
        tree = cKDTree(seeds)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        if warp:
            # Real boundaries are curved; warping the query points bends the Voronoi edges.
            corr = max(size_px / 2.0, 4.0)
            yy = yy + 0.12 * size_px * _smooth_noise(rng, (h, w), corr)
            xx = xx + 0.12 * size_px * _smooth_noise(rng, (h, w), corr)
        pts = np.column_stack([yy.ravel(), xx.ravel()])
        d, idx = tree.query(pts, k=2)
        s1, s2 = seeds[idx[:, 0]], seeds[idx[:, 1]]
        # Distance to the bisector of the two nearest seeds = distance to the grain boundary.
        sep = np.linalg.norm(s2 - s1, axis=1)
        bd = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * np.maximum(sep, 1e-9))
        self.boundary_dist = bd.reshape(h, w)
        self.label = idx[:, 0].reshape(h, w)
        self.seeds = seeds
        self.n = n


def _place_particles(
    rng: np.random.Generator,
    shape: tuple[int, int],
    allowed: np.ndarray | None,
    radii_px: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Random sequential placement without overlap (circumscribed circles + gap).

    Returns centres (y, x), semi-axes a, b, angles and the number of particles dropped.
    """
    h, w = shape
    n = radii_px.size
    order = np.argsort(-radii_px, kind="stable")  # big first: packs better, keeps PSD unbiased
    r = radii_px[order]
    q = rng.uniform(1.0, PARTICLE_ASPECT_MAX, n)
    a, b = r * np.sqrt(q), r / np.sqrt(q)
    ang = rng.uniform(0.0, np.pi, n)
    big_r = np.maximum(a, 0.71)
    if allowed is not None:
        free_dist = ndimage.distance_transform_edt(allowed)
    margin = float(big_r.max()) if n else 0.0
    pos = np.zeros((n, 2))
    placed = np.zeros(n, dtype=bool)
    pending = np.arange(n)
    for _ in range(_PLACEMENT_ROUNDS):
        if pending.size == 0:
            break
        cand = np.column_stack(
            [
                rng.uniform(-margin, h + margin, pending.size),
                rng.uniform(-margin, w + margin, pending.size),
            ]
        )
        ok = np.ones(pending.size, dtype=bool)
        if allowed is not None:
            iy = np.clip(cand[:, 0].astype(int), 0, h - 1)
            ix = np.clip(cand[:, 1].astype(int), 0, w - 1)
            ok = free_dist[iy, ix] >= big_r[pending] + 1.0
        cidx = pending[ok]
        pos[cidx] = cand[ok]
        acc = np.flatnonzero(placed)
        allidx = np.concatenate([acc, cidx])
        if allidx.size > 1 and cidx.size:
            tree = cKDTree(pos[allidx])
            pairs = tree.query_pairs(2 * margin + PARTICLE_GAP_PX, output_type="ndarray")
            if pairs.size:
                i, j = allidx[pairs[:, 0]], allidx[pairs[:, 1]]
                dist = np.linalg.norm(pos[i] - pos[j], axis=1)
                clash = dist < big_r[i] + big_r[j] + PARTICLE_GAP_PX
                i, j = i[clash], j[clash]
                # A new candidate loses against a placed particle; among two candidates the
                # later (smaller) one loses.
                lose = np.where(placed[i], j, np.where(placed[j], i, np.maximum(i, j)))
                bad = np.zeros(n, dtype=bool)
                bad[lose] = True
                cidx = cidx[~bad[cidx]]
        placed[cidx] = True
        pending = pending[~placed[pending]]
    keep = placed
    return pos[keep], a[keep], b[keep], ang[keep], int(n - keep.sum())


def _raster_ellipses(
    mask: np.ndarray, value: int, pos: np.ndarray, a: np.ndarray, b: np.ndarray, ang: np.ndarray
) -> None:
    """Paint ellipses by pixel-centre sampling; the pixel holding the centre is always set."""
    h, w = mask.shape
    if pos.shape[0] == 0:
        return
    half = np.ceil(a).astype(int) + 1
    for hb in np.unique(half):
        sel = half == hb
        off = np.arange(-hb, hb + 1)
        cy, cx = pos[sel, 0], pos[sel, 1]
        iy0, ix0 = np.floor(cy).astype(int), np.floor(cx).astype(int)
        py = iy0[:, None, None] + off[None, :, None]
        px = ix0[:, None, None] + off[None, None, :]
        dy = py + 0.5 - cy[:, None, None]
        dx = px + 0.5 - cx[:, None, None]
        c, s = np.cos(ang[sel])[:, None, None], np.sin(ang[sel])[:, None, None]
        u = dx * c + dy * s
        v = -dx * s + dy * c
        inside = (u / a[sel, None, None]) ** 2 + (v / b[sel, None, None]) ** 2 <= 1.0
        inside[:, hb, hb] = True
        py = np.broadcast_to(py, inside.shape)
        px = np.broadcast_to(px, inside.shape)
        ok = inside & (py >= 0) & (py < h) & (px >= 0) & (px < w)
        mask[py[ok], px[ok]] = value


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------
def generate(
    condition: Condition, shape: tuple[int, int] = (484, 645), seed: int = 0
) -> SyntheticMicrograph:
    """Generate one synthetic UHCS SEM micrograph with its exact label mask.

    Parameters
    ----------
    condition : Condition
        Processing condition.
    shape : tuple of int, optional
        (height, width) in pixels, default UHCS size (484, 645).
    seed : int, optional
        Seed; combined with the condition through :class:`numpy.random.SeedSequence`, so equal
        inputs give identical bytes.

    Returns
    -------
    SyntheticMicrograph
        Image, mask, pixel size and the law values in ``truth``.
    """
    if not isinstance(condition, Condition):
        raise TypeError("condition must be a Condition")
    h, w = int(shape[0]), int(shape[1])
    if h < 8 or w < 8:
        raise ValueError(f"shape={shape!r} must be at least 8x8")
    rng = np.random.default_rng(
        np.random.SeedSequence([int(seed), *_condition_key(condition, (h, w))])
    )
    c = condition
    mc = c.microconstituent
    px_um = pixel_size_um(c.magnification)
    has_pearlite = "pearlite" in mc
    has_particles = mc in (
        "spheroidite",
        "network",
        "pearlite+spheroidite",
        "spheroidite+widmanstatten",
    )
    has_network = mc in ("network", "spheroidite+widmanstatten", "pearlite+widmanstatten")
    has_laths = "widmanstatten" in mc
    needs_grains = has_network or has_laths or mc == "pearlite+spheroidite"

    r_mean = mean_particle_radius_um(c.temperature, c.time)
    f_target = spheroidite_area_fraction(c.temperature)
    d_grain = prior_austenite_grain_size_um(c.temperature, c.time)
    w_net = network_thickness_um(d_grain)
    w_dz = denuded_zone_width_um(w_net)
    lam = pearlite_spacing_um(c.cooling)
    t_lam = pearlite_lamella_thickness_um(c.cooling)

    truth: dict[str, Any] = {
        "condition": {
            "temperature": float(c.temperature),
            "time": float(c.time),
            "cooling": c.cooling,
            "magnification": float(c.magnification),
            "microconstituent": mc,
        },
        "seed": int(seed),
        "pixel_size_um": px_um,
        "mean_radius_um": r_mean,
        "mean_equivalent_diameter_um": 2 * r_mean,
        "particle_area_fraction_target": f_target if has_particles else 0.0,
        "grain_size_um": d_grain,
        "pearlite_label": PEARLITE_LAMELLA_CLASS,
    }

    mask = np.zeros((h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    blocked = np.zeros((h, w), dtype=bool)  # where particles may not be centred/drawn
    grains = _Grains(rng, (h, w), d_grain / px_um) if needs_grains else None

    # Pearlite: per-colony lamellae.
    pearlite_region = np.zeros((h, w), dtype=bool)
    if has_pearlite:
        lam_px = lam / px_um
        # Unresolved lamellae (period < 2 px) keep their true volume fraction; resolved ones
        # are at least 1 px thick so that they stay continuous.
        t_draw = t_lam / px_um if lam_px < 2 else min(max(t_lam / px_um, 1.0), 0.5 * lam_px)
        colony_px = min(PEARLITE_COLONY_PER_SPACING * lam, d_grain) / px_um
        colonies = _Grains(rng, (h, w), colony_px)
        theta = rng.uniform(0, np.pi, colonies.n)[colonies.label]
        phase = rng.random(colonies.n)[colonies.label]
        # Lamellae bend gently inside a colony, as in real pearlite.
        bend = 0.8 * lam_px * _smooth_noise(rng, (h, w), max(colony_px / 2, 4.0))
        u = (-xx * np.sin(theta) + yy * np.cos(theta) + bend) / lam_px + phase
        lamella = (u - np.floor(u)) < t_draw / lam_px
        if mc == "pearlite+spheroidite":
            lam_grain = rng.random(grains.n) < PEARLITE_GRAIN_FRACTION
            pearlite_region = lam_grain[grains.label]
        else:
            pearlite_region[:] = True
        mask[pearlite_region & lamella] = PEARLITE_LAMELLA_CLASS
        blocked |= pearlite_region
        truth.update(
            {
                "lamellar_spacing_um": lam,
                "lamella_thickness_um": t_lam,
                "lamella_thickness_drawn_um": t_draw * px_um,
                "colony_size_um": colony_px * px_um,
                "pearlite_region_fraction": float(pearlite_region.mean()),
            }
        )

    # Network: cementite band along grain boundaries with a carbon-depleted zone beside it.
    if has_network:
        mod = 1.0 + 0.35 * np.clip(_smooth_noise(rng, (h, w), max(d_grain / px_um / 3, 4.0)), -2, 2)
        half = 0.5 * w_net / px_um * mod
        bd = grains.boundary_dist
        band = bd < half
        mask[band] = NETWORK
        dz_px = w_dz / px_um
        blocked |= ndimage.distance_transform_edt(~band) < dz_px
        truth.update(
            {
                "network_thickness_um": w_net,
                "denuded_zone_um": w_dz,
                "denuded_zone_px": dz_px,
                "network_area_fraction": float(band.mean()),
            }
        )

    # Widmanstätten laths: packets of parallel lenticular plates, 1-3 orientations per grain.
    if has_laths:
        g = grains.label
        n_g = grains.n
        has = rng.random(n_g) < LATH_GRAIN_FRACTION
        n_pack = rng.integers(1, LATH_MAX_PACKETS + 1, n_g)
        sp_px = LATH_SPACING_UM / px_um
        th_px = LATH_THICKNESS_UM / px_um
        if sp_px >= 2:
            th_px = min(max(th_px, 1.0), 0.5 * sp_px)
        d_px = d_grain / px_um
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
            dy, dx = yy - cy[g], xx - cx[g]
            u = (-dx * s + dy * co) / sp_px + ph[g]
            v = dx * co + dy * s
            i = np.floor(u)
            hu = _hash_uniform(salt, k, g, i)
            hv = _hash_uniform(salt + 1, k, g, i)
            length = rad[g] * (0.8 + 1.2 * hv)
            centre = (hu - 0.5) * rad[g]
            z = (v - centre) / (0.5 * length)
            taper = np.sqrt(np.clip(1 - z * z, 0, 1))
            inplate = (u - i) * sp_px < th_px * taper
            exists = (hu < 0.8) & (np.abs(u - ph[g]) * sp_px < rad[g])
            lath |= active & exists & inplate
        lath &= mask != NETWORK
        mask[lath] = WIDMANSTATTEN
        blocked |= ndimage.binary_dilation(lath, iterations=2)
        truth.update(
            {
                "lath_thickness_um": LATH_THICKNESS_UM,
                "lath_spacing_um": LATH_SPACING_UM,
                "lath_thickness_drawn_um": th_px * px_um,
                "lath_area_fraction": float(lath.mean()),
            }
        )

    # Spheroidite particles.
    if has_particles:
        allowed = ~blocked
        a_free = float(allowed.sum())
        r_px = r_mean / px_um
        mean_area = math.pi * r_px**2 * _LSW_MEAN_RHO2
        rho_c = 0.5 / r_px  # unresolved below 1 px equivalent diameter
        f_sub = float(np.interp(rho_c, _LSW_RHO, _LSW_CDF))
        m2_sub = float(np.interp(rho_c, _LSW_RHO, _LSW_M2))
        # Same number density outside the frame so that particles cut by the border are fair.
        n_total = f_target * a_free / mean_area
        n_res_img = n_total * (1 - f_sub)
        r_max = 1.5 * r_px * math.sqrt(PARTICLE_ASPECT_MAX)
        ext = (h + 2 * r_max) * (w + 2 * r_max) / (h * w)
        n_res = int(rng.poisson(n_res_img * ext)) if n_res_img > 0 else 0
        radii = sample_lsw_radii(rng, n_res, r_px, rho_min=rho_c)
        pos, a, b, ang, n_drop = _place_particles(
            rng, (h, w), None if allowed.all() else allowed, radii
        )
        _raster_ellipses(mask, PARTICLE, pos, a, b, ang)
        # Unresolved tail: its total area as isolated single pixels in still-free matrix.
        sub_area = n_total * math.pi * r_px**2 * m2_sub
        n_pix = int(rng.poisson(sub_area)) if sub_area > 0 else 0
        if n_pix:
            free = np.flatnonzero((allowed & (mask == MATRIX)).ravel())
            n_pix = min(n_pix, free.size)
            pick = rng.choice(free, size=n_pix, replace=False)
            mask.ravel()[pick] = PARTICLE
        part = (mask == PARTICLE) & ~pearlite_region
        truth.update(
            {
                "n_particles_resolved": int(pos.shape[0]),
                "n_particles_dropped": n_drop,
                "n_unresolved_pixels": n_pix,
                "unresolved_number_fraction": f_sub,
                "particle_region_fraction": a_free / (h * w),
                "particle_area_fraction_drawn": float(part.sum() / max(a_free, 1.0)),
            }
        )

    image = _render(rng, mask, grains, px_um)
    return SyntheticMicrograph(image=image, mask=mask, pixel_size_um=px_um, truth=truth)


def _render(
    rng: np.random.Generator, mask: np.ndarray, grains: _Grains | None, px_um: float
) -> np.ndarray:
    """SEM secondary-electron look: bright cementite with bright rims on a darker textured
    matrix, blurred by the probe, with shot noise and uneven illumination."""
    h, w = mask.shape
    cem = (mask == PARTICLE) | (mask == WIDMANSTATTEN)
    net = mask == NETWORK
    img = np.full((h, w), 98.0)
    img += 9.0 * _smooth_noise(rng, (h, w), 60.0)
    img += 4.0 * _smooth_noise(rng, (h, w), 6.0)
    img[net] = 86.0 + 3.0 * _smooth_noise(rng, (h, w), 30.0)[net]
    img[mask == PARTICLE] = 185.0
    img[mask == WIDMANSTATTEN] = 165.0
    # Secondary-electron edge effect: emission peaks where the surface tilts, i.e. at
    # phase edges; gradient magnitude of the blurred phase map approximates it.
    relief = cem.astype(np.float64) + 1.0 * net
    sm = ndimage.gaussian_filter(relief, 0.9)
    gy, gx = np.gradient(sm)
    img += 150.0 * np.hypot(gy, gx)
    if grains is not None and not net.any():
        # Etched prior-austenite boundaries show as faint dark grooves in the matrix.
        groove = np.exp(-0.5 * (grains.boundary_dist / 0.8) ** 2)
        img -= 25.0 * groove * (mask == MATRIX)
    img = ndimage.gaussian_filter(img, 0.7)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * (np.arange(w)[None, :] / w - 0.5) + np.sin(ang) * (
        np.arange(h)[:, None] / h - 0.5
    )
    img *= 1.0 + 0.12 * ramp
    img = np.clip(img, 0, None)
    # Shot noise (gain 1.5 grey levels per electron) plus detector read noise.
    img = img + np.sqrt(1.5 * img) * rng.standard_normal((h, w)) + 4.0 * rng.standard_normal((h, w))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def sample_conditions(n: int, seed: int, values: dict | None = None) -> list[Condition]:
    """Draw conditions uniformly and independently from the Table A1 value sets.

    Parameters
    ----------
    n : int
        Number of conditions.
    seed : int
        Seed for :func:`numpy.random.default_rng`.
    values : dict, optional
        Field name -> sequence of allowed values, overriding the defaults (e.g. a subset).

    Returns
    -------
    list of Condition
        ``n`` conditions, deterministic in ``seed``.
    """
    sets: dict[str, tuple] = {
        "temperature": TEMPERATURES_C,
        "time": TIMES_MIN,
        "cooling": COOLING_METHODS,
        "magnification": MAGNIFICATIONS,
        "microconstituent": MICROCONSTITUENTS,
    }
    for k, v in (values or {}).items():
        if k not in sets:
            raise ValueError(f"values has unknown field {k!r}; expected one of {tuple(sets)}")
        v = tuple(v)
        if not v:
            raise ValueError(f"values[{k!r}] is empty")
        sets[k] = v
    rng = np.random.default_rng(seed)
    picks = {k: rng.integers(0, len(v), int(n)) for k, v in sets.items()}
    return [Condition(**{k: sets[k][int(picks[k][i])] for k in sets}) for i in range(int(n))]
