"""Particle descriptors against scikit-image regionprops and brute-force NND."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label, regionprops

from microgen.descriptors.particles import particle_descriptors


def _label_mask(shape=(120, 150), seed=0, phase=2):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.5)
    mask = np.where(field > 0.12, phase, 0).astype(np.uint8)
    mask[rng.random(shape) < 0.002] = phase  # isolated pixels: minor axis 0 -> NaN aspect
    mask[5, 5:40] = phase  # a 1-px-wide line
    return mask


def _brute_nnd(c):
    d = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_regionprops_keep(seed):
    mask = _label_mask(seed=seed)
    px = 0.05
    p = particle_descriptors(mask, pixel_size_um=px, phase=2, border="keep")
    props = regionprops(label(mask == 2, connectivity=2))
    assert p.n_particles == len(props)
    np.testing.assert_array_equal(p.areas_px, [r.area for r in props])
    np.testing.assert_allclose(p.diameters_px, [r.equivalent_diameter_area for r in props])
    np.testing.assert_allclose(p.diameters_um, p.diameters_px * px)
    major = np.array([r.axis_major_length for r in props])
    minor = np.array([r.axis_minor_length for r in props])
    ar = np.where(minor > 0, major / np.where(minor > 0, minor, 1), np.nan)
    np.testing.assert_allclose(p.aspect_ratios, ar, rtol=1e-10, equal_nan=True)
    assert np.isnan(p.aspect_ratios).any()  # the isolated pixels
    cents = np.array([r.centroid for r in props])
    np.testing.assert_allclose(p.centroids_px, cents, rtol=0, atol=1e-10)
    assert p.mean_nnd_px == pytest.approx(_brute_nnd(cents).mean(), rel=1e-12)
    assert p.mean_nnd_um == pytest.approx(p.mean_nnd_px * px)
    assert p.area_fraction == pytest.approx((mask == 2).mean())
    assert p.mean_aspect_ratio == pytest.approx(np.nanmean(ar))


def test_border_exclude():
    mask = _label_mask(seed=2)
    keep = particle_descriptors(mask, 0.1, border="keep")
    excl = particle_descriptors(mask, 0.1, border="exclude")
    lab = label(mask == 2, connectivity=2)
    props = regionprops(lab)
    edge = set(np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])) - {0}
    inner = [r for r in props if r.label not in edge]
    assert excl.n_particles == len(inner) < keep.n_particles
    np.testing.assert_allclose(excl.diameters_px, [r.equivalent_diameter_area for r in inner])
    # Area fraction and interface length use all pixels regardless of the border rule.
    assert excl.area_fraction == keep.area_fraction
    assert excl.interface_edges == keep.interface_edges
    # NND: interior particles query, every particle is a candidate neighbour.
    allc = np.array([r.centroid for r in props])
    idx = np.array([r.label - 1 for r in inner])
    d = np.sqrt(((allc[idx, None, :] - allc[None, :, :]) ** 2).sum(-1))
    d[np.arange(len(idx)), idx] = np.inf
    assert excl.mean_nnd_px == pytest.approx(d.min(axis=1).mean(), rel=1e-12)


def test_interfacial_length_of_square_and_disk():
    mask = np.zeros((50, 60), dtype=np.uint8)
    mask[10:30, 20:40] = 2  # 20 x 20 square: 80 edges
    p = particle_descriptors(mask, pixel_size_um=0.5)
    assert p.interface_edges == 80
    assert p.interfacial_length_per_area_per_um == pytest.approx(np.pi / 4 * 80 / 3000 / 0.5)
    # Crofton estimate of a digitised disk's perimeter is close to 2 pi R.
    yy, xx = np.mgrid[:201, :201] - 100
    disk = ((yy**2 + xx**2) <= 60**2).astype(np.uint8) * 2
    q = particle_descriptors(disk, pixel_size_um=1.0)
    est_perimeter = q.interfacial_length_per_area_per_um * disk.size
    assert est_perimeter == pytest.approx(2 * np.pi * 60, rel=0.02)


def test_empty_and_full_phase():
    empty = particle_descriptors(np.zeros((20, 20), dtype=np.uint8), 0.1)
    assert empty.n_particles == 0 and empty.area_fraction == 0.0
    assert np.isnan(empty.mean_diameter_um) and np.isnan(empty.mean_nnd_px)
    assert empty.diameters_px.size == 0
    full = particle_descriptors(np.full((20, 20), 2, dtype=np.uint8), 0.1)
    assert full.n_particles == 1 and full.area_fraction == 1.0
    assert full.interface_edges == 0 and np.isnan(full.mean_nnd_px)
    excl = particle_descriptors(np.full((20, 20), 2, dtype=np.uint8), 0.1, border="exclude")
    assert excl.n_particles == 0 and excl.area_fraction == 1.0


def test_bad_inputs():
    m = _label_mask(shape=(30, 30))
    with pytest.raises(ValueError, match="integer"):
        particle_descriptors(m.astype(np.float32), 0.1)
    with pytest.raises(ValueError, match="integer"):
        particle_descriptors(m > 0, 0.1)
    with pytest.raises(ValueError, match="ndim"):
        particle_descriptors(m[None], 0.1)
    with pytest.raises(ValueError, match="pixel_size"):
        particle_descriptors(m, 0.0)
    with pytest.raises(ValueError, match="border"):
        particle_descriptors(m, 0.1, border="clip")
    row = particle_descriptors(m, 0.1).to_row()
    assert all(np.isscalar(v) for v in row.values())
