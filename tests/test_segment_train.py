"""Training on a tiny synthetic set, exact resume, augmentation, checkpoint format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from microgen.checkpoint import load_state
from microgen.segment.model import SegmenterConfig
from microgen.segment.train import augment, latest_checkpoint, train_segmenter

torch.set_num_threads(1)
CONFIG = SegmenterConfig(decoder_channels=(64, 32, 32, 16, 16), classes=2)


def disks(n, size=64, seed=0):
    """Bright disks on dark noise; mask = disk."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        m = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(10, size - 10, 2)
            r = rng.uniform(5, 12)
            m[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
        im = rng.normal(50, 20, (size, size)) + 130 * m
        images.append(np.clip(im, 0, 255).astype(np.uint8))
        masks.append(m)
    return images, masks


def _train(out, epochs, resume=True, **kw):
    ti, tm = disks(8)
    vi, vm = disks(4, seed=1)
    args = dict(
        epochs=epochs,
        crop=64,
        batch_size=4,
        steps_per_epoch=4,
        encoder_lr=1e-3,
        decoder_lr=1e-3,
        config=CONFIG,
        resume=resume,
        progress=False,
        seed=0,
    )
    args.update(kw)
    return train_segmenter(ti, tm, vi, vm, out, **args)


def test_tiny_training_learns_disks(tmp_path):
    res = _train(tmp_path / "run", epochs=3)
    print("tiny val mIoU per epoch:", list(res.log["val_miou"].round(3)))
    assert res.best_miou > 0.7
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert list(log["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_miou", "val_iou_0", "val_iou_1", "seconds"} <= set(log.columns)
    assert res.best_miou == pytest.approx(log["val_miou"].max())
    assert (res.best_dir / "model.safetensors").is_file()


def test_resume_equals_uninterrupted(tmp_path):
    keep = dict(steps_per_epoch=2, continuable=True)
    full = _train(tmp_path / "full", epochs=2, **keep)
    _train(tmp_path / "part", epochs=1, **keep)
    resumed = _train(tmp_path / "part", epochs=2, **keep)
    a = load_file(str(full.checkpoint_dir / "model.safetensors"))
    b = load_file(str(resumed.checkpoint_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa = load_state(full.checkpoint_dir / "training_state")["optimizer"]["state"]
    ob = load_state(resumed.checkpoint_dir / "training_state")["optimizer"]["state"]
    assert all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])
    assert list(pd.read_csv(tmp_path / "part" / "train_log.csv")["epoch"]) == [1, 2]
    # a fresh run (resume=False) from epoch 1 differs after one epoch from two epochs
    one = load_file(
        str(_train(tmp_path / "one", 1, steps_per_epoch=2).checkpoint_dir / "model.safetensors")
    )
    assert not all(torch.equal(one[k], a[k]) for k in a)


def test_checkpoint_format_has_no_pickles(tmp_path):
    _train(tmp_path / "r", epochs=1, steps_per_epoch=1, continuable=True)
    ckpt = latest_checkpoint(tmp_path / "r")
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [
        "model.safetensors",
        "state.json",
        "train_log.csv",
        "training_state.json",
        "training_state.safetensors",
    ]
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 1
    groups = load_state(ckpt / "training_state")["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["encoder", "decoder"]
    assert [g["lr"] for g in groups] == [1e-3, 1e-3]
    assert not list((tmp_path / "r").rglob("*.pt")) and not list((tmp_path / "r").rglob("*.pkl"))


def test_a_finished_run_keeps_weights_only_and_refuses_a_larger_cap(tmp_path):
    _train(tmp_path / "r", epochs=2, steps_per_epoch=1)
    ckpt = latest_checkpoint(tmp_path / "r")
    assert ckpt.name == "step-0000002" and not (ckpt / "training_state.json").exists()
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["best", ckpt.name]
    with pytest.raises(ValueError, match="finished run.*delete"):
        _train(tmp_path / "r", epochs=3, steps_per_epoch=1)


def test_augment_is_seeded_and_keeps_mask_classes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (80, 90), dtype=np.uint8)
    mask = rng.integers(0, 4, (80, 90), dtype=np.uint8)
    a = augment(image, mask, 64, np.random.default_rng(5))
    b = augment(image, mask, 64, np.random.default_rng(5))
    c = augment(image, mask, 64, np.random.default_rng(6))
    assert a[0].shape == a[1].shape == (64, 64) and a[0].dtype == np.float32
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) <= {0, 1, 2, 3}  # nearest-neighbour rotation for masks
    assert 0.0 <= a[0].min() and a[0].max() <= 1.0


def test_bad_inputs_are_rejected(tmp_path):
    ti, tm = disks(2)
    with pytest.raises(ValueError):
        train_segmenter(ti, tm[:1], ti, tm, tmp_path, epochs=1, crop=64, config=CONFIG)
    with pytest.raises(ValueError):
        train_segmenter(ti, tm, ti, tm, tmp_path, epochs=1, crop=50, config=CONFIG)
    with pytest.raises(ValueError):
        train_segmenter(ti, tm, ti, tm, tmp_path, epochs=1, crop=64, loss="hinge",
                        progress=False, config=CONFIG)  # fmt: skip


def test_patience_stops_a_plateau_and_a_resume_does_not_restart_it(tmp_path):
    # lr 0: the validation mIoU of epoch 1 is never beaten, so patience 2 ends after epoch 3
    frozen = dict(encoder_lr=0.0, decoder_lr=0.0, steps_per_epoch=1, patience=2, continuable=True)
    res = _train(tmp_path / "flat", epochs=10, **frozen)
    assert list(res.log["epoch"]) == [1, 2, 3]
    assert res.converged and res.best_epoch == 1
    again = _train(tmp_path / "flat", epochs=20, **frozen)  # a larger cap: nothing left to do
    assert list(again.log["epoch"]) == [1, 2, 3] and again.converged
    # a floor on the epochs continues the stopped run up to it, then patience ends it again
    floored = _train(tmp_path / "flat", epochs=20, min_epochs=5, **frozen)
    assert list(floored.log["epoch"]) == [1, 2, 3, 4, 5] and floored.converged
    # learning keeps improving within the cap: the cap ends it, not convergence
    capped = _train(tmp_path / "learning", epochs=2, steps_per_epoch=2, patience=5)
    assert list(capped.log["epoch"]) == [1, 2] and not capped.converged
