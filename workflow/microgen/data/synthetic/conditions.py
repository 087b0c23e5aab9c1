"""The processing conditions the synthetic generator accepts: the paper's Table A1 value sets,
the validated :class:`Condition` and random draws from the sets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TEMPERATURES_C",
    "TIMES_MIN",
    "COOLING_METHODS",
    "MAGNIFICATIONS",
    "MICROCONSTITUENTS",
    "Condition",
    "condition_key",
    "sample_conditions",
]

TEMPERATURES_C: tuple[float, ...] = (700.0, 750.0, 800.0, 900.0, 970.0, 1000.0, 1100.0)
TIMES_MIN: tuple[float, ...] = (5.0, 60.0, 90.0, 180.0, 480.0, 1440.0, 2800.0, 5100.0)
COOLING_METHODS: tuple[str, ...] = ("Q", "AR", "FC", "650-1H")
MAGNIFICATIONS: tuple[float, ...] = (
    49.0,
    64.0,
    74.0,
    98.0,
    118.0,
    147.0,
    246.0,
    344.0,
    491.0,
    638.0,
    786.0,
    982.0,
    1178.0,
    1473.0,
    1964.0,
    2455.0,
    3437.0,
    4910.0,
    7856.0,
    9820.0,
    11785.0,
    19641.0,
    34372.0,
)
MICROCONSTITUENTS: tuple[str, ...] = (
    "spheroidite",
    "network",
    "pearlite",
    "pearlite+spheroidite",
    "spheroidite+widmanstatten",
    "pearlite+widmanstatten",
)


def _check(value: Any, name: str, allowed: tuple | None = None, lo=None, hi=None) -> None:
    if allowed is not None:
        if value not in allowed:
            raise ValueError(f"Condition.{name}={value!r} is not one of {allowed}")
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Condition.{name}={value!r} is not a number") from None
    if not math.isfinite(v) or v < lo or v > hi:
        raise ValueError(f"Condition.{name}={value!r} outside the Table A1 range [{lo}, {hi}]")


@dataclass(frozen=True)
class Condition:
    """A processing condition.

    Categorical fields must be members of :data:`COOLING_METHODS` / :data:`MICROCONSTITUENTS`;
    numeric fields must lie within the closed range of their Table A1 value set (values between
    the set members are accepted so that held-out conditions can be interpolated).

    Parameters
    ----------
    temperature : float
        Anneal temperature in °C.
    time : float
        Anneal time in minutes.
    cooling : str
        Cooling method: "Q", "AR", "FC" or "650-1H".
    magnification : float
        Nominal SEM magnification.
    microconstituent : str
        Primary microconstituent.
    """

    temperature: float
    time: float
    cooling: str
    magnification: float
    microconstituent: str

    def __post_init__(self) -> None:
        _check(self.temperature, "temperature", lo=min(TEMPERATURES_C), hi=max(TEMPERATURES_C))
        _check(self.time, "time", lo=min(TIMES_MIN), hi=max(TIMES_MIN))
        _check(self.cooling, "cooling", allowed=COOLING_METHODS)
        _check(self.magnification, "magnification", lo=min(MAGNIFICATIONS), hi=max(MAGNIFICATIONS))
        _check(self.microconstituent, "microconstituent", allowed=MICROCONSTITUENTS)


def condition_key(c: Condition, shape: tuple[int, int]) -> list[int]:
    """Integer key of a condition and image shape, mixed into the generator's seed.

    Parameters
    ----------
    c : Condition
        Processing condition (numbers are keyed to 1/1000 of their unit).
    shape : tuple of int
        (height, width) in pixels.

    Returns
    -------
    list of int
        Seven non-negative integers for :class:`numpy.random.SeedSequence`.
    """
    return [
        int(round(float(c.temperature) * 1000)),
        int(round(float(c.time) * 1000)),
        COOLING_METHODS.index(c.cooling),
        int(round(float(c.magnification) * 1000)),
        MICROCONSTITUENTS.index(c.microconstituent),
        int(shape[0]),
        int(shape[1]),
    ]


def sample_conditions(n: int, seed: int, values: dict | None = None) -> list[Condition]:
    """Draw conditions uniformly and independently from the Table A1 value sets.

    Parameters
    ----------
    n : int
        Number of conditions.
    seed : int
        Seed for :func:`numpy.random.default_rng`.
    values : dict, optional
        Field name -> sequence of allowed values, overriding the defaults (e.g. a subset).

    Returns
    -------
    list of Condition
        ``n`` conditions, deterministic in ``seed``.
    """
    sets: dict[str, tuple] = {
        "temperature": TEMPERATURES_C,
        "time": TIMES_MIN,
        "cooling": COOLING_METHODS,
        "magnification": MAGNIFICATIONS,
        "microconstituent": MICROCONSTITUENTS,
    }
    for k, v in (values or {}).items():
        if k not in sets:
            raise ValueError(f"values has unknown field {k!r}; expected one of {tuple(sets)}")
        v = tuple(v)
        if not v:
            raise ValueError(f"values[{k!r}] is empty")
        sets[k] = v
    rng = np.random.default_rng(seed)
    picks = {k: rng.integers(0, len(v), int(n)) for k, v in sets.items()}
    return [Condition(**{k: sets[k][int(picks[k][i])] for k in sets}) for i in range(int(n))]
