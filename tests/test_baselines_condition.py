"""Condition encoder of the from-scratch baselines."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.generate.condition_vector import ConditionEncoder

ROWS = [
    {"temperature": t, "time": tau, "magnification": m, "cooling": c, "microconstituent": mc}
    for t, tau, m, c, mc in [
        (700, 5, 98, "Q", "spheroidite"),
        (750, 90, 491, "AR", "network"),
        (800, 180, 982, "FC", "pearlite"),
        (900, 1440, 1964, "Q", "martensite"),
        (970, 5100, 4910, "650-1H", "spheroidite"),
    ]
]


def _robust(values: np.ndarray, x: float, clip: bool) -> float:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    if clip:
        x = np.clip(x, q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    return (x - med) / (q3 - q1)


def test_normalisation_matches_hand_numpy(schema):
    enc = ConditionEncoder.fit(schema, ROWS)
    query = {**ROWS[2], "temperature": 1500, "time": 2.0, "magnification": 1e6}
    got = enc.normalise(query)
    temps = np.array([r["temperature"] for r in ROWS], float)
    times = np.log([r["time"] for r in ROWS])
    mags = np.log([r["magnification"] for r in ROWS])
    want = [
        _robust(temps, 1500, clip=False),  # schema: temperature neither log nor clip
        _robust(times, np.log(2.0), clip=True),
        _robust(mags, np.log(1e6), clip=True),  # far outside: clipped to Q3 + 1.5 IQR
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # temperature is not clipped, magnification is: the two must differ in kind.
    assert got[0] > 4.0 and got[2] == pytest.approx(_robust(mags, np.log(1e9), clip=True))


def test_indices_and_one_hot(schema):
    enc = ConditionEncoder.fit(schema, ROWS)
    idx = enc.indices(ROWS[1])
    assert list(idx) == [1, 1]  # AR, network
    vec = enc.vector(ROWS[1])
    assert vec.shape == (3 + 4 + 7,)
    assert vec[3:7].tolist() == [0, 1, 0, 0]
    assert vec[7:].tolist() == [0, 1, 0, 0, 0, 0, 0]


def test_unknown_category_names_it(schema):
    enc = ConditionEncoder.fit(schema, ROWS)
    with pytest.raises(ValueError, match="cooling.*'oil'"):
        enc.encode({**ROWS[0], "cooling": "oil"})


def test_same_condition_same_vector_and_roundtrip(schema, tmp_path):
    enc = ConditionEncoder.fit(schema, ROWS)
    a = enc.vector(dict(ROWS[3]))
    b = enc.vector({k: ROWS[3][k] for k in reversed(list(ROWS[3]))})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, enc.vector(ROWS[2]))
    path = enc.save(tmp_path)
    again = ConditionEncoder.load(path)
    assert again == enc
    np.testing.assert_array_equal(again.vector(ROWS[3]), a)
