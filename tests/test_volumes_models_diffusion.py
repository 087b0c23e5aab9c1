"""Schedules, samplers and guidance of the 3D LDM against analytic ε-models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microgen.volumes.diffusion import (
    DiffusionConfig,
    guided_epsilon,
    make_scheduler,
    sample_latents,
)
from microgen.volumes.models import UNet3DConditional, UNet3DConfig

torch.set_num_threads(1)


EPS = DiffusionConfig(prediction_type="epsilon")


def test_schedule_is_the_papers_linear_one():
    for kind in ("ddpm", "ddim"):
        s = make_scheduler(kind=kind)
        assert s.config.num_train_timesteps == 1000
        assert s.config.prediction_type == "v_prediction"
        assert make_scheduler(EPS, kind).config.prediction_type == "epsilon"
        np.testing.assert_allclose(s.betas.numpy(), np.linspace(1e-4, 0.02, 1000), rtol=1e-6)
    with pytest.raises(ValueError):
        make_scheduler(kind="euler")
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusionConfig(prediction_type="sample")


def test_ddim_starts_where_ddpm_starts():
    ddim = make_scheduler(kind="ddim")
    ddim.set_timesteps(50)
    assert int(ddim.timesteps[0]) == 999 and int(ddim.timesteps[-1]) == 19


def test_v_target_matches_diffusers_velocity():
    cfg = DiffusionConfig()
    s = make_scheduler(cfg, "ddpm")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 4, 4, 4, generator=g), torch.randn(3, 2, 4, 4, 4, generator=g)
    t = torch.tensor([5, 500, 999])
    a = s.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(cfg.target(x0, noise, a), s.get_velocity(x0, noise, t))
    assert torch.equal(EPS.target(x0, noise, a), noise)


@pytest.mark.parametrize(("kind", "steps"), [("ddim", 20), ("ddpm", None)])
def test_perfect_v_oracle_recovers_x0(kind, steps):
    x0 = torch.randn(2, 2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    s = make_scheduler(kind=kind)
    acp = s.alphas_cumprod

    def v(x, t):
        a = acp[int(t)]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    out = sample_latents(v, tuple(x0.shape), s, steps, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddpm_and_ddim_share_the_x0_prediction():
    ddpm, ddim = make_scheduler(EPS, "ddpm"), make_scheduler(EPS, "ddim")
    ddpm.set_timesteps(1000)
    ddim.set_timesteps(1000)  # DDIM with steps = T visits every training timestep
    assert torch.equal(ddim.timesteps, ddpm.timesteps)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 2, 4, 4, 4, generator=g), torch.randn(2, 2, 4, 4, 4, generator=g)
    for t in (999, 500, 10):
        a = ddpm.alphas_cumprod[t]
        want = (x - (1 - a).sqrt() * eps) / a.sqrt()
        p1 = ddpm.step(eps, t, x, generator=g).pred_original_sample
        p2 = ddim.step(eps, t, x, eta=0.0).pred_original_sample
        torch.testing.assert_close(p1, want)
        torch.testing.assert_close(p2, want)


def _oracle(x0: torch.Tensor, acp: torch.Tensor):
    def eps(x, t):
        a = acp[int(t)]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize(("kind", "steps"), [("ddim", 20), ("ddim", 1000), ("ddpm", None)])
def test_perfect_eps_oracle_recovers_x0(kind, steps):
    x0 = torch.randn(2, 2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    s = make_scheduler(EPS, kind)
    out = sample_latents(
        _oracle(x0, s.alphas_cumprod), tuple(x0.shape), s, steps, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("kind", "steps", "tol"), [("ddim", 50, 0.05), ("ddpm", None, 0.05)])
def test_gaussian_data_with_exact_score_gives_the_data_distribution(kind, steps, tol):
    """x0 ~ N(m, s²): the optimal ε is analytic; both samplers must return N(m, s²)."""
    m, sd = 3.0, 0.5
    s = make_scheduler(EPS, kind)
    acp = s.alphas_cumprod

    def eps(x, t):
        a = acp[int(t)]
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * sd**2 + 1 - a)

    out = sample_latents(eps, (4000, 1, 1, 1, 1), s, steps, torch.Generator().manual_seed(1))
    assert out.mean().item() == pytest.approx(m, abs=tol)
    assert out.std().item() == pytest.approx(sd, abs=tol)


def test_sampling_is_seeded():
    s = make_scheduler(DiffusionConfig(num_train_timesteps=50, prediction_type="epsilon"), "ddpm")
    eps = lambda x, t: 0.1 * x  # noqa: E731
    a = sample_latents(eps, (2, 1, 2, 2, 2), s, None, torch.Generator().manual_seed(5))
    b = sample_latents(eps, (2, 1, 2, 2, 2), s, None, torch.Generator().manual_seed(5))
    c = sample_latents(eps, (2, 1, 2, 2, 2), s, None, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_classifier_free_guidance():
    torch.manual_seed(0)
    unet = UNet3DConditional(UNet3DConfig(in_channels=2, sample_shape=(4, 4, 4), cond_dim=3))
    with torch.no_grad():
        unet.null_context.normal_()
    unet.eval()
    x, t, c = torch.randn(3, 2, 4, 4, 4), torch.tensor([7]), torch.randn(3, 3)
    with torch.no_grad():
        cond, unc = unet(x, t, c), unet(x, t, None)
        assert torch.equal(guided_epsilon(unet, x, t, c, 1.0), cond)
        assert torch.equal(guided_epsilon(unet, x, t, c, 0.0), unc)
        torch.testing.assert_close(
            guided_epsilon(unet, x, t, c, 3.0), unc + 3.0 * (cond - unc), atol=1e-5, rtol=1e-5
        )
        # the batched two-branch path at w=1 agrees with the shortcut
        w1 = unc + 1.0 * (cond - unc)
        torch.testing.assert_close(w1, cond, atol=1e-5, rtol=1e-5)
