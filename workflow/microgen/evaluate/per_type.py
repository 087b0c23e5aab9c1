"""Per-group evaluation of a data set split by group (Aachen-Heerlen, paper Table 7b / Fig. D1a).

The A-H data set is split by steel type (Table D1), and the paper reports, per type, the
mean absolute error of the martensite-austenite (MA) area fraction between generated and
real micrographs, and the MA IoU of its segmenter. Here:

* :func:`area_fraction_per_group`: per group and split, the real validation images' MA area
  fraction (mean, std, in percentage points) and, for every generated set, the generated
  one and the MAE, in two units of averaging (the paper says only "mean absolute error of
  the MA area fraction between generated and real images" per type): over the group's
  conditions, and over its generated images (definitions in the function's docstring).
* :func:`table7b`: Table 7b, the MAE per group (mean ± sd) beside the paper's row.
* :func:`iou_per_group`: MA IoU of the segmenter's masks of the validation images against
  the annotated masks, pooled over the pixels of each group (and of all groups), next to
  the mean of the per-image IoUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.prepared import read_gray

from .fidelity import GEN_KEYS

__all__ = [
    "ALL",
    "PAPER_TABLE7B",
    "mask_area_fractions",
    "area_fraction_per_group",
    "table7b",
    "group_order",
    "iou_per_group",
]

#: Group value of the row pooling every group.
ALL = "all"
_SPLITS = ("val_seen", "val_unseen")
#: Table 7b of Phan et al. (2025): MAE of the MA area fraction per A-H steel type, pp,
#: (mean, sd); seen types 1, CFB2, 5, 10, 11, then the unseen 2, 3, 8, 12.
PAPER_TABLE7B: dict[str, tuple[float, float]] = {
    "1": (2.53, 3.77), "CFB2": (1.79, 1.28), "5": (4.45, 5.20), "10": (4.96, 5.88),
    "11": (3.71, 5.38), "2": (2.06, 2.05), "3": (0.54, 0.46), "8": (0.57, 0.55),
    "12": (3.18, 5.38),
}  # fmt: skip


def mask_area_fractions(mask_dir: str | Path, ids: Sequence[str], phase: int = 1) -> pd.DataFrame:
    """``id, area_fraction``: fraction of the pixels of each ``{id}.png`` mask in class
    ``phase`` (the descriptor tables' ``area_fraction``, without their pixel-size demand)."""
    fractions = [float(np.mean(read_gray(Path(mask_dir) / f"{i}.png") == phase)) for i in ids]
    return pd.DataFrame({"id": list(ids), "area_fraction": fractions})


def _real(rows: pd.DataFrame, index: pd.DataFrame, group: str) -> pd.DataFrame:
    t = rows[["id", "area_fraction"]].merge(index[["id", "label", "split", group]], on="id")
    return t.assign(**{group: t[group].astype(str)})


def area_fraction_per_group(
    real_rows: pd.DataFrame,
    real_index: pd.DataFrame,
    group: str = "steel_type",
    gen_rows: pd.DataFrame | None = None,
    gen_index: pd.DataFrame | None = None,
    splits: Sequence[str] = _SPLITS,
) -> pd.DataFrame:
    """MA (phase) area fraction per group of the validation images, real and generated.

    Parameters
    ----------
    real_rows : descriptor rows (``id``, ``area_fraction``) of the annotated masks.
    real_index : ``id, label, split`` and the ``group`` column of the real images.
    group : column to group by (the split's ``by``).
    gen_rows, gen_index : descriptor rows and index (``id, model, prompt_mode, label,
        split`` and ``group``) of the generated sets; ``None``: real side only.
    splits : splits whose images are compared.

    Returns
    -------
    One row per ``model, prompt_mode`` (``"-"`` for the real side alone), ``group`` and
    ``split``: ``n_real``, ``real_mean_pp``, ``real_std_pp`` (over images), and with
    generated sets ``n_generated``, ``generated_mean_pp``, ``generated_std_pp``,
    ``n_conditions`` (labels with both real and generated images) and the MAE in two units.
    Area fractions in percentage points (pp); standard deviations are sample ones
    (``ddof=1``, NaN for a single value).

    Notes
    -----
    Write ``R(c)`` for the mean MA area fraction of the real validation images of condition
    (label) ``c``, ``G(c)`` for that of the generated images of ``c``, ``g_i`` for that of
    generated image ``i`` and ``C`` for the group's conditions with real and generated images.

    * ``mae_pp`` ± ``mae_std_pp``, over conditions: ``e_c = 100 |G(c) - R(c)|``, mean and sd
      of ``e_c`` over ``c`` in ``C`` (each condition weighs the same, however many images it
      has).
    * ``mae_image_pp`` ± ``mae_image_std_pp``, over generated images: ``e_i = 100 |g_i -
      R(c(i))|`` for every generated image ``i`` of a condition in ``C``, mean and sd over
      those images (single samples around the real condition mean: within one condition
      the mean of ``|g_i - R(c)|`` is at least ``|G(c) - R(c)|``).
    """
    real = _real(real_rows, real_index, group)
    real = real[real["split"].isin(list(splits))]
    real_stats = (
        real.groupby([group, "split"])["area_fraction"]
        .agg(n_real="count", real_mean_pp="mean", real_std_pp="std")
        .reset_index()
    )
    real_stats[["real_mean_pp", "real_std_pp"]] *= 100.0
    if gen_rows is None or gen_index is None or gen_index.empty:
        return real_stats.assign(model="-", prompt_mode="-")[
            [*GEN_KEYS, group, "split", "n_real", "real_mean_pp", "real_std_pp"]
        ]
    gen = gen_rows[["id", "area_fraction"]].merge(
        gen_index[["id", *GEN_KEYS, "label", "split", group]], on="id"
    )
    gen = gen[gen["split"].isin(list(splits))].assign(**{group: lambda t: t[group].astype(str)})
    real_by_label = real.groupby("label")["area_fraction"].mean()
    out = []
    for keys, g in gen.groupby([*GEN_KEYS, group, "split"]):
        per_label = g.groupby("label")["area_fraction"].mean()
        shared = per_label.index.intersection(real_by_label.index)
        err = 100.0 * (per_label[shared] - real_by_label[shared]).abs()
        scored = g[g["label"].isin(shared)]
        image_err = 100.0 * (scored["area_fraction"] - scored["label"].map(real_by_label)).abs()
        out.append(
            dict(
                zip([*GEN_KEYS, group, "split"], keys, strict=True),
                n_generated=len(g),
                generated_mean_pp=100.0 * g["area_fraction"].mean(),
                generated_std_pp=100.0 * g["area_fraction"].std(),
                n_conditions=len(shared),
                mae_pp=err.mean() if len(err) else np.nan,
                mae_std_pp=err.std() if len(err) > 1 else np.nan,
                mae_image_pp=image_err.mean() if len(image_err) else np.nan,
                mae_image_std_pp=image_err.std() if len(image_err) > 1 else np.nan,
            )
        )
    gen_stats = pd.DataFrame(out)
    table = gen_stats.merge(real_stats, on=[group, "split"], how="left")
    first = [*GEN_KEYS, group, "split", "n_real", "real_mean_pp", "real_std_pp"]
    return table[first + [c for c in table.columns if c not in first]]


def group_order(schema_path: str | Path, group: str) -> list[str]:
    """Display order of a group column: the categories of the schema's categorical variable
    ``group`` (Aachen-Heerlen: its steel types), or none when ``group`` is not one."""
    from microgen.data.schema import load_schema

    try:
        variable = load_schema(schema_path).variable(group)
    except KeyError:
        return []
    return [str(c) for c in getattr(variable, "categories", ())]


def _pm(mean: float, sd: float) -> str:
    """``"m ± s"`` with two decimals; ``"–"`` for NaN parts."""
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.2f} ± {sd:.2f}" if np.isfinite(sd) else f"{mean:.2f}"


