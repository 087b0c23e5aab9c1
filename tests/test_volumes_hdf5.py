"""microgen3D HDF5 schema: writer, lazy reader, validation, features table, hub resolution."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from microgen.volumes import hdf5 as vh
from microgen.volumes.hdf5 import (
    SHAPE_ATTR,
    DatasetUnavailableError,
    SchemaError,
    VolumeFile,
    VolumeWriter,
    read_features,
    resolve_dataset,
    write_volumes,
)

SHAPE = (6, 5, 4)


def _volumes(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            f"vol_{i}",
            rng.integers(0, 3, SHAPE, dtype=np.uint8),
            {
                "phi": 0.5 + 0.01 * i,
                "chi": 2.3,
                "log_time": float(i),
                "run_id": f"run{i % 2}",
                "ABS_f_D": 0.25 * i,
            },
        )
        for i in range(n)
    ]


def test_round_trip(tmp_path):
    path = write_volumes(tmp_path / "a.h5", _volumes(), shape=SHAPE)
    with h5py.File(path) as f:  # stored flat, uint8, shape recorded on the file
        assert f["vol_1"].shape == (int(np.prod(SHAPE)),) and f["vol_1"].dtype == np.uint8
        assert tuple(f.attrs[SHAPE_ATTR]) == SHAPE
    with VolumeFile(path) as vf:
        assert len(vf) == 3 and vf.shape == SHAPE
        for (name, vol, attrs), (n2, v2, a2) in zip(_volumes(), vf, strict=True):
            assert name == n2 and v2.shape == SHAPE and v2.dtype == np.uint8
            assert np.array_equal(vol, v2)
            assert a2["run_id"] == attrs["run_id"]
            for k in ("phi", "chi", "log_time", "ABS_f_D"):
                assert a2[k] == pytest.approx(attrs[k])
        assert np.array_equal(vf[2], vf["vol_2"])
        assert isinstance(vf.attrs(0)["run_id"], str)


def test_append_and_flat_input(tmp_path):
    path = tmp_path / "b.h5"
    vols = _volumes(2)
    write_volumes(path, vols[:1], shape=SHAPE)
    with VolumeWriter(path, shape=SHAPE, mode="a") as w:
        w.add("flat", vols[1][1].reshape(-1), {})
    with VolumeFile(path) as vf:
        assert vf.names == ["flat", "vol_0"]
        assert np.array_equal(vf["flat"], vols[1][1])
    with pytest.raises(SchemaError, match="volume_shape"):
        VolumeWriter(path, shape=(4, 4, 4), mode="a")


def test_writer_rejects_bad_volumes(tmp_path):
    with VolumeWriter(tmp_path / "c.h5", shape=SHAPE) as w:
        # A wrong shape names both the file and the key, so a bad input is found at once.
        with pytest.raises(SchemaError, match=r"c\.h5: dataset 'wrong_len'"):
            w.add("wrong_len", np.zeros(int(np.prod(SHAPE)) + 1, np.uint8))
        with pytest.raises(SchemaError, match=r"c\.h5: dataset 'wrong_shape'.*\(4, 5, 6\)"):
            w.add("wrong_shape", np.zeros((4, 5, 6), np.uint8))
        with pytest.raises(SchemaError, match="'floaty'"):
            w.add("floaty", np.full(SHAPE, 0.5))
        w.add("ok", np.ones(SHAPE, np.int64))
        with pytest.raises(SchemaError, match="already exists"):
            w.add("ok", np.ones(SHAPE, np.uint8))


def test_reader_validates_length_and_dtype(tmp_path):
    path = tmp_path / "d.h5"
    n = int(np.prod(SHAPE))
    with h5py.File(path, "w") as f:  # a published-style file: no shape attribute
        f["good"] = np.zeros(n, np.uint8)
        f["short"] = np.zeros(n - 1, np.uint8)
        f["floats"] = np.zeros(n, np.float32) + 1.0
        f["halves"] = np.zeros(n, np.float32) + 0.5
    with VolumeFile(path, shape=SHAPE) as vf:
        assert vf["good"].shape == SHAPE
        with pytest.raises(SchemaError, match=r"d\.h5: dataset 'short'.*flat length"):
            vf["short"]
        with pytest.raises(SchemaError, match="'floats'.*dtype"):
            vf["floats"]
    with VolumeFile(path, shape=SHAPE, strict_dtype=False) as vf:
        assert vf["floats"].dtype == np.uint8 and vf["floats"].max() == 1
        with pytest.raises(SchemaError, match="'halves'"):
            vf["halves"]
    with VolumeFile(path) as vf:  # no attribute: default (128, 128, 64) ≠ data
        assert vf.shape == vh.DEFAULT_SHAPE
        with pytest.raises(SchemaError, match=r"d\.h5: dataset 'good'"):
            vf["good"]


def test_read_features(tmp_path):
    path = write_volumes(tmp_path / "e.h5", _volumes(4), shape=SHAPE)
    df = read_features(path)
    assert list(df["name"]) == [f"vol_{i}" for i in range(4)]
    assert {"name", "phi", "chi", "log_time", "run_id", "ABS_f_D"} <= set(df.columns)
    assert df["phi"].tolist() == pytest.approx([0.5, 0.51, 0.52, 0.53])
    assert df["run_id"].tolist() == ["run0", "run1", "run0", "run1"]


def test_resolve_local_and_missing(tmp_path):
    p = tmp_path / "f.h5"
    p.write_bytes(b"")
    assert resolve_dataset(p) == p
    with pytest.raises(FileNotFoundError):
        resolve_dataset(tmp_path / "nope.h5")


def test_resolve_hub_offline(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DatasetUnavailableError, match="BGLab/microgen3D.*by hand"):
        resolve_dataset("BGLab/microgen3D", filename="data/sample_CH_two_phase.tar.gz")
    with pytest.raises(DatasetUnavailableError, match="needs a filename"):
        resolve_dataset("BGLab/microgen3D")


def test_resolve_hub_download_called(monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return str(tmp_path / "x.tar.gz")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    got = resolve_dataset("BGLab/microgen3D:data/sample_CH_two_phase.tar.gz")
    assert got == tmp_path / "x.tar.gz"
    assert seen["repo_id"] == "BGLab/microgen3D" and seen["repo_type"] == "dataset"
    assert seen["filename"] == "data/sample_CH_two_phase.tar.gz"
