"""Batched inference: padding/tiling back to the input size, PNG masks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from microgen.data.prepared import read_gray, write_png
from microgen.segment.infer import pad_to_multiple, predict_masks, segment_images
from microgen.segment.model import SegmenterConfig, build_segmenter

torch.set_num_threads(1)


class Threshold(nn.Module):
    """Pointwise 'model': class 1 where the pixel is brighter than 0.5 (checks size only)."""

    def forward(self, x):
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0
        return torch.cat([0.5 - x, x - 0.5], dim=1)


def test_padding_and_tiling_are_cropped_back():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, s, dtype=np.uint8) for s in [(50, 70), (64, 64), (130, 101)]]
    for tile in (1024, 64):
        masks = predict_masks(Threshold(), images, batch_size=2, device="cpu", tile=tile, margin=8)
        for im, m in zip(images, masks, strict=True):
            assert m.shape == im.shape and m.dtype == np.uint8
            np.testing.assert_array_equal(m, (im / 255.0 > 0.5).astype(np.uint8))
    assert pad_to_multiple(np.zeros((33, 64))).shape == (64, 64)


def test_segment_images_writes_masks_of_input_size(tmp_path):
    model = build_segmenter(SegmenterConfig(decoder_channels=(16, 16, 16, 16, 16), classes=4))
    model.save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(1)
    paths = []
    for name, shape in [("a", (45, 77)), ("b", (64, 32)), ("c", (45, 77))]:
        p = tmp_path / f"{name}.png"
        write_png(p, rng.integers(0, 255, shape, dtype=np.uint8))
        paths.append(p)
    written = segment_images(
        tmp_path / "model", paths, tmp_path / "out", batch_size=2, device="cpu"
    )
    assert [w.name for w in written] == ["a.png", "b.png", "c.png"]
    for p, w in zip(paths, written, strict=True):
        m = read_gray(w)
        assert m.shape == read_gray(p).shape and m.max() < 4
