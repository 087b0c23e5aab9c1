"""Condition tables a user writes: the conditions (2D) or feature targets (3D) to sample.

A table is a CSV with one column per variable (the condition schema's variables, or the 3D
model's conditioned features) and optionally ``n``, the images or volumes to draw for that
row. It is checked before any model is loaded, and every problem names the file, the line
(the header is line 1) and the column:

* an unknown column, a missing variable, an empty cell, a number that is not one, an
  unknown category, a count that is not a positive integer, or two rows asking for the
  same condition stop with ``ValueError``;
* a value outside what the model was trained on (a continuous value beyond the min / max of
  the training rows, a category no training row has) is sampled, with an
  :class:`OutOfRangeWarning` saying the value and the range: a model may be asked to
  extrapolate, but its user should know that it was.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from microgen.data.schema import ConditionSchema

#: The optional column of images (volumes) per row.
COUNT_COLUMN = "n"


class OutOfRangeWarning(UserWarning):
    """A requested value lies outside the values the model was trained on."""


@dataclass(frozen=True)
class ValueTable:
    """A checked condition table.

    ``rows``: one dict per CSV row, variable → value (float, or str for a category), in file
    order; ``counts``: images (volumes) per row; ``outside``: per row, the variables whose
    value lies outside the training data (empty when none).
    """

    path: Path
    rows: tuple[dict, ...]
    counts: tuple[int, ...]
    outside: tuple[tuple[str, ...], ...]

    def grid(self, seed: int) -> tuple[list[dict], list[int], list[int]]:
        """Row index, row and seed of every image: the k-th image of a row has seed
        ``seed + k``, as the validation samples (so a condition is drawn on the same noise
        whichever table asks for it)."""
        index, rows, seeds = [], [], []
        for i, (row, n) in enumerate(zip(self.rows, self.counts, strict=True)):
            for k in range(n):
                index.append(i)
                rows.append(row)
                seeds.append(seed + k)
        return index, rows, seeds


def training_ranges(
    training: pd.DataFrame, continuous: Sequence[str], categorical: Sequence[str] = ()
) -> tuple[dict[str, tuple[float, float]], dict[str, set[str]]]:
    """Min and max of each continuous variable and the categories of each categorical one
    over the training rows (NaN cells left out)."""
    spans = {}
    for name in continuous:
        values = pd.to_numeric(training[name], errors="coerce").dropna()
        if not values.empty:
            spans[name] = (float(values.min()), float(values.max()))
    seen = {name: set(training[name].dropna().astype(str)) for name in categorical}
    return spans, seen


def _where(path: Path, line: int, column: str) -> str:
    return f"{path}: line {line}, column {column!r}"


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number")
    return value


def _count(text: str, where: str, default: int) -> int:
    if text == "":
        return default
    value = _number(text, where)
    if value != int(value) or value < 1:
        raise ValueError(f"{where}: {text!r} is not a positive whole number of images")
    return int(value)


def _check_columns(path: Path, columns: Sequence[str], variables: Sequence[str]) -> None:
    unknown = [c for c in columns if c not in variables and c != COUNT_COLUMN]
    if unknown:
        raise ValueError(
            f"{path}: line 1, column {unknown[0]!r} is no variable; the columns are "
            f"{list(variables)} and optionally {COUNT_COLUMN!r}"
        )
    missing = [v for v in variables if v not in columns]
    if missing:
        raise ValueError(f"{path}: line 1 lacks the column of variable {missing[0]!r}")


def read_value_table(
    path: str | Path,
    continuous: Sequence[str],
    categorical: Mapping[str, Sequence[str]] | None = None,
    default_n: int = 1,
    spans: Mapping[str, tuple[float, float]] | None = None,
    seen: Mapping[str, set[str]] | None = None,
    units: Mapping[str, str] | None = None,
    positive: Sequence[str] = (),
) -> ValueTable:
    """Read and check a condition table (see the module docstring).

    Parameters
    ----------
    path : the CSV file.
    continuous : names of the numeric columns.
    categorical : name → allowed categories of each categorical column.
    default_n : images per row where the table has no ``n`` (or the cell is empty).
    spans : training min / max per continuous variable (no range check where absent).
    seen : categories the training rows have per categorical variable.
    units : unit of a continuous variable, for the warning's text.
    positive : continuous variables that must be > 0 (those a schema log-transforms).

    Returns
    -------
    The checked :class:`ValueTable`; an :class:`OutOfRangeWarning` per value outside the
    training data has been issued.
    """
    path = Path(path)
    categorical = dict(categorical or {})
    spans, seen, units = dict(spans or {}), dict(seen or {}), dict(units or {})
    variables = [*continuous, *categorical]
    table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    _check_columns(path, list(table.columns), variables)
    if table.empty:
        raise ValueError(f"{path}: no rows below the header")
    rows, counts, outside, first_line = [], [], [], {}
    for i, record in enumerate(table.to_dict("records")):
        line = i + 2
        row, far = {}, []
        for name in variables:
            text, where = record[name].strip(), _where(path, line, name)
            if text == "":
                raise ValueError(f"{where}: empty cell")
            if name in categorical:
                if text not in categorical[name]:
                    raise ValueError(
                        f"{where}: unknown category {text!r}; expected one of "
                        f"{list(categorical[name])}"
                    )
                row[name] = text
                if name in seen and text not in seen[name]:
                    far.append(name)
                    warnings.warn(
                        f"{where}: {text!r} occurs in no training row (they have "
                        f"{sorted(seen[name])}); sampled anyway",
                        OutOfRangeWarning,
                        stacklevel=2,
                    )
                continue
            row[name] = value = _number(text, where)
            if name in positive and value <= 0:
                raise ValueError(f"{where}: {value:g} must be > 0 (the schema log-transforms it)")
            if name in spans and not spans[name][0] <= value <= spans[name][1]:
                far.append(name)
                lo, hi, unit = *spans[name], f" {units[name]}" if units.get(name) else ""
                warnings.warn(
                    f"{where}: {value:g}{unit} lies outside the training range "
                    f"{lo:g}-{hi:g}{unit}; sampled anyway (extrapolation)",
                    OutOfRangeWarning,
                    stacklevel=2,
                )
        key = tuple(row[v] for v in variables)
        if key in first_line:
            raise ValueError(
                f"{path}: line {line} repeats the condition of line {first_line[key]}; "
                f"ask for more images with the {COUNT_COLUMN!r} column"
            )
        first_line[key] = line
        count_text = record.get(COUNT_COLUMN, "").strip()
        counts.append(_count(count_text, _where(path, line, COUNT_COLUMN), default_n))
        rows.append(row)
        outside.append(tuple(far))
    return ValueTable(path, tuple(rows), tuple(counts), tuple(outside))


def read_condition_table(
    path: str | Path,
    schema: ConditionSchema,
    default_n: int,
    training: pd.DataFrame | None = None,
) -> ValueTable:
    """A 2D condition table: one column per variable of ``schema`` (and optionally ``n``),
    checked as :func:`read_value_table` against the schema (its categories; a
    log-transformed variable must be positive) and the ``training`` rows (the prepared data
    set's train split; no range check without them)."""
    continuous = [v.name for v in schema.continuous]
    categorical = {c.name: c.categories for c in schema.categorical}
    spans, seen = ({}, {})
    if training is not None:
        spans, seen = training_ranges(training, continuous, list(categorical))
    units = {v.name: v.unit for v in schema.continuous}
    positive = [v.name for v in schema.continuous if v.log]
    return read_value_table(path, continuous, categorical, default_n, spans, seen, units, positive)
