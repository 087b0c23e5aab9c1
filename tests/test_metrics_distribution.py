"""Distribution metrics on synthetic features: CMMD, FID/KID (vs torchmetrics), PR, CLIP score."""

from __future__ import annotations

import numpy as np
import pytest

from microgen.metrics import (
    clip_score,
    cmmd,
    density_coverage,
    fid,
    kid,
    mmd_rbf,
    precision_recall,
    tsne_embedding,
)


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 16)), rng.normal(size=(30, 16))


def _mmd_double_loop(x, y, sigma):
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return kxx + kyy - 2 * kxy


def test_cmmd_self_is_zero(feats):
    x, _ = feats
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-12)


def test_cmmd_matches_double_loop(feats):
    x, y = feats
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert cmmd(x, y) == pytest.approx(1000 * _mmd_double_loop(xn, yn, 10.0), rel=1e-9)
    # unnormalised kernel with another bandwidth
    assert mmd_rbf(x, y, sigma=3.0) == pytest.approx(_mmd_double_loop(x, y, 3.0), rel=1e-9)


def test_cmmd_grows_with_mean_shift(feats):
    x, _ = feats
    vals = [cmmd(x, x + s, normalize=False) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert vals[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False))
    # normalised (reference) variant: shift along a direction rotates the embeddings
    shift = np.zeros(x.shape[1])
    shift[0] = 1.0
    vals = [cmmd(x, x + s * shift) for s in (0.0, 1.0, 3.0, 10.0)]
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False))


def test_fid_identical_is_zero(feats):
    x, _ = feats
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_and_kid_agree_with_torchmetrics(feats):
    torch = pytest.importorskip("torch")
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    x, y = feats
    y = 1.3 * y + 0.4
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ref = tm_fid._compute_fid(tx.mean(0), torch.cov(tx.T), ty.mean(0), torch.cov(ty.T))
    assert fid(x, y) == pytest.approx(float(ref), rel=1e-6)
    # one subset of the full sets is permutation-free, so the values must match exactly
    ref_kid = tm_kid.poly_mmd(tx[:30], ty, degree=3)
    mean, std = kid(x[:30], y, subsets=3, subset_size=30)
    assert mean == pytest.approx(float(ref_kid), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_same_distribution():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    mean, _ = kid(x, y, subsets=10, subset_size=100)
    far, _ = kid(x, y + 2.0, subsets=10, subset_size=100)
    assert abs(mean) < 0.05 < far


def test_precision_recall_identical_and_disjoint(feats):
    x, _ = feats
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)
    d, c = density_coverage(x, x + 100.0)
    assert d == 0.0 and c == 0.0


def test_precision_recall_mode_collapse():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(200, 4))
    fake = 0.1 * rng.normal(size=(200, 4))  # collapsed onto the mode: faithful, not diverse
    p, r = precision_recall(real, fake, k=3)
    assert p > 0.9 and r < 0.3


def test_clip_score_formula():
    img = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    txt = np.array([[1.0, 0.0]])
    assert clip_score(img, txt) == pytest.approx(100 * (1 + 0 + 0) / 3)
    assert clip_score(img, txt, scale=1.0) == pytest.approx(1 / 3)


def test_tsne_deterministic(feats):
    x, y = feats
    f = np.concatenate([x[:10], y[:10] + 3])
    labels = ["real"] * 10 + ["generated"] * 10
    e1, e2 = tsne_embedding(f, labels, seed=0), tsne_embedding(f, labels, seed=0)
    assert e1.shape == (20, 2) and np.allclose(e1, e2)
