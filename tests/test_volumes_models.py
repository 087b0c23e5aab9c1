"""Networks of the 3D LDM: shapes (paper configs), overfitting, normaliser, save/load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from microgen.volumes.models import (
    VAE3D,
    ConditionNormalizer,
    FeaturePredictor,
    FeaturePredictorConfig,
    UNet3DConditional,
    UNet3DConfig,
    VAE3DConfig,
    one_hot_phases,
    paper_vae_config,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("dataset", "shape", "latent"),
    [("ch", (128, 128, 64), (4, 8, 8, 4)), ("exp", (64, 64, 64), (1, 8, 8, 8))],
)
def test_paper_latent_shapes(dataset, shape, latent):
    cfg = paper_vae_config(dataset)
    assert tuple(cfg.volume_shape) == shape
    assert cfg.latent_shape == latent
    # Same stages, narrow channels: a cheap real forward at the full input size.
    vae = VAE3D(replace(cfg, base_channels=2, n_res_blocks=0)).eval()
    x = torch.randint(0, 3, (1, *shape), dtype=torch.uint8)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        assert tuple(mu.shape) == (1, *latent)
        assert logvar.shape == mu.shape
        assert tuple(vae.decode(mu).shape) == (1, 3, *shape)


def test_default_vae_is_tiny_and_consistent():
    cfg = VAE3DConfig()
    assert cfg.volume_shape == (32, 32, 32) and cfg.latent_shape == (2, 4, 4, 4)
    vae = VAE3D(cfg)
    assert sum(p.numel() for p in vae.parameters()) < 500_000
    out = vae(torch.randint(0, 3, (2, 32, 32, 32)))
    assert tuple(out.logits.shape) == (2, 3, 32, 32, 32)
    assert tuple(out.z.shape) == (2, 2, 4, 4, 4)
    with pytest.raises(ValueError, match="divisible"):
        VAE3D(VAE3DConfig(volume_shape=(30, 32, 32)))


def test_scalar_input_mode_and_one_hot():
    vae = VAE3D(VAE3DConfig(input_mode="scalar", volume_shape=(16, 16, 16), channel_mults=(1,)))
    x = torch.tensor([[[[0, 1, 2]]]]).expand(1, 16, 16, 3)
    assert vae.prepare_input(x).shape[1] == 1
    assert torch.equal(vae.prepare_input(x)[0, 0, 0, 0], torch.tensor([0.0, 0.5, 1.0]))
    oh = one_hot_phases(x, 3)
    assert oh.shape == (1, 3, 16, 16, 3) and torch.all(oh.sum(1) == 1)
    with pytest.raises(ValueError):
        one_hot_phases(x, 2)


def _blobs(n: int, shape=(16, 16, 16), seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    vols = []
    for i in range(n):
        f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5 + i % 2, mode="wrap")
        lo, hi = np.quantile(f, [0.35, 0.6])
        vols.append(np.where(f < lo, 0, np.where(f < hi, 2, 1)).astype(np.uint8))
    return torch.from_numpy(np.stack(vols))


def test_tiny_vae_overfits_a_few_volumes():
    torch.manual_seed(0)
    x = _blobs(4)
    cfg = VAE3DConfig(volume_shape=(16, 16, 16), channel_mults=(1,), latent_channels=4, loss="ce")
    vae = VAE3D(cfg)
    vae.eval()
    before = (vae.reconstruct(x) == x).float().mean().item()
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), 5e-3)
    for _ in range(80):
        loss = vae.loss(x, vae(x))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval()
    acc = (vae.reconstruct(x) == x).float().mean().item()
    assert before < 0.6
    assert acc > 0.9, acc


def test_vae_loss_terms():
    vae = VAE3D(VAE3DConfig(volume_shape=(16, 16, 16), channel_mults=(1,)))
    x = _blobs(2)
    out = vae(x, sample=False)
    parts = vae.loss(x, out)
    assert torch.isclose(parts["loss"], parts["recon"] + 1e-6 * parts["kl"])
    # KL of a standard-normal posterior is zero.
    zero = torch.zeros_like(out.mu)
    assert vae.loss(x, replace(out, mu=zero, logvar=zero))["kl"].item() == pytest.approx(0.0)


def test_condition_normalizer_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(3, 2, 50), "b": rng.uniform(0, 1, 50), "c": 1.0})
    norm = ConditionNormalizer.fit(df, ["a", "b", "c"])
    z = norm.transform(df)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1, atol=1e-5)
    assert norm.scale[2] == 1.0  # constant column
    np.testing.assert_allclose(norm.inverse_transform(z), df[["a", "b", "c"]], rtol=1e-5)
    loaded = ConditionNormalizer.load(norm.save(tmp_path / "n.json"))
    assert loaded == norm
    np.testing.assert_array_equal(loaded.transform(df), z)
    mm = ConditionNormalizer.fit(df, ["a", "b"], method="minmax").transform(df)
    assert mm.min() == pytest.approx(-1) and mm.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="NaN"):
        ConditionNormalizer.fit(pd.DataFrame({"a": [1.0, np.nan]}), ["a"])
    with pytest.raises(KeyError):
        norm.transform(df[["a"]])


@pytest.mark.parametrize("scale_shift", [False, True])
def test_unet_context_null_and_odd_latent(scale_shift):
    cfg = UNet3DConfig(
        in_channels=4, sample_shape=(8, 8, 4), cond_dim=3, channel_mults=(1, 2, 2),
        scale_shift=scale_shift,
    )  # fmt: skip
    unet = UNet3DConditional(cfg).eval()
    x, t, c = torch.randn(2, 4, 8, 8, 4), torch.tensor([1, 500]), torch.randn(2, 3)
    with torch.no_grad():
        eps = unet(x, t, c)
        assert eps.shape == x.shape
        unc = unet(x, t, None)
        mixed = unet(x, t, c, torch.tensor([True, False]))
    torch.testing.assert_close(mixed[0], eps[0])
    torch.testing.assert_close(mixed[1], unc[1])
    assert not torch.allclose(eps, unc)  # the context changes the prediction
    assert unet.null_context.requires_grad


def test_scale_shift_block_is_the_adm_formula():
    """With ``scale_shift`` a block computes ``norm2(h) * (1 + s) + b`` (s, b: the two halves
    of the embedding's projection); with that projection zeroed it is the additive block."""
    from torch.nn import functional as F

    from microgen.volumes.models import _EmbResBlock3D

    torch.manual_seed(0)
    film = _EmbResBlock3D(4, 8, 16, 0.0, scale_shift=True).eval()
    plain = _EmbResBlock3D(4, 8, 16, 0.0, scale_shift=False).eval()
    shared = {k: v for k, v in film.state_dict().items() if not k.startswith("emb.")}
    plain.load_state_dict(shared, strict=False)
    x, emb = torch.randn(2, 4, 4, 4, 4), torch.randn(2, 16)
    with torch.no_grad():
        h = film.conv1(F.silu(film.norm1(x)))
        s, b = film.emb(F.silu(emb)).chunk(2, dim=1)
        h = film.norm2(h) * (1 + s[..., None, None, None]) + b[..., None, None, None]
        torch.testing.assert_close(film(x, emb), film.skip(x) + film.conv2(F.silu(h)))
        assert not torch.allclose(film(x, emb), film(x, -emb))  # the embedding matters
        for block in (film, plain):
            block.emb.weight.zero_()
            block.emb.bias.zero_()
        torch.testing.assert_close(film(x, emb), plain(x, emb), rtol=0, atol=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: VAE3D(VAE3DConfig(volume_shape=(16, 16, 16), channel_mults=(1, 2))),
        lambda: FeaturePredictor(FeaturePredictorConfig(in_features=32, hidden=(16, 8))),
        lambda: UNet3DConditional(UNet3DConfig(in_channels=2, sample_shape=(4, 4, 4))),
        lambda: UNet3DConditional(
            UNet3DConfig(in_channels=2, sample_shape=(4, 4, 4), scale_shift=True)
        ),
    ],
)
def test_save_from_pretrained_identical_outputs(tmp_path, build):
    torch.manual_seed(1)
    model = build().eval()
    # Perturb away from the deterministic init so a no-op load would fail.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    if isinstance(model, VAE3D):
        args = (torch.randint(0, 3, (2, 16, 16, 16)),)
        f = lambda m, a: m(*a, sample=False).logits  # noqa: E731
    elif isinstance(model, FeaturePredictor):
        args = (torch.randn(3, 2, 2, 2, 4),)
        f = lambda m, a: m(*a)  # noqa: E731
    else:
        args = (torch.randn(2, 2, 4, 4, 4), torch.tensor([3, 9]), torch.randn(2, 4))
        f = lambda m, a: m(*a)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(f(loaded, args), f(model, args), rtol=0, atol=0)
    other = UNet3DConditional if not isinstance(model, UNet3DConditional) else VAE3D
    with pytest.raises(ValueError, match="holds a"):
        other.from_pretrained(tmp_path / "m")


def test_vae_norm_options():
    assert VAE3DConfig().norm == "batch"
    x = torch.randint(0, 2, (2, 16, 16, 16))
    kinds = {"batch": torch.nn.BatchNorm3d, "instance": torch.nn.InstanceNorm3d, "none": None}
    for norm, layer in kinds.items():
        cfg = VAE3DConfig(n_phases=2, volume_shape=(16, 16, 16), channel_mults=(1, 2), norm=norm)
        vae = VAE3D(cfg).eval()
        found = {type(m) for m in vae.modules()}
        assert (layer in found) if layer else not (found & set(v for v in kinds.values() if v))
        assert tuple(vae.decode(vae.encode(x)[0]).shape) == (2, 2, 16, 16, 16)
    with pytest.raises(ValueError, match="norm"):
        VAE3D(VAE3DConfig(norm="layer"))
