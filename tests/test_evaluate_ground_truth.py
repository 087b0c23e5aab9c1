import numpy as np
import pandas as pd
import pytest
from evaluate_toy import condition, image_set

from microgen.evaluate.ground_truth import (
    REDRAW_MODEL,
    fidelity_against_truth,
    floor_first,
    ground_truth_set,
    headline_table,
    law_mean_diameter_um,
    trend_table,
    write_ground_truth_set,
)

TEMPS = (750.0, 850.0, 970.0, 1100.0)
CONDS = [
    condition(t, split="val_seen" if i % 2 == 0 else "val_unseen") for i, t in enumerate(TEMPS)
]
LABELS = [c["label"] for c in CONDS]


@pytest.fixture(scope="module")
def sets():
    truth = image_set(CONDS, 3, seed=101, model="truth", mode="truth")
    good = image_set(CONDS, 3, seed=202, model="good", mode="full_text", prefix="g")
    # a wrong generator: draws each condition at a reversed temperature order
    wrong_conds = [condition(t) for t in TEMPS[::-1]]
    relabel = {w["label"]: c["label"] for w, c in zip(wrong_conds, CONDS, strict=True)}
    wrong = image_set(
        wrong_conds, 3, seed=303, model="wrong", mode="parameter_only", prefix="w", relabel=relabel
    )
    split = {c["label"]: c["split"] for c in CONDS}
    wrong["index"]["split"] = wrong["index"]["label"].map(split)
    gen = {
        k: pd.concat([good[k], wrong[k]], ignore_index=True) for k in ("index", "rows", "curves")
    }
    return truth, gen


def test_truth_fidelity_ranks_wrong_generator_worse(sets):
    truth, gen = sets
    fid = fidelity_against_truth(
        truth["rows"],
        truth["curves"],
        truth["index"],
        gen["rows"],
        gen["curves"],
        gen["index"],
        r_range=(0, 15),
    )
    assert len(fid) == 2 * len(CONDS)
    assert set(fid["label"]) == set(LABELS)
    mean = fid.groupby("model")[["eps_S2_pct", "eps_L_pct", "mean_diameter_rel_error_pct"]].mean()
    for column in mean.columns:
        assert mean.loc["wrong", column] > mean.loc["good", column], column
    head = headline_table(fid)
    assert list(head["model"]) == ["good", "wrong"]
    assert {"eps_S2_pct val_seen", "eps_S2_pct val_unseen"} <= set(head.columns)


def test_truth_against_itself_is_exact(sets):
    truth, _ = sets
    same = truth["index"].assign(model="copy")
    fid = fidelity_against_truth(
        truth["rows"],
        truth["curves"],
        truth["index"],
        truth["rows"],
        truth["curves"],
        same,
        r_range=(0, 15),
    )
    assert np.allclose(
        fid[["eps_S2_pct", "eps_L_pct", "area_fraction_abs_error", "mean_diameter_rel_error_pct"]],
        0.0,
    )


def test_spearman_trend_law_truth_and_wrong_generator(sets):
    truth, gen = sets
    trends = trend_table(
        truth["rows"], truth["index"], gen["rows"], gen["index"], variables=("temperature",)
    )
    t = trends.set_index("model")
    # monotone temperature series: the law and the exact truth both give rho = 1
    assert t.loc["good", "rho_law"] == pytest.approx(1.0)
    assert t.loc["good", "rho_truth"] == pytest.approx(1.0)
    assert t.loc["good", "rho_generated"] == pytest.approx(1.0)
    assert t.loc["wrong", "rho_generated"] == pytest.approx(-1.0)
    assert not t.loc["wrong", "same_sign"]
    assert law_mean_diameter_um(CONDS[0]) < law_mean_diameter_um(CONDS[-1])


def test_write_ground_truth_set_contract(tmp_path):
    index = write_ground_truth_set(tmp_path, CONDS[:2], 1, (32, 32), seed=1)
    assert len(index) == 2
    for image_id in index["id"]:
        assert (tmp_path / "images" / f"{image_id}.png").is_file()
        assert (tmp_path / "masks" / f"{image_id}.png").is_file()
    meta = pd.read_csv(tmp_path / "metadata.csv")
    assert {"id", "label", "split", "pixel_size_um", "temperature"} <= set(meta.columns)


def test_redraw_is_an_independent_stream_of_the_same_seed():
    first, first_images, _ = ground_truth_set(CONDS[:2], 2, (32, 32), seed=5)
    again, again_images, _ = ground_truth_set(CONDS[:2], 2, (32, 32), seed=5, draw=0)
    redraw, redraw_images, _ = ground_truth_set(CONDS[:2], 2, (32, 32), seed=5, draw=1)
    # Adding a redraw leaves the reference set as it was.
    assert first.equals(again)
    assert all(np.array_equal(first_images[i], again_images[i]) for i in first["id"])
    # Same conditions and count, other seeds, other images, ids that cannot collide.
    assert list(redraw["label"]) == list(first["label"])
    assert set(redraw["model"]) == {REDRAW_MODEL} and set(first["model"]) == {"truth"}
    assert not set(redraw["seed"]) & set(first["seed"])
    assert not set(redraw["id"]) & set(first["id"])
    for a, b in zip(first["id"], redraw["id"], strict=True):
        assert not np.array_equal(first_images[a], redraw_images[b])


def test_redraw_floor_is_far_below_a_wrong_set():
    """The floor is what two finite truth samples differ by: finite, and far below the
    error of a set that is another condition's truth scored as if it were this condition.

    At the embedded resolution (128 px): at 64 px the coarse 970 °C / 4910× condition has so
    few particles per image that two truth draws already differ by ~50 % in ε_S2.
    """
    conds = [condition(800.0, 1964.0, "val_seen"), condition(970.0, 4910.0, "val_unseen")]
    swap = {conds[0]["label"]: conds[1]["label"], conds[1]["label"]: conds[0]["label"]}
    size = dict(shape=(128, 128))
    truth = image_set(conds, 8, seed=11, model="truth", mode="truth", **size)
    # Like for like: the redraw and the wrong set hold the same number of images.
    redraw = image_set(conds, 4, seed=11, model=REDRAW_MODEL, mode="-", prefix="r", draw=1, **size)
    wrong = image_set(conds, 4, seed=11, model="wrong", mode="-", prefix="w", relabel=swap, draw=2)
    wrong["index"]["split"] = wrong["index"]["label"].map({c["label"]: c["split"] for c in conds})
    scored = {
        k: pd.concat([wrong[k], redraw[k]], ignore_index=True) for k in ("index", "rows", "curves")
    }
    fid = fidelity_against_truth(
        truth["rows"], truth["curves"], truth["index"],
        scored["rows"], scored["curves"], scored["index"], r_range=(0, 15),
    )  # fmt: skip
    metrics = ["eps_S2_pct", "eps_L_pct", "area_fraction_abs_error", "mean_diameter_rel_error_pct"]
    by_model = fid.set_index(["model", "label"])[metrics]
    assert np.isfinite(by_model.loc[REDRAW_MODEL].to_numpy()).all()
    for label in swap:
        floor, off = by_model.loc[(REDRAW_MODEL, label)], by_model.loc[("wrong", label)]
        for metric in ("eps_S2_pct", "eps_L_pct", "mean_diameter_rel_error_pct"):
            assert floor[metric] < 0.5 * off[metric], (label, metric, floor[metric], off[metric])
    assert (fid.loc[fid["model"] == REDRAW_MODEL, "n_generated"] == 4).all()
    head = headline_table(floor_first(fid))
    assert head["model"].iloc[0] == REDRAW_MODEL  # the floor is read first
