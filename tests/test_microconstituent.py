"""Microconstituent agreement: the rule, its threshold, and what exact ground truth scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from microgen.data.synthetic.conditions import Condition
from microgen.data.synthetic.generator import generate
from microgen.evaluate.microconstituent import (
    THRESHOLD,
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
