"""Per-condition fidelity figures (Figs 10-13, B3-B8, B9) on tiny fabricated sets."""

import numpy as np
import pandas as pd
import pytest
from evaluate_toy import by_label, condition, image_set

from microgen.figures.conditions import condition_series
from microgen.figures.fidelity import plot_condition_comparison, plot_descriptor_trends

CONDS = [condition(800.0), condition(970.0, magnification=1964.0)]


@pytest.fixture(scope="module")
def sets():
    real = image_set(CONDS, 2, seed=3)
    real["index"] = real["index"].drop(columns=["model", "prompt_mode"])
    gens = [
        image_set(CONDS, 2, seed=s, model=m, mode="full_text", prefix=m)
        for s, m in ((4, "a"), (5, "b"))
    ]
    return real, gens


def _written(tmp_path, name):
    return all((tmp_path / f"{name}.{ext}").stat().st_size > 0 for ext in ("png", "pdf"))


def test_condition_comparison_writes_labelled_figure(sets, tmp_path):
    real, gens = sets
    labels = [c["label"] for c in CONDS]
    fig = plot_condition_comparison(
        labels, by_label(real), by_label(gens[0]), real["particles"], real["index"],
        gens[0]["particles"], gens[0]["index"], tmp_path / "c.png", tmp_path / "c.pdf",
        reference_name="ground truth", gen_name="a/full_text",
    )  # fmt: skip
    assert _written(tmp_path, "c")
    hist = fig.axes[2]
    assert hist.get_xlabel() == "equivalent diameter (µm)"
    assert "µm⁻¹" in hist.get_ylabel()
    assert {t.get_text().split(" (")[0] for t in hist.get_legend().get_texts()} == {
        "ground truth", "a/full_text"
    }  # fmt: skip
    assert labels[0] in fig.axes[0].get_title() and "ground truth" in fig.axes[0].get_title()


def test_trends_put_levels_on_the_axis_and_name_every_set(sets, tmp_path):
    real, gens = sets
    gen_rows = pd.concat([g["rows"] for g in gens])
    gen_index = pd.concat([g["index"] for g in gens])
    fig = plot_descriptor_trends(
        {"real": (real["rows"], real["index"])}, gen_rows, gen_index, "temperature",
        tmp_path / "t.png", tmp_path / "t.pdf",
    )  # fmt: skip
    assert _written(tmp_path, "t")
    area, size = fig.axes[:2]
    assert area.get_xlabel() == size.get_xlabel() == "annealing temperature (°C)"
    assert area.get_ylabel() == "spheroidite area fraction (–)"
    assert size.get_ylabel() == "mean equivalent diameter (µm)"
    assert [t.get_text() for t in area.get_xticklabels()] == ["800", "970"]
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == ["real", "a/full_text", "b/full_text"]
    # The reference line runs through its per-temperature means (one condition per level).
    line = next(ln for ln in area.get_lines() if ln.get_label() == "real")
    means = real["rows"].merge(real["index"], on="id").groupby("temperature")["area_fraction"]
    assert np.allclose(line.get_ydata(), means.mean().to_numpy())


def test_trends_handle_a_categorical_variable(sets, tmp_path):
    real, gens = sets
    fig = plot_descriptor_trends(
        {"real": (real["rows"], real["index"])}, gens[0]["rows"], gens[0]["index"], "cooling",
        tmp_path / "q.png",
    )  # fmt: skip
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Q"]
    assert fig.axes[0].get_xlabel() == "cooling method"


