"""Fidelity against exact ground truth (beyond the paper; synthetic data set only).

The paper can only compare generated micrographs with the few real ones of a condition, which
are themselves segmented by a network. With the synthetic generator
(:mod:`microgen.data.synthetic`) every validation condition, seen or unseen, can be drawn
afresh as many times as wanted, with *exact* masks: :func:`ground_truth_set` does that, the
usual descriptor tables are computed from the exact masks, and :func:`fidelity_against_truth`
scores each generated set per condition. :func:`trend_table` asks whether the generated sets
keep the process -> structure trends: Spearman ρ of the condition-mean particle diameter vs
temperature and vs magnification, for the generated set, the truth set and the law itself.

Two independent draws of the truth at one condition differ too (finite samples of a random
microstructure), so an error means little on its own: a second, independently seeded draw
(``draw=1``) of as many images per condition as a generated set holds is scored against the
first exactly as a model is, as the row ``REDRAW_MODEL``, the noise floor of every column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from microgen.data.sample_sets import sample_id
from microgen.data.synthetic.conditions import Condition
from microgen.data.synthetic.generator import generate
from microgen.data.synthetic.laws import mean_particle_radius_um

from .fidelity import GEN_KEYS, attach, curve_errors

__all__ = [
    "VARIABLES",
    "TRUTH_MODEL",
    "REDRAW_MODEL",
    "SEGMENTED_REDRAW_MODEL",
    "ground_truth_set",
    "write_ground_truth_set",
    "law_mean_diameter_um",
    "fidelity_against_truth",
    "trend_table",
    "headline_table",
    "floor_first",
]

VARIABLES = ("temperature", "time", "cooling", "magnification", "microconstituent")
#: ``model`` / ``prompt_mode`` value of the truth set in its index.
TRUTH_MODEL = "truth"
#: ``model`` value of an independent redraw of the truth, scored like a generated set.
REDRAW_MODEL = "ground truth (redraw)"
#: ``model`` value of the same redraw measured through the segmenter, as generated sets are:
#: the floor of a perfect generator when its images are measured by this segmenter.
SEGMENTED_REDRAW_MODEL = "ground truth (redraw, segmented)"


def _condition(cond: Mapping) -> Condition:
    return Condition(**{v: cond[v] for v in VARIABLES})


def ground_truth_set(
    conditions: Sequence[Mapping] | pd.DataFrame,
    n_per_condition: int,
    shape: Sequence[int],
    seed: int = 0,
    draw: int = 0,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fresh synthetic micrographs with exact masks for every condition.

    Parameters
    ----------
    conditions : dicts (or a DataFrame) with the five synthetic variables and ``label``
        (``split`` kept when present), e.g. ``conditions/validation.csv``.
    n_per_condition : images per condition.
    shape : (H, W) of each image, in generator pixels (use the generated samples' side when
        comparing at model resolution, so ``pixel_size_um`` is the magnification's own).
    seed : image ``k`` of condition ``c`` uses ``SeedSequence([seed, c, k])``; keep it
        different from the training set's seed so the truth images are new draws.
    draw : 0 for the truth set; ``d >= 1`` gives an independent redraw from the same
        ``seed`` (``SeedSequence([seed, c, k], spawn_key=(d,))``, a separate stream), so the
        truth set's images do not change when a redraw is added.

    Returns
    -------
    index : ``id, model, prompt_mode, label, split, five variables, seed, pixel_size_um``;
        ``model = prompt_mode = "truth"`` and ``id = sample_id("truth", label, k)`` for draw
        0, ``model = REDRAW_MODEL``, ``prompt_mode = "-"`` and ``id = sample_id(f"redraw{d}",
        label, k)`` for a redraw.
    images, masks : id -> uint8 (H, W).
    """
    if n_per_condition < 1:
        raise ValueError("n_per_condition must be >= 1")
    if draw < 0:
        raise ValueError("draw must be >= 0")
    model, mode, prefix = (
        (TRUTH_MODEL, TRUTH_MODEL, TRUTH_MODEL)
        if draw == 0
        else (REDRAW_MODEL, "-", f"redraw{draw}")
    )
    spawn_key = (draw,) if draw else ()
    conds = conditions.to_dict("records") if isinstance(conditions, pd.DataFrame) else conditions
    rows, images, masks = [], {}, {}
    for c, cond in enumerate(conds):
        condition = _condition(cond)
        for k in range(n_per_condition):
            sequence = np.random.SeedSequence([seed, c, k], spawn_key=spawn_key)
            image_seed = int(sequence.generate_state(1)[0])
            m = generate(condition, shape=tuple(shape), seed=image_seed)
            image_id = sample_id(prefix, cond["label"], k)
            rows.append(
                dict(
                    id=image_id,
                    model=model,
                    prompt_mode=mode,
                    label=cond["label"],
                    split=cond.get("split", "-"),
                    **{v: cond[v] for v in VARIABLES},
                    seed=image_seed,
                    pixel_size_um=m.pixel_size_um,
                )
            )
            images[image_id] = m.image
            masks[image_id] = m.mask
    return pd.DataFrame(rows), images, masks


