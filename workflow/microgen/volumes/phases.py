"""Thresholding a concentration field φ into two-phase and three-phase volumes.

Phase ids (uint8), as in the microgen3D data set and GraSPI's colour convention:

* ``DONOR = 0`` — φ at or below the threshold ("black"),
* ``ACCEPTOR = 1`` — φ above the threshold ("white"),
* ``MIXED = 2`` — three-phase volumes only: the interfacial mixed region.

Two-phase rule (paper §4.1): ``acceptor = φ > t`` with ``t = 0.5`` (``method="fixed"``) or
Otsu's threshold of the field's histogram (``method="otsu"``).

Three-phase rule (the paper only says "two thresholds, adjusted per microstructure so the
interface does not become too thick"; this is our documented, adaptive version):

1. Segment two-phase with threshold ``t``.
2. Count the *interfacial shell* ``S``: voxels with at least one face neighbour (periodic,
   6-connectivity) of the other two-phase label — a layer one voxel thick on each side of
   the ``φ = t`` level set.
3. Target mixed fraction ``m = min(shell_scale · |S| / N, max_mixed_fraction)``.
4. Mixed = the ``m·N`` voxels closest to the level set in value, i.e. ``|φ − t| ≤ δ`` where
   ``δ`` is the ``m``-quantile of ``|φ − t|``. The two thresholds are ``t − δ`` and ``t + δ``:
   ``|φ − t| ≤ δ`` → mixed, otherwise donor (φ < t − δ) or acceptor (φ > t + δ). When the
   target is zero voxels (no interface) δ is NaN and the volume is the two-phase one.

So the mixed phase follows the interface area: coarse, well-separated volumes get a thin
mixed layer; early, finely intermixed volumes get a large one (which is physical: most of
such a blend is still mixed). Because φ varies monotonically across a diffuse interface,
the voxels with φ nearest ``t`` sit at the interface, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DONOR, ACCEPTOR, MIXED = 0, 1, 2
PHASE_NAMES = {DONOR: "D", ACCEPTOR: "A", MIXED: "M"}


def otsu_threshold(field: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximises the between-class variance of the histogram)."""
    values = np.asarray(field, dtype=float).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centers)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    between = between[:-1]
    # empty bins between the modes give a plateau of maxima: take its middle
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    return float(0.5 * (edges[best[0] + 1] + edges[best[-1] + 1]))


def threshold_value(phi: np.ndarray, method: str | float = "fixed") -> float:
    """The two-phase threshold: 0.5 (``"fixed"``), Otsu (``"otsu"``) or a given number."""
    if isinstance(method, (int, float)) and not isinstance(method, bool):
        return float(method)
    if method == "fixed":
        return 0.5
    if method == "otsu":
        return otsu_threshold(phi)
    raise ValueError(f"unknown threshold method {method!r}; use 'fixed', 'otsu' or a number")


def two_phase(phi: np.ndarray, method: str | float = "fixed") -> np.ndarray:
    """Donor (0) where φ ≤ t, acceptor (1) where φ > t; uint8."""
    t = threshold_value(phi, method)
    return (np.asarray(phi) > t).astype(np.uint8)


def interface_shell(labels: np.ndarray) -> np.ndarray:
    """Voxels with at least one face neighbour of a different label (periodic)."""
    shell = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        for shift in (1, -1):
            shell |= labels != np.roll(labels, shift, axis=axis)
    return shell


@dataclass(frozen=True)
class ThreePhaseThresholds:
    center: float
    low: float
    high: float
    shell_fraction: float
    target_mixed_fraction: float


def three_phase_thresholds(
    phi: np.ndarray,
    method: str | float = "fixed",
    shell_scale: float = 1.0,
    max_mixed_fraction: float = 0.5,
) -> ThreePhaseThresholds:
    """The adaptive pair of thresholds of the three-phase rule (module docstring)."""
    if shell_scale < 0 or not 0 <= max_mixed_fraction <= 1:
        raise ValueError("need shell_scale >= 0 and 0 <= max_mixed_fraction <= 1")
    phi = np.asarray(phi, dtype=float)
    t = threshold_value(phi, method)
    shell = interface_shell((phi > t).astype(np.uint8))
    shell_fraction = float(shell.mean())
    target = min(shell_scale * shell_fraction, max_mixed_fraction)
    n_mixed = int(round(target * phi.size))
    if n_mixed == 0:
        delta = float("nan")  # empty band: the two-phase segmentation
    else:
        dist = np.abs(phi - t).ravel()
        delta = float(np.partition(dist, n_mixed - 1)[n_mixed - 1])
    return ThreePhaseThresholds(t, t - delta, t + delta, shell_fraction, target)


def three_phase(
    phi: np.ndarray,
    method: str | float = "fixed",
    shell_scale: float = 1.0,
    max_mixed_fraction: float = 0.5,
) -> np.ndarray:
    """Donor (0), acceptor (1) and interfacial mixed (2) phases; uint8 (module docstring)."""
    phi = np.asarray(phi, dtype=float)
    th = three_phase_thresholds(phi, method, shell_scale, max_mixed_fraction)
    labels = (phi > th.center).astype(np.uint8)
    if np.isfinite(th.low):
        labels[np.abs(phi - th.center) <= th.high - th.center] = MIXED
    return labels


def volume_fractions(labels: np.ndarray, three_phase: bool | None = None) -> dict[str, float]:
    """``vol_frac_D``, ``vol_frac_A`` and ``vol_frac_M`` (0 for two-phase volumes)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=3)
    if len(counts) > 3:
        raise ValueError(f"phase ids must be 0, 1 or 2; found up to {labels.max()}")
    n = labels.size
    return {f"vol_frac_{PHASE_NAMES[i]}": float(counts[i] / n) for i in (DONOR, ACCEPTOR, MIXED)}
