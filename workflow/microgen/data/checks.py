"""Checks the readers of source data share: what a table holds that a data set cannot represent.

Every check raises :class:`DataError` with a one-line message naming the file, the row (line
number and image id), the column and the offending value, so the last line of a failed
Snakemake job's traceback tells the user what to fix without reading the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # schema.py imports this module
    from microgen.data.schema import ConditionSchema


class DataError(ValueError):
    """Source data a reader cannot represent; the message names file, row, column and value."""


class MissingFileError(DataError, FileNotFoundError):
    """A file the data set needs does not exist (a ``FileNotFoundError`` too, for callers
    that catch that)."""


class MissingColumnError(DataError, KeyError):
    """A table lacks a column the reader needs (a ``KeyError`` too, for callers that catch
    that)."""

    def __str__(self) -> str:
        # KeyError quotes its message; this one is meant to be read.
        return str(self.args[0])


def csv_rows(frame: pd.DataFrame, ids: Iterable[object] | None = None) -> pd.Series:
    """Row descriptions of a table read from a CSV file: ``line N (id)``.

    Line numbers count the header as line 1 and assume no quoted line breaks in cells.
    """
    lines = [f"line {i + 2}" for i in range(len(frame))]
    if ids is not None:
        ids = list(ids)
        lines = [
            f"{line} ({i})" if pd.notna(i) else line for line, i in zip(lines, ids, strict=True)
        ]
    return pd.Series(lines, index=frame.index, dtype=object)


def _raise_at(source: object, rows: pd.Series, bad: pd.Series, column: str, problem: str) -> None:
    """Raise for the first row flagged in ``bad``; ``problem`` is formatted with ``value``."""
    if not bad.any():
        return
    first = bad[bad].index[0]
    more = int(bad.sum()) - 1
    tail = f" (and {more} more row{'s' * (more > 1)})" if more else ""
    raise DataError(f"{source}, {rows[first]}, column {column}: {problem}{tail}")


def require_rows(frame: pd.DataFrame, source: object, what: str = "data rows") -> None:
    """An empty table is an error: a data set of no images would fail much later, unnamed."""
    if frame.empty:
        raise DataError(f"{source}: no {what}; the data set would be empty")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: object) -> None:
    """Raise :class:`MissingColumnError` naming the missing and the present columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"{source}: missing column(s) {missing}; columns present: {list(frame.columns)}"
        )


def to_number(
    frame: pd.DataFrame,
    column: str,
    source: object,
    rows: pd.Series,
    strip_suffix: Sequence[str] = (),
) -> pd.Series:
    """The column as floats; an empty cell is NaN, any other non-number raises.

    ``strip_suffix``: endings a number may carry in the table (``982x``, ``1964X``).
    """
    values = frame[column]
    text = values
    for suffix in strip_suffix:
        text = text.map(lambda v, s=suffix: v.strip().removesuffix(s) if isinstance(v, str) else v)
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    bad = _present(values) & numbers.isna()
    if bad.any():
        value = values[bad].iloc[0]
        _raise_at(source, rows, bad, column, f"{value!r} is not a number")
    return numbers


def to_integer(frame: pd.DataFrame, column: str, source: object, rows: pd.Series) -> pd.Series:
    """The column as integers; an empty cell or a non-integer raises."""
    numbers = to_number(frame, column, source, rows)
    bad = numbers.isna() | (numbers.round() != numbers)
    if bad.any():
        value = frame.loc[bad, column].iloc[0]
        _raise_at(source, rows, bad, column, f"{value!r} is not an integer")
    return numbers.astype(int)


def to_category(
    frame: pd.DataFrame,
    column: str,
    mapping: Mapping[str, object],
    source: object,
    rows: pd.Series,
    what: str = "value",
) -> pd.Series:
    """The column mapped through ``mapping``; an empty cell is NaN, an unknown value raises."""
    values = frame[column]
    mapped = values.map(lambda v: mapping.get(str(v).strip()) if _is_present(v) else None)
    bad = _present(values) & mapped.isna()
    if bad.any():
        value = values[bad].iloc[0]
        _raise_at(source, rows, bad, column, f"unknown {what} {value!r}; known: {sorted(mapping)}")
    return mapped


def with_unit(
    frame: pd.DataFrame,
    value_column: str,
    unit_column: str,
    units: Mapping[str, float],
    source: object,
    rows: pd.Series,
) -> pd.Series:
    """``value_column`` × the factor of its unit in ``unit_column``.

    An empty value gives NaN (no record); a value with an empty or unknown unit raises, since
    NaN would silently drop the row from every condition filter.
    """
    values = to_number(frame, value_column, source, rows)
    factors = to_category(frame, unit_column, units, source, rows, what="unit")
    bad = values.notna() & factors.isna()
    _raise_at(
        source, rows, bad, unit_column, f"{value_column} is given without a unit {sorted(units)}"
    )
    return values * factors.astype(float)


def require_unique(
    values: pd.Series, column: str, source: object, rows: pd.Series | None = None
) -> None:
    """Raise naming the first duplicated value and every row that holds it."""
    dup = values.duplicated(keep=False) & values.notna()
    if dup.any():
        value = values[dup].iloc[0]
        where = rows[values == value] if rows is not None else values.index[values == value]
        raise DataError(
            f"{source}, column {column}: duplicate {value!r} in {', '.join(map(str, where))}"
        )


def check_categories(
    metadata: pd.DataFrame,
    schema: ConditionSchema,
    source: object,
    rows: pd.Series,
    columns: Mapping[str, str] | None = None,
) -> None:
    """Every non-empty value of a categorical schema variable is one of its categories.

    ``columns`` maps a variable to the source column it was read from, so that the message
    names the column the user sees in the file.
    """
    for variable in schema.categorical:
        column = (columns or {}).get(variable.name, variable.name)
        if variable.name not in metadata:
            raise MissingColumnError(
                f"{source}: no column for the variable {variable.name!r} of the schema "
                f"{schema.name!r}; is it the schema of this data set?"
            )
        values = metadata[variable.name]
        bad = _present(values) & ~values.astype(str).isin(set(variable.categories))
        if bad.any():
            value = values[bad].iloc[0]
            problem = (
                f"unknown category {value!r} of {variable.name}; the schema "
                f"{schema.name!r} has {list(variable.categories)}"
            )
            _raise_at(source, rows, bad, column, problem)


def _is_present(value: object) -> bool:
    return not (pd.isna(value) or str(value).strip() == "")


def _present(values: pd.Series) -> pd.Series:
    return values.map(_is_present).astype(bool)
