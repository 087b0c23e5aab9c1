"""Parameter awareness: does the fine-tuned model move the structure the way the process law
says when only one variable changes?

For each probed variable the other variables are held at a reference condition and images
are generated at the lowest and highest value found in the training data. Every image is
segmented by the data set's segmenter and the particles of its descriptor phase (spheroidite
in UHCS) measured, so generated
images and ground truth are measured alike (an Otsu threshold, used before, reads the
detector noise of real micrographs as particles: on the synthetic training images its mean
diameter *fell* with temperature). For the synthetic data set the table also holds the same
measurement on fresh ground-truth micrographs of the probe conditions and the law's own
mean diameter, so a reader sees the target, the measurement's floor and the model side by
side. The law says: the mean diameter in µm grows with temperature; the same particles span
more pixels at higher magnification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.descriptors import particle_descriptors

# The column each variable's law speaks about.
LAW_COLUMN = {"temperature": "mean_diameter_um", "magnification": "mean_diameter_px"}
# Largest accepted error of a ratio in log space: |log r_model / log r_law - 1|.
LOG_RATIO_TOLERANCE = 0.25


def mask_particle_sizes(
    masks: Sequence[np.ndarray], pixel_size_um: float, phase: int
) -> dict[str, float]:
    """Mean over masks of the area fraction and mean equivalent diameter (px and µm) of the
    particles of class ``phase``."""
    keys = ("area_fraction", "mean_diameter_px", "mean_diameter_um")
    rows = [particle_descriptors(m, pixel_size_um=pixel_size_um, phase=phase).to_row()
            for m in masks]  # fmt: skip
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def probe_conditions(
    train: pd.DataFrame, reference: Mapping, variables: Sequence[str]
) -> list[tuple[str, str, dict]]:
    """(variable, "low"|"high", condition) at the extremes of each variable in ``train``."""
    probes = []
    for variable in variables:
        values = sorted(train[variable].unique())
        for end, value in (("low", values[0]), ("high", values[-1])):
            probes.append((variable, end, {**reference, variable: value}))
    return probes


def law_sizes(condition: Mapping, n_images: int, resolution: int, seed: int) -> tuple[
    list[np.ndarray], dict[str, float]
]:  # fmt: skip
    """Fresh synthetic micrographs of ``condition`` and the law's mean particle diameter."""
    from microgen.data.synthetic.conditions import Condition
    from microgen.data.synthetic.generator import generate

    fields = ("temperature", "time", "cooling", "magnification", "microconstituent")
    c = Condition(**{k: condition[k] for k in fields})
    draws = [generate(c, (resolution, resolution), seed=seed + k) for k in range(n_images)]
    d_um = float(draws[0].truth["mean_equivalent_diameter_um"])
    law = {"mean_diameter_um": d_um, "mean_diameter_px": d_um / draws[0].pixel_size_um}
    return [d.image for d in draws], law


def ratio_rows(table: pd.DataFrame, variables: Sequence[str]) -> pd.DataFrame:
    """High/low ratio of each variable's law column per source, and whether the model's
    ratio is within :data:`LOG_RATIO_TOLERANCE` of the law's in log space."""
    rows = []
    for variable in variables:
        column = LAW_COLUMN.get(variable, "mean_diameter_um")
        part = table[table["variable"] == variable]
        ratios = {}
        for source, group in part.groupby("source", sort=False):
            ends = group.set_index("end")[column]
            ratios[source] = float(ends["high"] / ends["low"])
        law = ratios.get("law")
        for source, ratio in ratios.items():
            row = {"variable": variable, "end": "high/low", "source": source, column: ratio,
                   "as_law_says": bool(ratio > 1)}  # fmt: skip
            if law is not None:
                row["log_ratio_error"] = abs(np.log(ratio) / np.log(law) - 1)
                row["within_tolerance"] = bool(row["log_ratio_error"] <= LOG_RATIO_TOLERANCE)
            rows.append(row)
    return pd.DataFrame(rows)


def parameter_awareness(
    base: str,
    model_dir: str,
    segmenter_dir: str,
    data_dir: str,
    split_csv: str,
    out_csv: str,
    reference: Mapping,
    phase: int,
    variables: Sequence[str] = ("temperature", "magnification"),
    n_images: int = 8,
    steps: int = 20,
    guidance: float = 2.0,
    resolution: int = 128,
    prompt_mode: str = "full_text",
    pixel_scale: float = 1.0,
    synthetic_law: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Generate ``n_images`` per probe, segment and measure them; write the table.

    Parameters
    ----------
    base, model_dir : base pipeline and fine-tuned model folder.
    segmenter_dir : folder of the segmenter that measures every image (``best/``).
    data_dir, split_csv : prepared data set and split (the probe values are the training
        extremes).
    out_csv : the table: one row per (variable, end, source) with the measured means,
        then the high/low ratios (:func:`ratio_rows`).
    reference : the condition every other variable is held at.
    phase : class id of the particles measured (``descriptors.phase``).
    variables, n_images, steps, guidance, resolution, prompt_mode, seed : what is probed and
        how it is sampled.
    pixel_scale : pixel-size factor of generated images against the data's pixel size
        (:func:`microgen.data.sample_sets.condition_pixel_sizes` of the probe condition).
    synthetic_law : also measure fresh synthetic ground truth and the law (synthetic data).
    """
    from microgen.data.prepared import read_metadata
    from microgen.data.sample_sets import condition_pixel_sizes
    from microgen.data.split import read_split_table
    from microgen.generate.pipeline import generate_images, load_parameter_aware_pipeline
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter

    train = read_split_table(data_dir, split_csv, ["train"])
    metadata = read_metadata(data_dir)
    pipe, text = load_parameter_aware_pipeline(base, model_dir)
    segmenter = Segmenter.from_pretrained(segmenter_dir)
    probes = list(probe_conditions(train, reference, variables))
    # The data set's own pixel size for each probe condition (its images', else its
    # magnification's), not a law: the probe runs on real data sets too.
    table = pd.DataFrame([{**c, "label": c.get("label", "")} for _, _, c in probes])
    native = condition_pixel_sizes(table, metadata)[0]
    rows = []
    for (variable, end, condition), px_native in zip(probes, native, strict=True):
        seeds = [seed + k for k in range(n_images)]
        images = {"generated": generate_images(
            pipe, [condition] * n_images, prompt_mode, seeds, steps, guidance,
            resolution, resolution, batch_size=n_images, text=text,
        )}  # fmt: skip
        px = px_native * pixel_scale
        key = {"variable": variable, "end": end, "value": condition[variable]}
        if synthetic_law:
            images["ground truth"], law = law_sizes(condition, n_images, resolution, seed)
            rows.append({**key, "source": "law", **law})
        for source, imgs in images.items():
            sizes = mask_particle_sizes(predict_masks(segmenter, imgs), px, phase)
            rows.append({**key, "source": source, **sizes})
    table = pd.DataFrame(rows)
    table = pd.concat([table, ratio_rows(table, variables)], ignore_index=True)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table
