"""Fig. C1 (microgen.figures.segmentation.plot_encoder_comparison): the plotted lines are the
logged losses, the bars are Table C1's values, and a missing encoder or column is named; the
figure is a target exactly when more than one encoder is configured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microgen import plan
from microgen.figures.segmentation import ENCODER_METRICS, plot_encoder_comparison
from microgen.figures.style import plt

HISTORIES = {
    "vgg16": pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [0.9, 0.6, 0.45], "val_miou": [0.2, 0.4, 0.5]}
    ),  # fmt: skip
    "resnet101": pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [0.8, 0.7, 0.65], "val_loss": [0.85, 0.75, 0.72]}
    ),  # fmt: skip
}
TABLE = pd.DataFrame(
    {
        "encoder": ["resnet101", "vgg16"],  # not in the histories' order
        "pixel_accuracy": [91.0, 97.1],
        "miou": [70.5, 85.7],
        "mean_boundary_f1": [60.25, 80.0],
    }
)


def test_lines_are_the_logged_losses_and_bars_table_c1():
    fig = plot_encoder_comparison(HISTORIES, TABLE, "jaccard")
    ax_loss, ax_bar = fig.axes
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    assert sorted(lines) == ["ResNet-101 (training)", "ResNet-101 (validation)",
                             "VGG-16 (training)"]  # fmt: skip
    for label, encoder, column in [
        ("VGG-16 (training)", "vgg16", "train_loss"),
        ("ResNet-101 (training)", "resnet101", "train_loss"),
        ("ResNet-101 (validation)", "resnet101", "val_loss"),
    ]:
        np.testing.assert_array_equal(lines[label].get_xdata(), HISTORIES[encoder]["epoch"])
        np.testing.assert_array_equal(lines[label].get_ydata(), HISTORIES[encoder][column])
    # a colour per encoder, shared by its lines and bars
    assert (
        lines["ResNet-101 (training)"].get_color() == lines["ResNet-101 (validation)"].get_color()
    )
    containers = {c.get_label(): c for c in ax_bar.containers}
    assert list(containers) == ["VGG-16", "ResNet-101"]
    for name, encoder in (("VGG-16", "vgg16"), ("ResNet-101", "resnet101")):
        heights = [bar.get_height() for bar in containers[name]]
        expected = TABLE.set_index("encoder").loc[encoder, list(ENCODER_METRICS)].tolist()
        assert heights == expected
    # grouped: per metric, the encoders' bars sit side by side around the metric's tick
    ticks = ax_bar.get_xticks()
    centres = np.array([[b.get_x() + b.get_width() / 2 for b in c] for c in containers.values()])
    np.testing.assert_allclose(centres.mean(axis=0), ticks)
    assert [t.get_text() for t in ax_bar.get_xticklabels()] == list(ENCODER_METRICS.values())
    assert ax_loss.get_xlabel() == "epoch"
    assert ax_loss.get_ylabel() == "Jaccard loss (dimensionless)"
    assert ax_bar.get_ylabel().endswith("(%)")
    plt.close(fig)


def test_missing_encoder_or_column_is_named():
    with pytest.raises(ValueError, match=r"no row for encoder \['vgg16'\]"):
        plot_encoder_comparison(HISTORIES, TABLE[TABLE.encoder != "vgg16"], "jaccard")
    with pytest.raises(ValueError, match=r"no column \['miou'\]"):
        plot_encoder_comparison(HISTORIES, TABLE.drop(columns="miou"), "jaccard")
    bad = {"vgg16": HISTORIES["vgg16"].drop(columns="train_loss")}
    with pytest.raises(ValueError, match=r"encoder 'vgg16' has no column \['train_loss'\]"):
        plot_encoder_comparison(bad, TABLE, "jaccard")


def test_encoder_comparison_uses_the_applied_loss_and_needs_two_encoders():
    seg = {"encoders": ["vgg16", "resnet152"], "losses": ["cce", "jaccard"],
           "apply": "vgg16-jaccard"}  # fmt: skip
    assert plan.encoder_comparison({"segment": seg}) == {
        "vgg16": "vgg16-jaccard",
        "resnet152": "resnet152-jaccard",
    }
    assert plan.encoder_comparison({"segment": {**seg, "encoders": ["vgg16"]}}) == {}
    assert plan.encoder_comparison({}) == {}


def test_two_encoders_plan_fig_c1_from_their_logs_and_table_c1(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import REPO, copy_workflow

    root = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "tests" / "config" / "small.yaml").read_text())
    config["reference"]["uhcs24"] = None
    ds = config["dataset"]["name"]

    def dry_run(name: str) -> str:
        (root / name).write_text(yaml.safe_dump(config, allow_unicode=True))
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", name],
            cwd=root, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    assert "rule plot_encoder_comparison:" not in dry_run("one.yaml")
    config["segment"]["encoders"] = ["vgg16", "vgg19"]
    out = dry_run("two.yaml")
    (job,) = [b for b in out.split("\nrule ")[1:] if b.startswith("plot_encoder_comparison:")]
    inputs = job.split("output:")[0]
    for model in ("vgg16-jaccard", "vgg19-jaccard"):
        assert f"results/{ds}/segmenter/{model}/train_log.csv" in inputs
    assert f"results/{ds}/tables/tableC1-encoders.csv" in inputs
    assert f"output: results/{ds}/figures/figC1-encoders.png" in job
