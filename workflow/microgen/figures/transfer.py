"""Fig. D1 of Phan et al. (2025), the schema-transfer experiment (Aachen-Heerlen): (a) the MA
area fraction per steel type, real vs generated, (b) a t-SNE map of real and generated image
features. Fig. 15 (real and generated micrographs at unseen conditions) is a sample grid:
:func:`microgen.figures.qualitative.sample_grid_stage` with kind ``"fig15"``.

Panel (a) draws ``per-group-area-fraction.csv`` (:func:`microgen.evaluate.per_type.
area_fraction_per_group`); panel (b) reuses the t-SNE features and panel of Fig. B9
(:mod:`microgen.figures.tsne`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.evaluate.transfer import display_order

from .style import plt, save
from .tsne import draw_tsne_panel, tsne_features, tsne_panels

__all__ = ["plot_area_fraction_by_group", "plot_figure_d1", "figure_d1_stage"]

_SPLIT_WORDS = {"val_seen": "seen", "val_unseen": "unseen"}


def _ordered(table: pd.DataFrame, group: str, order: Sequence[str]) -> pd.DataFrame:
    rank = {str(v): k for k, v in enumerate(order)}
    split_rank = {s: k for k, s in enumerate(_SPLIT_WORDS)}
    t = table.assign(**{group: table[group].astype(str)})
    t = t.assign(_s=t["split"].map(split_rank), _r=t[group].map(lambda v: rank.get(v, len(rank))))
    return t.sort_values(["_s", "_r", group]).drop(columns=["_s", "_r"])


def plot_area_fraction_by_group(
    ax: plt.Axes, table: pd.DataFrame, group: str, order: Sequence[str] = (), name: str = ""
) -> list[str]:
    """Bars of the mean MA area fraction per group, real (red) beside generated (blue), with
    ± 1 sd whiskers over images; groups seen first, then unseen (a dotted line between).

    Parameters
    ----------
    table : rows of one generated set of the per-group table (``group, split, real_mean_pp,
        real_std_pp, generated_mean_pp, generated_std_pp``).
    order : display order of the group values (the schema's categories).
    name : the generated set, for the legend.

    Returns
    -------
    The group values left to right.
    """
    t = _ordered(table, group, order)
    x = np.arange(len(t))
    width = 0.38
    for shift, side, color, label in (
        (-width / 2, "real", "#C44E52", "real"),
        (width / 2, "generated", "#4C72B0", f"generated ({name})" if name else "generated"),
    ):
        ax.bar(
            x + shift, t[f"{side}_mean_pp"], width, yerr=t[f"{side}_std_pp"].fillna(0),
            color=color, label=label, capsize=2, error_kw={"lw": 0.8},
        )  # fmt: skip
    ticks = zip(t[group], t["split"], strict=True)
    ax.set_xticks(x, [f"{v}\n({_SPLIT_WORDS.get(s, s)})" for v, s in ticks])
    n_seen = int((t["split"] == "val_seen").sum())
    if 0 < n_seen < len(t):
        ax.axvline(n_seen - 0.5, color="0.5", ls=":", lw=1)
    ax.set_xlabel(group.replace("_", " "))
    ax.set_ylabel("MA area fraction (%)")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8)
    return list(t[group])


def plot_figure_d1(
    table: pd.DataFrame,
    group: str,
    references: Mapping[str, np.ndarray],
    gen_features: np.ndarray,
    name: str,
    png: str | Path,
    pdf: str | Path | None = None,
    order: Sequence[str] = (),
    feature_name: str | None = None,
    seed: int = 0,
) -> plt.Figure:
    """Fig. D1: (a) :func:`plot_area_fraction_by_group` of the set ``name``, (b) the t-SNE map
    of the reference features and the set's (:func:`~microgen.figures.tsne.tsne_panels`)."""
    fig, (ax_a, ax_b) = plt.subplots(
        1, 2, figsize=(11, 4.2), layout="constrained", width_ratios=[1.5, 1]
    )
    plot_area_fraction_by_group(ax_a, table, group, order, name)
    ax_a.set_title("(a) MA area fraction per steel type (mean ± sd over images)")
    emb = tsne_panels(references, {name: gen_features}, seed=seed)[name]
    head = f"features: {feature_name}" if feature_name else ""
    draw_tsne_panel(ax_b, emb, name, list(references), title=f"(b) t-SNE, {head}".rstrip(", "))
    save(fig, png, pdf)
    return fig


def figure_d1_stage(
    per_group_csv: str,
    generated: str,
    real: Mapping[str, str],
    conditions_csv: str,
    group: str,
    order: Sequence[str],
    resolution: int,
    png: str,
    vgg19_weights: str | None = None,
    segmenter_dir: str | None = None,
    seed: int = 0,
) -> str:
    """Fig. D1 of the generated set whose index is ``generated`` (the primary set).

    Parameters
    ----------
    per_group_csv : ``per-group-area-fraction.csv`` with generated sets.
    real : ``metadata``, ``split``, ``images`` of the real data set (its validation images at
        the validation conditions are the t-SNE reference).
    group, order : the group column and the schema's categories of it (bars follow
        :func:`~microgen.evaluate.transfer.display_order`, as Table 7b's rows).
    resolution, vgg19_weights, segmenter_dir, seed : as Fig. B9
        (:func:`~microgen.figures.tsne.tsne_stage`).

    Returns
    -------
    The feature extractor's name.

    Raises
    ------
    ValueError
        When the per-group table has no row of that set.
    """
    index = pd.read_csv(generated, dtype={"id": str})
    model, mode = str(index["model"].iloc[0]), str(index["prompt_mode"].iloc[0])
    table = pd.read_csv(per_group_csv, dtype={group: str})
    table = table[(table["model"] == model) & (table["prompt_mode"] == mode)]
    if table.empty:
        raise ValueError(f"{per_group_csv}: no rows of the generated set {model}/{mode}")
    refs, gens, feature_name = tsne_features(
        [generated], {"real": real}, conditions_csv, resolution, vgg19_weights, segmenter_dir
    )
    name = f"{model}/{mode}"
    plot_figure_d1(
        table, group, refs, gens[name], name, png, str(Path(png).with_suffix(".pdf")),
        order=display_order(order), feature_name=feature_name, seed=seed,
    )  # fmt: skip
    return feature_name
