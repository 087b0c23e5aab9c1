"""Robust normaliser of the continuous variables (paper eq. 2) against numpy by hand."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.conditioning.normalize import RobustNormalizer


def _fit(schema, values):
    return RobustNormalizer.fit(schema, values)


def test_median_iqr_log_and_clip(schema):
    rng = np.random.default_rng(0)
    temp = rng.uniform(700, 1100, 40)
    time = np.exp(rng.normal(4, 1, 40))
    mag = np.exp(rng.normal(7, 0.5, 40))
    norm = _fit(schema, {"temperature": temp, "time": time, "magnification": mag})

    # temperature: no log, no clip
    q1, med, q3 = np.percentile(temp, [25, 50, 75])
    probe = {"temperature": 2000.0, "time": 1e6, "magnification": 1e-3}
    out = norm.transform([probe])[0]
    assert out[0] == pytest.approx((2000.0 - med) / (q3 - q1), rel=1e-6)
    # time: log, clipped at Q3 + 1.5 IQR in the log domain, before normalising
    lt = np.log(time)
    q1, med, q3 = np.percentile(lt, [25, 50, 75])
    iqr = q3 - q1
    assert out[1] == pytest.approx((q3 + 1.5 * iqr - med) / iqr, rel=1e-5)
    lm = np.log(mag)
    q1, med, q3 = np.percentile(lm, [25, 50, 75])
    iqr = q3 - q1
    assert out[2] == pytest.approx((q1 - 1.5 * iqr - med) / iqr, rel=1e-5)
    # inside the bounds nothing is clipped
    inside = norm.transform([{"temperature": 900, "time": np.exp(4.2), "magnification": 1000}])[0]
    assert inside[1] == pytest.approx(
        (4.2 - np.percentile(lt, 50)) / (np.percentile(lt, 75) - np.percentile(lt, 25)), rel=1e-5
    )


def test_zero_iqr_and_json_roundtrip(schema, tmp_path):
    norm = _fit(
        schema,
        {
            "temperature": [800] * 5,
            "time": [90] * 5,
            "magnification": [1000, 2000, 3000, 4000, 5000],
        },
    )
    out = norm.transform([{"temperature": 900, "time": 900, "magnification": 2000}])[0]
    assert out[0] == pytest.approx(100.0)  # centred, scale 1, not clipped
    assert out[1] == pytest.approx(np.log(10))
    norm.save(tmp_path / "n.json")
    again = RobustNormalizer.load(tmp_path / "n.json")
    assert np.array_equal(
        again.transform([{"temperature": 1, "time": 2, "magnification": 3}]),
        norm.transform([{"temperature": 1, "time": 2, "magnification": 3}]),
    )


def test_log_of_nonpositive_raises(schema):
    norm = _fit(schema, {"temperature": [1, 2], "time": [1, 2], "magnification": [1, 2]})
    with pytest.raises(ValueError, match="time"):
        norm.transform([{"temperature": 1, "time": 0, "magnification": 1}])
