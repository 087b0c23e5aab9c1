"""S2 and lineal path against brute force, closed forms and porespy."""

import numpy as np
import pytest

from microgen.descriptors.correlations import (
    curve_error,
    envelope,
    lineal_path,
    two_point_correlation,
)


def _random_mask(shape=(17, 23), phi=0.3, seed=0):
    return np.random.default_rng(seed).random(shape) < phi


def _brute_s2_lag(m, dy, dx):
    """Pairs (p, p + d) both inside and both in phase, divided by pairs inside."""
    h, w = m.shape
    hits = total = 0
    for i in range(h):
        for j in range(w):
            i2, j2 = i + dy, j + dx
            if 0 <= i2 < h and 0 <= j2 < w:
                total += 1
                hits += int(m[i, j] and m[i2, j2])
    return hits, total


def _brute_lineal(m, r):
    """Segments of r + 1 pixels along rows, counted position by position."""
    h, w = m.shape
    hits = sum(all(m[i, j : j + r + 1]) for i in range(h) for j in range(w - r))
    return hits / (h * (w - r))


@pytest.mark.parametrize("seed", [0, 1])
def test_s2_equals_brute_force(seed):
    m = _random_mask(seed=seed)
    r_max = 10
    s2 = two_point_correlation(m, r_max=r_max)
    bx = [np.divide(*_brute_s2_lag(m, 0, r)) for r in range(r_max + 1)]
    by = [np.divide(*_brute_s2_lag(m, r, 0)) for r in range(r_max + 1)]
    np.testing.assert_allclose(s2.x, bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s2.y, by, rtol=0, atol=1e-12)
    num = np.zeros(r_max + 1)
    den = np.zeros(r_max + 1)
    for dy in range(-r_max, r_max + 1):
        for dx in range(-r_max, r_max + 1):
            r = int(round(np.hypot(dy, dx)))
            if r <= r_max:
                hits, total = _brute_s2_lag(m, dy, dx)
                num[r] += hits
                den[r] += total
    np.testing.assert_allclose(s2.radial, num / den, rtol=0, atol=1e-12)
    assert s2.phi == pytest.approx(m.mean(), abs=1e-15)


def test_lineal_path_equals_brute_force():
    m = _random_mask(seed=3, phi=0.6)
    lp = lineal_path(m, r_max=12)
    bx = [_brute_lineal(m, r) for r in range(13)]
    by = [_brute_lineal(m.T, r) for r in range(13)]
    np.testing.assert_allclose(lp.x, bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lp.y, by, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lp.mean, 0.5 * (lp.x + lp.y), rtol=0, atol=1e-15)
    assert lp.x[0] == lp.y[0] == pytest.approx(m.mean(), abs=1e-15)


def test_s2_bernoulli_limit():
    phi = 0.3
    m = _random_mask((256, 256), phi=phi, seed=5)
    s2 = two_point_correlation(m, r_max=40)
    assert s2.x[0] == pytest.approx(m.mean())
    # Independent pixels: S2(r > 0) = phi^2 up to sampling noise (~ phi(1-phi)/sqrt(N) ~ 2e-3).
    assert np.abs(s2.radial[5:] - m.mean() ** 2).max() < 5e-3
    assert np.abs(s2.x[1:] - m.mean() ** 2).max() < 1e-2


def test_lineal_path_stripe_closed_form():
    h, w, band = 20, 30, 4
    m = np.zeros((h, w), dtype=bool)
    m[7 : 7 + band, :] = True  # full-width horizontal stripe
    lp = lineal_path(m, r_max=19)
    r = np.arange(20)
    # Every horizontal segment in the stripe rows is in phase: L_x = band / h for all r.
    np.testing.assert_allclose(lp.x, band / h, rtol=0, atol=1e-15)
    # Vertical: each column has one run of length band, max(band - r, 0) segments.
    expected_y = np.maximum(band - r, 0) / (h - r)
    np.testing.assert_allclose(lp.y, expected_y, rtol=0, atol=1e-15)


