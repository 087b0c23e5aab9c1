"""Paired metrics (SSIM, LPIPS, LPIPS-style VGG-19) and the per-condition metrics table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microgen.metrics import (
    ExternalEncoderFeatures,
    WeightsNotFoundError,
    generative_metrics_table,
    lpips_distance,
    ssim_matrix,
    ssim_paired,
)


@pytest.fixture
def imgs():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), rng.integers(
        0, 256, (2, 32, 32), dtype=np.uint8
    )


def test_ssim_identical_is_one_and_pairing_rules(imgs):
    a, b = imgs
    assert ssim_paired(a, a, pairing="index") == pytest.approx(1.0)
    m = ssim_matrix(a, b)
    assert m.shape == (3, 2)
    assert ssim_paired(a, b) == pytest.approx(m.mean())
    assert ssim_paired(a, a) < 1.0  # "all" also compares different images of the set
    with pytest.raises(ValueError, match="equal counts"):
        ssim_paired(a, b, pairing="index")


def test_lpips_without_backbone_raises_clear_error(imgs):
    a, b = imgs
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        lpips_distance(a, b)


def test_lpips_matches_lpips_package_given_same_backbone(imgs, tmp_path):
    """Our batched all-pairs LPIPS equals lpips.LPIPS.forward for the same (here random)
    backbone; with verify=True the random file is rejected by its hash."""
    lpips = pytest.importorskip("lpips")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    feats = torchvision.models.alexnet().features  # AlexNet: same code path, 5x cheaper
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    with pytest.raises(ValueError, match="sha256"):
        lpips_distance(*imgs, backbone_weights=path, net="alex")
    a, b = imgs
    ours = lpips_distance(
        a, b, backbone_weights=path, net="alex", verify=False, device="cpu", return_matrix=True
    )
    ref_model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    ref_model.net.load_state_dict(
        {k: v for k, v in zip(ref_model.net.state_dict(), feats.state_dict().values(), strict=True)}
    )

    def t(x):
        return torch.from_numpy(x).float().div(127.5).sub(1).unsqueeze(1).expand(-1, 3, -1, -1)

    with torch.no_grad():
        ref = np.array([[float(ref_model(t(r[None]), t(f[None]))) for f in b] for r in a])
    assert ours.shape == (3, 2)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    idx = lpips_distance(
        a[:2],
        b,
        backbone_weights=path,
        net="alex",
        verify=False,
        pairing="index",
        device="cpu",
        return_matrix=True,
    )
    np.testing.assert_allclose(idx, np.diag(ref[:2]), rtol=1e-4, atol=1e-6)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_metrics_table_per_condition_and_overall():
    rng = np.random.default_rng(3)
    real = {c: rng.integers(0, 256, (6, 24, 24), dtype=np.uint8) for c in ("A", "B")}
    fake = {"A": real["A"].copy(), "B": 255 - real["B"]}
    ext = ExternalEncoderFeatures(_Toy(), "toy-encoder", device="cpu")
    df = generative_metrics_table(
        real,
        fake,
        ext,
        metrics=("cmmd", "fid", "kid", "precision", "recall", "ssim"),
        kid_subsets=2,
        kid_subset_size=6,
    )
    assert list(df.columns) == [
        "condition",
        "metric",
        "value",
        "feature_extractor",
        "n_real",
        "n_fake",
        "note",
    ]
    assert set(df.condition) == {"A", "B", "overall"}
    # honest names: CMMD/FID/KID only on CLIP/Inception features
    assert set(df.metric) == {
        "mmd_rbf",
        "frechet_distance",
        "kernel_distance",
        "precision",
        "recall",
        "ssim",
    }
    v = df.set_index(["condition", "metric"])["value"]
    fe = df.set_index(["condition", "metric"])["feature_extractor"]
    assert fe["A", "mmd_rbf"] == "toy-encoder" and fe["A", "ssim"] == "pixels"
    assert v["A", "mmd_rbf"] == pytest.approx(0.0, abs=1e-9)
    assert v["A", "precision"] == 1.0 and v["A", "recall"] == 1.0
    assert v["B", "mmd_rbf"] > v["overall", "mmd_rbf"] > 0
    assert v["overall", "ssim"] == pytest.approx((v["A", "ssim"] + v["B", "ssim"]) / 2)
    assert df.loc[df.metric == "frechet_distance", "value"].notna().all()
    with pytest.raises(ValueError, match="conditions differ"):
        generative_metrics_table(real, {"A": fake["A"]}, ext)
