"""One table of generative metrics per condition and overall, naming each number's features.

Long format, one row per (condition, metric): ``condition, metric, value, feature_extractor,
n_real, n_fake, note``. Pivot with ``df.pivot(index="condition", columns="metric",
values="value")`` for a paper table. Metric names are honest about the features: a requested
``"cmmd"`` is reported as ``cmmd`` only on CLIP features and as ``mmd_rbf`` otherwise; ``"fid"``
/``"kid"`` as ``fid``/``kid`` only on the FID Inception, else ``frechet_distance`` /
``kernel_distance``.

The ``overall`` row pools the features of all conditions for the distribution metrics; for the
paired metrics (SSIM, perceptual) it is the mean over all within-condition pairs (pairs never
cross conditions).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .clip_score import clip_score
from .cmmd import cmmd
from .features import FeatureExtractor, VGG19Features, as_gray_uint8
from .fid import fid, kid
from .lpips import PERCEPTUAL_VGG19_NAME, lpips_distance, perceptual_distance_vgg19
from .prdc import density_coverage, precision_recall
from .ssim import ssim_matrix

__all__ = ["DEFAULT_METRICS", "METRICS", "generative_metrics_table"]

DEFAULT_METRICS = ("cmmd", "kid", "fid", "precision", "recall", "ssim")
METRICS = DEFAULT_METRICS + ("density", "coverage", "perceptual_vgg19", "lpips", "clip_score")
COLUMNS = ["condition", "metric", "value", "feature_extractor", "n_real", "n_fake", "note"]


def _display_name(metric: str, extractor_name: str) -> str:
    clip = extractor_name.startswith("clip(")
    inception = extractor_name.startswith("inception-v3(fid)")
    return {
        "cmmd": "cmmd" if clip else "mmd_rbf",
        "fid": "fid" if inception else "frechet_distance",
        "kid": "kid" if inception else "kernel_distance",
    }.get(metric, metric)


def generative_metrics_table(
    real: Mapping[str, np.ndarray],
    fake: Mapping[str, np.ndarray],
    extractor: FeatureExtractor,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    k: int = 3,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pairing: str = "all",
    prompts: Mapping[str, str] | None = None,
    perceptual_extractor: VGG19Features | None = None,
    lpips_weights: str | Path | None = None,
    overall: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Generative metrics per condition (and pooled), long format.

    Parameters
    ----------
    real, fake : condition -> gray uint8 images (N, H, W); conditions present in both are used
        (a condition in only one of them is an error).
    extractor : features for the distribution metrics; its ``name`` is written to every row.
    metrics : any of :data:`METRICS`.
    k : neighbours for precision/recall (density/coverage use k + 2, i.e. 5 by default).
    pairing : SSIM/perceptual pairing, ``"all"`` or ``"index"`` (see ``_pairing``).
    prompts : condition -> prompt, needed for ``clip_score`` (extractor must be CLIPFeatures).
    perceptual_extractor : loaded VGG19Features for ``perceptual_vgg19`` (else ``extractor`` if
        it is one, else loaded on demand).
    lpips_weights : torchvision backbone file for genuine ``lpips``.

    Returns
    -------
    DataFrame with columns condition, metric, value, feature_extractor, n_real, n_fake, note
    (note holds the reason when a value is NaN, e.g. too few samples).
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {METRICS}")
    if set(real) != set(fake):
        raise ValueError(f"conditions differ: {sorted(set(real) ^ set(fake))}")
    conditions = sorted(real)
    real = {c: as_gray_uint8(real[c]) for c in conditions}
    fake = {c: as_gray_uint8(fake[c]) for c in conditions}
    dist_metrics = {"cmmd", "kid", "fid", "precision", "recall", "density", "coverage"}
    need_feats = bool(dist_metrics & set(metrics)) or "clip_score" in metrics
    feats = {c: (extractor(real[c]), extractor(fake[c])) for c in conditions} if need_feats else {}
    if "perceptual_vgg19" in metrics and perceptual_extractor is None:
        if isinstance(extractor, VGG19Features):
            perceptual_extractor = extractor
        else:
            perceptual_extractor = VGG19Features()

    rows: list[dict] = []

    def add(cond, metric, fn: Callable[[], float], feat_name, n_r, n_f):
        value, note = np.nan, ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                value = float(fn())
        except (ValueError, np.linalg.LinAlgError) as err:
            note = str(err)
        rows.append(
            dict(
                condition=cond,
                metric=_display_name(metric, feat_name),
                value=value,
                feature_extractor=feat_name,
                n_real=n_r,
                n_fake=n_f,
                note=note,
            )
        )

    def distribution_rows(cond, fr, ff, n_r, n_f):
        name = extractor.name
        cache: dict[str, tuple[float, float]] = {}

        def pr():
            if "pr" not in cache:
                cache["pr"] = precision_recall(fr, ff, k=k)
            return cache["pr"]

        def dc():
            if "dc" not in cache:
                cache["dc"] = density_coverage(fr, ff, k=k + 2)
            return cache["dc"]

        table = {
            "cmmd": lambda: cmmd(fr, ff),
            "fid": lambda: fid(fr, ff),
            "kid": lambda: kid(fr, ff, kid_subsets, kid_subset_size, seed=seed)[0],
            "precision": lambda: pr()[0],
            "recall": lambda: pr()[1],
            "density": lambda: dc()[0],
            "coverage": lambda: dc()[1],
        }
        for m in metrics:
            if m in table:
                add(cond, m, table[m], name, n_r, n_f)

    pair_sums: dict[str, list[float]] = {}
    for c in conditions:
        r, f = real[c], fake[c]
        if feats:
            distribution_rows(c, *feats[c], len(r), len(f))
        for m in metrics:
            if m == "ssim":
                mat = ssim_matrix(r, f) if pairing == "all" else None
                vals = (
                    mat.ravel()
                    if mat is not None
                    else np.array(
                        [ssim_matrix(a[None], b[None])[0, 0] for a, b in zip(r, f, strict=True)]
                    )
                )
                pair_sums.setdefault(m, []).extend(vals.tolist())
                add(c, m, vals.mean, "pixels", len(r), len(f))
            elif m == "perceptual_vgg19":
                vals = np.ravel(
                    perceptual_distance_vgg19(
                        r, f, pairing=pairing, extractor=perceptual_extractor, return_matrix=True
                    )
                )
                pair_sums.setdefault(m, []).extend(vals.tolist())
                add(c, m, vals.mean, PERCEPTUAL_VGG19_NAME, len(r), len(f))
            elif m == "lpips":
                vals = np.ravel(
                    lpips_distance(r, f, lpips_weights, pairing=pairing, return_matrix=True)
                )
                pair_sums.setdefault(m, []).extend(vals.tolist())
                add(c, m, vals.mean, "lpips-vgg16(v0.1)", len(r), len(f))
            elif m == "clip_score":
                if prompts is None or not hasattr(extractor, "encode_text"):
                    raise ValueError("clip_score needs prompts= and a CLIPFeatures extractor")
                txt = extractor.encode_text([prompts[c]])
                add(
                    c,
                    m,
                    lambda f_=feats[c][1], t_=txt: clip_score(f_, t_),
                    extractor.name,
                    len(r),
                    len(f),
                )

    if overall and len(conditions) > 1:
        n_r = sum(len(real[c]) for c in conditions)
        n_f = sum(len(fake[c]) for c in conditions)
        if feats:
            fr = np.concatenate([feats[c][0] for c in conditions])
            ff = np.concatenate([feats[c][1] for c in conditions])
            distribution_rows("overall", fr, ff, n_r, n_f)
        names = {
            "ssim": "pixels",
            "perceptual_vgg19": PERCEPTUAL_VGG19_NAME,
            "lpips": "lpips-vgg16(v0.1)",
        }
        for m in metrics:
            if m in pair_sums:
                add("overall", m, lambda m=m: np.mean(pair_sums[m]), names[m], n_r, n_f)
            elif m == "clip_score":
                vals = [r["value"] for r in rows if r["metric"] == m]
                add("overall", m, lambda v=vals: np.mean(v), extractor.name, n_r, n_f)
    return pd.DataFrame(rows, columns=COLUMNS)
