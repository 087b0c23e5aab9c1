"""Physics checks of the Cahn–Hilliard simulator (small grids, a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.volumes.cahn_hilliard import (
    CahnHilliardParams,
    characteristic_length,
    chemical_potential,
    chi_critical,
    chi_spinodal,
    curvature,
    free_energy_density,
    iter_cahn_hilliard,
    log_spaced_steps,
    simulate,
    total_free_energy,
)


def test_free_energy_derivatives_consistent():
    phi = np.linspace(0.05, 0.95, 19)
    h = 1e-6
    for chi, na, nb in [(2.5, 1.0, 1.0), (1.2, 2.0, 3.0)]:
        num = (
            free_energy_density(phi + h, chi, na, nb) - free_energy_density(phi - h, chi, na, nb)
        ) / (2 * h)
        np.testing.assert_allclose(chemical_potential(phi, chi, na, nb), num, atol=1e-6)
        num2 = (
            chemical_potential(phi + h, chi, na, nb) - chemical_potential(phi - h, chi, na, nb)
        ) / (2 * h)
        np.testing.assert_allclose(curvature(phi, chi, na, nb), num2, atol=1e-4)
    assert chi_critical() == pytest.approx(2.0)
    assert chi_spinodal(0.5) == pytest.approx(2.0)
    assert curvature(0.3, chi_spinodal(0.3, 2.0, 3.0), 2.0, 3.0) == pytest.approx(0.0, abs=1e-12)


def test_log_spaced_steps():
    steps = log_spaced_steps(400, 16, first=1)
    assert len(steps) == 16 and steps[0] == 1 and steps[-1] == 400
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))
    ratios = np.diff(np.log(steps[5:]))
    assert ratios.std() < 0.5 * ratios.mean()  # roughly geometric once past rounding
    with pytest.raises(ValueError):
        log_spaced_steps(5, 10)


def test_mass_conserved_every_step():
    p = CahnHilliardParams(
        shape=(16, 16, 12), phi0=0.45, chi=2.8, dt=1.0, n_steps=120, noise=0.05, seed=3, workers=1
    )
    means = np.array([s.phi.mean() for s in iter_cahn_hilliard(p, every_step=True)])
    assert abs(means[0] - 0.45) < 1e-12
    assert np.abs(np.diff(means)).max() < 1e-10
    assert np.abs(means - 0.45).max() < 1e-10


@pytest.fixture(scope="module")
def separating_run():
    p = CahnHilliardParams(
        shape=(32, 32, 32),
        phi0=0.5,
        chi=2.6,
        dt=1.0,
        n_steps=600,
        save_steps=(0, *range(10, 601, 10)),
        seed=1,
        workers=1,
    )
    return simulate(p)


def test_free_energy_non_increasing(separating_run):
    f = separating_run.free_energy
    assert np.all(np.isfinite(f))
    assert np.all(np.diff(f) <= 1e-12 * np.abs(f[:-1]))
    assert f[-1] < f[0] - 0.01  # it actually decomposed


def test_spinodal_decomposition_coarsens(separating_run):
    snaps = separating_run.snapshots
    amp = snaps.std(axis=(1, 2, 3))
    assert amp[-1] > 0.25  # near the binodal compositions
    separated = np.flatnonzero(amp > 0.2)
    assert len(separated) > 10
    first, last = separated[0], len(snaps) - 1
    lengths = [characteristic_length(snaps[i]) for i in (first, (first + last) // 2, last)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[2] > 1.3 * lengths[0]


@pytest.mark.parametrize("phi0, chi", [(0.5, 1.8), (0.2, 2.5)])  # below χ_c; metastable
def test_outside_spinodal_stays_homogeneous(phi0, chi):
    assert chi < chi_spinodal(phi0)
    p = CahnHilliardParams(
        shape=(24, 24, 16),
        phi0=phi0,
        chi=chi,
        dt=1.0,
        n_steps=300,
        save_steps=(0, 300),
        noise=0.02,
        seed=2,
        workers=1,
    )
    r = simulate(p)
    assert r.snapshots[-1].std() < 0.1 * r.snapshots[0].std()
    assert np.abs(r.snapshots[-1] - phi0).max() < 0.02


def test_inside_spinodal_off_critical_separates():
    assert 2.6 > chi_spinodal(0.4)
    p = CahnHilliardParams(
        shape=(24, 24, 16),
        phi0=0.4,
        chi=2.6,
        dt=1.0,
        n_steps=300,
        save_steps=(0, 300),
        noise=0.02,
        seed=2,
        workers=1,
    )
    r = simulate(p)
    assert r.snapshots[-1].std() > 10 * r.snapshots[0].std()


def test_seed_determinism_and_log_time():
    kw = dict(
        shape=(16, 16, 8),
        phi0=0.5,
        chi=2.6,
        n_steps=60,
        n_snapshots=5,
        first_save_step=2,
        workers=1,
    )
    a = simulate(CahnHilliardParams(seed=7, **kw), compute_energy=False)
    b = simulate(CahnHilliardParams(seed=7, **kw), compute_energy=False)
    c = simulate(CahnHilliardParams(seed=8, **kw), compute_energy=False)
    assert np.array_equal(a.snapshots, b.snapshots)
    assert not np.array_equal(a.snapshots, c.snapshots)
    assert a.snapshots.shape == (5, 16, 16, 8)
    np.testing.assert_allclose(a.log_time, np.log10(a.steps * 0.5))


def test_energy_uses_gradient_term():
    p = CahnHilliardParams(shape=(16, 16, 8), phi0=0.5, chi=2.5, kappa=2.0)
    x = np.arange(16)
    phi = 0.5 + 0.3 * np.sin(2 * np.pi * x / 16)[:, None, None] * np.ones((16, 16, 8))
    bulk = free_energy_density(phi, 2.5).mean()
    grad = 0.5 * 2.0 * (0.3 * 2 * np.pi / 16) ** 2 * 0.5  # κ/2 ⟨|∇φ|²⟩ for a sine
    assert total_free_energy(phi, p) == pytest.approx(bulk + grad, rel=1e-10)


def test_params_validation():
    with pytest.raises(ValueError):
        CahnHilliardParams(phi0=1.2)
    with pytest.raises(ValueError):
        CahnHilliardParams(save_steps=(5, 3))
    with pytest.raises(ValueError):
        CahnHilliardParams(n_steps=10, n_snapshots=16)
