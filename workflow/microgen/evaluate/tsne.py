"""Stage function of Fig. B9 (Phan et al. 2025): t-SNE of reference and generated image
features, one panel per generated set, in the feature space of the generative metrics
(:func:`microgen.evaluate.generative.stage_extractor`: never random weights)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.evaluate.fidelity import real_index
from microgen.evaluate.generative import stage_extractor
from microgen.evaluate.sample_sets import load_image_groups
from microgen.figures.tsne import plot_tsne_sets

__all__ = ["tsne_stage"]


def _stack(groups: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([groups[k] for k in sorted(groups)])


def tsne_stage(
    generated: Sequence[str],
    references: Mapping[str, Mapping[str, str]],
    conditions_csv: str,
    resolution: int,
    png: str,
    vgg19_weights: str | None = None,
    segmenter_dir: str | None = None,
    seed: int = 0,
) -> str:
    """Fig B9: embed every image of the validation conditions and draw one t-SNE panel per
    generated set against the references.

    Parameters
    ----------
    generated : index csvs of the generated sets (``evaluation/sets/{model}__{mode}.csv``).
    references : name -> ``metadata`` (index csv), ``images`` (folder of ``{id}.png``) and,
        for real images, ``split`` (``split.csv``); e.g. real validation images and fresh
        ground truth.
    resolution : side every image is brought to (the generator's training transform), as
        for the generative metrics.
    png : output PNG; the PDF is written beside it.
    vgg19_weights, segmenter_dir : the feature space, chosen as the generative metrics choose
        it.

    Returns
    -------
    The feature extractor's name (also in the figure title).
    """
    conditions = pd.read_csv(conditions_csv)
    extractor = stage_extractor(vgg19_weights, segmenter_dir)
    ref_features = {}
    for name, spec in references.items():
        if spec.get("split"):
            index = real_index(spec["metadata"], spec["split"], conditions=conditions)
        else:
            index = pd.read_csv(spec["metadata"], dtype={"id": str})
            index = index[index["label"].isin(conditions["label"])]
        images = load_image_groups(
            index, path_column="id", root=spec["images"], resolution=resolution
        )
        ref_features[name] = extractor(_stack(images))
    gen_features = {}
    for csv in generated:
        index = pd.read_csv(csv, dtype={"id": str})
        name = f"{index['model'].iloc[0]}/{index['prompt_mode'].iloc[0]}"
        gen_features[name] = extractor(_stack(load_image_groups(index, resolution=resolution)))
    plot_tsne_sets(
        ref_features, gen_features, png, str(Path(png).with_suffix(".pdf")),
        feature_name=extractor.name, seed=seed,
    )  # fmt: skip
    return extractor.name
