"""Brief cross-validated training on the real UHCS-24 labels (slow; `pytest -m slow`)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from microgen.data.uhcs24 import read_cv_folds
from microgen.segment.crossval import cross_validate_fold

EPOCHS = int(os.environ.get("MICROGEN_SEG_EPOCHS", "3"))
STEPS = int(os.environ.get("MICROGEN_SEG_STEPS", "16"))


@pytest.mark.slow
def test_uhcs24_two_fold_training(uhcs24_dir, tmp_path):
    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MICROGEN_SEG_THREADS", "1")))
    folds = read_cv_folds(uhcs24_dir)
    assert len(folds) == 6 and all(len(v) == 4 for v in folds.values())
    rows = [
        cross_validate_fold(
            uhcs24_dir, "labels", fold, tmp_path / f"fold{fold}",
            encoder="vgg16", eca=True, classes=4, epochs=EPOCHS, crop=256, batch_size=2,
            steps_per_epoch=STEPS, loss="jaccard",
        )
        for fold in (0, 1)
    ]  # fmt: skip
    per_fold = pd.concat(rows, ignore_index=True)
    print(per_fold[["fold", "miou", "pixel_accuracy", "mean_boundary_f1"]].to_string())
    assert list(per_fold["fold"]) == [0, 1]
    assert np.isfinite(per_fold["miou"]).all()
