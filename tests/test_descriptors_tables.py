"""Descriptor tables: shapes, columns, parquet round trip."""

import numpy as np
import pandas as pd
import pytest

from microgen.descriptors.tables import (
    CURVE_FUNCTIONS,
    describe_masks,
    write_descriptor_tables,
)


def test_describe_and_write(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"m{i}.npy"
        np.save(p, (rng.random((40, 50)) < 0.2).astype(np.uint8) * 2)
        paths.append(str(p))
    rows, curves, parts = describe_masks(
        paths, ["a", "b"], [0.1, 0.2], r_max=10, return_particles=True
    )
    assert list(rows["id"]) == ["a", "b"] and "mean_diameter_um" in rows
    assert len(curves) == 2 * len(CURVE_FUNCTIONS) * 11
    assert set(curves["function"]) == set(CURVE_FUNCTIONS)
    assert rows["n_particles"].sum() == len(parts)
    write_descriptor_tables(
        rows, curves, tmp_path / "o/r.parquet", tmp_path / "o/c.parquet",
        parts, tmp_path / "o/p.parquet",
    )  # fmt: skip
    back = pd.read_parquet(tmp_path / "o/c.parquet")
    pd.testing.assert_frame_equal(back, curves)
    assert len(describe_masks(paths, ["a", "b"], [0.1, 0.2], r_max=10)) == 2
    with pytest.raises(ValueError, match="length"):
        describe_masks(paths, ["a"], [0.1, 0.2])
    with pytest.raises(ValueError, match="unique"):
        describe_masks(paths, ["a", "a"], [0.1, 0.2])
