"""The parameter-awareness probe: its measurement sees the synthetic law, its verdict is the
stated tolerance in log space."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microgen.data.synthetic.conditions import Condition
from microgen.data.synthetic.generator import generate
from microgen.data.synthetic.laws import pixel_size_um
from microgen.data.synthetic.structure import PARTICLE
from microgen.evaluate.awareness import (
    LOG_RATIO_TOLERANCE,
    law_sizes,
    mask_particle_sizes,
    probe_conditions,
    ratio_rows,
)

REFERENCE = dict(temperature=900, time=480, cooling="Q", magnification=3437,
                 microconstituent="spheroidite")  # fmt: skip


@pytest.mark.parametrize(
    "variable, low, high, column",
    [
        ("temperature", 800, 970, "mean_diameter_um"),
        ("magnification", 1964, 4910, "mean_diameter_px"),
    ],
)
def test_true_masks_recover_the_law_ratio(variable, low, high, column):
    """Measured on the exact masks, the probe's high/low ratio is within the tolerance of the
    law's: a model that draws the law passes, so a failing model fails for itself."""
    sizes, laws = {}, {}
    for end, value in (("low", low), ("high", high)):
        c = {**REFERENCE, variable: value}
        draws = [generate(Condition(**c), (128, 128), seed=k) for k in range(8)]
        px = pixel_size_um(c["magnification"])
        sizes[end] = mask_particle_sizes([d.mask for d in draws], px, PARTICLE)
        laws[end] = law_sizes(c, 1, 128, 0)[1]
    measured = sizes["high"][column] / sizes["low"][column]
    law = laws["high"][column] / laws["low"][column]
    assert law > 1.5  # both laws move the size by well over the measurement's noise
    assert abs(np.log(measured) / np.log(law) - 1) <= LOG_RATIO_TOLERANCE


def test_sizes_are_of_the_descriptor_phase_given():
    """A 16 × 16 square of class 1 and a 4 × 4 square of class 2: the probe measures the
    class it is told (another data set's particle phase), not the synthetic spheroidite."""
    mask = np.zeros((64, 64), np.uint8)
    mask[8:24, 8:24] = 1
    mask[40:44, 40:44] = 2
    one, two = (mask_particle_sizes([mask], 0.5, phase) for phase in (1, 2))
    assert one["mean_diameter_px"] == pytest.approx(np.sqrt(4 * 256 / np.pi))
    assert two["mean_diameter_px"] == pytest.approx(np.sqrt(4 * 16 / np.pi))
    assert one["mean_diameter_um"] == pytest.approx(0.5 * one["mean_diameter_px"])
    assert one["area_fraction"] == pytest.approx(256 / 4096)


def test_law_sizes_are_the_generators_truth():
    c = {**REFERENCE, "temperature": 970}
    images, law = law_sizes(c, 2, 64, 3)
    draw = generate(Condition(**c), (64, 64), seed=3)
    assert np.array_equal(images[0], draw.image)
    assert law["mean_diameter_um"] == pytest.approx(draw.truth["mean_equivalent_diameter_um"])
    assert law["mean_diameter_px"] == pytest.approx(law["mean_diameter_um"] / draw.pixel_size_um)


def test_ratio_rows_verdict_is_the_log_tolerance():
    rows = []
    for source, low, high in (("law", 1.0, 2.0), ("generated", 1.0, 1.8), ("bad", 1.0, 1.1)):
        for end, d in (("low", low), ("high", high)):
            rows.append({"variable": "temperature", "end": end, "source": source,
                         "mean_diameter_um": d})  # fmt: skip
    out = ratio_rows(pd.DataFrame(rows), ["temperature"]).set_index("source")
    assert out.loc["generated", "mean_diameter_um"] == pytest.approx(1.8)
    assert out.loc["generated", "log_ratio_error"] == pytest.approx(1 - np.log(1.8) / np.log(2))
    assert out.loc["generated", "within_tolerance"]  # error 0.15
    assert not out.loc["bad", "within_tolerance"]  # error 0.86
    assert out.loc["law", "log_ratio_error"] == 0


def test_probe_conditions_are_the_training_extremes():
    train = pd.DataFrame({"temperature": [900, 800, 970], "magnification": [3437, 4910, 1964]})
    probes = probe_conditions(train, REFERENCE, ["temperature", "magnification"])
    assert [(v, e, c[v]) for v, e, c in probes] == [
        ("temperature", "low", 800), ("temperature", "high", 970),
        ("magnification", "low", 1964), ("magnification", "high", 4910),
    ]  # fmt: skip
    assert all(c["time"] == 480 for _, _, c in probes)
