"""Stage functions of the per-condition fidelity figures: Figs 10-13 (reference vs generated
micrographs and particle-size histograms along one process variable) and Figs B3-B8 style
trends (area fraction and mean particle size against each process variable).

A *reference* is the image set generated samples are compared with: the real validation
images (masks from the segmenter) or, for the synthetic data set, fresh ground-truth
micrographs with exact masks (:mod:`microgen.evaluate.ground_truth`). Reference specs are
mappings of paths: ``metadata`` (an index csv), ``rows`` / ``particles`` (descriptor parquet),
``images`` (folder of ``{id}.png``) and, for real images, ``split`` (``split.csv``: the index
is then built with :func:`~microgen.evaluate.fidelity.real_index` at the validation
conditions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.sample_sets import load_image_groups
from microgen.evaluate.fidelity import real_index
from microgen.evaluate.stage import concat_sets
from microgen.figures.fidelity import plot_condition_comparison, plot_descriptor_trends

__all__ = [
    "SPLITS",
    "condition_columns",
    "condition_series",
    "load_reference",
    "condition_figure_stage",
    "trend_figure_stage",
]

#: Figure wording of a validation split -> its name in ``conditions/validation.csv``.
SPLITS = {"seen": "val_seen", "unseen": "val_unseen"}
_WORDS = {"temperature": "annealing temperatures", "magnification": "magnifications",
          "time": "annealing times", "cooling": "cooling methods"}  # fmt: skip
_NOUNS = {"temperature": "annealing temperature", "time": "annealing time",
          "cooling": "cooling method"}  # fmt: skip


def condition_columns(conditions: pd.DataFrame) -> list[str]:
    """The condition columns of a validation-conditions table: every column but ``label``
    and ``split``, i.e. the data set's schema variables."""
    return [c for c in conditions.columns if c not in ("label", "split")]


def _spread(values: Sequence) -> float:
    """How far apart the values of a series lie (log ratio for numbers, else 0)."""
    try:
        v = np.asarray(values, float)
    except (TypeError, ValueError):
        return 0.0
    return float(np.log(v.max() / v.min())) if (v > 0).all() else float(v.max() - v.min())


def condition_series(
    conditions: pd.DataFrame,
    variable: str,
    split: str,
    n: int = 2,
    others: Sequence[str] | None = None,
) -> list[str]:
    """Labels of ``n`` conditions of one split that differ in ``variable``, sorted by it.

    Like the paper's Figs 10-13, a series should change one variable and hold the rest: among
    all sets of ``n`` conditions with distinct ``variable`` values, the one that agrees on
    the most other variables wins, then the one spanning the widest range of ``variable``,
    then the first in label order. When the split has fewer than two values of ``variable``
    no series exists; the first ``n`` of its conditions (by label) are returned instead.

    Parameters
    ----------
    conditions : validation conditions (``label``, ``split`` and the condition columns).
    variable : the column the series runs along.
    split : ``"val_seen"`` or ``"val_unseen"``.
    others : condition columns that should stay fixed (those present are used); default
        every condition column (:func:`condition_columns`).
    """
    c = conditions[conditions["split"] == split].sort_values("label")
    if c.empty:
        raise ValueError(f"no validation condition in split {split!r}")
    others = condition_columns(conditions) if others is None else others
    held = [v for v in others if v in c and v != variable]
    rows = list(c.itertuples(index=False))
    best, best_key = None, None
    for size in range(min(n, c[variable].nunique()), 1, -1):
        for combo in combinations(rows, size):
            values = [getattr(r, variable) for r in combo]
            if len(set(values)) < size:
                continue
            same = sum(len({getattr(r, v) for r in combo}) == 1 for v in held)
            key = (same, _spread(values))
            if best_key is None or key > best_key:
                best, best_key = combo, key
        if best is not None:
            return [r.label for r in sorted(best, key=lambda r: getattr(r, variable))]
    return [r.label for r in rows[:n]]


