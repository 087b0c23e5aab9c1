"""Qualitative figures (Figs 5, 6, 9, B1, B2) place the right image in the right cell, and
Table B2 reports the configured baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from PIL import Image

import microgen.figures.qualitative as qualitative
from microgen.figures.qualitative import contrast_pair, pick_conditions, sample_grid_stage
from microgen.figures.samples import plot_sample_grid
from microgen.generate.baseline_table import DEFAULTS, baseline_table

COLUMNS = ("temperature", "time", "magnification", "cooling", "microconstituent")


def _constant(value: int, side: int = 16) -> np.ndarray:
    return np.full((side, side), value, np.uint8)


def _shown(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def test_grid_puts_each_image_in_its_row_and_column(tmp_path):
    rows, columns = ["real", "ddpm__parameter_only", "sd3-lora__parameter_only"], ["c1", "c2"]
    images = {(r, c): _constant(10 * i + j + 1) for i, r in enumerate(rows)
              for j, c in enumerate(columns)}  # fmt: skip
    del images[("ddpm__parameter_only", "c2")]
    fig = plot_sample_grid(
        images, rows, columns, tmp_path / "g.png", tmp_path / "g.pdf",
        pixel_sizes={("real", "c1"): 0.1},
        row_names={"real": "real", "ddpm__parameter_only": "DDPM"},
        column_names={"c1": "800C-90M-3437x-Q-N\n(seen)"},
    )  # fmt: skip
    axes = np.array(fig.axes).reshape(len(rows), len(columns))
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            if (r, c) in images:
                assert (_shown(axes[i, j]) == 10 * i + j + 1).all()
            else:
                assert not axes[i, j].images
                assert axes[i, j].texts[0].get_text() == "no image"
    assert [ax.get_title() for ax in axes[0]] == ["800C-90M-3437x-Q-N\n(seen)", "c2"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["real", "DDPM", "sd3-lora__parameter_only"]
    # The one cell with a pixel size has a scale bar: 0.2 * 16 px * 0.1 µm -> a 0.2 µm bar.
    assert [t.get_text() for t in axes[0, 0].texts] == ["0.2 µm"]
    assert not axes[0, 1].texts
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "g.pdf").stat().st_size > 0


def _conditions() -> pd.DataFrame:
    rows = [
        (800, 90, 1964, "Q", "spheroidite", "val_seen"),
        (800, 90, 3437, "Q", "spheroidite", "val_seen"),
        (800, 90, 4910, "Q", "network", "val_seen"),
        (970, 180, 1964, "Q", "network", "val_unseen"),
        (800, 180, 1964, "Q", "network", "val_unseen"),
    ]
    table = pd.DataFrame(rows, columns=[*COLUMNS, "split"])
    table["label"] = [f"{t}C-{m}M-{x}x-{c}-{u[0].upper()}" for t, m, x, c, u, _ in rows]
    return table


def test_conditions_prefer_new_morphologies_and_a_clean_contrast():
    conditions = _conditions()
    # Seen: the first label, then the network one (a new microconstituent) before 3437x.
    assert pick_conditions(conditions, 2, 1) == [
        "800C-90M-1964x-Q-S", "800C-90M-4910x-Q-N", "800C-180M-1964x-Q-N",
    ]  # fmt: skip
    # Only the two unseen conditions differ in temperature and nothing else.
    assert contrast_pair(conditions) == (
        "temperature", ["800C-180M-1964x-Q-N", "970C-180M-1964x-Q-N"], [],
    )  # fmt: skip


def test_contrast_pair_counts_another_data_set_s_variables():
    def table(labels: list[str]) -> pd.DataFrame:
        mag, etch = zip(*(label.split("x-") for label in labels), strict=True)
        return pd.DataFrame({"magnification": [float(m) for m in mag], "etchant": etch,
                             "label": labels, "split": "val_seen"})  # fmt: skip

    # the pair that differs only in magnification, not the first in label order
    conditions = table(["1000x-nital", "2000x-picral", "4000x-picral"])
    assert contrast_pair(conditions) == ("magnification", ["2000x-picral", "4000x-picral"], [])
    # and where no clean pair exists the etchant is named as the other difference
    conditions = table(["1000x-nital", "2000x-picral"])
    assert contrast_pair(conditions)[2] == ["etchant"]


def _write_image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_constant(value)).save(path)


@pytest.fixture()
def image_sets(tmp_path):
    """Real images (value 100 + k), fresh ground truth (150 + k) and two generated sets
    (set s, seed: 10 * s + seed, label k -> + k) for the conditions of :func:`_conditions`."""
    conditions = _conditions()
    conditions.to_csv(tmp_path / "validation.csv", index=False)
    meta, split, truth, gens = [], [], [], {}
    for k, c in conditions.iterrows():
        # Two real images per condition: a training one (sorted first) and a validation one.
        for kind, sp, value in (("a", "train", 1), ("b", c["split"], 100 + k)):
            meta.append({"id": f"{kind}{k}", "label": c["label"], "pixel_size_um": 0.1})
            split.append({"id": f"{kind}{k}", "split": sp})
            _write_image(tmp_path / "images" / f"{kind}{k}.png", value)
            _write_image(tmp_path / "real-masks" / f"{kind}{k}.png", k % 4)
        truth.append({"id": f"t{k}", "label": c["label"], "pixel_size_um": 0.1})
        _write_image(tmp_path / "truth" / f"t{k}.png", 150 + k)
    for s, (model, mode) in enumerate((("sd3-lora", "full_text"), ("sd3-lora", "text_only"))):
        rows = []
        for k, c in conditions.iterrows():
            for seed in (1, 0):  # the lower seed must win although it is listed last
                path = tmp_path / model / mode / f"{k}-{seed}.png"
                _write_image(path, 10 * s + seed + k)
                image_id = f"{mode}__{k}__{seed}"
                _write_image(tmp_path / f"masks-{mode}" / f"{image_id}.png", (k + 1) % 4)
                rows.append({"id": image_id, "model": model, "prompt_mode": mode,
                             "label": c["label"], "seed": seed, "image_path": str(path),
                             "pixel_size_um": 0.2})  # fmt: skip
        gens[mode] = tmp_path / f"{model}__{mode}.csv"
        pd.DataFrame(rows).to_csv(gens[mode], index=False)
    pd.DataFrame(meta).to_csv(tmp_path / "metadata.csv", index=False)
    pd.DataFrame(split).to_csv(tmp_path / "split.csv", index=False)
    pd.DataFrame(truth).to_csv(tmp_path / "truth.csv", index=False)
    real = {"metadata": str(tmp_path / "metadata.csv"), "split": str(tmp_path / "split.csv"),
            "images": str(tmp_path / "images"), "masks": str(tmp_path / "real-masks")}  # fmt: skip
    truth = {"metadata": str(tmp_path / "truth.csv"), "images": str(tmp_path / "truth")}
    return conditions, real, truth, gens


def _capture(monkeypatch, name):
    figures = []
    original = getattr(qualitative, name)

    def wrapper(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(qualitative, name, wrapper)
    return figures


def test_sample_grid_stage_reference_row_is_real_when_seen_truth_when_unseen(
    image_sets, tmp_path, monkeypatch
):
    conditions, real, truth, gens = image_sets
    figures = _capture(monkeypatch, "plot_sample_grid")
    labels = sample_grid_stage(
        "figB1", str(tmp_path / "validation.csv"), [str(gens["full_text"]),
        str(gens["text_only"])], real, str(tmp_path / "b1.png"), truth=truth,
        variants={"sd3-lora": {"base": "tiny", "prior_preservation": True}},
    )  # fmt: skip
    assert labels == ["800C-180M-1964x-Q-N", "970C-180M-1964x-Q-N"]
    axes = np.array(figures[0].axes).reshape(3, 2)
    k = {lab: int(conditions.index[conditions["label"] == lab][0]) for lab in labels}
    for j, lab in enumerate(labels):  # both unseen: the ground-truth image of the condition
        assert (_shown(axes[0, j]) == 150 + k[lab]).all()
        assert (_shown(axes[1, j]) == 0 + k[lab]).all()  # full text, seed 0
        assert (_shown(axes[2, j]) == 10 + k[lab]).all()  # text only, seed 0
        assert axes[0, j].get_title() == f"{lab}\n(unseen)"
    assert axes[0, 0].get_ylabel() == "ground truth"
    assert axes[1, 0].get_ylabel() == "SD3 (tiny) + DreamBooth + LoRA\n(sd3-lora, full text)"
    assert "two temperatures" in figures[0]._suptitle.get_text()

    labels = sample_grid_stage(
        "fig6", str(tmp_path / "validation.csv"), [str(gens["full_text"])], real,
        str(tmp_path / "f6.png"), truth=truth,
    )  # fmt: skip
    axes = np.array(figures[1].axes).reshape(2, 4)
    assert axes[0, 0].get_ylabel() == "real / ground truth"
    for j, lab in enumerate(labels):
        row = int(conditions.index[conditions["label"] == lab][0])
        seen = conditions.loc[row, "split"] == "val_seen"
        # The validation image of a seen condition, never its training image (value 1).
        assert (_shown(axes[0, j]) == (100 if seen else 150) + row).all()
    assert (tmp_path / "f6.pdf").stat().st_size > 0


def test_segmented_samples_shows_masks_under_their_images(image_sets, tmp_path, monkeypatch):
    conditions, real, _, gens = image_sets
    figures = _capture(monkeypatch, "plot_segmented_samples")
    labels = qualitative.segmented_samples_stage(
        str(tmp_path / "validation.csv"), real,
        {"index": str(gens["full_text"]), "masks": str(tmp_path / "masks-full_text")},
        str(tmp_path / "f9.png"), ["matrix", "network", "particle", "lath"],
        ["black", "tab:blue", "tab:orange", "tab:green"],
    )  # fmt: skip
    assert labels == ["800C-90M-1964x-Q-S", "800C-90M-4910x-Q-N"]
    axes = np.array(figures[0].axes).reshape(2, 4)
    for j, lab in enumerate(labels):
        k = int(conditions.index[conditions["label"] == lab][0])
        assert (_shown(axes[0, 2 * j]) == 100 + k).all() and (_shown(axes[1, 2 * j]) == k % 4).all()
        assert (_shown(axes[0, 2 * j + 1]) == k).all()
        assert (_shown(axes[1, 2 * j + 1]) == (k + 1) % 4).all()
        assert axes[0, 2 * j].get_title() == f"real\n{lab}"
        assert axes[0, 2 * j + 1].get_title() == f"sd3-lora (full text)\n{lab}"
    assert axes[1, 0].get_ylabel() == "(b) predicted mask"
    # the masks in the four given colours, named by the legend
    image = axes[1, 0].images[0]
    assert image.cmap.N == 4 and image.norm.vmax == 3
    legend = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert legend == ["0 matrix", "1 network", "2 particle", "3 lath"]


def test_table_b2_reports_the_configured_baselines():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    baselines = config["generate"]["baselines"]
    table = baseline_table(baselines).set_index("hyperparameter")
    ddpm, gan = table["DDPM"], table["StyleGAN (stylegan-lite)"]
    d, g = baselines["ddpm"], baselines["stylegan-lite"]
    assert ddpm["Batch size"] == str(d["batch_size"]) and gan["Batch size"] == str(g["batch_size"])
    assert ddpm["Resolution (px)"] == str(d["resolution"])
    assert ddpm["Training steps"] == str(d["steps"]) and gan["Training steps"] == str(g["steps"])
    assert ddpm["Learning rate"] == f"{d['lr']:g}"
    assert gan["Learning rate"] == f"generator: {g['g_lr']:g}, discriminator: {g['d_lr']:g}"
    assert gan["R1 regularization γ"].startswith(f"{g['r1_gamma']:g} ")
    assert ddpm["Sampling steps"] == f"{d['sampling']['steps']} (DDIM)"
    assert ddpm["Classifier-free guidance"] == f"{d['sampling']['guidance']:g}"
    channels = "/".join(map(str, d["architecture"]["block_out_channels"]))
    assert f"channels {channels}," in ddpm["Architecture"]
    assert f"max {g['architecture']['generator']['channel_max']};" in gan["Architecture"]
    # Keys the embedded config leaves out: the library defaults (paper Table B2).
    assert ddpm["Timesteps"] == "1000" and ddpm["Noise schedule"] == "linear"
    assert gan["Mapping layers"] == "8"


def test_table_b2_defaults_are_the_library_defaults():
    pytest.importorskip("torch")
    import dataclasses
    import inspect

    from microgen.generate.ddpm import DDPMConfig, sample_ddpm, train_ddpm
    from microgen.generate.stylegan_lite.models import (
        StyleGANLiteDiscriminator,
        StyleGANLiteGenerator,
    )
    from microgen.generate.stylegan_lite.sample import sample_stylegan_lite
    from microgen.generate.stylegan_lite.train import StyleGANLiteTrainConfig

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}

    model = {f.name: f.default for f in dataclasses.fields(DDPMConfig)}
    ddpm = DEFAULTS["ddpm"]
    for key, value in ddpm["architecture"].items():
        expected = model[key]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key
    train = defaults(train_ddpm)
    assert {k: train[k] for k in ("resolution", "steps", "batch_size", "lr", "seed")} == {
        k: ddpm[k] for k in ("resolution", "steps", "batch_size", "lr", "seed")
    }
    assert ddpm["sampling"] == {k: defaults(sample_ddpm)[k] for k in ("steps", "guidance")}

    gan = DEFAULTS["stylegan-lite"]
    tconf = {f.name: f.default for f in dataclasses.fields(StyleGANLiteTrainConfig)}
    for key in ("resolution", "steps", "batch_size", "g_lr", "d_lr", "r1_gamma", "r1_interval"):
        assert gan[key] == tconf[key], key
    assert tconf["betas"] == (0.0, 0.99)
    for cls, part in ((StyleGANLiteGenerator, "generator"),
                      (StyleGANLiteDiscriminator, "discriminator")):  # fmt: skip
        signature = defaults(cls.__init__)
        assert {k: signature[k] for k in gan["architecture"][part]} == gan["architecture"][part]
    assert gan["sampling"]["truncation"] == defaults(sample_stylegan_lite)["truncation"]


def test_centre_square_keeps_the_middle_of_the_longer_side():
    from microgen.figures.samples import centre_square

    image = np.arange(4 * 7).reshape(4, 7)
    out = centre_square(image)
    assert out.shape == (4, 4)
    assert (out == image[:, 1:5]).all()
    assert centre_square(image.T).shape == (4, 4)
    assert (centre_square(image.T) == image.T[1:5, :]).all()
