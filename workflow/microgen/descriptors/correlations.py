"""Spatial statistics of a binary 2D phase: two-point correlation, lineal path, curve errors.

All estimators are *non-periodic*: a pair (or segment) is only counted when it lies wholly inside
the image, and each lag is normalised by how many such placements exist. This is the unbiased
estimator for non-periodic micrographs; it differs from the periodic FFT estimator at lags that
are not small compared with the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sp_fft

from ._validate import as_binary

__all__ = [
    "S2Curve",
    "LinealPathCurve",
    "two_point_correlation",
    "lineal_path",
    "envelope",
    "curve_error",
]


def _default_r_max(shape: tuple[int, int], r_max: int | None) -> int:
    limit = min(shape) - 1
    if r_max is None:
        return min(shape) // 2
    r_max = int(r_max)
    if r_max < 0 or r_max > limit:
        raise ValueError(f"r_max must be in [0, {limit}] for image shape {shape}, got {r_max}")
    return r_max


@dataclass(frozen=True, eq=False)
class S2Curve:
    """Two-point correlation S2 of one phase on integer lags ``r = 0..r_max`` (pixels).

    Attributes
    ----------
    r : int array, lags in pixels.
    x : S2 for lag ``r`` along columns (horizontal), ``S2(dy=0, dx=r)``.
    y : S2 for lag ``r`` along rows (vertical), ``S2(dy=r, dx=0)``.
    radial : pair-count-weighted average over all lags ``d`` with ``round(|d|) = r``.
    phi : phase fraction (= ``S2(0)``).
    lag_map : S2 on the full lag window ``dy, dx in [-r_max, r_max]`` (centre = zero lag).
    pair_counts : number of in-image pixel pairs for each lag of ``lag_map``.
    """

    r: np.ndarray
    x: np.ndarray
    y: np.ndarray
    radial: np.ndarray
    phi: float
    lag_map: np.ndarray = field(repr=False)
    pair_counts: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class LinealPathCurve:
    """Lineal path L(r): probability that a segment of ``r + 1`` pixels lies wholly in the phase.

    ``x`` (segments along rows), ``y`` (along columns) and ``mean = (x + y) / 2``.
    """

    r: np.ndarray
    x: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    phi: float


def two_point_correlation(mask: np.ndarray, r_max: int | None = None) -> S2Curve:
    """Non-periodic two-point correlation of the True phase of a 2D binary mask.

    For a lag ``d = (dy, dx)``, ``S2(d) = C(d) / N(d)`` with ``C`` the number of pixel pairs
    ``(p, p + d)`` both inside the image and both in the phase, and ``N(d) = (H-|dy|)(W-|dx|)``
    the number of pairs inside the image. ``C`` comes from a zero-padded FFT autocorrelation;
    padding each axis to at least ``n + r_max`` is enough to keep lags ``|d_i| <= r_max`` free of
    wrap-around, which is cheaper than the usual ``2n`` padding. ``C`` is an integer count, so it
    is rounded after the inverse FFT; the result is then exact (equal to brute force).

    The radial curve averages over every lag in the plane (both signs) with
    ``round(sqrt(dy^2 + dx^2)) = r``, weighted by pair count: ``sum C(d) / sum N(d)``. Large
    lags with few pairs therefore weigh less than in an unweighted mean (porespy's choice).

    Parameters
    ----------
    mask : (H, W) bool or 0/1 integer array; True marks the phase.
    r_max : largest lag in pixels, ``0 <= r_max <= min(H, W) - 1``; default ``min(H, W) // 2``.

    Returns
    -------
    S2Curve

    Raises
    ------
    ValueError
        For a non-2D, float, or non-binary mask, or an out-of-range ``r_max``.
        An empty or full phase is valid (S2 is identically 0 or 1).
    """
    m = as_binary(mask)
    h, w = m.shape
    r_max = _default_r_max((h, w), r_max)
    ph = sp_fft.next_fast_len(h + r_max, real=True)
    pw = sp_fft.next_fast_len(w + r_max, real=True)
    f = sp_fft.rfft2(m.astype(np.float64), s=(ph, pw))
    auto = sp_fft.irfft2(f.real**2 + f.imag**2, s=(ph, pw))
    # Gather lags -r_max..r_max on both axes (negative lags wrap to the end of the array).
    idx_y = np.r_[ph - r_max : ph, 0 : r_max + 1] if r_max else np.array([0])
    idx_x = np.r_[pw - r_max : pw, 0 : r_max + 1] if r_max else np.array([0])
    counts = np.rint(auto[np.ix_(idx_y, idx_x)])
    lags = np.arange(-r_max, r_max + 1)
    pairs = np.outer(h - np.abs(lags), w - np.abs(lags)).astype(np.float64)
    lag_map = counts / pairs

    r = np.arange(r_max + 1)
    c = r_max
    s2x = lag_map[c, c:].copy()
    s2y = lag_map[c:, c].copy()
    dist = np.rint(np.hypot(lags[:, None], lags[None, :])).astype(np.int64)
    keep = dist <= r_max
    num = np.bincount(dist[keep], weights=counts[keep], minlength=r_max + 1)
    den = np.bincount(dist[keep], weights=pairs[keep], minlength=r_max + 1)
    radial = num / den
    return S2Curve(
        r=r,
        x=s2x,
        y=s2y,
        radial=radial,
        phi=float(lag_map[c, c]),
        lag_map=lag_map,
        pair_counts=pairs,
    )


def _run_length_histogram(m: np.ndarray) -> np.ndarray:
    """Histogram of lengths of True runs along axis 1 (index = run length)."""
    h = m.shape[0]
    padded = np.zeros((h, m.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = m
    d = np.diff(padded, axis=1)
    # Starts and ends come in matching order row by row because runs cannot overlap.
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return np.bincount(ends - starts, minlength=m.shape[1] + 1)


def _segments_in_phase(hist: np.ndarray, r_max: int) -> np.ndarray:
    """Number of in-phase segments of ``r + 1`` pixels, ``sum_l hist[l] * max(l - r, 0)``."""
    lengths = np.arange(hist.size, dtype=np.int64)
    hist = hist.astype(np.int64)
    # Suffix sums over l > r of hist[l] * l and hist[l]; then S(r) = A(r) - r * B(r).
    a = np.cumsum((hist * lengths)[::-1])[::-1]
    b = np.cumsum(hist[::-1])[::-1]
    r = np.arange(r_max + 1)
    a_gt = np.append(a[1:], 0)[r]
    b_gt = np.append(b[1:], 0)[r]
    return a_gt - r * b_gt


def lineal_path(mask: np.ndarray, r_max: int | None = None) -> LinealPathCurve:
    """Torquato's lineal path function along x and y, non-periodic.

    ``L_x(r)`` is the probability that a horizontal segment of ``r + 1`` pixels (length ``r``)
    placed uniformly at random *wholly inside the image* lies wholly in the phase: the number
    of in-phase placements, ``sum over row runs of max(l - r, 0)``, divided by the number of
    placements ``H * (W - r)``. ``L_y`` is the same along columns. ``L(0) = phi``.

    Parameters
    ----------
    mask : (H, W) bool or 0/1 integer array; True marks the phase.
    r_max : largest length in pixels, ``0 <= r_max <= min(H, W) - 1``; default ``min(H, W) // 2``.

    Returns
    -------
    LinealPathCurve

    Raises
    ------
    ValueError
        For a non-2D, float, or non-binary mask, or an out-of-range ``r_max``.
    """
    m = as_binary(mask)
    h, w = m.shape
    r_max = _default_r_max((h, w), r_max)
    r = np.arange(r_max + 1)
    lx = _segments_in_phase(_run_length_histogram(m), r_max) / (h * (w - r))
    ly = _segments_in_phase(_run_length_histogram(np.ascontiguousarray(m.T)), r_max) / (w * (h - r))
    return LinealPathCurve(r=r, x=lx, y=ly, mean=0.5 * (lx + ly), phi=float(m.mean()))


def envelope(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise mean and population standard deviation (ddof=0) of curves on one r grid.

    Raises ``ValueError`` for an empty list or curves of different lengths.
    """
    if len(curves) == 0:
        raise ValueError("envelope needs at least one curve")
    lengths = {np.asarray(c).shape for c in curves}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"curves must be 1D and share one r grid, got shapes {sorted(lengths)}")
    stack = np.vstack([np.asarray(c, dtype=np.float64) for c in curves])
    return stack.mean(axis=0), stack.std(axis=0)


