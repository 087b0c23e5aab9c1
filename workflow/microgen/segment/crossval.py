"""Six-fold cross-validation of the segmenter on UHCS-24 as rule-sized steps, and its tables.

One job trains and scores one fold (:func:`cross_validate_fold`), so a cluster runs the six
folds of every variant in parallel and a stopped job resumes from its last epoch checkpoint.
:func:`microgen.segment.tables.cross_validation_tables` gathers the fold scores into the
paper's Table 3 (this model next to the prior methods' published figures), Table 4 (per-class
IoU) and Table 5 (per-class errors) as mean ± standard deviation over folds, next to the
paper's values.

Folds are those of DeCost et al. (2019) (``cv-folds.json`` of the UHCS-24 folder). For test
fold k the next fold validates (picks the best epoch) and the other four train; see
:func:`microgen.segment.evaluate.fold_partition`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from microgen.segment.evaluate import evaluate_masks, flatten_metrics, fold_partition
from microgen.segment.variants import parse_variant


def cross_validate_fold(
    folder: str | Path,
    label_version: str,
    fold: int,
    out_dir: str | Path,
    *,
    encoder: str,
    loss: str,
    eca: bool,
    encoder_weights: str | None = None,
    epochs: int = 100,
    crop: int = 256,
    batch_size: int = 2,
    encoder_lr: float = 5e-5,
    decoder_lr: float = 5e-4,
    weight_decay: float = 5e-4,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    classes: int = 4,
) -> pd.DataFrame:
    """Train on the train folds of ``fold``, pick the epoch on its validation fold, score the
    test fold; write ``out_dir/scores.csv`` (one row of flattened metrics, fractions).

    ``encoder_weights`` as in :class:`microgen.segment.model.SegmenterConfig` (``None``:
    random initialisation). Checkpoints in ``out_dir`` let a stopped run resume, and a larger
    ``epochs`` continue a finished one; they are discarded when any other setting or the folds
    file changed.
    """
    from microgen.checkpoint import reset_stale_checkpoints
    from microgen.data.uhcs24 import read_cv_folds
    from microgen.segment.evaluate import load_uhcs24_arrays
    from microgen.segment.infer import predict_masks
    from microgen.segment.model import Segmenter, SegmenterConfig, select_device
    from microgen.segment.train import train_segmenter

    out_dir = Path(out_dir)
    # ``epochs`` is left out on purpose: the learning rate is constant, so raising it continues
    # a finished run exactly as if the larger number had been asked for at the start.
    settings = dict(label_version=label_version, fold=fold, encoder=encoder, loss=loss,
                    eca=eca, encoder_weights=encoder_weights, crop=crop,
                    batch_size=batch_size, encoder_lr=encoder_lr, decoder_lr=decoder_lr,
                    weight_decay=weight_decay, steps_per_epoch=steps_per_epoch,
                    seed=seed)  # fmt: skip
    reset_stale_checkpoints(out_dir, settings, inputs=(Path(folder) / "cv-folds.json",))
    folds = read_cv_folds(folder)
    train_ids, val_ids, test_ids = fold_partition(folds, fold)
    images, masks = load_uhcs24_arrays(folder, label_version=label_version)
    result = train_segmenter(
        [images[i] for i in train_ids],
        [masks[i] for i in train_ids],
        [images[i] for i in val_ids],
        [masks[i] for i in val_ids],
        out_dir,
        epochs=epochs,
        encoder_lr=encoder_lr,
        decoder_lr=decoder_lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        loss=loss,
        crop=crop,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        config=SegmenterConfig(encoder=encoder, eca=eca, encoder_weights=encoder_weights),
    )
    device = select_device()
    model = Segmenter.from_pretrained(result.best_dir, device=device)
    preds = predict_masks(model, [images[i] for i in test_ids], device=device)
    metrics = evaluate_masks([masks[i] for i in test_ids], preds, classes)
    row = pd.DataFrame(
        [
            {
                "fold": fold,
                "test_ids": " ".join(test_ids),
                "best_epoch": result.best_epoch,
                "epochs": epochs,
                "train_seconds": float(result.log["seconds"].sum()),
                **flatten_metrics(metrics),
            }
        ]
    )
    row.to_csv(out_dir / "scores.csv", index=False)
    return row


__all__ = ["cross_validate_fold", "parse_variant"]