def load_reference(
    spec: Mapping[str, str], conditions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index and descriptor rows of a reference set (see the module doc for ``spec``).

    Only images with descriptor rows are kept (real images outside the validation splits
    are not segmented).
    """
    rows = pd.read_parquet(spec["rows"])
    if spec.get("split"):
        index = real_index(spec["metadata"], spec["split"], conditions=conditions)
    else:
        index = pd.read_csv(spec["metadata"], dtype={"id": str})
        index = index[index["label"].isin(conditions["label"])]
    return index[index["id"].isin(rows["id"])].reset_index(drop=True), rows


def _first_images(index: pd.DataFrame, labels: Sequence[str], **kwargs) -> dict:
    """The first image of each label (shapes may differ between real micrographs)."""
    first = index[index["label"].isin(labels)].drop_duplicates("label")
    return load_image_groups(first, **kwargs) if len(first) else {}


def _value(variable: str, value) -> str:
    """A condition value with its unit, e.g. ``800 °C``, ``180 min``, ``4910×``."""
    if isinstance(value, str):
        return value
    unit = {"temperature": " °C", "time": " min", "magnification": "×"}.get(variable, "")
    return f"{value:g}{unit}"


def _series_title(conditions: pd.DataFrame, labels: Sequence[str], variable: str, split: str):
    which = "Seen" if split == SPLITS["seen"] else "Unseen"
    values = conditions.loc[conditions["split"] == split, variable].unique()
    if len(values) < 2:
        return f"{which} conditions (all at {_value(variable, values[0])})"
    shown = ", ".join(_value(variable, v) for v in conditions.set_index("label").loc[
        list(labels), variable])  # fmt: skip
    return f"{which} conditions at {len(labels)} {_WORDS.get(variable, variable)} ({shown})"


def condition_figure_stage(
    variable: str,
    split: str,
    conditions_csv: str,
    reference: Mapping[str, str],
    generated: Mapping[str, str],
    png: str,
    reference_name: str,
    n: int = 2,
) -> list[str]:
    """Figs 10-13: reference vs generated micrographs and size histograms for a series of
    validation conditions along ``variable`` (:func:`condition_series`).

    Parameters
    ----------
    split : ``"seen"`` or ``"unseen"``.
    reference : ``metadata``, ``rows``, ``particles``, ``images`` (+ ``split`` for real
        images), see the module doc.
    generated : one set's ``index`` (``evaluation/sets/{set}.csv``) and ``particles``.
    png : output PNG; the PDF is written beside it.
    reference_name : legend and panel name of the reference (``"real"``, ``"ground truth"``).

    Returns
    -------
    The condition labels shown.
    """
    conditions = pd.read_csv(conditions_csv)
    labels = condition_series(conditions, variable, SPLITS[split], n=n)
    r_index, _ = load_reference(reference, conditions)
    g_index = pd.read_csv(generated["index"], dtype={"id": str})
    model, mode = g_index["model"].iloc[0], g_index["prompt_mode"].iloc[0]
    gen_name = f"{model}/{mode}"
    plot_condition_comparison(
        labels,
        _first_images(r_index, labels, path_column="id", root=reference["images"]),
        _first_images(g_index, labels),
        pd.read_parquet(reference["particles"]),
        r_index,
        pd.read_parquet(generated["particles"]),
        g_index,
        png,
        str(Path(png).with_suffix(".pdf")),
        title=f"{_series_title(conditions, labels, variable, SPLITS[split])}: "
        f"{reference_name} vs {gen_name}",
        reference_name=reference_name,
        gen_name=gen_name,
    )
    return labels


def trend_figure_stage(
    variable: str,
    conditions_csv: str,
    references: Mapping[str, Mapping[str, str]],
    generated: Sequence[Mapping[str, str]],
    png: str,
) -> None:
    """Figs B3-B8 (b): area fraction and mean particle diameter of every validation
    condition against ``variable``, for each reference and every generated set.

    ``references``: name -> reference spec (``metadata``, ``rows`` [+ ``split``]);
    ``generated``: one mapping per set with ``index`` and ``rows`` paths.
    """
    conditions = pd.read_csv(conditions_csv)
    refs = {}
    for name, spec in references.items():
        index, rows = load_reference(spec, conditions)
        refs[name] = (rows, index)
    gen_rows, gen_index = concat_sets(generated, tables=("rows",))
    levels = conditions[variable].unique()
    title = f"Particle descriptors of the validation conditions by {_NOUNS.get(variable, variable)}"
    if len(levels) < 2:
        title += f" (all at {_value(variable, levels[0])}: no trend to see)"
    plot_descriptor_trends(
        refs, gen_rows, gen_index, variable, png, str(Path(png).with_suffix(".pdf")), title=title
    )