def table7b(
    per_group: pd.DataFrame,
    group: str = "steel_type",
    order: Sequence[str] | None = None,
    paper: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Table 7b: per generated set and group, the MAE of the area fraction (pp) beside the
    paper's row.

    Parameters
    ----------
    per_group : :func:`area_fraction_per_group` with generated sets.
    group : its group column.
    order : group values in display order (e.g. the schema's categories); groups not in
        it follow in name order. Rows go seen before unseen, then by ``order``.
    paper : group -> (mean, sd) of the paper's Table 7b; default :data:`PAPER_TABLE7B`.

    Returns
    -------
    ``model, prompt_mode, {group}, split, n_conditions, n_generated``, ``MAE (pp)`` (over
    conditions, "mean ± sd"), ``MAE per image (pp)``, their numbers ``mae_pp, mae_std_pp,
    mae_image_pp, mae_image_std_pp``, and ``paper MAE (pp)``, ``paper_mae_pp``,
    ``paper_sd_pp`` (NaN for a group the paper does not list).
    """
    if "mae_pp" not in per_group:
        raise ValueError("table7b needs the per-group table of generated sets (no mae_pp)")
    paper = PAPER_TABLE7B if paper is None else paper
    rank = {str(v): k for k, v in enumerate(order or [])}
    t = per_group.copy()
    t[group] = t[group].astype(str)
    t["_split"] = t["split"].map({s: k for k, s in enumerate(_SPLITS)})
    t["_rank"] = t[group].map(lambda v: rank.get(v, len(rank)))
    t = t.sort_values([*GEN_KEYS, "_split", "_rank", group]).reset_index(drop=True)
    ref = t[group].map(lambda v: paper.get(v, (np.nan, np.nan)))
    t["paper_mae_pp"] = [m for m, _ in ref]
    t["paper_sd_pp"] = [s for _, s in ref]
    pm = lambda a, b: [_pm(x, y) for x, y in zip(t[a], t[b], strict=True)]  # noqa: E731
    t["MAE (pp)"] = pm("mae_pp", "mae_std_pp")
    t["MAE per image (pp)"] = pm("mae_image_pp", "mae_image_std_pp")
    t["paper MAE (pp)"] = pm("paper_mae_pp", "paper_sd_pp")
    numbers = ["mae_pp", "mae_std_pp", "mae_image_pp", "mae_image_std_pp"]
    shown = ["MAE (pp)", "MAE per image (pp)", "paper MAE (pp)"]
    cols = [*GEN_KEYS, group, "split", "n_conditions", "n_generated", *shown, *numbers]
    return t[[*cols, "paper_mae_pp", "paper_sd_pp"]]


def iou_per_group(
    truth_dir: str | Path,
    pred_dir: str | Path,
    index: pd.DataFrame,
    group: str = "steel_type",
    phase: int = 1,
    splits: Sequence[str] = _SPLITS,
) -> pd.DataFrame:
    """IoU of class ``phase`` of the predicted masks per group, plus a row ``ALL``.

    Parameters
    ----------
    truth_dir, pred_dir : folders of ``{id}.png`` class masks (annotation, segmenter).
    index : ``id, split`` and the ``group`` column of the images.
    phase : class whose IoU is reported (MA = 1 for Aachen-Heerlen).
    splits : splits whose images are scored (every image of them needs a prediction).

    Returns
    -------
    ``group, images, iou_pooled`` (intersection over union summed over the group's pixels:
    the usual benchmark number), ``iou_mean_image`` (mean of per-image IoUs over images
    where the class occurs in truth or prediction), ``truth_fraction_pp``.
    """
    chosen = index[index["split"].isin(list(splits))]
    if chosen.empty:
        raise ValueError(f"no images in splits {list(splits)}")
    per_image = []
    for image_id, value in zip(chosen["id"], chosen[group].astype(str), strict=True):
        truth = read_gray(Path(truth_dir) / f"{image_id}.png") == phase
        pred_path = Path(pred_dir) / f"{image_id}.png"
        if not pred_path.is_file():
            raise FileNotFoundError(f"no segmenter mask for {image_id} in {pred_dir}")
        pred = read_gray(pred_path) == phase
        if pred.shape != truth.shape:
            raise ValueError(f"{image_id}: prediction {pred.shape} vs truth {truth.shape}")
        per_image.append(
            dict(
                group=value,
                inter=int(np.sum(truth & pred)),
                union=int(np.sum(truth | pred)),
                truth=int(truth.sum()),
                pixels=truth.size,
            )
        )
    t = pd.DataFrame(per_image)
    t["iou"] = (t["inter"] / t["union"]).where(t["union"] > 0)

    def summary(g: pd.DataFrame) -> dict:
        union = g["union"].sum()
        return dict(
            images=len(g),
            iou_pooled=g["inter"].sum() / union if union else np.nan,
            iou_mean_image=g["iou"].mean(),
            truth_fraction_pp=100.0 * g["truth"].sum() / g["pixels"].sum(),
        )

    rows = [{group: value, **summary(g)} for value, g in t.groupby("group")]
    rows.append({group: ALL, **summary(t)})
    return pd.DataFrame(rows)