def test_lineal_path_disk():
    n, radius = 61, 20.0
    yy, xx = np.mgrid[:n, :n] - n // 2
    m = yy**2 + xx**2 <= radius**2
    lp = lineal_path(m, r_max=45)
    # Chord of row yy has run length ell; count segments by hand from the run lengths.
    ells = m.sum(axis=1)
    r = np.arange(46)
    expected = np.array([np.maximum(ells - k, 0).sum() for k in r]) / (n * (n - r))
    np.testing.assert_allclose(lp.x, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lp.x, lp.y, rtol=0, atol=1e-15)  # disk is symmetric
    assert lp.x[41:].max() == 0.0  # no segment longer than the diameter (41 px)
    assert lp.x[40] > 0.0


def test_s2_matches_porespy_radial():
    """porespy 3.2: non-periodic, pair-normalised per lag like ours, but its radial average is an
    *unweighted* mean over lags with floor-binning bins[i] <= |d| < bins[i+1], and
    ``probability_scaled`` is S2 (``probability`` is S2 / phi). Compare on that quantity built
    from our lag map. Tolerance 1e-9: porespy does not round the FFT counts, so it carries FFT
    round-off (~1e-12) that ours removes."""
    ps = pytest.importorskip("porespy")
    m = _random_mask((64, 80), phi=0.4, seed=7)
    r_max = 32
    ref = ps.metrics.two_point_correlation(m, bins=np.arange(0, r_max + 1))
    s2 = two_point_correlation(m, r_max=r_max)
    lags = np.arange(-r_max, r_max + 1)
    dist = np.hypot(lags[:, None], lags[None, :])
    ours = np.array([s2.lag_map[(dist >= b) & (dist < b + 1)].mean() for b in range(r_max)])
    np.testing.assert_allclose(ref.probability_scaled, ours, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ref.probability, ours / m.mean(), rtol=0, atol=1e-9)


def test_envelope_and_curve_error():
    curves = [np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])]
    mean, std = envelope(curves)
    np.testing.assert_allclose(mean, [2, 2, 2])
    np.testing.assert_allclose(std, [1, 0, 1])
    with pytest.raises(ValueError):
        envelope([np.ones(3), np.ones(4)])
    with pytest.raises(ValueError):
        envelope([])

    r = np.arange(11.0)
    real = np.ones(11)
    assert curve_error(r, real, real, (0, 10)) == 0.0
    assert curve_error(r, real, 1.5 * real, (2, 8)) == pytest.approx(0.5)
    # Generated on a finer grid is interpolated onto real's grid.
    r_fine = np.linspace(0, 10, 101)
    assert curve_error(r, r, 2 * r_fine, (0, 10), r_generated=r_fine) == pytest.approx(1.0)
    # Non-grid range ends are interpolated: real = r on [0.5, 9.5].
    assert curve_error(r, r, r + 1, (0.5, 9.5)) == pytest.approx(
        9.0 / 45.0
    )  # A2 = (9.5^2 - 0.5^2) / 2
    with pytest.raises(ValueError, match="cover"):
        curve_error(r, real, real, (0, 12))
    with pytest.raises(ValueError, match="cover"):
        curve_error(r, real, real[:6], (0, 10), r_generated=r[:6])
    with pytest.raises(ValueError, match="integrates to 0"):
        curve_error(r, np.zeros(11), real, (0, 10))


@pytest.mark.parametrize("func", [two_point_correlation, lineal_path])
def test_bad_inputs(func):
    m = _random_mask()
    with pytest.raises(ValueError, match="dtype"):
        func(m.astype(np.float64))
    with pytest.raises(ValueError, match="binary"):
        func(m.astype(np.uint8) * 2)
    with pytest.raises(ValueError, match="ndim"):
        func(m[None])
    with pytest.raises(ValueError, match="r_max"):
        func(m, r_max=17)
    with pytest.raises(ValueError, match="empty"):
        func(np.zeros((0, 5), dtype=bool))


@pytest.mark.parametrize("value", [False, True])
def test_empty_and_full_phase(value):
    m = np.full((12, 15), value)
    s2 = two_point_correlation(m, r_max=8)
    lp = lineal_path(m, r_max=8)
    for arr in (s2.x, s2.y, s2.radial, lp.x, lp.y):
        np.testing.assert_array_equal(arr, float(value))
