"""Physical and statistical fidelity of generated micrographs (Phan et al. 2025, Tables 6, B5).

Inputs are the descriptor tables of :mod:`microgen.descriptors.tables` (``rows``: ``id`` +
scalars; ``curves``: ``id, function, r, value`` with ``r`` in pixels) and an *index* per image
set that says which condition each image shows:

``id, label, split, pixel_size_um`` (+ condition columns) for the real images, see
:func:`real_index`; generated sets add ``model`` and ``prompt_mode`` (from
:func:`microgen.data.sample_sets.samples_metadata`, several sets may be concatenated).

ε (section 2.5): ``ε = A1 / A2`` with ``A1`` the area between the condition-mean real and
generated curves and ``A2`` the area under the real one, trapezoid rule over a fixed
``r_range`` (:func:`microgen.descriptors.curve_error`), reported in percent. With
``r_unit="um"`` each condition's lags are converted with its median pixel size, so real and
generated images of different resolution are compared on one physical axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.descriptors import curve_error

__all__ = [
    "CURVES",
    "B5_DESCRIPTORS",
    "real_index",
    "attach",
    "condition_mean_curves",
    "curve_errors",
    "descriptor_errors",
    "table6",
    "table_b5",
    "write_table",
]

#: ε name -> curve function of the descriptor tables used for it.
CURVES: dict[str, str] = {"eps_S2": "S2_radial", "eps_L": "L"}
#: Table B5 descriptors (column of the rows table -> short name).
B5_DESCRIPTORS: dict[str, str] = {
    "mean_aspect_ratio": "aspect_ratio",
    "mean_nnd_um": "nnd_um",
    "interfacial_length_per_area_per_um": "interfacial_area_per_um",
}
GEN_KEYS = ("model", "prompt_mode")
_DEFAULT = "-"


def real_index(
    metadata_csv: str | Path,
    split_csv: str | Path,
    conditions: Sequence[Mapping] | pd.DataFrame | None = None,
    splits: Sequence[str] = ("val_seen", "val_unseen"),
) -> pd.DataFrame:
    """Index of the real images to compare with.

    Parameters
    ----------
    metadata_csv : ``data/metadata.csv`` of the prepared set (``id, label, pixel_size_um``...).
    split_csv : ``split.csv`` (``id, split``).
    conditions : validation conditions (``label``, ``split``). When given, *every* image whose
        label is one of them is used (a seen condition also has training images) and ``split``
        is the condition's split; otherwise only images of ``splits``.
    splits : splits to keep when ``conditions`` is not given.
    """
    meta = pd.read_csv(metadata_csv, dtype={"id": str})
    split = pd.read_csv(split_csv, dtype={"id": str})[["id", "split"]]
    meta = meta.merge(split, on="id", how="left")
    if conditions is not None:
        cond = conditions if isinstance(conditions, pd.DataFrame) else pd.DataFrame(conditions)
        where = dict(zip(cond["label"], cond["split"], strict=True))
        meta = meta[meta["label"].isin(where)].copy()
        meta["split"] = meta["label"].map(where)
    else:
        meta = meta[meta["split"].isin(splits)].copy()
    if meta.empty:
        raise ValueError("no real image matches the requested conditions/splits")
    return meta.reset_index(drop=True)


def attach(table: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Join a descriptor table with the index (inner join on ``id``; adds missing keys as "-").

    Rows whose id is not in the index are dropped (e.g. training images).
    """
    keep = ["id", "label", *[c for c in ("split", *GEN_KEYS, "pixel_size_um") if c in index]]
    idx = index[keep].copy()
    for key in GEN_KEYS:
        if key not in idx:
            idx[key] = _DEFAULT
    if "split" not in idx:
        idx["split"] = _DEFAULT
    extra = [c for c in idx.columns if c in table.columns and c != "id"]
    return table.drop(columns=extra).merge(idx, on="id", how="inner")


def condition_mean_curves(
    curves: pd.DataFrame, index: pd.DataFrame, function: str, r_unit: str = "px"
) -> pd.DataFrame:
    """Per-condition mean ± std (ddof=0) of one curve function.

    Returns ``model, prompt_mode, split, label, r, mean, std, n`` with ``r`` in ``r_unit``
    (``"px"`` or ``"um"``: pixel lag times the condition's median pixel size).
    """
    if r_unit not in ("px", "um"):
        raise ValueError(f"r_unit must be 'px' or 'um', got {r_unit!r}")
    c = attach(curves[curves["function"] == function], index)
    if c.empty:
        raise ValueError(f"no {function!r} curve for any indexed image")
    keys = [*GEN_KEYS, "split", "label"]
    out = (
        c.groupby([*keys, "r"], sort=True)["value"]
        .agg(mean="mean", std=lambda v: float(np.std(v)), n="count")
        .reset_index()
    )
    out["r"] = out["r"].astype(float)
    if r_unit == "um":
        if "pixel_size_um" not in c:
            raise ValueError("r_unit='um' needs pixel_size_um in the index")
        px = c.groupby(keys)["pixel_size_um"].median().rename("px").reset_index()
        out = out.merge(px, on=keys)
        out["r"] = out["r"] * out.pop("px")
    return out


