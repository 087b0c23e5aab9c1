"""Robust, data-set-aware normalisation of the continuous process variables (paper eq. 2).

For each continuous variable ``u_i`` of the schema, fitted on the train split only:

* optional natural-log transform (schema ``log: true``; the IQR scaling makes the base
  irrelevant),
* optional clipping (schema ``clip: true``) to ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` in the
  (log) domain, applied *before* normalising,
* ``ũ = (u - median) / IQR``.

A variable whose train IQR is 0 (all train values equal) is only centred (scale 1) and never
clipped: there is no spread to define outliers by, and clipping to a zero-width interval
would erase every difference between unseen values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from microgen.data.schema import ConditionSchema


@dataclass(frozen=True)
class VariableStats:
    """Fitted statistics of one continuous variable, in the (log) domain."""

    name: str
    log: bool
    clip: bool
    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def scale(self) -> float:
        """Divisor of the normalisation: the IQR, or 1 when the IQR is 0."""
        return self.iqr if self.iqr > 0 else 1.0

    @property
    def bounds(self) -> tuple[float, float] | None:
        """Clipping interval, or ``None`` when this variable is not clipped."""
        if not self.clip or self.iqr <= 0:
            return None
        return self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr

    def transform(self, values: np.ndarray | float) -> np.ndarray:
        """Normalise raw values (original units) to ``ũ``."""
        x = np.asarray(values, dtype=np.float64)
        if self.log:
            if np.any(x <= 0):
                raise ValueError(f"{self.name}: log-transformed values must be > 0, got {x}")
            x = np.log(x)
        bounds = self.bounds
        if bounds is not None:
            x = np.clip(x, *bounds)
        return (x - self.median) / self.scale


class RobustNormalizer:
    """Per-variable robust normaliser of a schema's continuous variables.

    Parameters
    ----------
    stats : fitted statistics, one per continuous variable, in schema order.
    """

    def __init__(self, stats: Iterable[VariableStats]):
        self.stats = tuple(stats)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stats)

    @classmethod
    def fit(
        cls, schema: ConditionSchema, values: Mapping[str, Iterable[float]]
    ) -> RobustNormalizer:
        """Fit median and quartiles of each continuous variable.

        Parameters
        ----------
        schema : condition schema (which variables, ``log`` and ``clip`` flags).
        values : raw train-split values per variable name (e.g. a DataFrame).

        Returns
        -------
        The fitted normaliser.
        """
        stats = []
        for v in schema.continuous:
            x = np.asarray(list(values[v.name]), dtype=np.float64)
            x = x[np.isfinite(x)]
            if x.size == 0:
                raise ValueError(f"cannot fit the normaliser of {v.name!r}: no finite values")
            if v.log:
                if np.any(x <= 0):
                    raise ValueError(f"{v.name}: log-transformed values must be > 0")
                x = np.log(x)
            q1, median, q3 = np.percentile(x, [25, 50, 75])
            stats.append(
                VariableStats(
                    v.name, bool(v.log), bool(v.clip), float(median), float(q1), float(q3)
                )
            )
        return cls(stats)

    def transform(self, conditions: Iterable[Mapping[str, float]]) -> np.ndarray:
        """Normalised continuous vectors ``ũ`` of ``conditions``, shape (B, N), float32."""
        rows = []
        for condition in conditions:
            row = []
            for s in self.stats:
                if s.name not in condition or condition[s.name] is None:
                    raise ValueError(f"condition lacks continuous variable {s.name!r}")
                value = float(condition[s.name])
                if not math.isfinite(value):
                    raise ValueError(f"{s.name} = {value} is not finite")
                row.append(float(s.transform(value)))
            rows.append(row)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(self.stats))

    def to_dict(self) -> dict:
        return {"variables": [asdict(s) for s in self.stats]}

    @classmethod
    def from_dict(cls, data: Mapping) -> RobustNormalizer:
        return cls(VariableStats(**s) for s in data["variables"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> RobustNormalizer:
        return cls.from_dict(json.loads(Path(path).read_text()))
