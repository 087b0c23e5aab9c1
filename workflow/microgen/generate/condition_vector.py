"""A minimal, schema-driven condition encoder for the from-scratch generative baselines.

Each condition (a mapping from the schema's variable names to values) becomes

* a float vector of the continuous variables, each log-transformed where the schema says,
  clipped to ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` where the schema says (paper eq. 2 and the
  sentence after it), then normalised as ``(u - median) / IQR`` with the median and
  quartiles fitted on the training rows only;
* an integer vector of category indices (rows of the models' embedding tables), in schema
  order. An unknown category raises ``ValueError`` naming the variable and the category.

:meth:`ConditionEncoder.vector` concatenates the continuous part with one-hot codes of the
categories for consumers that want one flat vector. The fitted statistics are saved to and
read from a small JSON file so a trained model always sees the normalisation it was
trained with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from microgen.data.schema import ConditionSchema

CONDITION_ENCODER_FILE = "condition_encoder.json"


@dataclass(frozen=True)
class ContinuousStats:
    """Robust statistics of one continuous variable, in the (possibly log) transformed space."""

    name: str
    log: bool
    clip: bool
    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        """Inter-quartile range; 1.0 when the training values do not spread (constant)."""
        iqr = self.q3 - self.q1
        return iqr if iqr > 0 else 1.0


@dataclass(frozen=True)
class CategoricalSpec:
    """Categories of one categorical variable, in embedding-table order."""

    name: str
    categories: tuple[str, ...]


class ConditionEncoder:
    """Schema-driven condition → (normalised continuous, category indices) encoder.

    Parameters
    ----------
    continuous : fitted statistics of the continuous variables, in schema order.
    categorical : the categorical variables and their categories, in schema order.
    """

    def __init__(
        self,
        continuous: Iterable[ContinuousStats],
        categorical: Iterable[CategoricalSpec],
    ) -> None:
        self.continuous = tuple(continuous)
        self.categorical = tuple(categorical)

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(cls, schema: ConditionSchema, rows: Iterable[Mapping]) -> ConditionEncoder:
        """Fit median and quartiles of every continuous variable on ``rows`` (training rows).

        Parameters
        ----------
        schema : the data set's condition schema.
        rows : the training conditions, one mapping per image (metadata records).
        """
        rows = list(rows)
        if not rows:
            raise ValueError("cannot fit a condition encoder on zero rows")
        stats = []
        for v in schema.continuous:
            values = np.array([float(r[v.name]) for r in rows], dtype=np.float64)
            if np.isnan(values).any():
                raise ValueError(f"training rows have missing values of {v.name!r}")
            if v.log:
                if (values <= 0).any():
                    raise ValueError(f"{v.name} must be > 0 (the schema log-transforms it)")
                values = np.log(values)
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            stats.append(
                ContinuousStats(v.name, v.log, v.clip, float(median), float(q1), float(q3))
            )
        cats = [CategoricalSpec(c.name, tuple(c.categories)) for c in schema.categorical]
        return cls(stats, cats)

    # ------------------------------------------------------------------ encoding
    @property
    def n_continuous(self) -> int:
        """Number of continuous variables."""
        return len(self.continuous)

    @property
    def category_sizes(self) -> tuple[int, ...]:
        """Number of categories of each categorical variable (embedding-table sizes)."""
        return tuple(len(c.categories) for c in self.categorical)

    @property
    def vector_size(self) -> int:
        """Length of :meth:`vector`: continuous values plus one-hot codes."""
        return self.n_continuous + sum(self.category_sizes)

    def normalise(self, condition: Mapping) -> np.ndarray:
        """Normalised continuous values of ``condition`` as a float32 vector."""
        out = np.empty(self.n_continuous, dtype=np.float32)
        for i, s in enumerate(self.continuous):
            if s.name not in condition or condition[s.name] is None:
                raise ValueError(f"condition lacks continuous variable {s.name!r}")
            u = float(condition[s.name])
            if s.log:
                if u <= 0:
                    raise ValueError(f"{s.name} = {u} must be > 0 (the schema log-transforms it)")
                u = float(np.log(u))
            if s.clip:
                iqr = s.q3 - s.q1
                u = min(max(u, s.q1 - 1.5 * iqr), s.q3 + 1.5 * iqr)
            out[i] = (u - s.median) / s.iqr
        return out

    def indices(self, condition: Mapping) -> np.ndarray:
        """Category indices of ``condition`` (int64), in schema order."""
        out = np.empty(len(self.categorical), dtype=np.int64)
        for i, c in enumerate(self.categorical):
            if c.name not in condition:
                raise ValueError(f"condition lacks categorical variable {c.name!r}")
            value = str(condition[c.name])
            if value not in c.categories:
                raise ValueError(
                    f"{c.name}: unknown category {value!r}; expected one of {list(c.categories)}"
                )
            out[i] = c.categories.index(value)
        return out

    def encode(self, condition: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """``(normalised continuous values, category indices)`` of one condition."""
        return self.normalise(condition), self.indices(condition)

    def encode_many(self, conditions: Iterable[Mapping]) -> tuple[np.ndarray, np.ndarray]:
        """Stacked :meth:`encode` of many conditions: ``(n, n_continuous)``, ``(n, n_cat)``."""
        pairs = [self.encode(c) for c in conditions]
        cont = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, self.n_continuous))
        cat = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, len(self.categorical)))
        return cont.astype(np.float32), cat.astype(np.int64)

    def vector(self, condition: Mapping) -> np.ndarray:
        """Flat vector: normalised continuous values followed by one one-hot code per category."""
        cont, idx = self.encode(condition)
        parts = [cont]
        for size, i in zip(self.category_sizes, idx, strict=True):
            one_hot = np.zeros(size, dtype=np.float32)
            one_hot[i] = 1.0
            parts.append(one_hot)
        return np.concatenate(parts).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "continuous": [asdict(s) for s in self.continuous],
            "categorical": [
                {"name": c.name, "categories": list(c.categories)} for c in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ConditionEncoder:
        """Inverse of :meth:`to_dict`."""
        return cls(
            [ContinuousStats(**s) for s in data["continuous"]],
            [CategoricalSpec(c["name"], tuple(c["categories"])) for c in data["categorical"]],
        )

    def save(self, path: str | Path) -> Path:
        """Write the encoder as JSON; a directory gets ``condition_encoder.json`` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / CONDITION_ENCODER_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ConditionEncoder:
        """Read an encoder written by :meth:`save` (a file, or a directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONDITION_ENCODER_FILE
        return cls.from_dict(json.loads(path.read_text()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConditionEncoder) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        names = [s.name for s in self.continuous] + [c.name for c in self.categorical]
        return f"ConditionEncoder({names})"
