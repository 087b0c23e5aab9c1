"""The simulate_dataset stage: grid → thresholded volumes + attributes in HDF5."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.volumes.hdf5 import VolumeFile, read_features
from microgen.volumes.simulate import simulate_dataset
from microgen.volumes.splits import read_split, split_h5

KW = dict(
    shape=(16, 16, 8), n_snapshots=4, n_steps=200, first_save_step=20, progress=False, workers=1
)


def test_two_phase_dataset(tmp_path):
    out = tmp_path / "ch.h5"
    df = simulate_dataset(out, [0.45, 0.5], [2.4, 2.8], seed=0, **KW)
    assert out.is_file() and not (tmp_path / "ch.h5.part").exists()
    assert len(df) == 2 * 2 * 4
    for col in ("phi", "chi", "log_time", "run_id", "vol_frac_D", "vol_frac_A", "vol_frac_M"):
        assert col in df.columns
    assert df.groupby("run_id").size().tolist() == [4] * 4
    assert (df.vol_frac_M == 0).all()
    np.testing.assert_allclose(df.vol_frac_D + df.vol_frac_A, 1.0)
    # log-spaced times, increasing within each run
    assert all(np.all(np.diff(g.log_time) > 0) for _, g in df.groupby("run_id"))
    with VolumeFile(out) as vf:
        assert vf.shape == (16, 16, 8)
        vol = vf[len(vf) - 1]
        a = vf.attrs(len(vf) - 1)
        assert set(np.unique(vol)) <= {0, 1}
        assert a["vol_frac_A"] == pytest.approx((vol == 1).mean())
    # same seed ⇒ same data
    df2 = simulate_dataset(tmp_path / "ch2.h5", [0.45, 0.5], [2.4, 2.8], seed=0, **KW)
    with VolumeFile(out) as a, VolumeFile(tmp_path / "ch2.h5") as b:
        assert all(np.array_equal(a[i], b[i]) for i in range(len(a)))
    assert df.equals(df2)


def test_three_phase_describe_hook_and_split(tmp_path):
    def describe(vol):
        return {"ABS_f_D": float((vol == 0).mean()), "n_vox": vol.size}

    out = tmp_path / "ch3.h5"
    df = simulate_dataset(out, [0.5], [2.6, 2.8], three_phase=True, describe=describe, **KW)
    assert {"ABS_f_D", "n_vox"} <= set(df.columns)
    np.testing.assert_allclose(df.ABS_f_D, df.vol_frac_D)
    np.testing.assert_allclose(df.vol_frac_D + df.vol_frac_A + df.vol_frac_M, 1.0)
    assert (df.vol_frac_M > 0).all()
    split = split_h5(out, tmp_path / "split.csv", val_fraction=0.5, seed=0)
    assert read_split(tmp_path / "split.csv").equals(split)
    assert (split.groupby("run_id").split.nunique() == 1).all()
    assert set(split.split) == {"train", "val"}
    with pytest.raises(ValueError, match="run_id"):
        simulate_dataset(tmp_path / "x.h5", [0.5], [2.6], describe=lambda v: {"run_id": 1}, **KW)
    assert len(read_features(out)) == 8
