"""Brief cross-validated training on the real UHCS-24 labels (slow; `pytest -m slow`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from microgen.data.uhcs24 import read_cv_folds
from microgen.segment.crossval import cross_validate, load_uhcs24_arrays

EPOCHS = int(os.environ.get("MICROGEN_SEG_EPOCHS", "3"))
STEPS = int(os.environ.get("MICROGEN_SEG_STEPS", "16"))


@pytest.mark.slow
def test_uhcs24_two_fold_training(uhcs24_dir, tmp_path):
    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MICROGEN_SEG_THREADS", "1")))
    folds = read_cv_folds(uhcs24_dir)
    assert len(folds) == 6 and all(len(v) == 4 for v in folds.values())
    images, masks = load_uhcs24_arrays(uhcs24_dir, label_version="labels")
    res = cross_validate(
        folds,
        images,
        masks,
        tmp_path,
        which=[0, 1],
        epochs=EPOCHS,
        crop=256,
        batch_size=2,
        steps_per_epoch=STEPS,
        loss="jaccard",
        progress=False,
    )
    cols = ["fold", "miou", "pixel_accuracy", "mean_boundary_f1"]
    print(res.per_fold[cols + [f"iou_{k}" for k in range(4)]].to_string())
    print(res.summary.loc[["miou", "pixel_accuracy", "mean_boundary_f1"]])
    assert len(res.per_fold) == 2
    assert np.isfinite(res.per_fold["miou"]).all()
