"""The paper's train / seen-validation / unseen-validation protocol, driven by filters.

* ``val_unseen``: every image whose condition matches the ``unseen`` filter (paper: the
  180-minute anneals at 800 and 970 °C, quenched, 982–4910×). Those conditions never
  appear in training.
* ``val_seen``: ``seen_count`` images whose condition matches the ``seen`` filter (paper:
  800/970 °C, 90/480 min, quenched, 982–4910×; 23 images), drawn so that every chosen
  condition keeps at least one image in training — "seen" means the model trained on that
  exact combination of process parameters and magnification.
* ``train``: everything else.

A filter maps a metadata column to the values it admits: a list of values, or a mapping
``{min: …, max: …}`` for an inclusive range.

A data set split by *group* instead (Aachen-Heerlen, Table D1: by steel type) names the
column in ``by``: whole groups listed by the ``unseen`` filter on that column are unseen, and
``seen_per_group`` images of each other group are drawn as seen-validation images
(:func:`microgen.data.aachen_heerlen.split_by_steel_type`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "val_seen", "val_unseen")


def matches(metadata: pd.DataFrame, where: Mapping[str, object] | None) -> pd.Series:
    """Boolean mask of the rows that satisfy every clause of the filter ``where``."""
    keep = pd.Series(True, index=metadata.index)
    for column, allowed in (where or {}).items():
        if column not in metadata:
            raise KeyError(f"split filter names column {column!r}, not in the metadata")
        values = metadata[column]
        if isinstance(allowed, Mapping):
            unknown = set(allowed) - {"min", "max"}
            if unknown:
                raise ValueError(f"filter on {column!r}: unknown bound(s) {sorted(unknown)}")
            if "min" in allowed:
                keep &= values >= allowed["min"]
            if "max" in allowed:
                keep &= values <= allowed["max"]
        elif isinstance(allowed, Sequence) and not isinstance(allowed, str):
            keep &= values.isin(list(allowed))
        else:
            keep &= values == allowed
    return keep


def split_dataset(
    metadata: pd.DataFrame,
    condition_columns: Sequence[str],
    unseen: Mapping[str, object] | None,
    seen: Mapping[str, object] | None,
    seen_count: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign every image to ``train``, ``val_seen`` or ``val_unseen``.

    Parameters
    ----------
    metadata : prepared metadata with an ``id`` column and the condition columns.
    condition_columns : columns that define "the same condition" (the schema's variables).
    unseen, seen : filters (see module docstring); ``None`` or ``{}`` for ``unseen`` means
        no unseen set.
    seen_count : number of seen-validation images to draw.
    seed : seed of the draw.

    Returns
    -------
    DataFrame with ``id`` and ``split`` in the metadata's row order.
    """
    if seen_count < 0:
        raise ValueError("seen_count must be >= 0")
    split = pd.Series("train", index=metadata.index, dtype=object)
    if unseen:
        split[matches(metadata, unseen)] = "val_unseen"

    rest = metadata[split == "train"]
    candidates = rest[matches(rest, seen)] if seen_count else rest.iloc[:0]
    keys = pd.Series(
        ["|".join(map(str, t)) for t in rest[list(condition_columns)].itertuples(index=False)],
        index=rest.index,
        dtype=object,
    )
    group_size = keys.value_counts()
    rng = np.random.default_rng(seed)

    # Round-robin over conditions in a seeded order, one image at a time, never taking the
    # last training image of a condition: spreads the seen set over many conditions.
    pools = {}
    for key, index in candidates.groupby(keys.loc[candidates.index]).groups.items():
        order = rng.permutation(np.asarray(index))
        pools[key] = list(order[: group_size[key] - 1])
    chosen: list = []
    keys_order = [k for k in rng.permutation(sorted(pools)) if pools[k]]
    while len(chosen) < seen_count and keys_order:
        still = []
        for key in keys_order:
            if len(chosen) == seen_count:
                break
            chosen.append(pools[key].pop(0))
            if pools[key]:
                still.append(key)
        keys_order = still
    if len(chosen) < seen_count:
        raise ValueError(
            f"only {len(chosen)} images can be seen-validation images under the seen filter "
            f"{dict(seen or {})} while keeping each condition in training; asked for {seen_count}"
        )
    split[chosen] = "val_seen"
    return pd.DataFrame({"id": metadata["id"].to_numpy(), "split": split.to_numpy()})


