"""Shared figure conventions: one place for fonts, colours and saving PNG + PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SPLIT_COLORS = {"train": "#4C72B0", "val_seen": "#55A868", "val_unseen": "#C44E52"}
SPLIT_NAMES = {
    "train": "train",
    "val_seen": "validation (seen)",
    "val_unseen": "validation (unseen)",
}

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 200,
        "font.size": 9,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def save(fig: plt.Figure, png: str | Path, pdf: str | Path | None = None) -> None:
    """Save ``fig`` as PNG (report) and PDF (papers), then close it."""
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, bbox_inches="tight")
    if pdf is not None:  # without a creation date, the same figure gives the same bytes
        fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