def write_ground_truth_set(
    out_dir: str | Path,
    conditions: Sequence[Mapping] | pd.DataFrame,
    n_per_condition: int,
    shape: Sequence[int],
    seed: int = 0,
    draw: int = 0,
) -> pd.DataFrame:
    """:func:`ground_truth_set` written as ``images/{id}.png``, ``masks/{id}.png`` and
    ``metadata.csv`` (the index), ready for :func:`microgen.descriptors.tables.describe_image_set`.
    """
    from microgen.data.prepared import write_png

    index, images, masks = ground_truth_set(conditions, n_per_condition, shape, seed, draw)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for image_id in index["id"]:
        write_png(out / "images" / f"{image_id}.png", images[image_id])
        write_png(out / "masks" / f"{image_id}.png", masks[image_id])
    index.to_csv(out / "metadata.csv", index=False)
    return index


def law_mean_diameter_um(cond: Mapping) -> float:
    """Law value of the mean equivalent spheroidite diameter: ``2 r̄(T, t)`` (LSW coarsening).

    It does not depend on magnification: the *measured* diameter does, through resolution.
    """
    return 2.0 * mean_particle_radius_um(float(cond["temperature"]), float(cond["time"]))


def _condition_means(rows: pd.DataFrame, index: pd.DataFrame, columns: Sequence[str]):
    t = attach(rows, index)
    keys = [*GEN_KEYS, "split", "label"]
    agg = t.groupby(keys)[list(columns)].agg(["mean", "std", "count"])
    agg.columns = [f"{c}_{s}" for c, s in agg.columns]
    return agg.reset_index()


def fidelity_against_truth(
    truth_rows: pd.DataFrame,
    truth_curves: pd.DataFrame,
    truth_index: pd.DataFrame,
    gen_rows: pd.DataFrame,
    gen_curves: pd.DataFrame,
    gen_index: pd.DataFrame,
    r_range: tuple[float, float],
    r_unit: str = "px",
) -> pd.DataFrame:
    """Per condition and generated set: ε_S2, ε_L, area-fraction and mean-diameter errors.

    Returns one row per ``model, prompt_mode, split, label`` with ``eps_S2_pct``,
    ``eps_L_pct`` (condition-mean curves, trapezoid over ``r_range`` in ``r_unit``),
    ``area_fraction_truth``, ``area_fraction_generated``, ``area_fraction_abs_error``
    (fraction points), ``mean_diameter_truth_um``, ``mean_diameter_generated_um``,
    ``mean_diameter_rel_error_pct`` (100 |G - T| / T of the condition means), ``n_truth``,
    ``n_generated``.
    """
    eps = curve_errors(truth_curves, truth_index, gen_curves, gen_index, r_range, r_unit)
    eps_w = eps.pivot_table(
        index=[*GEN_KEYS, "split", "label"], columns="metric", values="value", aggfunc="first"
    ).reset_index()
    eps_w = eps_w.rename(columns={"eps_S2": "eps_S2_pct", "eps_L": "eps_L_pct"})
    cols = ["area_fraction", "mean_diameter_um"]
    truth = _condition_means(truth_rows, truth_index, cols)
    gen = _condition_means(gen_rows, gen_index, cols)
    truth = truth.drop(columns=[*GEN_KEYS, "split"]).set_index("label")
    out = gen.merge(truth, left_on="label", right_index=True, suffixes=("_gen", "_truth"))
    res = pd.DataFrame(
        {
            **{k: out[k] for k in (*GEN_KEYS, "split", "label")},
            "area_fraction_truth": out["area_fraction_mean_truth"],
            "area_fraction_generated": out["area_fraction_mean_gen"],
            "area_fraction_abs_error": (
                out["area_fraction_mean_gen"] - out["area_fraction_mean_truth"]
            ).abs(),
            "mean_diameter_truth_um": out["mean_diameter_um_mean_truth"],
            "mean_diameter_generated_um": out["mean_diameter_um_mean_gen"],
            "mean_diameter_rel_error_pct": 100.0
            * (out["mean_diameter_um_mean_gen"] - out["mean_diameter_um_mean_truth"]).abs()
            / out["mean_diameter_um_mean_truth"].abs(),
            "n_truth": out["area_fraction_count_truth"],
            "n_generated": out["area_fraction_count_gen"],
        }
    )
    res = res.merge(eps_w, on=[*GEN_KEYS, "split", "label"], how="left")
    first = [*GEN_KEYS, "split", "label", "eps_S2_pct", "eps_L_pct"]
    return res[first + [c for c in res.columns if c not in first]].reset_index(drop=True)


