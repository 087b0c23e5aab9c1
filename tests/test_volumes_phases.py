"""Two- and three-phase thresholding of concentration fields."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.volumes.cahn_hilliard import CahnHilliardParams, simulate
from microgen.volumes.phases import (
    ACCEPTOR,
    DONOR,
    MIXED,
    interface_shell,
    otsu_threshold,
    three_phase,
    three_phase_thresholds,
    two_phase,
    volume_fractions,
)


@pytest.fixture(scope="module")
def fields():
    p = CahnHilliardParams(
        shape=(32, 32, 24),
        phi0=0.45,
        chi=2.6,
        dt=1.0,
        n_steps=400,
        save_steps=(60, 400),
        seed=5,
        workers=1,
    )
    return simulate(p, compute_energy=False).snapshots


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """Voxels within city-block distance ``radius`` of ``mask`` (periodic)."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        for ax in range(mask.ndim):
            grown |= np.roll(out, 1, ax) | np.roll(out, -1, ax)
        out = grown
    return out


def test_two_phase_threshold_and_fractions(fields):
    phi = fields[-1]
    lab = two_phase(phi)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {DONOR, ACCEPTOR}
    assert np.array_equal(lab == ACCEPTOR, phi > 0.5)
    fr = volume_fractions(lab)
    assert fr["vol_frac_M"] == 0.0
    assert sum(fr.values()) == pytest.approx(1.0)
    assert fr["vol_frac_A"] == pytest.approx((phi > 0.5).mean())


def test_otsu_between_modes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.2, 0.03, 5000), rng.normal(0.7, 0.03, 3000)])
    t = otsu_threshold(x)
    assert 0.3 < t < 0.6
    assert np.array_equal(two_phase(x, "otsu"), (x > t).astype(np.uint8))


@pytest.mark.parametrize("which", [0, 1])
def test_three_phase_fractions_and_interfacial_mixed(fields, which):
    phi = fields[which]
    lab = three_phase(phi)
    fr = volume_fractions(lab)
    assert sum(fr.values()) == pytest.approx(1.0)
    th = three_phase_thresholds(phi)
    # adaptive: mixed fraction follows the interfacial shell of the two-phase volume
    assert fr["vol_frac_M"] == pytest.approx(th.shell_fraction, abs=0.01)
    assert 0 < fr["vol_frac_M"] <= 0.5
    assert th.low < 0.5 < th.high
    mixed = lab == MIXED
    # mixed voxels sit at the 0.5 level set: next to (or on) the two-phase interface ...
    shell = interface_shell(two_phase(phi))
    assert _near(shell, 1)[mixed].mean() > 0.95
    # ... and lie between the pure phases (within 3 voxels of both)
    near_d, near_a = _near(lab == DONOR, 3), _near(lab == ACCEPTOR, 3)
    assert (near_d & near_a)[mixed].mean() > 0.9
    # pure phases keep their side of the threshold
    assert np.all(phi[lab == DONOR] < 0.5) and np.all(phi[lab == ACCEPTOR] > 0.5)


def test_mixed_layer_separates_donor_from_acceptor(fields):
    lab3, lab2 = three_phase(fields[-1]), two_phase(fields[-1])

    def contacts(lab):
        n = 0
        for ax in range(3):
            nb = np.roll(lab, 1, ax)
            n += int(
                ((lab == DONOR) & (nb == ACCEPTOR)).sum()
                + ((lab == ACCEPTOR) & (nb == DONOR)).sum()
            )
        return n

    assert contacts(lab3) < 0.1 * contacts(lab2)


def test_no_interface_no_mixed_phase():
    phi = np.full((8, 8, 8), 0.3)
    lab = three_phase(phi)
    assert np.all(lab == DONOR)
    assert volume_fractions(lab)["vol_frac_D"] == 1.0


def test_max_mixed_fraction_caps():
    rng = np.random.default_rng(1)
    phi = 0.5 + 0.01 * rng.standard_normal((16, 16, 16))  # noise: shell is most voxels
    fr = volume_fractions(three_phase(phi, max_mixed_fraction=0.3))
    assert fr["vol_frac_M"] == pytest.approx(0.3, abs=1e-3)


def test_volume_fractions_rejects_unknown_ids():
    with pytest.raises(ValueError):
        volume_fractions(np.array([0, 1, 3], dtype=np.uint8))
