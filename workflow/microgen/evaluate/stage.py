"""Stage functions of the evaluation rules: sample sets, descriptor tables and images in;
the headline ground-truth fidelity table, Tables 6 / B5 and Fig 14 out (Figs 10-13 and
B3-B8: :mod:`microgen.figures.conditions`; Fig B9: :mod:`microgen.figures.tsne`).

A *set* is a generated sample set ``(model, prompt_mode)``; its index (one row per image:
``id, model, prompt_mode, label, split, conditions, pixel_size_um, image_path``) and its
descriptor tables (rows, curves, particles parquet) are produced by earlier rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from microgen.evaluate.fidelity import (
    curve_errors,
    descriptor_errors,
    real_index,
    table6,
    table_b5,
    write_table,
)
from microgen.evaluate.ground_truth import (
    fidelity_against_truth,
    floor_first,
    headline_table,
    trend_table,
)


def _write(table: pd.DataFrame, csv: str, title: str) -> None:
    write_table(table, csv, Path(csv).with_suffix(".md"), title=title)


def _load(tables: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    index = pd.read_csv(tables["index"], dtype={"id": str})
    return pd.read_parquet(tables["rows"]), pd.read_parquet(tables["curves"]), index


def descriptor_sets(
    indexes: Sequence[str], rows: Sequence[str], curves: Sequence[str]
) -> list[dict[str, str]]:
    """One ``index`` / ``rows`` / ``curves`` mapping per image set, from parallel lists of
    paths (how a rule that reads several sets receives them)."""
    keys = ("index", "rows", "curves")
    return [
        dict(zip(keys, paths, strict=True)) for paths in zip(indexes, rows, curves, strict=True)
    ]


def one_set(paths: Sequence[str]) -> dict[str, str] | None:
    """The mapping of one set given as ``[index, rows, curves]``; None for no paths."""
    return descriptor_sets(*([p] for p in paths))[0] if paths else None


def concat_sets(
    sets: Sequence[Mapping[str, str]], tables: Sequence[str] = ("rows", "curves")
) -> tuple[pd.DataFrame, ...]:
    """The ``tables`` (parquet paths under those keys) and the index of several sets, one
    frame each, in that order. Sample ids are unique only within a set
    (``{mode}__{label}__{seed}``), so each is prefixed with its model here."""
    loaded = []
    for spec in sets:
        index = pd.read_csv(spec["index"], dtype={"id": str})
        model = str(index["model"].iloc[0])
        parts = [*(pd.read_parquet(spec[k]) for k in tables), index]
        loaded.append([t.assign(id=model + "/" + t["id"].astype(str)) for t in parts])
    return tuple(pd.concat(parts, ignore_index=True) for parts in zip(*loaded, strict=True))


def fidelity_stage(
    generated: Sequence[Mapping[str, str]],
    real: Mapping[str, str],
    split_csv: str,
    conditions_csv: str,
    out_tables: Mapping[str, str],
    r_range: tuple[float, float],
) -> None:
    """Descriptor-level fidelity of every generated set against the real validation
    images: Table 6 (ε of S2 and L) and Table B5 (physical descriptors).

    ``generated``: one mapping per set with ``index``, ``rows``, ``curves`` paths;
    ``real``: ``metadata`` (the data set's metadata.csv), ``rows``, ``curves`` of the real
    validation images' masks. ``out_tables`` keys: ``table6``, ``tableB5``. Fig. 14 is
    drawn by its own rule from :func:`envelope_sets`.
    """
    gen_rows, gen_curves, gen_index = concat_sets(generated)
    r_rows, r_curves, r_index = _real_reference(real, split_csv, conditions_csv)
    errors = curve_errors(r_curves, r_index, gen_curves, gen_index, r_range)
    _write(table6(errors), out_tables["table6"], "Table 6: ε (%) of S2 and L")
    _write(
        table_b5(descriptor_errors(r_rows, r_index, gen_rows, gen_index)),
        out_tables["tableB5"],
        "Table B5: physical descriptors, real vs generated",
    )


def ground_truth_fidelity_stage(
    generated: Sequence[Mapping[str, str]],
    truth: Mapping[str, str],
    out_tables: Mapping[str, str],
    r_range: tuple[float, float],
    floors: Sequence[Mapping[str, str]] = (),
) -> None:
    """The headline table (synthetic data sets): every generated set against a fresh
    ground-truth set at the validation conditions, per condition and summarised with the
    descriptor trends.

    ``generated`` and ``truth`` as in :func:`fidelity_stage` (``truth``: ``index``,
    ``rows``, ``curves`` of the ground truth); ``floors``: sets scored exactly as a
    generated set is and listed first — an independent redraw of the truth (the noise
    floor) and that redraw measured through the segmenter (the floor of a perfect
    generator whose images are measured as the generated sets are). ``out_tables`` keys:
    ``headline``, ``per_condition``.
    """
    t_rows, t_curves, t_index = _load(truth)
    # Sample ids are prefixed with the set's model, so the floors (same image ids,
    # different models) stay distinct.
    s_rows, s_curves, s_index = concat_sets([*floors, *generated])
    fidelity = floor_first(
        fidelity_against_truth(t_rows, t_curves, t_index, s_rows, s_curves, s_index, r_range)
    )
    _write(fidelity, out_tables["per_condition"], "Ground-truth fidelity per condition")
    trends = trend_table(t_rows, t_index, s_rows, s_index)
    _write(
        headline_table(fidelity, trends),
        out_tables["headline"],
        "Generated vs fresh ground truth at the validation conditions",
    )


def _real_reference(
    real: Mapping[str, str], split_csv: str, conditions_csv: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Rows, curves and index of the real validation images that have descriptors."""
    conditions = pd.read_csv(conditions_csv)
    r_index = real_index(real["metadata"], split_csv, conditions=conditions)
    r_rows, r_curves = pd.read_parquet(real["rows"]), pd.read_parquet(real["curves"])
    return r_rows, r_curves, r_index[r_index["id"].isin(r_rows["id"])]


def envelope_sets(
    generated: Sequence[Mapping[str, str]],
    real: Mapping[str, str],
    split_csv: str,
    conditions_csv: str,
    truth: Mapping[str, str] | None = None,
    n_conditions: int = 4,
) -> dict[str, object]:
    """What Fig. 14 draws: the S2 and L curves of the reference (the fresh ground truth on
    synthetic data, else the real validation images) and of every generated set, at the
    first ``n_conditions`` validation conditions both have; keyword arguments of
    :func:`microgen.figures.fidelity.plot_correlation_envelopes`."""
    _, gen_curves, gen_index = concat_sets(generated)
    if truth is not None:
        _, ref_curves, ref_index = _load(truth)
    else:
        _, ref_curves, ref_index = _real_reference(real, split_csv, conditions_csv)
    labels = sorted(set(ref_index["label"]) & set(gen_index["label"]))[:n_conditions]
    return {
        "labels": labels,
        "real_curves": ref_curves,
        "real_index": ref_index,
        "gen_curves": gen_curves,
        "gen_index": gen_index,
        "reference_name": "ground truth" if truth is not None else "real",
    }


def _group_index(metadata_csv: str, split_csv: str, group: str) -> pd.DataFrame:
    metadata = pd.read_csv(metadata_csv, dtype={"id": str, group: str})
    split = pd.read_csv(split_csv, dtype={"id": str})
    return metadata[["id", "label", group]].merge(split[["id", "split"]], on="id")


def per_group_area_fraction_stage(
    metadata_csv: str,
    split_csv: str,
    generated: Sequence[Mapping[str, str]],
    group: str,
    phase: int,
    out_csv: str,
) -> pd.DataFrame:
    """Per-group area fraction of class ``phase`` in the validation images, real (annotated
    masks beside ``metadata_csv``) vs every generated set (Table 7b;
    :func:`microgen.evaluate.per_type.area_fraction_per_group`).

    ``generated``: one mapping per set with ``index`` (its table) and ``masks`` (its folder of
    segmented masks); empty: the real side alone. Area fractions come from the masks alone,
    so the table needs no pixel size.
    """
    from microgen.evaluate.per_type import area_fraction_per_group, mask_area_fractions

    index = _group_index(metadata_csv, split_csv, group)
    index = index[index["split"] != "train"]
    real_rows = mask_area_fractions(Path(metadata_csv).parent / "masks", index["id"], phase)
    gen_rows = gen_index = None
    if generated:
        rows, indexes = [], []
        for spec in generated:
            gi = pd.read_csv(spec["index"], dtype={"id": str, group: str})
            gr = mask_area_fractions(spec["masks"], gi["id"], phase)
            # Sample ids are unique within a set only: prefix them with the set's model.
            model = str(gi["model"].iloc[0])
            rows.append(gr.assign(id=model + "/" + gr["id"]))
            indexes.append(gi.assign(id=model + "/" + gi["id"]))
        gen_rows, gen_index = pd.concat(rows), pd.concat(indexes)
    table = area_fraction_per_group(real_rows, index, group, gen_rows, gen_index)
    _write(table, out_csv, f"Area fraction (pp) of class {phase} per {group}: real vs generated")
    return table


def per_group_iou_stage(
    metadata_csv: str,
    split_csv: str,
    pred_dir: str,
    group: str,
    phase: int,
    out_csv: str,
) -> pd.DataFrame:
    """Per-group IoU of class ``phase`` of the segmenter on the validation images
    (:func:`microgen.evaluate.per_type.iou_per_group`); true masks beside ``metadata_csv``."""
    from microgen.evaluate.per_type import iou_per_group

    index = _group_index(metadata_csv, split_csv, group)
    truth_dir = Path(metadata_csv).parent / "masks"
    table = iou_per_group(truth_dir, pred_dir, index, group, phase)
    _write(table, out_csv, f"Segmenter IoU of class {phase} per {group}")
    return table
