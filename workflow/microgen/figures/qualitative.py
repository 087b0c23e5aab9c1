"""Stage functions of the qualitative figures: which conditions and images Figs 5, 6, B1,
B2 and 15 (:func:`sample_grid_stage`) and Fig. 9 (:func:`segmented_samples_stage`) show.

Image sets are given by paths. The *real* spec maps ``metadata`` (``data/metadata.csv``),
``split`` (``split.csv``) and ``images`` (folder of ``{id}.png``), plus ``masks`` (a
segmenter's mask folder) for Fig. 9; the optional *truth* spec maps ``metadata`` and
``images`` of the fresh ground-truth set (``evaluation/ground-truth``). A generated set is
its index ``evaluation/sets/{model}__{mode}.csv`` (``id, model, prompt_mode, label, seed,
image_path, pixel_size_um``), with its masks in ``masks/sets/{model}__{mode}/{id}.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray
from microgen.figures.conditions import SPLITS, condition_columns
from microgen.figures.samples import plot_sample_grid, plot_segmented_samples
from microgen.generate.variants import sd_variant_label

__all__ = [
    "GRIDS",
    "pick_conditions",
    "contrast_pair",
    "reference_cells",
    "first_samples",
    "sample_grid_stage",
    "segmented_samples_stage",
]

#: Sample-grid kinds (the rule's wildcard) -> figure title.
GRIDS = {
    "fig5": "Parameter-only prompts: real micrographs and each model family",
    "fig6": "Prompt modes of the parameter-aware model",
    "figB1": "With (full text) and without (text only) parameter embeddings",
    "figB2": "Full-text samples of every Stable Diffusion model",
    "fig15": "Schema transfer: real and generated micrographs at unseen conditions",
}
#: Variables whose novelty :func:`pick_conditions` prefers by default (UHCS: the
#: morphologies, then the magnifications).
NOVELTY = ("microconstituent", "magnification")
_NOUNS = {"temperature": "temperatures", "magnification": "magnifications",
          "time": "annealing times", "cooling": "cooling methods"}  # fmt: skip
_MODES = {"full_text": "full text", "text_only": "text only", "parameter_only": "parameter only"}


def _novelty(row: Mapping, shown: Sequence[Mapping], variables: Sequence[str]) -> tuple:
    """Whether the row's value of each of ``variables`` (in order) is new among ``shown``."""
    return tuple(all(row.get(v) != s.get(v) for s in shown) for v in variables)


def pick_conditions(
    conditions: pd.DataFrame,
    n_seen: int = 2,
    n_unseen: int = 2,
    novelty: Sequence[str] = NOVELTY,
) -> list[str]:
    """Labels of ``n_seen`` seen then ``n_unseen`` unseen validation conditions.

    Within a split, conditions are taken in label order, each time preferring one whose
    value of the first of ``novelty`` (default: microconstituent, then magnification) is not
    shown yet, then of the next, so that a few columns cover as many of the morphologies
    (or, for a split by group, of the groups) as the split has.
    """
    picked: list[str] = []
    for split, n in ((SPLITS["seen"], n_seen), (SPLITS["unseen"], n_unseen)):
        todo = conditions[conditions["split"] == split].sort_values("label").to_dict("records")
        shown: list[dict] = []
        for _ in range(min(n, len(todo))):
            # max keeps the first of equals: label order
            best = max(range(len(todo)), key=lambda k: _novelty(todo[k], shown, novelty))
            shown.append(todo.pop(best))
            picked.append(str(shown[-1]["label"]))
    return picked


def contrast_pair(
    conditions: pd.DataFrame, variables: Sequence[str] = ("temperature", "magnification")
) -> tuple[str, list[str], list[str]]:
    """Two validation conditions that differ in one of ``variables`` and as little else.

    Among all pairs with two values of a variable, the pair agreeing on the most other
    condition columns (the schema's variables, :func:`condition_columns`) wins, then one
    lying in a single split (unseen before seen), then the earlier variable of
    ``variables``, then label order.

    Returns
    -------
    ``(variable, [label_low, label_high], other_differences)``: the labels sorted by the
    variable, and the other columns in which the two also differ (empty for a clean pair).
    """
    others = condition_columns(conditions)
    rows = [r for _, r in conditions.sort_values("label").iterrows()]
    best, best_key = None, None
    for rank, variable in enumerate(variables):
        if variable not in conditions:
            continue
        for a, b in combinations(rows, 2):
            if a[variable] == b[variable]:
                continue
            differ = [c for c in others if c != variable and a[c] != b[c]]
            split = a["split"] if a["split"] == b["split"] else None
            key = (-len(differ), split is not None, split == SPLITS["unseen"], -rank)
            if best_key is None or key > best_key:
                pair = sorted((a, b), key=lambda r: r[variable])
                best, best_key = (variable, [str(r["label"]) for r in pair], differ), key
    if best is None:
        raise ValueError(f"no two validation conditions differ in any of {list(variables)}")
    return best


