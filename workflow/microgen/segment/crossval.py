"""k-fold cross-validation of the segmenter (UHCS-24: six folds) as rule-sized steps.

One job trains and scores one fold (:func:`cross_validate_fold`), so a cluster runs the six
folds of every variant in parallel and a stopped job resumes from its last epoch checkpoint.
:func:`microgen.segment.tables.cross_validation_tables` gathers the fold scores into the
paper's Table 3 (this model next to the prior methods' published figures), Table 4 (per-class
IoU) and Table 5 (per-class errors) as mean ± standard deviation over folds, next to the
paper's values.

The folder is read through a layout (:mod:`microgen.data.folder`) whose ``folds`` name the
folds (:mod:`microgen.data.folds`); UHCS-24's are those of DeCost et al. (2019),
``cv-folds.json``. For test fold k the next fold validates (picks the best epoch) and the
others train; see :func:`microgen.segment.evaluate.fold_partition`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microgen.data.folds import folds_source, layout_mapping, read_folds
from microgen.segment.evaluate import (
    evaluate_masks,
    flatten_metrics,
    fold_partition,
)
from microgen.segment.variants import parse_variant


def cross_validate_fold(
    folder: str | Path,
    label_version: str,
    fold: int,
    out_dir: str | Path,
    *,
    layout: str | Path | Mapping[str, Any] = "uhcs24",
    encoder: str,
    eca: bool,
    encoder_weights: str | None = None,
    classes: int,
    **training: object,
) -> pd.DataFrame:
    """Train on the train folds of ``fold``, pick the epoch on its validation fold, score the
    test fold; write ``out_dir/scores.csv`` (one row of flattened metrics, fractions).

    The folder is read through ``layout`` (:class:`microgen.data.folder.FolderLayout`; its
    ``folds`` name the folds) with masks from the sub-folder ``label_version``, whose class
    ids are those of the data set's condition schema, ``classes`` of them.

    ``encoder_weights`` as in :class:`microgen.segment.model.SegmenterConfig` (``None``:
    random initialisation); ``training``: the fields of
    :class:`~microgen.segment.train.SegmenterTraining`. Checkpoints in ``out_dir`` let a
    stopped run resume, and a larger ``epochs`` continue a finished one; they are discarded
    when any other setting or the folds file changed. ``patience`` stops a fold whose
    validation mIoU has not improved for that many epochs (not before ``min_epochs``);
    ``scores.csv`` records the epochs trained and whether that happened (``converged``) or
    the ``epochs`` cap came first.
    """
    from dataclasses import asdict

    from microgen.checkpoint import reset_stale_checkpoints
    from microgen.device import select_device
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter, SegmenterConfig
    from microgen.segment.train import SegmenterTraining, train_segmenter

    out_dir = Path(out_dir)
    layout = layout_mapping(layout)  # read a layout file once
    settings = SegmenterTraining(**training)
    # ``epochs``, ``patience`` and ``min_epochs`` are left out on purpose: the learning rate is
    # constant, so raising any of them continues a finished run exactly as if it had been
    # asked for at the start.
    lengths = ("epochs", "patience", "min_epochs")
    reset_stale_checkpoints(
        out_dir,
        {"label_version": label_version, "fold": fold, "encoder": encoder, "eca": eca,
         "encoder_weights": encoder_weights, "classes": classes,
         **{k: v for k, v in asdict(settings).items() if k not in lengths}},
        inputs=(folds_source(folder, layout),),
    )  # fmt: skip
    train_ids, val_ids, test_ids = fold_partition(read_folds(folder, layout), fold)
    images, masks = load_arrays(folder, layout, label_version, classes)
    result = train_segmenter(
        [images[i] for i in train_ids],
        [masks[i] for i in train_ids],
        [images[i] for i in val_ids],
        [masks[i] for i in val_ids],
        out_dir,
        settings,
        continuable=True,
        config=SegmenterConfig(
            encoder=encoder, eca=eca, encoder_weights=encoder_weights, classes=classes
        ),
    )
    device = select_device()
    model = Segmenter.from_pretrained(result.best_dir, device=device)
    preds = predict_masks(
        model,
        [images[i] for i in test_ids],
        device=device,
        mixed_precision=settings.mixed_precision,
    )
    metrics = evaluate_masks([masks[i] for i in test_ids], preds, classes)
    row = pd.DataFrame(
        [
            {
                "fold": fold,
                "test_ids": " ".join(test_ids),
                "best_epoch": result.best_epoch,
                "epochs": settings.epochs,
                "epochs_trained": int(result.log["epoch"].max()) if len(result.log) else 0,
                "converged": result.converged,
                "train_seconds": float(result.log["seconds"].sum()),
                **flatten_metrics(metrics),
            }
        ]
    )
    row.to_csv(out_dir / "scores.csv", index=False)
    return row


def load_arrays(
    folder: str | Path,
    layout: str | Path | Mapping[str, Any],
    label_version: str,
    classes: int,
    ids: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Images and masks (from the sub-folder ``label_version``, class ids below
    ``classes``) of a data set folder as id-keyed dicts; ``ids`` restricts them."""
    from microgen.data.folder import FolderLayout, image_files, iter_folder

    spec = FolderLayout.load(layout_mapping(layout), masks=label_version)
    files = image_files(folder, spec)
    files = files if ids is None else {i: files[i] for i in ids}
    images, masks = {}, {}
    for i, image, mask in iter_folder(folder, spec, files, classes):
        images[i], masks[i] = image, mask
    return images, masks


def fold_examples(
    folder: str | Path,
    label_version: str,
    fold: int,
    model_dir: str | Path,
    n_examples: int = 3,
    layout: str | Path | Mapping[str, Any] = "uhcs24",
) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The first ``n_examples`` test images of ``fold`` as (image, true mask, mask predicted
    by that fold's best model, which never saw them), with their ids: Figs 7 and 8 on the
    cross-validation folder's real micrographs."""
    from microgen.device import select_device
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter

    layout = layout_mapping(layout)
    test_ids = fold_partition(read_folds(folder, layout), fold)[2][:n_examples]
    device = select_device()
    model = Segmenter.from_pretrained(model_dir, device=device)
    images, masks = load_arrays(folder, layout, label_version, model.config.classes, test_ids)
    preds = predict_masks(model, [images[i] for i in test_ids], device=device)
    return test_ids, [(images[i], masks[i], p) for i, p in zip(test_ids, preds, strict=True)]


__all__ = [
    "cross_validate_fold",
    "load_arrays",
    "parse_variant",
    "fold_examples",
]
