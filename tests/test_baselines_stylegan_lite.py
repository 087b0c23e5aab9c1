"""stylegan-lite baseline: demodulation, R1, mapping depth, persistence, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from baselines_data import BRIGHT, DARK, make_two_condition_set
from conftest import SCHEMA

from microgen.generate.stylegan_lite.layers import EqualLinear, modulated_conv2d
from microgen.generate.stylegan_lite.losses import r1_penalty
from microgen.generate.stylegan_lite.models import StyleGANLiteDiscriminator, StyleGANLiteGenerator
from microgen.generate.stylegan_lite.sample import StyleGANLite, sample_stylegan_lite
from microgen.generate.stylegan_lite.train import train_stylegan_lite

G_TINY = dict(z_dim=16, w_dim=16, embed_dim=16, channel_base=128, channel_max=16)
D_TINY = dict(feature_dim=16, channel_base=128, channel_max=16)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_demodulation_gives_unit_variance_per_output_channel():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 48, 48, generator=gen)
    weight = torch.randn(8, 32, 3, 3, generator=gen) * 5.0
    styles = torch.randn(2, 32, generator=gen) * 3.0 + 1.0
    out = modulated_conv2d(x, weight, styles, demodulate=True)[..., 1:-1, 1:-1]
    var = out.var(dim=(2, 3))  # (batch, out channel), interior pixels (no zero padding)
    torch.testing.assert_close(var, torch.ones_like(var), atol=0.12, rtol=0)
    raw = modulated_conv2d(x, weight, styles, demodulate=False)[..., 1:-1, 1:-1]
    assert raw.var(dim=(2, 3)).min() > 10  # without demodulation the scale is arbitrary


def test_modulated_conv_equals_per_sample_conv():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 6, 6, generator=gen)
    weight = torch.randn(5, 4, 3, 3, generator=gen)
    styles = torch.randn(3, 4, generator=gen)
    out = modulated_conv2d(x, weight, styles, demodulate=False)
    for i in range(3):
        ref = torch.nn.functional.conv2d(
            x[i : i + 1], weight * styles[i][None, :, None, None], padding=1
        )
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=1e-5)


class _Quadratic(torch.nn.Module):
    """D(x) = Σ a·x²: ∇D = 2 a x, so R1 = γ/2 · mean_b Σ (2 a x)²."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a

    def forward(self, x, continuous, categorical):
        return (self.a * x.square()).sum(dim=(1, 2, 3))


def test_r1_matches_hand_gradient():
    gen = torch.Generator().manual_seed(2)
    a = torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    got = r1_penalty(_Quadratic(a), x, torch.zeros(3, 0), torch.zeros(3, 0, dtype=torch.long), 5.0)
    want = 2.5 * (2 * a * x).square().sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(got, want)


def test_r1_matches_finite_differences_on_tiny_discriminator():
    torch.manual_seed(0)
    D = StyleGANLiteDiscriminator(resolution=8, n_continuous=3, category_sizes=(4, 7), **D_TINY)
    D = D.double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    cont = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    cat = torch.tensor([[0, 1], [3, 6]])
    got = r1_penalty(D, x, cont, cat, gamma=5.0)
    grad = torch.zeros_like(x)
    h = 1e-6
    with torch.no_grad():
        flat = x.reshape(-1)
        for i in range(flat.numel()):
            plus, minus = flat.clone(), flat.clone()
            plus[i] += h
            minus[i] -= h
            f_plus = D(plus.reshape(x.shape), cont, cat).sum()
            f_minus = D(minus.reshape(x.shape), cont, cat).sum()
            grad.view(-1)[i] = (f_plus - f_minus) / (2 * h)
    want = 2.5 * grad.square().sum(dim=(1, 2, 3)).mean()
    assert float(want) > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)


