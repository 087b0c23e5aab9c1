"""Fig. A1 follows the data set's condition schema: a panel per variable, counts that add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from microgen.figures.dataset import MAX_BARS, plot_dataset_histograms

# Not UHCS: one continuous variable with many values, one categorical of another kind.
SCHEMA = {
    "name": "other-alloy",
    "continuous": [
        {"name": "magnification", "label": "magnification", "unit": "×",
         "placeholder": "<mag>", "log": True, "format": "{value:g}×"},
    ],
    "categorical": [
        {"name": "microscope", "label": "microscope", "placeholder": "<scope>",
         "categories": ["sem-a", "sem-b", "unused"]},
    ],
    "prompts": {
        "full_text": "an SEM micrograph at {magnification} <mag> on {microscope} <scope>",
        "text_only": "an SEM micrograph at {magnification} on {microscope}",
        "parameter_only": "<mag> <scope>",
    },
    "condition_label": "{magnification:g}x-{microscope}",
}  # fmt: skip


def _data_set(tmp_path, n=40):
    rng = np.random.default_rng(0)
    ids = [f"im{i:02d}" for i in range(n)]
    metadata = pd.DataFrame(
        {
            "id": ids,
            "magnification": np.round(rng.uniform(500, 20000, n)),
            "microscope": rng.choice(["sem-a", "sem-b"], n),
            "pixel_size_um": 0.1,
            "has_mask": False,
        }
    )
    split = pd.DataFrame({"id": ids, "split": ["train"] * 30 + ["val_seen"] * 10})
    (tmp_path / "data").mkdir()
    metadata.to_csv(tmp_path / "data" / "metadata.csv", index=False)
    split.to_csv(tmp_path / "split.csv", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA, allow_unicode=True))
    return metadata


def test_one_panel_per_schema_variable_with_its_label_and_unit(tmp_path):
    metadata = _data_set(tmp_path)
    assert metadata["magnification"].nunique() > MAX_BARS  # a histogram, not bars
    fig = plot_dataset_histograms(
        str(tmp_path / "data" / "metadata.csv"), str(tmp_path / "split.csv"),
        str(tmp_path / "schema.yaml"), str(tmp_path / "a1.png"), str(tmp_path / "a1.pdf"),
    )  # fmt: skip
    assert (tmp_path / "a1.png").stat().st_size > 0
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in visible] == ["magnification (×)", "microscope"]
    hist, bars = visible
    assert hist.get_xscale() == "log"  # the schema log-transforms magnification
    # Every micrograph is counted once in each panel, whatever its split.
    for ax in (hist, bars):
        assert sum(p.get_height() for p in ax.patches) == len(metadata)
    # Categories in schema order, only those present.
    assert [t.get_text() for t in bars.get_xticklabels()] == ["sem-a", "sem-b"]
