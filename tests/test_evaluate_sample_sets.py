import numpy as np
import pandas as pd
import pytest

from microgen.data.sample_sets import (
    parse_sample_id,
    pixel_size_from_metadata,
    resize_scale,
    sample_id,
    samples_metadata,
)
from microgen.data.synthetic.laws import pixel_size_um
from microgen.generate.sampling import write_samples


@pytest.mark.parametrize(
    "mode,label,seed",
    [
        ("full_text", "800C-180M-4910x-Q-S", 3),
        ("parameter_only", "a/b c%__d×", 0),
        ("text_only", "__x__", 12345),
    ],
)
def test_sample_id_round_trips_and_is_a_file_name(mode, label, seed):
    sid = sample_id(mode, label, seed)
    assert all(c.isalnum() or c in "-_.+%" for c in sid)
    assert parse_sample_id(sid) == (mode, label, seed)


def test_sample_id_rejects_bad_mode_and_ids():
    with pytest.raises(ValueError):
        sample_id("a__b", "x", 1)
    with pytest.raises(ValueError):
        parse_sample_id("no-separator")


def test_samples_metadata_ids_paths_pixel_sizes(tmp_path):
    cond = dict(
        temperature=800.0,
        time=90.0,
        cooling="Q",
        magnification=1964.0,
        microconstituent="spheroidite",
    )
    label = "800C-90M-1964x-Q-S"
    images = {("full_text", label, s): np.full((8, 8), s, np.uint8) for s in (0, 1)}
    model_dir = tmp_path / "samples" / "sd"
    table = write_samples(model_dir, images, {label: cond})
    csv = model_dir.parent / "sd" / "full_text.csv"
    table.to_csv(csv, index=False)
    scale = resize_scale((256, 300), 128)
    assert scale == 2.0
    meta = samples_metadata(
        csv, pixel_size_um, scale=scale, conditions=[{"label": label, "split": "val_unseen"}]
    )
    assert list(meta["id"]) == [sample_id("full_text", label, s) for s in (0, 1)]
    assert (meta["model"] == "sd").all() and (meta["split"] == "val_unseen").all()
    assert np.allclose(meta["pixel_size_um"], 2.0 * pixel_size_um(1964.0))
    from microgen.data.prepared import read_gray

    assert read_gray(meta["image_path"].iloc[1]).max() == 1
    # pixel sizes from a real metadata table: recorded value, else c / M
    real = pd.DataFrame({"magnification": [1000.0, 2000.0], "pixel_size_um": [0.2, 0.1]})
    f = pixel_size_from_metadata(real)
    assert f(1000.0) == 0.2 and f(4000.0) == pytest.approx(0.05)


def test_generated_images_take_their_conditions_pixel_size_and_say_how():
    """A condition imaged on two microscopes takes the median of its real images; one without
    real images its magnification's value; a schema without magnification the set median."""
    from microgen.data.sample_sets import condition_pixel_sizes

    real = pd.DataFrame(
        {
            "label": ["A", "A", "A", "B", ""],
            "magnification": [1000.0, 1000.0, 1000.0, 2000.0, 1000.0],
            "pixel_size_um": [0.20, 0.30, 0.30, 0.10, 9.0],  # "" has no prompt: ignored
        }
    )
    gen = pd.DataFrame({"label": ["A", "B", "C"], "magnification": [1000.0, 2000.0, 4000.0]})
    sizes, sources = condition_pixel_sizes(gen, real)
    # C: no real image; at 4000× c / M with c the median of p·M (200, 300, 300, 200, 9000).
    assert sizes == pytest.approx([0.30, 0.10, 300.0 / 4000.0])
    assert sources == ["median (2 distinct values)", "condition", "magnification"]
    no_mag = condition_pixel_sizes(gen[["label"]], real.drop(columns="magnification"))
    assert no_mag == ([0.30, 0.10, pytest.approx(0.30)], ["median (2 distinct values)", "condition",
                                                          "data set median"])  # fmt: skip
