"""The process->structure laws of the synthetic generator, each with its equation and constants.

LSW coarsening of spheroidite particles and the LSW size distribution, the lever-rule cementite
fraction with an effective (Cr-shifted) Acm line, prior-austenite grain growth, network band and
denuded zone widths, Widmanstätten lath geometry and a cooling-dependent pearlite interlamellar
spacing. Every function is pure: the random drawing lives in :mod:`.structure`.
"""

from __future__ import annotations

import math

import numpy as np

from .conditions import COOLING_METHODS

__all__ = [
    "pixel_size_um",
    "coarsening_rate_um3_per_s",
    "mean_particle_radius_um",
    "lsw_pdf",
    "sample_lsw_radii",
    "lsw_tail",
    "equilibrium_cementite_fraction",
    "spheroidite_area_fraction",
    "prior_austenite_grain_size_um",
    "network_thickness_um",
    "denuded_zone_width_um",
    "pearlite_spacing_um",
    "pearlite_lamella_thickness_um",
]

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
#: Mean of rho^2 under the LSW density, so a particle's mean area is pi <r>^2 LSW_MEAN_RHO2.
LSW_MEAN_RHO2 = float(_LSW_M2[-1])


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


def lsw_tail(rho_c: float) -> tuple[float, float]:
    """The part of the LSW distribution below a reduced radius ``rho_c``.

    Parameters
    ----------
    rho_c : float
        Reduced radius ``r / <r>`` (the resolution limit, for the unresolved tail).

    Returns
    -------
    number_fraction : float
        ``P(rho < rho_c)``.
    second_moment : float
        ``E[rho^2; rho < rho_c]``, the tail's share of the mean area in units of pi <r>^2.
    """
    return float(np.interp(rho_c, _LSW_RHO, _LSW_CDF)), float(np.interp(rho_c, _LSW_RHO, _LSW_M2))


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
