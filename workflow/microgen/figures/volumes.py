"""Figures of the 3D LDM evaluation (paper Figs 3/5, 4a/6b, 7); PNG + PDF via :mod:`.style`."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import gaussian_kde

from .style import plt, save

FEATURE_LABELS = {
    "vol_frac_D": "donor volume fraction (–)",
    "vol_frac_A": "acceptor volume fraction (–)",
    "vol_frac_M": "mixed volume fraction (–)",
    "ABS_f_D": "donor fraction ABS_f_D (–)",
    "CT_f_D_tort1": "donor tortuosity-1 fraction CT_f_D_tort1 (–)",
    "CT_f_A_tort1": "acceptor tortuosity-1 fraction CT_f_A_tort1 (–)",
    "phi": "blend ratio φ (–)",
    "chi": "interaction parameter χ (–)",
    "log_time": "log₁₀ annealing time (log₁₀ steps)",
}


def feature_label(name: str) -> str:
    return FEATURE_LABELS.get(name, f"{name} (–)")


def _grid(n: int, size: float = 2.8) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_target_vs_measured(
    targets: pd.DataFrame,
    measured: pd.DataFrame,
    features: Sequence[str],
    png: str | Path,
    pdf: str | Path | None = None,
    scores: pd.DataFrame | None = None,
    ylabel: str = "measured",
) -> None:
    """One panel per feature: target (x) vs measured on the generated volume (y), y = x line.

    ``scores`` (from :func:`microgen.volumes.evaluate.r2_table`) puts R² and Pearson R² in
    each title.
    """
    by = scores.set_index("feature") if scores is not None else pd.DataFrame()
    fig, axes = _grid(len(features))
    for ax, f in zip(axes, features, strict=False):
        t = pd.to_numeric(targets[f], errors="coerce").to_numpy(float)
        m = pd.to_numeric(measured[f], errors="coerce").to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(m)
        ax.scatter(t[ok], m[ok], s=6, alpha=0.5, color="#4C72B0", edgecolor="none")
        if ok.any():
            lo = float(min(t[ok].min(), m[ok].min()))
            hi = float(max(t[ok].max(), m[ok].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        s = by.loc[f] if f in by.index else None
        if s is not None:
            ax.text(
                0.03,
                0.97,
                f"R² = {s['r2']:.2f}\nPearson R² = {s['pearson_r2']:.2f}\nn = {int(s['n'])}",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
            )
        ax.set_title(textwrap.fill(feature_label(f), 30))
        ax.set_xlabel("target (–)")
        ax.set_ylabel(f"{ylabel} (–)")
    fig.tight_layout()
    save(fig, png, pdf)


def plot_diversity_kde(
    measured: pd.DataFrame,
    targets: Mapping[str, float],
    png: str | Path,
    pdf: str | Path | None = None,
) -> None:
    """KDE of each measured feature over volumes generated at one fixed input (Fig. 4a/6b).

    A dotted vertical line marks the target; the title gives mean ± std.
    """
    feats = list(targets)
    fig, axes = _grid(len(feats))
    for ax, f in zip(axes, feats, strict=False):
        v = pd.to_numeric(measured[f], errors="coerce").to_numpy(float)
        v = v[np.isfinite(v)]
        if len(v) >= 2 and v.std() > 0:
            xs = np.linspace(min(v.min(), targets[f]) - 0.05, max(v.max(), targets[f]) + 0.05, 200)
            ax.fill_between(xs, gaussian_kde(v)(xs), alpha=0.4, color="#55A868")
        elif len(v):
            ax.axvline(v[0], color="#55A868")
        ax.axvline(targets[f], color="k", ls=":", lw=1.2, label="input")
        if len(v):
            ax.set_title(f"{v.mean():.3f} ± {v.std():.3f} (n={len(v)})")
        ax.set_xlabel(feature_label(f))
        ax.set_ylabel("density (1 / feature unit)")
    fig.tight_layout()
    save(fig, png, pdf)


def plot_time_vs_batch(
    timing: pd.DataFrame, png: str | Path, pdf: str | Path | None = None
) -> None:
    """Seconds per sample vs batch size: total, denoising, decoding; min–max band (Fig. 7)."""
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    parts = [
        ("total_s_per_sample", "total", "#4C72B0"),
        ("denoise_s_per_sample", "denoising", "#C44E52"),
        ("decode_s_per_sample", "decoding", "#55A868"),
    ]
    g = timing.groupby("batch_size")
    for col, label, color in parts:
        mean, lo, hi = g[col].mean(), g[col].min(), g[col].max()
        ax.plot(mean.index, mean.values, "o-", color=color, label=label, ms=3)
        ax.fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (samples)")
    ax.set_ylabel("time per sample (s)")
    if len(timing):
        r = timing.iloc[0]
        ax.set_title(f"{r.get('sampler', '')} {r.get('steps', '')} steps on {r.get('device', '')}")
    ax.legend()
    fig.tight_layout()
    save(fig, png, pdf)


def plot_ldm_evaluation(
    r2: pd.DataFrame,
    measured: pd.DataFrame,
    diversity: pd.DataFrame,
    timing: pd.DataFrame,
    features: Sequence[str],
    out: Mapping[str, tuple[str, str]],
) -> None:
    """The three figures of the 3D LDM evaluation from the tables it wrote
    (:func:`microgen.volumes.stage.evaluate_ldm_stage`).

    ``out`` maps ``scatter``, ``diversity`` and ``timing`` to (PNG, PDF) paths. ``measured``
    and ``diversity`` hold ``{f}`` (measured) and ``target_{f}`` (requested) per feature
    and the ``sampler`` / ``steps`` that drew them; ``r2`` the scores of every sampler.
    """
    names = list(features)
    sampler, steps = measured["sampler"].iloc[0], int(measured["steps"].iloc[0])
    scores = r2[(r2["sampler"] == sampler) & (r2["steps"] == steps)]
    targets = measured[[f"target_{f}" for f in names]].set_axis(names, axis=1)
    plot_target_vs_measured(
        targets, measured[names], names, *out["scatter"], scores=scores,
        ylabel=f"measured on generated volume ({sampler})",
    )  # fmt: skip
    request = {f: float(diversity[f"target_{f}"].iloc[0]) for f in names}
    plot_diversity_kde(diversity[names], request, *out["diversity"])
    plot_time_vs_batch(timing, *out["timing"])