def _spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan"), float("nan")
    res = spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue)


def _is_spheroidite(index: pd.DataFrame) -> pd.Series:
    return index["microconstituent"].astype(str).str.contains("spheroidite")


def trend_table(
    truth_rows: pd.DataFrame,
    truth_index: pd.DataFrame,
    gen_rows: pd.DataFrame,
    gen_index: pd.DataFrame,
    variables: Sequence[str] = ("temperature", "magnification"),
    descriptor: str = "mean_diameter_um",
    law: Callable[[Mapping], float] | None = law_mean_diameter_um,
    select: Callable[[pd.DataFrame], pd.Series] | None = _is_spheroidite,
) -> pd.DataFrame:
    """Spearman ρ of the condition-mean ``descriptor`` vs each process variable.

    Computed across the conditions (one point per condition) for every generated set, for the
    truth set and for the law evaluated at the same conditions; plus ρ between the generated
    and the truth condition means (does the generator order the conditions right?).

    Parameters
    ----------
    variables : numeric condition columns of the indexes.
    law : condition dict -> law value of ``descriptor`` (``None``: no law column).
    select : index -> boolean mask of the conditions to use; default keeps conditions whose
        microconstituent contains "spheroidite" (pearlite lamellae are not particles).

    Returns
    -------
    ``model, prompt_mode, variable, n_conditions, rho_generated, p_generated, rho_truth,
    p_truth, rho_law, rho_generated_vs_truth, same_sign`` (NaN with < 3 conditions or no
    spread). Ties in the variable are handled by Spearman's average ranks.
    """
    cond_cols = [c for c in VARIABLES if c in truth_index]
    tidx = truth_index if select is None else truth_index[select(truth_index)]
    truth = _condition_means(truth_rows, tidx, [descriptor])
    conds = tidx.drop_duplicates("label").set_index("label")[cond_cols]
    truth = truth.set_index("label")[f"{descriptor}_mean"]
    gen = _condition_means(gen_rows, gen_index, [descriptor])
    rows = []
    for (model, mode), g in gen.groupby(list(GEN_KEYS)):
        g = g[g["label"].isin(truth.index)].set_index("label")
        labels = list(g.index)
        c = conds.loc[labels]
        gv = g[f"{descriptor}_mean"].to_numpy()
        tv = truth.loc[labels].to_numpy()
        lv = np.array([law(r) for r in c.to_dict("records")]) if law else np.full(len(c), np.nan)
        for var in variables:
            x = c[var].astype(float).to_numpy()
            rg, pg = _spearman(x, gv)
            rt, pt = _spearman(x, tv)
            rl, _ = _spearman(x, lv)
            rgt, _ = _spearman(tv, gv)
            rows.append(
                dict(
                    model=model,
                    prompt_mode=mode,
                    variable=var,
                    n_conditions=len(labels),
                    rho_generated=rg,
                    p_generated=pg,
                    rho_truth=rt,
                    p_truth=pt,
                    rho_law=rl,
                    rho_generated_vs_truth=rgt,
                    same_sign=bool(np.sign(rg) == np.sign(rt)) if np.isfinite(rg * rt) else None,
                )
            )
    return pd.DataFrame(rows)


def headline_table(fidelity: pd.DataFrame, trends: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per generated set: condition-averaged errors, seen and unseen, plus trend ρ.

    Columns ``{metric} {split}`` for ε_S2, ε_L, area-fraction abs. error and mean-diameter
    relative error (mean over conditions), then ``rho_{variable} generated|truth``. A
    ``REDRAW_MODEL`` set (the noise floor) comes first, the generated sets after it.
    """
    metrics = ["eps_S2_pct", "eps_L_pct", "area_fraction_abs_error", "mean_diameter_rel_error_pct"]
    m = fidelity.groupby([*GEN_KEYS, "split"])[metrics].mean().unstack("split")
    m.columns = [f"{a} {b}" for a, b in m.columns]
    if trends is not None and not trends.empty:
        t = trends.pivot_table(
            index=list(GEN_KEYS),
            columns="variable",
            values=["rho_generated", "rho_truth"],
            aggfunc="first",
        )
        t.columns = [f"rho_{v} {w.removeprefix('rho_')}" for w, v in t.columns]
        m = m.join(t, how="left")
    return floor_first(m.reset_index())


def floor_first(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of the floors (``REDRAW_MODEL``, then ``SEGMENTED_REDRAW_MODEL``) first, so they
    are read before the models, the rest in their order."""
    parts = [table[table["model"] == m] for m in (REDRAW_MODEL, SEGMENTED_REDRAW_MODEL)]
    rest = table[~table["model"].isin([REDRAW_MODEL, SEGMENTED_REDRAW_MODEL])]
    return pd.concat([*parts, rest], ignore_index=True)
