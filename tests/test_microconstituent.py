"""Microconstituent agreement: the rule, its threshold, and what exact ground truth scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from microgen.data.synthetic.conditions import Condition
from microgen.data.synthetic.generator import generate
from microgen.evaluate.microconstituent import (
    THRESHOLD,
    calibrate_thresholds,
    matches,
    microconstituent_table,
    shows,
)


def test_threshold_is_an_area_fraction():
    mask = np.full((10, 1000), 2, np.uint8)
    mask[:, : round(THRESHOLD * 1000)] = 1  # just at the threshold
    assert shows(mask) == {"network": True, "laths": False}
    mask[:, 0] = 2
    assert not shows(mask)["network"]


def test_rules():
    none, net, lath = ({"network": n, "laths": w} for n, w in ((0, 0), (1, 0), (0, 1)))
    assert matches("spheroidite", none) and not matches("spheroidite", net)
    assert matches("network", net) and not matches("network", lath)
    assert matches("spheroidite+widmanstatten", lath) and not matches(
        "spheroidite+widmanstatten", none
    )
    assert matches("pearlite", none) is None


def test_exact_ground_truth(tmp_path):
    """Spheroidite never shows network or laths; laths only under Widmanstätten; the `all`
    row weighs each image once."""
    rows = []
    for mc in ("spheroidite", "network", "spheroidite+widmanstatten"):
        c = Condition(970, 1440, "Q", 1964, mc)
        for k in range(6):
            image_id = f"{mc}-{k}"
            Image.fromarray(generate(c, (128, 128), seed=k).mask).save(tmp_path / f"{image_id}.png")
            rows.append({"id": image_id, "microconstituent": mc})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    table = microconstituent_table({"truth": (tmp_path / "index.csv", tmp_path)})
    t = table.set_index("microconstituent")
    assert t.loc["spheroidite", "match"] == 1 and t.loc["spheroidite", "network"] == 0
    assert t.loc["network", "laths"] == 0
    assert t.loc["spheroidite+widmanstatten", "laths"] > 0
    assert t.loc["all", "images"] == 18
    assert np.isclose(t.loc["all", "match"], t.loc[["spheroidite", "network",
                      "spheroidite+widmanstatten"], "match"].mean())  # fmt: skip


def _mask_set(tmp_path, fractions):
    """Masks of 100 x 100 px whose first columns are network (1) or laths (3): one per
    (microconstituent, network share, lath share)."""
    rows = []
    for k, (mc, net, lath) in enumerate(fractions):
        mask = np.full((100, 100), 2, np.uint8)
        mask[:, : round(net * 100)] = 1
        mask[:, 100 - round(lath * 100) :] = 3
        Image.fromarray(mask).save(tmp_path / f"m{k}.png")
        rows.append({"id": f"m{k}", "microconstituent": mc})
    return pd.DataFrame(rows)


def test_thresholds_separate_the_segmented_reference(tmp_path):
    """A segmenter that paints 2-4 % network on spheroidite and 10-30 % on network fields is
    read at the midpoint of the gap (7 %); laths likewise; spheroidite fields read with the
    calibrated thresholds then match, which the nominal 0.5 % would have refused."""
    index = _mask_set(tmp_path, [
        ("spheroidite", 0.02, 0.01), ("spheroidite", 0.04, 0.0), ("spheroidite", 0.03, 0.01),
        ("network", 0.10, 0.0), ("network", 0.30, 0.01),
        ("spheroidite+widmanstatten", 0.0, 0.05), ("spheroidite+widmanstatten", 0.2, 0.08),
    ])  # fmt: skip
    limits = calibrate_thresholds(index, tmp_path)
    assert np.isclose(limits["network"], 0.07) and np.isclose(limits["laths"], 0.03)
    index.to_csv(tmp_path / "index.csv", index=False)
    sets = {"s": (tmp_path / "index.csv", tmp_path)}
    nominal = microconstituent_table(sets).set_index("microconstituent")
    calibrated = microconstituent_table(sets, {"s": limits}).set_index("microconstituent")
    assert nominal.loc["spheroidite", "match"] == 0 and calibrated.loc["spheroidite", "match"] == 1
    assert calibrated.loc["all", "match"] == 1
    assert calibrated.loc["all", "network_threshold"] == limits["network"]


def test_thresholds_never_fall_below_the_floor(tmp_path):
    """Exact masks (no false positives) calibrate to the nominal threshold, not to zero."""
    index = _mask_set(tmp_path, [("spheroidite", 0, 0), ("network", 0.2, 0),
                                 ("spheroidite+widmanstatten", 0.1, 0.1)])  # fmt: skip
    assert calibrate_thresholds(index, tmp_path) == {"network": THRESHOLD, "laths": THRESHOLD}