def curve_error(
    r: np.ndarray,
    real: np.ndarray,
    generated: np.ndarray,
    r_range: tuple[float, float],
    r_generated: np.ndarray | None = None,
) -> float:
    """Relative area error ``eps = A1 / A2`` between a real and a generated curve.

    ``A1 = int |real - gen| dr`` and ``A2 = int real dr`` over ``r_range = (r_lo, r_hi)``, by the
    trapezoid rule on ``real``'s grid restricted to the range (with the range ends added by
    linear interpolation when they are not grid points). When ``r_generated`` is given and
    differs from ``r``, ``generated`` is linearly interpolated onto ``r`` first.

    Raises
    ------
    ValueError
        Mismatched lengths, a non-increasing grid, a range not covered by either grid, or
        ``A2 == 0``.
    """
    r = np.asarray(r, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    r_gen = r if r_generated is None else np.asarray(r_generated, dtype=np.float64)
    if r.ndim != 1 or real.shape != r.shape:
        raise ValueError(f"r and real must be 1D of equal length, got {r.shape}, {real.shape}")
    if gen.shape != r_gen.shape:
        raise ValueError(f"generated has shape {gen.shape}, its grid {r_gen.shape}")
    lo, hi = float(r_range[0]), float(r_range[1])
    if not lo < hi:
        raise ValueError(f"r_range must satisfy r_lo < r_hi, got {r_range}")
    for name, grid in (("r", r), ("r_generated", r_gen)):
        if np.any(np.diff(grid) <= 0):
            raise ValueError(f"{name} must be strictly increasing")
        if grid[0] > lo or grid[-1] < hi:
            raise ValueError(f"{name} [{grid[0]}, {grid[-1]}] does not cover r_range {r_range}")
    inside = (r > lo) & (r < hi)
    grid = np.concatenate([[lo], r[inside], [hi]])
    real_g = np.interp(grid, r, real)
    gen_g = np.interp(grid, r_gen, gen)
    a1 = np.trapezoid(np.abs(real_g - gen_g), grid)
    a2 = np.trapezoid(real_g, grid)
    if a2 == 0:
        raise ValueError("the real curve integrates to 0 over r_range; eps is undefined")
    return float(a1 / a2)
