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

from microgen.conditioning.normalize import RobustNormalizer, VariableStats
from microgen.data.schema import ConditionSchema

CONDITION_ENCODER_FILE = "condition_encoder.json"


@dataclass(frozen=True)
class CategoricalSpec:
    """Categories of one categorical variable, in embedding-table order."""

    name: str
    categories: tuple[str, ...]


class ConditionEncoder:
    """Schema-driven condition → (normalised continuous, category indices) encoder.

    Parameters
    ----------
    continuous : fitted robust statistics of the continuous variables, in schema order
        (the same normalisation as the parameter-aware conditioner).
    categorical : the categorical variables and their categories, in schema order.
    """

    def __init__(
        self,
        continuous: Iterable[VariableStats],
        categorical: Iterable[CategoricalSpec],
    ) -> None:
        self.normalizer = RobustNormalizer(continuous)
        self.continuous = self.normalizer.stats
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
        for v in schema.continuous:
            if any(r.get(v.name) is None or np.isnan(float(r[v.name])) for r in rows):
                raise ValueError(f"training rows have missing values of {v.name!r}")
        values = {v.name: [float(r[v.name]) for r in rows] for v in schema.continuous}
        stats = RobustNormalizer.fit(schema, values).stats
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
        return self.normalizer.transform([condition])[0]

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
            [VariableStats(**s) for s in data["continuous"]],
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