def test_condition_series_holds_other_variables_fixed():
    rows = [
        ("800C-90M-1964x-Q-S", 800.0, 90.0, "Q", 1964.0, "spheroidite", "val_seen"),
        ("970C-480M-4910x-Q-P", 970.0, 480.0, "Q", 4910.0, "pearlite", "val_seen"),
        ("970C-90M-1964x-Q-S", 970.0, 90.0, "Q", 1964.0, "spheroidite", "val_seen"),
        ("900C-90M-1964x-Q-S", 900.0, 90.0, "Q", 1964.0, "spheroidite", "val_seen"),
        ("800C-180M-1964x-Q-S", 800.0, 180.0, "Q", 1964.0, "spheroidite", "val_unseen"),
        ("800C-180M-4910x-Q-S", 800.0, 180.0, "Q", 4910.0, "spheroidite", "val_unseen"),
    ]
    cols = ["label", "temperature", "time", "cooling", "magnification", "microconstituent",
            "split"]  # fmt: skip
    c = pd.DataFrame(rows, columns=cols)
    # All else equal, the widest temperature span wins (800 and 970, not 900).
    assert condition_series(c, "temperature", "val_seen") == [
        "800C-90M-1964x-Q-S", "970C-90M-1964x-Q-S"
    ]  # fmt: skip
    assert condition_series(c, "temperature", "val_seen", n=3) == [
        "800C-90M-1964x-Q-S", "900C-90M-1964x-Q-S", "970C-90M-1964x-Q-S"
    ]  # fmt: skip
    assert condition_series(c, "magnification", "val_unseen") == [
        "800C-180M-1964x-Q-S", "800C-180M-4910x-Q-S"
    ]  # fmt: skip
    # No series along temperature among the unseen conditions: the split's conditions instead.
    assert len(condition_series(c, "temperature", "val_unseen")) == 2


def test_condition_series_holds_another_data_set_s_variables_fixed():
    """The held variables are the table's condition columns, so another data set's etchant
    is held too: the clean pair along magnification beats the widest one."""
    c = pd.DataFrame({"label": ["500x-nital", "1000x-nital", "2000x-picral"],
                      "magnification": [500.0, 1000.0, 2000.0],
                      "etchant": ["nital", "nital", "picral"], "split": "val_seen"})  # fmt: skip
    assert condition_series(c, "magnification", "val_seen") == ["500x-nital", "1000x-nital"]


def test_tsne_separates_two_distinct_feature_clusters(tmp_path):
    from microgen.figures.tsne import plot_tsne_sets, tsne_panels

    rng = np.random.default_rng(0)
    shift = np.zeros(32)
    shift[:4] = 12.0  # far apart: 12 standard deviations along four dimensions
    real = rng.normal(size=(24, 32))
    apart = {"apart": rng.normal(size=(24, 32)) + shift}
    emb = tsne_panels({"real": real}, apart, seed=0)["apart"]
    xy = emb[["x", "y"]].to_numpy()
    is_gen = (emb["group"] == "generated").to_numpy()
    gap = np.linalg.norm(xy[is_gen].mean(0) - xy[~is_gen].mean(0))
    spread = max(xy[g].std(0).max() for g in (is_gen, ~is_gen))
    assert gap > 3 * spread
    # Every point's nearest neighbour in the map belongs to its own cluster.
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (is_gen[d.argmin(1)] == is_gen).all()

    fig = plot_tsne_sets(
        {"real": real}, {**apart, "same": rng.normal(size=(24, 32))}, tmp_path / "b9.png",
        tmp_path / "b9.pdf", feature_name="toy",
    )  # fmt: skip
    assert _written(tmp_path, "b9")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["apart", "same"]
    assert fig.axes[0].get_xlabel() == "t-SNE 1 (–)"
    assert "toy" in fig._suptitle.get_text()


def test_saved_pdf_bytes_depend_only_on_the_figure(tmp_path):
    """A rerun that draws the same figure writes the same file (no creation date in it)."""
    import time

    import matplotlib.pyplot as plt

    from microgen.figures.style import save

    digests = []
    for k in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save(fig, tmp_path / f"f{k}.png", tmp_path / f"f{k}.pdf")
        digests.append((tmp_path / f"f{k}.pdf").read_bytes())
        time.sleep(1.1)  # PDF dates count seconds
    assert digests[0] == digests[1]
