"""Metrics against brute-force references on random label maps; boundary F1; CV plumbing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from microgen.segment.evaluate import (
    boundary,
    confusion_matrix,
    evaluate_masks,
    metrics_from_confusion,
)

K = 4


def _brute(truth, pred, k):
    t, p = truth.ravel(), pred.ravel()
    tp = sum(1 for a, b in zip(t, p, strict=True) if a == k and b == k)
    fp = sum(1 for a, b in zip(t, p, strict=True) if a != k and b == k)
    fn = sum(1 for a, b in zip(t, p, strict=True) if a == k and b != k)
    tn = sum(1 for a, b in zip(t, p, strict=True) if a != k and b != k)

    def r(a, b):
        return a / b if b else float("nan")

    prec, rec = r(tp, tp + fp), r(tp, tp + fn)
    return {
        "iou": r(tp, tp + fp + fn),
        "precision": prec,
        "recall": rec,
        "f1": r(2 * prec * rec, prec + rec) if tp else r(0, 2 * tp + fp + fn),
        "fpr": r(fp, fp + tn),
        "fnr": r(fn, fn + tp),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, (17, 23))
    pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, K, truth.shape))
    if seed == 2:  # a class absent from both
        truth[truth == 3] = 0
        pred[pred == 3] = 1
    cm = confusion_matrix(truth, pred, K)
    ref_cm = np.zeros((K, K), int)
    for a, b in zip(truth.ravel(), pred.ravel(), strict=True):
        ref_cm[a, b] += 1
    np.testing.assert_array_equal(cm, ref_cm)
    m = metrics_from_confusion(cm)
    assert m["pixel_accuracy"] == pytest.approx(np.mean(truth == pred))
    ious = []
    for k in range(K):
        ref = _brute(truth, pred, k)
        for name, value in ref.items():
            got = m[name][k]
            if np.isnan(value):
                assert np.isnan(got), (name, k)
            else:
                assert got == pytest.approx(value, abs=1e-12), (name, k)
        ious.append(ref["iou"])
    assert m["miou"] == pytest.approx(np.nanmean(ious))
    if seed == 2:
        assert np.isnan(m["iou"][3])


def test_pooling_over_images_sums_confusions():
    rng = np.random.default_rng(3)
    ts = [rng.integers(0, K, (8, 8)) for _ in range(3)]
    ps = [rng.integers(0, K, (8, 8)) for _ in range(3)]
    pooled = evaluate_masks(ts, ps, K)
    whole = evaluate_masks([np.concatenate(ts)], [np.concatenate(ps)], K)
    np.testing.assert_allclose(pooled["iou"], whole["iou"])


def _blobs(size=64):
    m = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    m[(yy - 20) ** 2 + (xx - 22) ** 2 < 100] = 1
    m[40:55, 30:60] = 2
    return m


def test_boundary_f1():
    m = _blobs()
    same = evaluate_masks([m], [m], K)
    assert same["mean_boundary_f1"] == 1.0
    assert same["boundary_f1"][3] != same["boundary_f1"][3]  # NaN: class 3 absent
    shifted = np.roll(m, 5, axis=1)  # 5 px > tolerance 2 px
    s = evaluate_masks([m], [shifted], K)
    assert s["mean_boundary_f1"] < 0.9
    near = evaluate_masks([m], [np.roll(m, 1, axis=1)], K)  # within tolerance
    assert near["mean_boundary_f1"] > s["mean_boundary_f1"]
    assert near["mean_boundary_f1"] > 0.9
    b = boundary(np.array([[0, 0, 1], [0, 0, 1]]))
    np.testing.assert_array_equal(b, [[0, 1, 1], [0, 1, 1]])


def test_cross_validate_fold_plumbing(uhcs24_dir, tmp_path, monkeypatch):
    """Fold bookkeeping of one rule-sized CV job with a stub trainer: it trains on four folds,
    validates on the next one, and its scores row is the saved model's on the test fold."""
    import pandas as pd
    import torch

    import microgen.segment.train as train_module
    from microgen.data.uhcs24 import read_cv_folds
    from microgen.segment.crossval import cross_validate_fold
    from microgen.segment.model import SegmenterConfig, build_segmenter

    torch.set_num_threads(1)
    folds = read_cv_folds(uhcs24_dir)
    seen = []

    def stub(ti, tm, vi, vm, out_dir, settings, **kw):
        seen.append((len(ti), len(vi), kw["config"].encoder))
        torch.manual_seed(0)
        cfg = SegmenterConfig(decoder_channels=(16, 16, 16, 16, 16), classes=4)
        build_segmenter(cfg).save_pretrained(out_dir / "best")
        log = pd.DataFrame({"epoch": [1, 2], "seconds": [0.5, 0.25]})
        return SimpleNamespace(best_dir=out_dir / "best", best_epoch=2, log=log, converged=False)

    monkeypatch.setattr(train_module, "train_segmenter", stub)
    row = cross_validate_fold(
        uhcs24_dir, "labels", 4, tmp_path, encoder="vgg16", eca=True, epochs=2, classes=4
    )
    assert seen == [(16, 4, "vgg16")]
    assert row.loc[0, "test_ids"].split() == list(folds[4])
    assert (row.loc[0, "epochs_trained"], row.loc[0, "train_seconds"]) == (2, 0.75)
    assert 0 <= row.loc[0, "miou"] <= 1
    assert pd.read_csv(tmp_path / "scores.csv").loc[0, "fold"] == 4
