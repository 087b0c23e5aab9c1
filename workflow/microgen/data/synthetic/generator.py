"""One synthetic micrograph from a processing condition: :func:`generate` evaluates the laws,
draws the features the microconstituent has, in a fixed order, and renders the image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .conditions import Condition, condition_key
from .geometry import Grains
from .laws import (
    mean_particle_radius_um,
    pixel_size_um,
    prior_austenite_grain_size_um,
    spheroidite_area_fraction,
)
from .render import render
from .structure import (
    NETWORK,
    PEARLITE_LAMELLA_CLASS,
    WIDMANSTATTEN,
    Canvas,
    draw_laths,
    draw_network,
    draw_particles,
    draw_pearlite,
)

__all__ = ["SyntheticMicrograph", "generate"]


@dataclass(frozen=True)
class SyntheticMicrograph:
    """A generated micrograph.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 (H, W) SEM-like image.
    mask : numpy.ndarray
        uint8 (H, W) class ids 0..3 (see module docstring).
    pixel_size_um : float
        Micrometres per pixel.
    truth : dict
        Law values used to build the structure (and a few drawn-quantity summaries).
    """

    image: np.ndarray
    mask: np.ndarray
    pixel_size_um: float
    truth: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Features:
    """The features a microconstituent is drawn with."""

    pearlite: bool
    partial_pearlite: bool  # lamellar in a fraction of the grains only
    network: bool
    laths: bool
    particles: bool

    @classmethod
    def of(cls, microconstituent: str) -> _Features:
        mc = microconstituent
        return cls(
            pearlite="pearlite" in mc,
            partial_pearlite=mc == "pearlite+spheroidite",
            network=mc in ("network", "spheroidite+widmanstatten", "pearlite+widmanstatten"),
            laths="widmanstatten" in mc,
            particles=mc
            in ("spheroidite", "network", "pearlite+spheroidite", "spheroidite+widmanstatten"),
        )

    @property
    def needs_grains(self) -> bool:
        return self.network or self.laths or self.partial_pearlite


#: A micrograph is labelled by what it shows, so the operator frames a field where the
#: labelled proeutectoid feature covers at least this share of the image (at 1964-4910x a
#: field of 5-12 um misses the boundaries of 20-40 um prior-austenite grains about half the
#: time); the stage is moved (the grains redrawn) at most FRAMING_ATTEMPTS times.
FRAMING_MIN_FRACTION = 0.02
FRAMING_ATTEMPTS = 40


def _framed(features: _Features, mask: np.ndarray) -> bool:
    """Whether the field shows its microconstituent's defining feature: laths where the
    microconstituent has them, else the network where it has one."""
    if features.laths:
        return bool((mask == WIDMANSTATTEN).mean() >= FRAMING_MIN_FRACTION)
    if features.network:
        return bool((mask == NETWORK).mean() >= FRAMING_MIN_FRACTION)
    return True


def _truth_header(
    c: Condition, seed: int, px_um: float, r_mean: float, f_target: float, d_grain: float
) -> dict[str, Any]:
    """The condition, seed and law values every micrograph's ``truth`` starts with."""
    return {
        "condition": {
            "temperature": float(c.temperature),
            "time": float(c.time),
            "cooling": c.cooling,
            "magnification": float(c.magnification),
            "microconstituent": c.microconstituent,
        },
        "seed": int(seed),
        "pixel_size_um": px_um,
        "mean_radius_um": r_mean,
        "mean_equivalent_diameter_um": 2 * r_mean,
        "particle_area_fraction_target": f_target,
        "grain_size_um": d_grain,
        "pearlite_label": PEARLITE_LAMELLA_CLASS,
    }


def generate(
    condition: Condition, shape: tuple[int, int] = (484, 645), seed: int = 0
) -> SyntheticMicrograph:
    """Generate one synthetic UHCS SEM micrograph with its exact label mask.

    Parameters
    ----------
    condition : Condition
        Processing condition.
    shape : tuple of int, optional
        (height, width) in pixels, default UHCS size (484, 645).
    seed : int, optional
        Seed; combined with the condition through :class:`numpy.random.SeedSequence`, so equal
        inputs give identical bytes.

    Returns
    -------
    SyntheticMicrograph
        Image, mask, pixel size and the law values in ``truth``.
    """
    if not isinstance(condition, Condition):
        raise TypeError("condition must be a Condition")
    h, w = int(shape[0]), int(shape[1])
    if h < 8 or w < 8:
        raise ValueError(f"shape={shape!r} must be at least 8x8")
    rng = np.random.default_rng(
        np.random.SeedSequence([int(seed), *condition_key(condition, (h, w))])
    )
    c = condition
    features = _Features.of(c.microconstituent)
    px_um = pixel_size_um(c.magnification)
    r_mean = mean_particle_radius_um(c.temperature, c.time)
    f_target = spheroidite_area_fraction(c.temperature)
    d_grain = prior_austenite_grain_size_um(c.temperature, c.time)
    f_truth = f_target if features.particles else 0.0
    truth = _truth_header(c, seed, px_um, r_mean, f_truth, d_grain)

    # The steps share one generator: their order (grains, pearlite, network, laths,
    # particles, rendering) is part of what a seed means.
    for attempt in range(1, FRAMING_ATTEMPTS + 1):
        canvas = Canvas.blank((h, w), px_um)
        grains = Grains(rng, (h, w), d_grain / px_um) if features.needs_grains else None
        pearlite_region = np.zeros((h, w), dtype=bool)
        drawn: dict[str, Any] = {"framing_attempts": attempt}
        if features.pearlite:
            partial = grains if features.partial_pearlite else None
            pearlite_region, pearlite = draw_pearlite(rng, canvas, c.cooling, d_grain, partial)
            drawn.update(pearlite)
        if features.network:
            drawn.update(draw_network(rng, canvas, grains, d_grain))
        if features.laths:
            drawn.update(draw_laths(rng, canvas, grains, d_grain))
        if _framed(features, canvas.mask):
            break
    truth.update(drawn)
    if features.particles:
        truth.update(draw_particles(rng, canvas, r_mean, f_target, pearlite_region))
    image = render(rng, canvas.mask, grains)
    return SyntheticMicrograph(image=image, mask=canvas.mask, pixel_size_um=px_um, truth=truth)
