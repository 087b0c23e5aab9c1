"""The paper's preprocessing: aspect-preserving resize, centre crop, scaling to [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from microgen.data.preprocess import (
    from_model_range,
    resize_center_crop,
    scaled_pixel_size,
    to_model_range,
)


def test_resize_keeps_aspect_and_crops_the_centre():
    # A 484×645 image whose left and right thirds are black: after the shorter side goes to
    # 96 px the width is 128 px, and the centre crop drops 16 px each side.
    image = np.full((484, 645), 200, dtype=np.uint8)
    image[:, :100] = 0
    image[:, -100:] = 0
    out = resize_center_crop(image, 96)
    assert out.shape == (96, 96)
    # 100 px of 645 → 19.8 px of 128; 16 are cropped, ~4 dark columns remain each side.
    dark = (out[48] < 100).sum()
    assert 6 <= dark <= 10
    assert scaled_pixel_size(0.2, image.shape, 96) == pytest.approx(0.2 * 484 / 96)


def test_nearest_resampling_keeps_class_ids():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, size=(60, 80), dtype=np.uint8)
    out = resize_center_crop(mask, 32, resample=Image.Resampling.NEAREST)
    assert set(np.unique(out)) <= {0, 1, 2, 3}


def test_model_range_round_trip():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    scaled = to_model_range(image)
    assert scaled.min() == -1.0 and scaled.max() == 1.0 and scaled.dtype == np.float32
    assert np.array_equal(from_model_range(scaled), image)
    with pytest.raises(ValueError, match="uint8"):
        to_model_range(image.astype(np.float32))