def _real_validation(real: Mapping[str, str]) -> pd.DataFrame:
    meta = pd.read_csv(real["metadata"], dtype={"id": str})
    split = pd.read_csv(real["split"], dtype={"id": str})[["id", "split"]]
    meta = meta.merge(split, on="id")
    # Validation images only: a seen condition also has training images, which the model saw.
    return meta[meta["split"].isin(list(SPLITS.values()))].sort_values("id")


def reference_cells(
    labels: Sequence[str],
    conditions: pd.DataFrame,
    real: Mapping[str, str],
    truth: Mapping[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, str]]:
    """The reference micrograph of each condition: the first real validation image at a
    seen condition; at an unseen one the first fresh ground-truth image when ``truth`` is
    given (the synthetic generator draws real images at any condition), else a real one.

    Returns
    -------
    ``label -> image``, ``label -> pixel size (µm)`` and ``label -> "real" | "ground truth"``
    for the labels that have an image.
    """
    split_of = dict(zip(conditions["label"], conditions["split"], strict=True))
    real_index = _real_validation(real)
    truth_index = (
        pd.read_csv(truth["metadata"], dtype={"id": str}).sort_values("id")
        if truth is not None
        else None
    )
    images, sizes, sources = {}, {}, {}
    for label in labels:
        use_truth = truth_index is not None and split_of.get(label) == SPLITS["unseen"]
        index, root = (truth_index, truth["images"]) if use_truth else (real_index,
                                                                        real["images"])  # fmt: skip
        hit = index[index["label"] == label]
        if hit.empty:
            continue
        row = hit.iloc[0]
        images[label] = read_gray(Path(root) / f"{row['id']}.png")
        sizes[label] = float(row["pixel_size_um"]) if "pixel_size_um" in row else np.nan
        sources[label] = "ground truth" if use_truth else "real"
    return images, sizes, sources


