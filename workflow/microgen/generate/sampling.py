"""The samples contract shared by every generator, and the validation conditions to sample.

Layout of a samples directory::

    {prompt_mode}/{condition_label}/{seed}.png   8-bit gray image
    samples.csv                                  prompt_mode, label, every condition
                                                 column of the schema, seed, path
                                                 (relative to the samples directory)

The from-scratch baselines (DDPM, stylegan-lite) see only the process parameters and
write prompt mode ``parameter_only``.

A user's condition table (:mod:`microgen.data.condition_tables`) is sampled into a folder of
its own, in one prompt mode::

    images/{condition_label}/{seed}.png          8-bit gray image
    samples.csv                                  prompt_mode, label, every condition
                                                 column, outside_training_range, prompt,
                                                 seed, path (relative to the folder),
                                                 pixel_size_um, pixel_size_source
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.condition_tables import ValueTable
from microgen.data.prepared import write_png
from microgen.data.sample_sets import condition_pixel_sizes
from microgen.data.schema import PROMPT_MODES, ConditionSchema, load_schema
from microgen.data.split import read_split_table

SAMPLES_CSV = "samples.csv"
VALIDATION_SPLITS = ("val_seen", "val_unseen")


def _check_label(label: str) -> str:
    if not label or "/" in label or "\\" in label or label in (".", ".."):
        raise ValueError(f"condition label {label!r} cannot be a directory name")
    return label


def write_samples(
    out_dir: str | Path,
    images: Mapping[tuple[str, str, int], np.ndarray],
    conditions: Mapping[str, Mapping],
    schema: ConditionSchema | str | Path | None = None,
    samples_csv: str | Path | None = None,
) -> pd.DataFrame:
    """Write generated images in the samples layout and ``samples.csv``.

    Parameters
    ----------
    out_dir : samples directory (created).
    images : ``(prompt_mode, condition_label, seed)`` → (H, W) uint8 image.
    conditions : condition label → condition dict (its columns go into ``samples.csv``);
        every label used in ``images`` must be present.
    schema : when given, its variables fix the condition columns (in schema order) and
        each condition is validated and its label checked against ``schema.label``;
        otherwise the columns are the union of the condition dicts' keys.
    samples_csv : where the table goes (default ``{out_dir}/samples.csv``).

    Returns
    -------
    The ``samples.csv`` table (rows sorted by prompt mode, label, seed).
    """
    out_dir = Path(out_dir)
    if schema is not None and not isinstance(schema, ConditionSchema):
        schema = load_schema(schema)
    if schema is not None:
        columns = list(schema.variables)
        for label, cond in conditions.items():
            schema.validate_condition(cond)
            if schema.label(cond) != label:
                raise ValueError(f"label {label!r} does not match its condition "
                                 f"({schema.label(cond)!r})")  # fmt: skip
    else:
        columns = []
        for cond in conditions.values():
            columns += [k for k in cond if k not in columns and k not in ("label", "split")]
    rows = []
    for (mode, label, seed), image in sorted(images.items()):
        if mode not in PROMPT_MODES:
            raise ValueError(f"unknown prompt mode {mode!r}; expected one of {PROMPT_MODES}")
        if label not in conditions:
            raise ValueError(f"image for label {label!r} has no condition")
        rel = Path(mode) / _check_label(label) / f"{int(seed)}.png"
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png(out_dir / rel, np.asarray(image))
        cond = conditions[label]
        rows.append(
            {"prompt_mode": mode, "label": label, **{c: cond.get(c) for c in columns},
             "seed": int(seed), "path": rel.as_posix()}
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=["prompt_mode", "label", *columns, "seed", "path"])
    out_dir.mkdir(parents=True, exist_ok=True)
    target = Path(samples_csv) if samples_csv else out_dir / SAMPLES_CSV
    tmp = target.with_name(f".{target.name}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, target)
    return table


def validation_conditions(
    data_dir: str | Path,
    split_csv: str | Path,
    schema: ConditionSchema | str | Path,
    splits: Sequence[str] = VALIDATION_SPLITS,
) -> list[dict]:
    """Unique conditions of the validation rows, each with its ``label`` and ``split``.

    Parameters
    ----------
    data_dir : prepared data set (its ``metadata.csv``).
    split_csv : ``id, split`` table.
    schema : condition schema (its variables define a condition).
    splits : which splits to collect (default ``val_seen`` then ``val_unseen``).

    Returns
    -------
    One dict per distinct condition: the schema variables, ``label`` and ``split``,
    ordered by split (as in ``splits``) then label. A condition found in two of the
    requested splits raises ``ValueError`` (seen and unseen must not overlap).
    """
    if not isinstance(schema, ConditionSchema):
        schema = load_schema(schema)
    table = read_split_table(data_dir, split_csv)
    out: list[dict] = []
    where: dict[str, str] = {}
    for split in splits:
        rows = table[table["split"] == split]
        seen_here: set[str] = set()
        for record in rows[list(schema.variables)].to_dict("records"):
            cond = {v.name: float(record[v.name]) for v in schema.continuous}
            cond |= {c.name: str(record[c.name]) for c in schema.categorical}
            label = schema.label(cond)
            if label in where and where[label] != split:
                raise ValueError(f"condition {label} is in both {where[label]} and {split}")
            if label in seen_here:
                continue
            seen_here.add(label)
            where[label] = split
            out.append({**cond, "label": label, "split": split})
    order = {s: i for i, s in enumerate(splits)}
    return sorted(out, key=lambda c: (order[c["split"]], c["label"]))


def sample_grid(
    conditions: Sequence[Mapping], seeds: Sequence[int]
) -> tuple[list[Mapping], list[int]]:
    """Every (condition, seed) pair as the parallel lists the ``sample_*`` functions take."""
    pairs = [(c, int(s)) for c in conditions for s in seeds]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def read_table_grid(
    schema_path: str | Path,
    table_csv: str | Path,
    data_dir: str | Path,
    split_csv: str | Path,
    n_per_condition: int,
    seed: int = 0,
) -> tuple[ConditionSchema, ValueTable, list[int], list[dict], list[int]]:
    """A user's condition table, checked against the schema and the prepared training rows
    before any model loads (:func:`microgen.data.condition_tables.read_condition_table`:
    errors name the file, line and column; values outside the training data warn), and its
    grid of images: ``(schema, table, index, rows, seeds)`` with per image its table row,
    its condition and the seed ``seed + k`` of the validation samples."""
    from microgen.data.condition_tables import read_condition_table

    schema = load_schema(schema_path)
    training = read_split_table(data_dir, split_csv, ["train"])
    table = read_condition_table(table_csv, schema, n_per_condition, training)
    index, rows, seeds = table.grid(seed)
    return schema, table, index, rows, seeds


def write_table_samples(
    samples_csv: str | Path,
    table: ValueTable,
    schema: ConditionSchema,
    prompt_mode: str,
    index: Sequence[int],
    seeds: Sequence[int],
    images: Sequence[np.ndarray],
    prompts: Sequence[str],
    metadata: pd.DataFrame,
    scale: float = 1.0,
) -> pd.DataFrame:
    """Write the images of a condition table and its ``samples.csv`` (layout above).

    Parameters
    ----------
    samples_csv : the table's ``samples.csv``; the images go to ``images/`` beside it.
    table : the checked condition table.
    schema : its condition schema (labels).
    prompt_mode : the mode the images were drawn in.
    index, seeds, images, prompts : per image, its row of ``table``, its seed, the image
        and the prompt it was drawn with (empty for a model that reads no prompt).
    metadata : the prepared data set's metadata: a condition takes its real images' pixel
        size, else that of its magnification (:func:`condition_pixel_sizes`).
    scale : generated over native pixel size (the data's side over the sampled side).
    """
    samples_csv = Path(samples_csv)
    root = samples_csv.parent
    records = []
    for i, seed, image, prompt in zip(index, seeds, images, prompts, strict=True):
        row = table.rows[i]
        label = _check_label(schema.label(row))
        rel = Path("images") / label / f"{int(seed)}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png(root / rel, np.asarray(image))
        records.append(
            {"prompt_mode": prompt_mode, "label": label, **{v: row[v] for v in schema.variables},
             "outside_training_range": " ".join(table.outside[i]), "prompt": prompt,
             "seed": int(seed), "path": rel.as_posix()}
        )  # fmt: skip
    out = pd.DataFrame(records)
    native, out["pixel_size_source"] = condition_pixel_sizes(out, metadata)
    out.insert(len(out.columns) - 1, "pixel_size_um", [p * float(scale) for p in native])
    tmp = samples_csv.with_name(f".{samples_csv.name}.tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, samples_csv)
    return out
