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
from dataclasses import dataclass
from functools import partial
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
DISTRIBUTION_METRICS = {"cmmd", "kid", "fid", "precision", "recall", "density", "coverage"}
#: Paired metrics and the features their rows name.
PAIRED_FEATURES = {
    "ssim": "pixels",
    "perceptual_vgg19": PERCEPTUAL_VGG19_NAME,
    "lpips": "lpips-vgg16(v0.1)",
}


def _display_name(metric: str, extractor_name: str) -> str:
    clip = extractor_name.startswith("clip(")
    inception = extractor_name.startswith("inception-v3(fid)")
    return {
        "cmmd": "cmmd" if clip else "mmd_rbf",
        "fid": "fid" if inception else "frechet_distance",
        "kid": "kid" if inception else "kernel_distance",
    }.get(metric, metric)


def _add_row(
    rows: list[dict],
    cond: str,
    metric: str,
    fn: Callable[[], float],
    feat_name: str,
    n_r: int,
    n_f: int,
) -> None:
    """Append the row of ``metric``; a value ``fn`` cannot compute is NaN with the reason."""
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


@dataclass(frozen=True)
class _DistributionMetrics:
    """The requested distribution metrics with their settings, for one features name."""

    metrics: Sequence[str]
    name: str
    k: int
    kid_subsets: int
    kid_subset_size: int
    seed: int

    def add_rows(
        self, rows: list[dict], cond: str, fr: np.ndarray, ff: np.ndarray, n_r: int, n_f: int
    ) -> None:
        """Append one row per requested metric for real / fake features ``fr`` / ``ff``."""
        cache: dict[str, tuple[float, float]] = {}

        def pr():
            if "pr" not in cache:
                cache["pr"] = precision_recall(fr, ff, k=self.k)
            return cache["pr"]

        def dc():
            if "dc" not in cache:
                cache["dc"] = density_coverage(fr, ff, k=self.k + 2)
            return cache["dc"]

        table = {
            "cmmd": lambda: cmmd(fr, ff),
            "fid": lambda: fid(fr, ff),
            "kid": lambda: kid(fr, ff, self.kid_subsets, self.kid_subset_size, seed=self.seed)[0],
            "precision": lambda: pr()[0],
            "recall": lambda: pr()[1],
            "density": lambda: dc()[0],
            "coverage": lambda: dc()[1],
        }
        for m in self.metrics:
            if m in table:
                _add_row(rows, cond, m, table[m], self.name, n_r, n_f)


def _paired_values(
    metric: str,
    r: np.ndarray,
    f: np.ndarray,
    pairing: str,
    perceptual_extractor: VGG19Features | None,
    lpips_weights: str | Path | None,
) -> np.ndarray:
    """The values of a paired metric (a key of :data:`PAIRED_FEATURES`) over one condition's
    pairs, flat."""
    if metric == "ssim":
        if pairing == "all":
            return ssim_matrix(r, f).ravel()
        return np.array([ssim_matrix(a[None], b[None])[0, 0] for a, b in zip(r, f, strict=True)])
    if metric == "perceptual_vgg19":
        return np.ravel(
            perceptual_distance_vgg19(
                r, f, pairing=pairing, extractor=perceptual_extractor, return_matrix=True
            )
        )
    return np.ravel(lpips_distance(r, f, lpips_weights, pairing=pairing, return_matrix=True))


def _add_overall_rows(
    rows: list[dict],
    metrics: Sequence[str],
    feats: Mapping[str, tuple[np.ndarray, np.ndarray]],
    pair_values: Mapping[str, list[float]],
    distribution: _DistributionMetrics,
    counts: tuple[int, int],
) -> None:
    """Append the ``overall`` rows: distribution metrics on the pooled features, paired metrics
    and CLIP score as the mean over every condition's values."""
    n_r, n_f = counts
    if feats:
        fr = np.concatenate([real_f for real_f, _ in feats.values()])
        ff = np.concatenate([fake_f for _, fake_f in feats.values()])
        distribution.add_rows(rows, "overall", fr, ff, n_r, n_f)
    for m in metrics:
        if m in pair_values:
            pooled = pair_values[m]
            _add_row(rows, "overall", m, lambda v=pooled: np.mean(v), PAIRED_FEATURES[m], n_r, n_f)
        elif m == "clip_score":
            vals = [r["value"] for r in rows if r["metric"] == m]
            _add_row(rows, "overall", m, lambda v=vals: np.mean(v), distribution.name, n_r, n_f)


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
    need_feats = bool(DISTRIBUTION_METRICS & set(metrics)) or "clip_score" in metrics
    feats = {c: (extractor(real[c]), extractor(fake[c])) for c in conditions} if need_feats else {}
    if "perceptual_vgg19" in metrics and perceptual_extractor is None:
        if isinstance(extractor, VGG19Features):
            perceptual_extractor = extractor
        else:
            perceptual_extractor = VGG19Features()
    distribution = _DistributionMetrics(
        metrics, extractor.name, k, kid_subsets, kid_subset_size, seed
    )

    rows: list[dict] = []
    pair_values: dict[str, list[float]] = {}
    for c in conditions:
        r, f = real[c], fake[c]
        if feats:
            distribution.add_rows(rows, c, *feats[c], len(r), len(f))
        for m in metrics:
            if m in PAIRED_FEATURES:
                vals = _paired_values(m, r, f, pairing, perceptual_extractor, lpips_weights)
                pair_values.setdefault(m, []).extend(vals.tolist())
                _add_row(rows, c, m, vals.mean, PAIRED_FEATURES[m], len(r), len(f))
            elif m == "clip_score":
                if prompts is None or not hasattr(extractor, "encode_text"):
                    raise ValueError("clip_score needs prompts= and a CLIPFeatures extractor")
                txt = extractor.encode_text([prompts[c]])
                score = partial(clip_score, feats[c][1], txt)
                _add_row(rows, c, m, score, extractor.name, len(r), len(f))

    if overall and len(conditions) > 1:
        counts = (sum(len(real[c]) for c in conditions), sum(len(fake[c]) for c in conditions))
        _add_overall_rows(rows, metrics, feats, pair_values, distribution, counts)
    return pd.DataFrame(rows, columns=COLUMNS)