def test_mapping_network_has_eight_layers_and_conditions_w():
    torch.manual_seed(0)
    G = StyleGANLiteGenerator(resolution=16, n_continuous=3, category_sizes=(4, 7), **G_TINY)
    linears = [m for m in G.mapping.layers if isinstance(m, EqualLinear)]
    assert len(G.mapping.layers) == len(linears) == 8
    assert StyleGANLiteGenerator(resolution=8, n_continuous=1).config.mapping_layers == 8
    z = torch.randn(2, 16)
    w_a = G.mapping(z, torch.zeros(2, 3), torch.tensor([[0, 0], [0, 0]]))
    w_b = G.mapping(z, torch.zeros(2, 3), torch.tensor([[1, 2], [1, 2]]))
    assert w_a.shape == (2, 16) and not torch.allclose(w_a, w_b)
    assert G(z, torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long)).shape == (2, 1, 16, 16)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, schema):
    root = tmp_path_factory.mktemp("gan")
    data_dir, split_csv = make_two_condition_set(root, schema, per_condition=4)
    return data_dir, split_csv


def _train(data_dir, split_csv, out, steps, **kw):
    torch.set_num_threads(1)
    return train_stylegan_lite(
        data_dir,
        split_csv,
        SCHEMA,
        out,
        resolution=16,
        steps=steps,
        batch_size=4,
        seed=5,
        r1_interval=2,
        log_every=1,
        generator_kwargs=G_TINY,
        discriminator_kwargs=D_TINY,
        progress=False,
        **kw,
    )


def test_resume_equals_uninterrupted(tiny_run, tmp_path):
    data_dir, split_csv = tiny_run
    kw = dict(checkpoint_every=3, continuable=True)
    full = _train(data_dir, split_csv, tmp_path / "full", 6, **kw)
    part = tmp_path / "part"
    _train(data_dir, split_csv, part, 3, **kw)
    assert (part / "checkpoints" / "step-0000003" / "training_state.json").is_file()
    _train(data_dir, split_csv, part, 6, **kw)
    for sub in ("generator", "discriminator"):
        cls = StyleGANLiteGenerator if sub == "generator" else StyleGANLiteDiscriminator
        a = cls.from_pretrained(full / sub).state_dict()
        b = cls.from_pretrained(part / sub).state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=f"{sub}.{k}")
    la, lb = pd.read_csv(full / "train_log.csv"), pd.read_csv(part / "train_log.csv")
    assert list(la["step"]) == list(lb["step"]) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(la[["loss_d", "loss_g", "r1"]], lb[["loss_d", "loss_g", "r1"]])
    assert la["r1"].notna().all() and (la["r1"] > 0).all()


def test_save_load_same_samples_for_same_seed(tiny_run, tmp_path):
    data_dir, split_csv = tiny_run
    model_dir = _train(data_dir, split_csv, tmp_path / "m", 2, checkpoint_every=2)
    conds, seeds = [DARK, BRIGHT, DARK], [11, 12, 13]
    a = sample_stylegan_lite(model_dir, conds, seeds, batch_size=3)
    StyleGANLite.from_pretrained(model_dir).save_pretrained(tmp_path / "copy")
    b = sample_stylegan_lite(tmp_path / "copy", conds, seeds, batch_size=1)
    for x, y in zip(a, b, strict=True):
        assert x.shape == (16, 16) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[2])
    t = sample_stylegan_lite(model_dir, conds, seeds, truncation=0.5)
    assert not np.array_equal(t[0], a[0])
    with pytest.raises(ValueError, match="unknown category"):
        sample_stylegan_lite(model_dir, [{**DARK, "microconstituent": "bainite"}], [0])


def test_a_rerun_of_a_finished_run_exports_the_same_model(tiny_run, tmp_path):
    data_dir, split_csv = tiny_run
    out = _train(data_dir, split_csv, tmp_path / "m", 4, checkpoint_every=2)
    last = out / "checkpoints" / "step-0000004"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [last.name]
    assert sorted(p.name for p in last.iterdir()) == ["model", "train_log.csv"]
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    files = [f for f in files if f.parts[0] != "checkpoints"]
    before = {f: (out / f).read_bytes() for f in files}
    assert {"generator", "discriminator", "condition_encoder.json", "train_log.csv"} <= {
        f.parts[0] for f in files
    }
    for f in files:  # what the workflow deletes, and more
        (out / f).unlink()
    _train(data_dir, split_csv, out, 4, checkpoint_every=2)
    assert {f: (out / f).read_bytes() for f in files} == before
    with pytest.raises(ValueError, match="finished run.*delete"):
        _train(data_dir, split_csv, out, 6, checkpoint_every=2)