def first_samples(index: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """The lowest-seed image of each label in a generated set's index (one row per label)."""
    rows = index[index["label"].isin(labels)].sort_values(["label", "seed"])
    return rows.drop_duplicates("label").set_index("label")


def _column_names(labels: Sequence[str], conditions: pd.DataFrame) -> dict[str, str]:
    split_of = dict(zip(conditions["label"], conditions["split"], strict=True))
    words = {v: k for k, v in SPLITS.items()}
    return {lab: f"{lab}\n({words.get(split_of.get(lab), '?')})" for lab in labels}


def _set_name(model: str, mode: str, variants: Mapping[str, Mapping] | None) -> str:
    if variants and model in variants:
        return f"{sd_variant_label(variants[model])}\n({model}, {_MODES.get(mode, mode)})"
    return f"{model}\n{_MODES.get(mode, mode)}"


def sample_grid_stage(
    kind: str,
    conditions_csv: str,
    sets: Sequence[str],
    real: Mapping[str, str],
    png: str,
    truth: Mapping[str, str] | None = None,
    variants: Mapping[str, Mapping] | None = None,
    labels: Sequence[str] | None = None,
    n_columns: int = 6,
    group: str | None = None,
) -> list[str]:
    """Figs 5, 6, B1, B2, 15: a reference row and one row per generated set, one column per
    condition (two seen and two unseen; for Fig. B1 the pair of :func:`contrast_pair`; for
    Fig. 15 unseen conditions only, the paper's schema-transfer figure).

    Parameters
    ----------
    kind : a key of :data:`GRIDS`.
    sets : index csvs of the generated sets, in row order.
    real, truth : reference specs (module doc); ``truth`` supplies unseen conditions.
    png : output PNG; the PDF is written beside it.
    variants : ``generate.models`` entries with resolved bases; rows of these models are
        named like Table B4 (:func:`~microgen.generate.variants.sd_variant_label`).
    labels : Fig. 15 only: the unseen conditions shown, by label; ``None``: ``n_columns`` of
        them by :func:`pick_conditions`, a new ``group`` value first (the unseen groups of
        a split by group), then new values of the other condition columns.
    n_columns, group : see ``labels``.

    Raises
    ------
    ValueError
        For an unknown kind, or a Fig. 15 label that is no unseen validation condition.

    Returns
    -------
    The condition labels shown.
    """
    if kind not in GRIDS:
        raise ValueError(f"unknown sample grid {kind!r}; expected one of {list(GRIDS)}")
    conditions = pd.read_csv(conditions_csv)
    title = GRIDS[kind]
    if kind == "figB1":
        variable, labels, differ = contrast_pair(conditions)
        # Line breaks: the figure is only two panels wide.
        title += f"\nat two {_NOUNS.get(variable, variable)}"
        if differ:
            title += (
                f"; no validation pair differs in {variable} alone,\n"
                f"these also differ in {', '.join(differ)}"
            )
    elif kind == "fig15":
        unseen = conditions[conditions["split"] == SPLITS["unseen"]]
        if labels:
            wrong = [lab for lab in labels if lab not in set(unseen["label"])]
            if wrong:
                raise ValueError(
                    f"figures.transfer_conditions: {wrong} are no unseen validation "
                    f"conditions of {conditions_csv}; unseen: {sorted(unseen['label'])}"
                )
            labels = list(labels)
        else:
            others = [c for c in condition_columns(conditions) if c != group]
            labels = pick_conditions(
                conditions, n_seen=0, n_unseen=n_columns, novelty=[*([group] if group else []),
                                                                    *others],
            )  # fmt: skip
    else:
        labels = pick_conditions(conditions)
    ref_images, ref_sizes, ref_sources = reference_cells(labels, conditions, real, truth)
    names = {"reference": " / ".join(sorted(set(ref_sources.values()), reverse=True))}
    images = {("reference", lab): im for lab, im in ref_images.items()}
    sizes = {("reference", lab): px for lab, px in ref_sizes.items()}
    rows = ["reference"]
    for path in sets:
        index = pd.read_csv(path, dtype={"id": str})
        model, mode = str(index["model"].iloc[0]), str(index["prompt_mode"].iloc[0])
        key = f"{model}__{mode}"
        rows.append(key)
        names[key] = _set_name(model, mode, variants)
        for label, row in first_samples(index, labels).iterrows():
            images[(key, label)] = read_gray(row["image_path"])
            sizes[(key, label)] = float(row["pixel_size_um"])
    if kind == "fig6":
        title += f" ({model})"
    plot_sample_grid(
        images, rows, labels, png, str(Path(png).with_suffix(".pdf")), pixel_sizes=sizes,
        row_names=names, column_names=_column_names(labels, conditions), title=title,
    )  # fmt: skip
    return labels


def segmented_samples_stage(
    conditions_csv: str,
    real: Mapping[str, str],
    generated: Mapping[str, str],
    png: str,
    class_names: Sequence[str],
    class_colors: Sequence[str],
    n: int = 2,
) -> list[str]:
    """Fig. 9: the first real validation image and the first generated image of ``n`` seen
    conditions (:func:`pick_conditions`) above their predicted masks, in the colours and
    with the names of the data set's classes (``class_names``, ``class_colors`` by id).

    ``real`` needs ``masks`` (the segmenter's masks of the real validation images),
    ``generated`` its ``index`` and ``masks`` (module doc). Only real images with a mask are
    candidates.
    """
    conditions = pd.read_csv(conditions_csv)
    real_index = _real_validation(real)
    masked = {p.stem for p in Path(real["masks"]).glob("*.png")}
    real_index = real_index[real_index["id"].isin(masked)]
    seen = conditions[conditions["label"].isin(real_index["label"])]
    labels = pick_conditions(seen, n_seen=n, n_unseen=0)
    index = pd.read_csv(generated["index"], dtype={"id": str})
    model, mode = str(index["model"].iloc[0]), str(index["prompt_mode"].iloc[0])
    gen = f"{model}__{mode}"
    images, masks, sizes, columns = {}, {}, {}, []
    for label in labels:
        row = real_index[real_index["label"] == label].iloc[0]
        images[("real", label)] = read_gray(Path(real["images"]) / f"{row['id']}.png")
        masks[("real", label)] = read_gray(Path(real["masks"]) / f"{row['id']}.png")
        sizes[("real", label)] = float(row["pixel_size_um"])
        columns.append(("real", label))
        sample = first_samples(index, [label])
        if len(sample):
            s = sample.iloc[0]
            images[(gen, label)] = read_gray(s["image_path"])
            mask = Path(generated["masks"]) / f"{s['id']}.png"
            if mask.is_file():
                masks[(gen, label)] = read_gray(mask)
            sizes[(gen, label)] = float(s["pixel_size_um"])
        columns.append((gen, label))
    plot_segmented_samples(
        images, masks, columns, class_names, class_colors, png,
        str(Path(png).with_suffix(".pdf")), pixel_sizes=sizes,
        set_names={"real": "real", gen: f"{model} ({_MODES.get(mode, mode)})"},
        title="Segmenter predictions on real and generated micrographs at two seen conditions",
    )  # fmt: skip
    return labels