def _groups(table: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    return {k: g for k, g in table.groupby([*GEN_KEYS, "label"], sort=True)}


def curve_errors(
    real_curves: pd.DataFrame,
    real_index_: pd.DataFrame,
    gen_curves: pd.DataFrame,
    gen_index: pd.DataFrame,
    r_range: tuple[float, float],
    r_unit: str = "px",
    curves: Mapping[str, str] = CURVES,
) -> pd.DataFrame:
    """ε (%) between condition-mean real and generated curves for every generated set.

    Returns long ``model, prompt_mode, split, label, metric, value, n_real, n_generated,
    r_lo, r_hi, r_unit`` with ``metric`` in ``curves`` (default ``eps_S2``, ``eps_L``).
    Conditions without real images are skipped (no row).
    """
    rows = []
    for metric, function in curves.items():
        real = condition_mean_curves(real_curves, real_index_, function, r_unit)
        gen = condition_mean_curves(gen_curves, gen_index, function, r_unit)
        real_by_label = {lab: g for lab, g in real.groupby("label")}
        for (model, mode, label), g in _groups(gen).items():
            if label not in real_by_label:
                continue
            r = real_by_label[label].sort_values("r")
            g = g.sort_values("r")
            try:
                eps = 100.0 * curve_error(
                    r["r"].to_numpy(),
                    r["mean"].to_numpy(),
                    g["mean"].to_numpy(),
                    r_range,
                    r_generated=g["r"].to_numpy(),
                )
            except ValueError:
                eps = float("nan")
            rows.append(
                dict(
                    model=model,
                    prompt_mode=mode,
                    split=g["split"].iloc[0],
                    label=label,
                    metric=metric,
                    value=eps,
                    n_real=int(r["n"].max()),
                    n_generated=int(g["n"].max()),
                    r_lo=float(r_range[0]),
                    r_hi=float(r_range[1]),
                    r_unit=r_unit,
                )
            )
    return pd.DataFrame(rows)


def descriptor_errors(
    real_rows: pd.DataFrame,
    real_index_: pd.DataFrame,
    gen_rows: pd.DataFrame,
    gen_index: pd.DataFrame,
    descriptors: Mapping[str, str] = B5_DESCRIPTORS,
) -> pd.DataFrame:
    """Real vs generated condition means of scalar descriptors (Table B5 in long form).

    Returns ``model, prompt_mode, split, label, descriptor, real_mean, real_std,
    generated_mean, generated_std, rel_error_pct, n_real, n_generated`` where
    ``rel_error_pct = 100 |G - R| / |R|`` of the means (NaN-aware: images without particles
    have NaN aspect ratio / NND and are left out of those means).
    """
    real = attach(real_rows, real_index_)
    gen = attach(gen_rows, gen_index)
    real_by_label = {lab: g for lab, g in real.groupby("label")}
    rows = []
    for (model, mode, label), g in _groups(gen).items():
        if label not in real_by_label:
            continue
        r = real_by_label[label]
        for column, name in descriptors.items():
            rv, gv = r[column].astype(float), g[column].astype(float)
            rm, gm = float(rv.mean()), float(gv.mean())
            err = 100.0 * abs(gm - rm) / abs(rm) if rm not in (0.0,) and np.isfinite(rm) else np.nan
            rows.append(
                dict(
                    model=model,
                    prompt_mode=mode,
                    split=g["split"].iloc[0],
                    label=label,
                    descriptor=name,
                    real_mean=rm,
                    real_std=float(rv.std(ddof=0)),
                    generated_mean=gm,
                    generated_std=float(gv.std(ddof=0)),
                    rel_error_pct=err,
                    n_real=int(rv.notna().sum()),
                    n_generated=int(gv.notna().sum()),
                )
            )
    return pd.DataFrame(rows)


def _set_name(model: str, mode: str) -> str:
    return model if mode == _DEFAULT else f"{model}/{mode}"


def table6(errors: pd.DataFrame) -> pd.DataFrame:
    """Wide Table 6: rows ``(split, label)``, columns ``{model}/{prompt_mode} eps_S2|eps_L``."""
    e = errors.copy()
    e["set"] = [_set_name(m, p) for m, p in zip(e["model"], e["prompt_mode"], strict=True)]
    wide = e.pivot_table(
        index=["split", "label"],
        columns=["set", "metric"],
        values="value",
        aggfunc="first",
        sort=False,
    )
    wide.columns = [f"{s} {m}" for s, m in wide.columns]
    return wide.sort_index().reset_index()


def table_b5(errors: pd.DataFrame) -> pd.DataFrame:
    """Wide Table B5 per generated set: rows ``(model, prompt_mode, split, label)``, columns
    ``{descriptor} R``, ``{descriptor} G``, ``{descriptor} error %``."""
    parts = []
    for value, suffix in (
        ("real_mean", "R"),
        ("generated_mean", "G"),
        ("rel_error_pct", "error %"),
    ):
        w = errors.pivot_table(
            index=["model", "prompt_mode", "split", "label"],
            columns="descriptor",
            values=value,
            aggfunc="first",
        )
        # A descriptor NaN throughout (µm ones when the data set has no pixel size) keeps
        # its columns: pivot_table drops all-NaN columns.
        w = w.reindex(columns=list(dict.fromkeys(errors["descriptor"])))
        w.columns = [f"{d} {suffix}" for d in w.columns]
        parts.append(w)
    wide = pd.concat(parts, axis=1)
    order = [f"{d} {s}" for d in dict.fromkeys(errors["descriptor"]) for s in ("R", "G", "error %")]
    return wide[order].sort_index().reset_index()


def write_table(
    table: pd.DataFrame,
    csv: str | Path,
    markdown: str | Path | None = None,
    floatfmt: str = ".3g",
    title: str | None = None,
) -> None:
    """Write a table as CSV and (optionally) a Markdown file (GitHub pipe table)."""
    csv = Path(csv)
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    if markdown is not None:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        text = _markdown(table, floatfmt)
        if title:
            text = f"{title}\n\n{text}"
        Path(markdown).write_text(text + "\n")


def _markdown(table: pd.DataFrame, floatfmt: str) -> str:
    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "–" if not np.isfinite(v) else format(float(v), floatfmt)
        return str(v)

    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])