def split_summary(
    metadata: pd.DataFrame, split: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """Table A1-style summary: per split, the image count and the values of each column."""
    joined = metadata.merge(split, on="id")
    rows = []
    for name in SPLITS:
        part = joined[joined["split"] == name]
        row = {"split": name, "images": len(part)}
        for column in columns:
            values = sorted(part[column].dropna().unique(), key=_sort_key)
            row[column] = ", ".join(_fmt(v) for v in values)
        rows.append(row)
    return pd.DataFrame(rows)


def _sort_key(value: object) -> tuple:
    if isinstance(value, (int, float, np.number)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def read_split_table(
    data_dir: str | Path, split_csv: str | Path, splits: Sequence[str] | None = None
) -> pd.DataFrame:
    """Metadata of a prepared data set joined with its ``split`` column, in split-file order.

    ``splits``: keep only these splits (all when None). Raises ``ValueError`` for a split file
    without ``id``/``split`` columns, ids missing from the metadata, or an empty selection.
    """
    from microgen.data.prepared import read_metadata

    metadata = read_metadata(data_dir)
    split = pd.read_csv(split_csv, dtype={"id": str})
    if not {"id", "split"} <= set(split.columns):
        raise ValueError(f"{split_csv}: needs columns id and split")
    missing = sorted(set(split["id"]) - set(metadata["id"]))
    if missing:
        raise ValueError(f"{split_csv}: ids without metadata rows, e.g. {missing[:3]}")
    joined = split[["id", "split"]].merge(metadata, on="id", how="left", validate="one_to_one")
    if splits is not None:
        joined = joined[joined["split"].isin(list(splits))].reset_index(drop=True)
        if joined.empty:
            raise ValueError(f"{split_csv}: no rows in split(s) {list(splits)}")
    return joined


def write_split(
    metadata_csv: str,
    schema_path: str,
    out_split: str,
    out_summary_csv: str,
    out_summary_md: str,
    unseen: Mapping[str, object] | None,
    seen: Mapping[str, object] | None = None,
    seen_count: int = 0,
    seed: int = 0,
    by: str = "condition",
    seen_per_group: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Split a prepared data set and write ``split.csv`` and the Table A1-style summary.

    ``by="condition"`` (default): :func:`split_dataset` with the filters ``unseen`` / ``seen``
    and ``seen_count``. Any other ``by`` names a metadata column split by whole groups: the
    groups ``unseen[by]`` are unseen, ``seen_per_group`` (group -> count) images of the others
    are seen-validation images; ``seen`` and ``seen_count`` must then be left empty.
    """
    from microgen.data.checks import require_columns, require_rows
    from microgen.data.prepared import read_metadata
    from microgen.data.schema import load_schema

    schema = load_schema(schema_path)
    metadata = read_metadata(metadata_csv)
    require_rows(metadata, metadata_csv, "images")
    require_columns(metadata, ["id", *schema.variables], metadata_csv)
    if by == "condition":
        split = split_dataset(metadata, schema.variables, unseen, seen, seen_count, seed)
    else:
        split = _split_by_group(metadata, by, unseen, seen, seen_count, seen_per_group, seed)
    split.to_csv(out_split, index=False)
    summary = split_summary(metadata, split, schema.variables)
    Path(out_summary_csv).parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out_summary_csv, index=False)
    Path(out_summary_md).write_text(summary.to_markdown(index=False) + "\n")
    return split


def _split_by_group(
    metadata: pd.DataFrame,
    by: str,
    unseen: Mapping[str, object] | None,
    seen: Mapping[str, object] | None,
    seen_count: int,
    seen_per_group: Mapping[str, int] | None,
    seed: int,
) -> pd.DataFrame:
    from microgen.data.aachen_heerlen import split_by_steel_type

    if by not in metadata:
        raise KeyError(f"split.by names column {by!r}, not in the metadata")
    extra = set(unseen or {}) - {by}
    if extra or seen or seen_count:
        # A filter on another column or a seen_count would be silently ignored here.
        raise ValueError(
            f"split.by={by!r}: unseen may only list {by!r} groups and seen / seen_count must "
            f"be empty (use seen_per_group); got unseen keys {sorted(extra)}, seen={seen}, "
            f"seen_count={seen_count}"
        )
    groups = (unseen or {}).get(by, [])
    groups = [groups] if isinstance(groups, str) else list(groups)
    known = set(metadata[by].astype(str))
    unknown = sorted({str(g) for g in [*groups, *(seen_per_group or {})]} - known)
    if unknown:
        raise ValueError(f"split.by={by!r}: groups {unknown} are not in the metadata")
    return split_by_steel_type(metadata, groups, seen_per_group, seed, type_column=by)
