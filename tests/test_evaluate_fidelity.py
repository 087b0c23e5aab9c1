import numpy as np
import pandas as pd
import pytest
from evaluate_toy import condition, image_set
from scipy import ndimage

from microgen.descriptors.tables import describe_arrays
from microgen.evaluate.fidelity import (
    curve_errors,
    descriptor_errors,
    table6,
    table_b5,
    write_table,
)

CONDS = [condition(800.0), condition(970.0, split="val_unseen")]


@pytest.fixture(scope="module")
def real():
    s = image_set(CONDS, 2, seed=11)
    s["index"] = s["index"].drop(columns=["model", "prompt_mode"])
    return s


def _scaled(real, grow: int, model="scaled"):
    """The real masks with every particle grown by ``grow`` pixels (binary dilation)."""
    masks = {}
    for k, m in real["masks"].items():
        grown = m.copy()
        if grow:
            grown[ndimage.binary_dilation(m == 2, iterations=grow)] = 2
        masks["s" + k] = grown
    index = real["index"].assign(id=lambda d: "s" + d["id"], model=model, prompt_mode="-")
    pixel_sizes = dict(zip(index["id"], index["pixel_size_um"], strict=True))
    rows, curves, _ = describe_arrays(((i, m, pixel_sizes[i]) for i, m in masks.items()), r_max=20)
    return index, rows, curves


def test_eps_zero_for_identical_sets_and_grows_with_particle_scale(real):
    index = real["index"].assign(model="same", prompt_mode="-")
    eps = curve_errors(real["curves"], real["index"], real["curves"], index, (0, 15))
    assert len(eps) == 4 and np.allclose(eps["value"], 0.0)
    values = []
    for f in (0, 1, 2):
        gi, _, gc = _scaled(real, f)
        e = curve_errors(real["curves"], real["index"], gc, gi, (0, 15))
        values.append(e.groupby("metric")["value"].mean())
    assert np.allclose(values[0], 0.0)
    for m in ("eps_S2", "eps_L"):
        assert 0.0 < values[1][m] < values[2][m]


def test_eps_in_micrometres_matches_pixels_at_equal_pixel_size(real):
    index = real["index"].assign(model="x", prompt_mode="-")
    gi, _, gc = _scaled(real, 1)
    px = real["index"]["pixel_size_um"].iloc[0]
    e_px = curve_errors(real["curves"], real["index"], gc, gi, (0, 10), "px")
    sel = e_px["label"] == CONDS[0]["label"]
    e_um = curve_errors(real["curves"], real["index"], gc, gi, (0, 10 * px), "um")
    assert np.allclose(e_px.loc[sel, "value"], e_um.loc[sel, "value"])
    del index


def test_tables_for_two_conditions_two_models(real, tmp_path):
    sets = [
        image_set(CONDS, 2, seed=s, model=m, mode="full_text", prefix=m)
        for s, m in ((21, "a"), (22, "b"))
    ]
    gi = pd.concat([s["index"] for s in sets])
    gc = pd.concat([s["curves"] for s in sets])
    gr = pd.concat([s["rows"] for s in sets])
    eps = curve_errors(real["curves"], real["index"], gc, gi, (0, 15))
    t6 = table6(eps)
    assert list(t6["label"]) == [CONDS[0]["label"], CONDS[1]["label"]]
    assert list(t6["split"]) == ["val_seen", "val_unseen"]
    assert set(t6.columns) == {
        "split",
        "label",
        "a/full_text eps_S2",
        "a/full_text eps_L",
        "b/full_text eps_S2",
        "b/full_text eps_L",
    }
    errs = descriptor_errors(real["rows"], real["index"], gr, gi)
    assert len(errs) == 2 * 2 * 3 and (errs["rel_error_pct"] >= 0).all()
    b5 = table_b5(errs)
    assert len(b5) == 4 and "aspect_ratio error %" in b5.columns and "nnd_um R" in b5.columns
    write_table(t6, tmp_path / "t6.csv", tmp_path / "t6.md", title="Table 6")
    md = (tmp_path / "t6.md").read_text()
    assert md.startswith("Table 6") and md.count("\n|") == 4
    assert pd.read_csv(tmp_path / "t6.csv").shape == t6.shape


def test_fidelity_figures_write_png_and_pdf(real, tmp_path):
    from evaluate_toy import by_label

    from microgen.figures.fidelity import (
        plot_condition_comparison,
        plot_correlation_envelopes,
        plot_descriptor_trends,
    )

    gen = image_set(CONDS, 2, seed=5, model="g", mode="full_text", prefix="g")
    labels = [c["label"] for c in CONDS]
    plot_condition_comparison(
        labels,
        by_label(real),
        by_label(gen),
        real["particles"],
        real["index"],
        gen["particles"],
        gen["index"],
        tmp_path / "a.png",
        tmp_path / "a.pdf",
    )
    plot_descriptor_trends(
        {"real": (real["rows"], real["index"])},
        gen["rows"],
        gen["index"],
        "temperature",
        tmp_path / "b.png",
        tmp_path / "b.pdf",
    )
    plot_correlation_envelopes(
        labels,
        real["curves"],
        real["index"],
        gen["curves"],
        gen["index"],
        tmp_path / "c.png",
        tmp_path / "c.pdf",
        r_unit="um",
    )
    for name in "abc":
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert (tmp_path / f"{name}.pdf").stat().st_size > 0


def test_sets_sharing_a_prompt_mode_stay_apart(tmp_path):
    """Two models sampled in the same prompt mode have the same sample ids; the fidelity
    stage must not pool them (a regression: it once reported identical numbers)."""
    import pandas as pd

    from microgen.evaluate.stage import concat_sets

    sets = []
    for model, fraction in (("a", 0.1), ("b", 0.3)):
        index = pd.DataFrame({"id": ["parameter_only__L__0"], "model": [model],
                              "prompt_mode": ["parameter_only"], "label": ["L"]})  # fmt: skip
        rows = pd.DataFrame({"id": ["parameter_only__L__0"], "area_fraction": [fraction]})
        curves = pd.DataFrame({"id": ["parameter_only__L__0"], "function": ["L"], "r": [0],
                               "value": [fraction]})  # fmt: skip
        paths = {k: tmp_path / f"{model}-{k}" for k in ("index", "rows", "curves")}
        index.to_csv(paths["index"], index=False)
        rows.to_parquet(paths["rows"])
        curves.to_parquet(paths["curves"])
        sets.append({k: str(v) for k, v in paths.items()})
    rows, curves, index = concat_sets(sets)
    assert rows["id"].is_unique and index["id"].is_unique
    merged = rows.merge(index, on="id")
    assert merged.set_index("model")["area_fraction"].to_dict() == {"a": 0.1, "b": 0.3}
