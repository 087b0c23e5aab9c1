"""Stage functions of the segmentation rules: prepared data sets in, files out.

These translate the prepared-data-set contract (``images/``, ``masks/``, ``metadata.csv``,
``split.csv``) into the array interfaces of :mod:`.train`, :mod:`.evaluate` and
:mod:`.infer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray, read_metadata
from microgen.segment.evaluate import evaluate_masks, flatten_metrics
from microgen.segment.model import SegmenterConfig

TRAIN_SPLITS = ("train",)
VAL_SPLITS = ("val_seen", "val_unseen")


def labelled_ids(data_dir: str | Path, split_csv: str | Path, splits: Sequence[str]) -> list[str]:
    """Ids of images with a mask whose split is one of ``splits``."""
    metadata = read_metadata(data_dir)
    split = pd.read_csv(split_csv, dtype={"id": str})
    joined = metadata.merge(split, on="id")
    keep = joined["split"].isin(splits) & joined["has_mask"].astype(bool)
    return list(joined.loc[keep, "id"])


def load_pairs(data_dir: str | Path, ids: Sequence[str]) -> tuple[list, list]:
    """Images and masks of ``ids`` from a prepared data set."""
    data_dir = Path(data_dir)
    images = [read_gray(data_dir / "images" / f"{i}.png") for i in ids]
    masks = [read_gray(data_dir / "masks" / f"{i}.png") for i in ids]
    return images, masks


def train_on_prepared(
    data_dir: str | Path,
    split_csv: str | Path,
    out_dir: str | Path,
    encoder: str,
    classes: int,
    eca: bool = True,
    encoder_weights: str | None = None,
    **training: object,
) -> Path:
    """Train a segmenter of ``classes`` classes (the condition schema's) on the labelled
    train split; validate on the labelled validation splits (or, when there are none, on the
    train images). ``training``: the fields of
    :class:`~microgen.segment.train.SegmenterTraining`. Returns the best model folder."""
    from dataclasses import asdict

    from microgen.checkpoint import reset_stale_checkpoints
    from microgen.segment.train import SegmenterTraining, train_segmenter

    settings = SegmenterTraining(**training)
    config = SegmenterConfig(
        encoder=encoder, eca=eca, encoder_weights=encoder_weights, classes=classes
    )
    reset_stale_checkpoints(
        out_dir,
        {
            "encoder": encoder,
            "eca": eca,
            "encoder_weights": encoder_weights,
            "classes": classes,
            **asdict(settings),
        },
        inputs=(Path(data_dir) / "metadata.csv", Path(split_csv)),
    )
    train_ids = labelled_ids(data_dir, split_csv, TRAIN_SPLITS)
    val_ids = labelled_ids(data_dir, split_csv, VAL_SPLITS) or train_ids
    if not train_ids:
        raise ValueError(f"{data_dir}: no labelled training images")
    images, masks = load_pairs(data_dir, train_ids)
    val_images, val_masks = load_pairs(data_dir, val_ids)
    result = train_segmenter(images, masks, val_images, val_masks, out_dir, settings, config=config)
    return result.best_dir


def segment_split(
    model_dir: str | Path,
    data_dir: str | Path,
    split_csv: str | Path,
    splits: Sequence[str],
    out_dir: str | Path,
    batch_size: int = 4,
) -> list[Path]:
    """Segment every image of the given splits of a prepared data set into ``out_dir``."""
    from microgen.segment.infer import segment_images

    split = pd.read_csv(split_csv, dtype={"id": str})
    ids = split.loc[split["split"].isin(splits), "id"]
    paths = [Path(data_dir) / "images" / f"{i}.png" for i in ids]
    return segment_images(model_dir, paths, out_dir, batch_size=batch_size)


def score_masks(
    data_dir: str | Path,
    pred_dir: str | Path,
    out_csv: str | Path,
    model_name: str,
    classes: int,
) -> pd.DataFrame:
    """Metrics of the predicted masks in ``pred_dir`` against the true masks (one row), over
    ``classes`` classes (the condition schema's)."""
    pred_dir = Path(pred_dir)
    ids = sorted(p.stem for p in pred_dir.glob("*.png"))
    truths = [read_gray(Path(data_dir) / "masks" / f"{i}.png") for i in ids]
    preds = [read_gray(pred_dir / f"{i}.png") for i in ids]
    metrics = flatten_metrics(evaluate_masks(truths, preds, classes=classes))
    encoder, _, loss = model_name.partition("-")
    row = pd.DataFrame(
        [{"model": model_name, "encoder": encoder, "loss": loss, "images": len(ids), **metrics}]
    )
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    row.to_csv(out_csv, index=False)
    return row


def score_transfer_to_uhcs24(
    model_dir: str | Path,
    folder: str | Path,
    out_csv: str | Path,
    pixel_size_um: float,
    label_version: str = "labels-particles",
) -> pd.DataFrame:
    """Score a segmenter trained elsewhere (the synthetic data) on the 24 real UHCS images;
    its classes must be UHCS-24's (:data:`microgen.data.uhcs24.CLASSES`).

    Each real image is resampled to ``pixel_size_um`` (the training data's pixel size, so
    particles appear at the size the model learnt), segmented, and the prediction is resampled
    back (nearest) to the annotation's grid. One row per image and an ``all`` row
    (pixel-pooled), written to ``out_csv``.
    """
    from skimage.transform import resize

    from microgen.data.uhcs24 import CLASSES, iter_uhcs24, read_uhcs24
    from microgen.device import select_device
    from microgen.segment.evaluate import SegmentationScores
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter

    device = select_device()
    model = Segmenter.from_pretrained(model_dir, device=device)
    classes = model.config.classes
    if classes != CLASSES:
        raise ValueError(f"{model_dir}: a {classes}-class segmenter, UHCS-24 has {CLASSES}")
    meta = read_uhcs24(folder).set_index("id")
    pooled = SegmentationScores(classes)
    rows = []
    for image_id, image, truth in iter_uhcs24(folder, list(meta.index), label_version):
        factor = float(meta.loc[image_id, "pixel_size_um"]) / pixel_size_um
        shape = tuple(max(32, round(n * factor)) for n in image.shape)
        scaled = resize(image, shape, order=1, preserve_range=True, anti_aliasing=factor < 1)
        pred = predict_masks(model, [scaled.round().astype(np.uint8)], device=device)[0]
        pred = resize(pred, image.shape, order=0, preserve_range=True, anti_aliasing=False)
        pred = pred.astype(np.uint8)
        pooled.update(truth, pred)
        metrics = flatten_metrics(evaluate_masks([truth], [pred], classes=classes))
        rows.append({"image": image_id, "scale": factor, **metrics})
    rows.append({"image": "all", "scale": np.nan, **flatten_metrics(pooled.compute())})
    table = pd.DataFrame(rows)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table


def segment_sample_set(
    segmenter_dir: str | Path,
    metadata: pd.DataFrame,
    out_dir: str | Path,
    batch_size: int = 4,
    device: str | None = None,
) -> list[Path]:
    """Segment the images of :func:`samples_metadata` with a saved segmenter into ``{id}.png``.

    (:func:`microgen.segment.infer.segment_images` names masks by file stem, which is only the
    seed here.) Returns the written mask paths in row order.
    """
    from microgen.data.prepared import read_gray, write_png
    from microgen.device import select_device
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter

    dev = select_device(device)
    model = Segmenter.from_pretrained(segmenter_dir, device=dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows = list(zip(metadata["id"], metadata["image_path"], strict=True))
    group = max(batch_size * 8, 1)
    for s in range(0, len(rows), group):
        chunk = rows[s : s + group]
        masks = predict_masks(model, [read_gray(p) for _, p in chunk], batch_size, dev)
        for (image_id, _), mask in zip(chunk, masks, strict=True):
            target = out_dir / f"{image_id}.png"
            write_png(target, mask)
            written.append(target)
    return written


def segment_indexed_set(
    index_csv: str | Path,
    images_dir: str | Path,
    segmenter_dir: str | Path,
    out_index: str | Path,
    out_masks: str | Path,
    model: str | None = None,
) -> pd.DataFrame:
    """Segment an indexed image set (``{id}.png`` in ``images_dir``, one row per id in
    ``index_csv``) into ``out_masks/{id}.png`` and write its index to ``out_index``, with the
    ``model`` column replaced by ``model`` when given (so the set can be scored by name)."""
    index = pd.read_csv(index_csv, dtype={"id": str})
    index["image_path"] = [str(Path(images_dir) / f"{i}.png") for i in index["id"]]
    segment_sample_set(segmenter_dir, index, out_masks)
    if model is not None:
        index["model"] = model
    Path(out_index).parent.mkdir(parents=True, exist_ok=True)
    index.drop(columns="image_path").to_csv(out_index, index=False)
    return index


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
    from microgen.data.sample_sets import samples_metadata

    index = samples_metadata(
        samples_csv, data_metadata_csv, scale=scale, conditions=pd.read_csv(conditions_csv)
    )
    segment_sample_set(segmenter_dir, index, out_masks)
    Path(out_index).parent.mkdir(parents=True, exist_ok=True)
    index.to_csv(out_index, index=False)
    return index


def describe_sample_table(
    samples_csv: str | Path,
    segmenter_dir: str | Path,
    out_masks: str | Path,
    out_descriptors: str | Path,
    phase: int,
    r_max: int = 64,
    border: str = "keep",
) -> pd.DataFrame:
    """Segment a sampled condition table and describe every image, as a generated set is.

    ``samples_csv`` is a condition table's ``samples.csv``
    (:func:`microgen.generate.sampling.write_table_samples`: paths relative to its folder,
    a pixel size per image). Masks are written as ``{out_masks}/{id}.png`` with the set
    ids of :func:`microgen.data.sample_sets.sample_id`; the descriptors are those of the
    evaluation's sets (:func:`microgen.descriptors.tables.describe_masks`, class ``phase``,
    ``r_max`` clipped to the image side). ``out_descriptors``: one row per image, the
    samples table's columns followed by the descriptors.
    """
    from microgen.data.sample_sets import sample_id
    from microgen.descriptors.tables import describe_masks

    samples_csv = Path(samples_csv)
    samples = pd.read_csv(samples_csv, keep_default_na=False)  # "" = within range
    index = samples.assign(
        id=[sample_id(r.prompt_mode, r.label, r.seed) for r in samples.itertuples()],
        image_path=[str(samples_csv.parent / p) for p in samples["path"]],
    )
    masks = segment_sample_set(segmenter_dir, index, out_masks)
    side = min(min(read_gray(p).shape) for p in masks)
    rows, _ = describe_masks(
        [str(p) for p in masks], list(index["id"]), list(index["pixel_size_um"]),
        phase=phase, r_max=min(r_max, side - 1), border=border,
    )  # fmt: skip
    rows = rows.drop(columns="pixel_size_um")
    table = pd.concat([index.drop(columns="image_path"), rows.drop(columns="id")], axis=1)
    table.insert(0, "id", table.pop("id"))
    Path(out_descriptors).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_descriptors, index=False)
    return table


def import_segmenter(src_dir: str | Path, out_dir: str | Path, classes: Sequence[str]) -> Path:
    """Copy a segmenter trained by another config into this data set's results, checked.

    The model is loaded (so a truncated or foreign file fails here, not in the first job
    that applies it) and must predict exactly the data set's classes.

    Parameters
    ----------
    src_dir : the trained segmenter's folder (``model.safetensors`` and ``config.json``).
    out_dir : where this data set's rules look for it (``.../segmenter/{name}/best``).
    classes : the class names of this data set's condition schema.

    Raises
    ------
    ValueError
        when the segmenter predicts another number of classes than the data set names.
    """
    from microgen.segment.model import Segmenter

    model = Segmenter.from_pretrained(src_dir)
    if model.config.classes != len(classes):
        raise ValueError(
            f"segment.pretrained: {src_dir} predicts {model.config.classes} classes, but the "
            f"data set's schema names {len(classes)} ({', '.join(classes)})"
        )
    return model.save_pretrained(out_dir)
