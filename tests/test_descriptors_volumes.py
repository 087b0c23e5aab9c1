"""GraSPI-equivalent descriptors against py-graspi 0.3 and a scipy Dijkstra reference."""

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from microgen.descriptors.volumes import (
    _electrode_distance,
    _offsets,
    graspi_descriptors,
    to_graspi_text,
)


def _morphology(shape, fraction_a, seed):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return (field > np.quantile(field, 1 - fraction_a)).astype(np.uint8)  # 1 = acceptor


def _py_graspi(vol, tmp_path, monkeypatch):
    pg = pytest.importorskip("py_graspi")
    monkeypatch.chdir(tmp_path)  # py-graspi writes ./test_results/*
    path = tmp_path / "morph.txt"
    path.write_text(to_graspi_text(vol))
    n_flag = 3 if (vol == 2).any() else 2
    data = pg.generateGraph(str(path), n_flag=n_flag)
    return pg.compute_descriptors(data, str(path), n_flag=n_flag)


KEYS_2PHASE = [
    "STAT_n", "STAT_e", "STAT_n_D", "STAT_n_A", "STAT_CC_D", "STAT_CC_A", "STAT_CC_D_An",
    "STAT_CC_A_Ca", "ABS_f_D", "CT_f_e_conn", "CT_f_conn_D_An", "CT_f_conn_A_Ca", "CT_e_conn",
    "CT_n_D_adj_An", "CT_n_A_adj_Ca", "CT_f_D_tort1", "CT_f_A_tort1",
]  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "fraction_a", "seed"),
    [((40, 40), 0.3, 0), ((50, 44), 0.5, 1), ((60, 52), 0.7, 2), ((44, 60), 0.5, 3)],
)
def test_matches_py_graspi_2d(shape, fraction_a, seed, tmp_path, monkeypatch):
    vol = _morphology(shape, fraction_a, seed)
    ref = _py_graspi(vol, tmp_path, monkeypatch)
    ours = graspi_descriptors(vol).to_row()
    assert 0 < ours["CT_f_D_tort1"] < 1 and 0 < ours["CT_f_A_tort1"] < 1  # non-trivial case
    for key in KEYS_2PHASE:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours["vol_frac_D"] == pytest.approx(ref["STAT_n_D"] / vol.size)


def test_matches_py_graspi_3d_compat(tmp_path, monkeypatch):
    vol = _morphology((10, 9, 8), 0.5, 4)
    ref = _py_graspi(vol, tmp_path, monkeypatch)
    ours = graspi_descriptors(vol, neighbourhood="py-graspi").to_row()
    for key in KEYS_2PHASE:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_three_phase_matches_py_graspi(tmp_path, monkeypatch):
    vol = _morphology((40, 44), 0.5, 5)
    rng = np.random.default_rng(5)
    vol[ndimage.gaussian_filter(rng.standard_normal(vol.shape), 2) > 0.15] = 2
    ref = _py_graspi(vol, tmp_path, monkeypatch)
    ours = graspi_descriptors(vol)
    assert ours.n_phases == 3 and "vol_frac_M" in ours.to_row()
    for key in ("STAT_e", "CT_e_conn", "CT_f_e_conn", "CT_f_D_tort1", "CT_f_A_tort1"):
        assert getattr(ours, key) == pytest.approx(ref[key], abs=1e-12), key
    assert ours.vol_frac_M == pytest.approx((vol == 2).mean())


def _dijkstra_reference(phase, start_index, offsets):
    """Multi-source Dijkstra with a virtual source node, plain scipy.sparse.csgraph."""
    n = phase.size
    idx = np.arange(n).reshape(phase.shape)
    rows, cols, w = [], [], []
    for off in offsets:
        src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(off, phase.shape, strict=True))
        dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(off, phase.shape, strict=True))
        ok = phase[src] & phase[dst]
        rows.append(idx[src][ok])
        cols.append(idx[dst][ok])
        w.append(np.full(ok.sum(), np.sqrt(np.abs(off).sum())))
    starts = idx[start_index][phase[start_index]]
    rows.append(np.full(starts.size, n))
    cols.append(starts)
    w.append(np.full(starts.size, 1e-300))  # ~0 weight; csgraph drops explicit zeros
    g = coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(n + 1, n + 1)).tocsr()  # fmt: skip
    d = dijkstra(g, directed=True, indices=n)[:n].reshape(phase.shape)
    return np.where(phase, d, np.inf)


@pytest.mark.parametrize("ndim", [2, 3])
def test_mcp_distances_are_exact_graph_distances(ndim):
    shape = (14, 13, 12)[:ndim]
    phase = _morphology(shape, 0.6, 6).astype(bool)
    offsets = _offsets(ndim, "full")
    ours = _electrode_distance(phase, shape[0] - 1, offsets)
    ref = _dijkstra_reference(phase, shape[0] - 1, offsets)
    assert np.isfinite(ours).sum() > 0
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=0, atol=1e-9)


def test_straight_column_is_not_tortuous():
    vol = np.ones((10, 7), dtype=np.uint8)
    vol[:, 3] = 0  # a straight donor column spanning both electrodes
    d = graspi_descriptors(vol)
    assert d.CT_f_conn_D_An == 1.0 and d.CT_f_D_tort1 == 1.0
    assert d.STAT_e == 20 and d.STAT_CC_A == 2
    assert d.vol_frac_D == pytest.approx(1 / 7) and d.ABS_f_D == pytest.approx(1 / 7)


def test_bad_inputs_and_degenerate():
    with pytest.raises(ValueError, match="dtype"):
        graspi_descriptors(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="phase ids"):
        graspi_descriptors(np.full((5, 5), 3, dtype=np.uint8))
    with pytest.raises(ValueError, match="mixed"):
        graspi_descriptors(np.full((5, 5), 2, dtype=np.uint8), n_phases=2)
    with pytest.raises(ValueError, match="ndim"):
        graspi_descriptors(np.zeros((2, 2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="axis 0"):
        graspi_descriptors(np.zeros((1, 5), dtype=np.uint8))
    full_d = graspi_descriptors(np.zeros((6, 6), dtype=np.uint8))
    assert full_d.ABS_f_D == 1.0 and full_d.CT_f_D_tort1 == 1.0
    assert np.isnan(full_d.CT_f_conn_A_Ca) and np.isnan(full_d.CT_f_A_tort1)
    assert np.isnan(full_d.CT_f_e_conn) and full_d.STAT_e == 0
    assert "vol_frac_M" not in full_d.to_row()


def test_full_neighbourhood_is_26_connected():
    assert len(_offsets(3, "full")) == 26 and len(_offsets(3, "py-graspi")) == 20
    assert len(_offsets(2, "py-graspi")) == 8
    assert {tuple(o) for o in _offsets(3, "full")} == {
        o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)
    }
