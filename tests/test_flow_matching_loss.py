"""The SD3 loss options against their algebra: preconditioning weights the velocity error by
σ², and the σ⁻² weighting undoes it."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from microgen.generate.common import flow_matching_loss


class FixedVelocity(torch.nn.Module):
    """A stand-in transformer whose prediction does not depend on its input."""

    def __init__(self, shape):
        super().__init__()
        self.v = torch.randn(shape, generator=torch.Generator().manual_seed(7))

    def forward(self, hidden_states, **_):
        return (self.v,)


@pytest.fixture
def setup():
    latents = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return latents, scheduler, FixedVelocity(latents.shape)


def _loss(setup, **kw):
    latents, scheduler, net = setup
    gen = torch.Generator().manual_seed(0)
    return flow_matching_loss(net, latents, None, None, scheduler, gen, per_sample=True, **kw)


def _sigmas(setup, scheme):
    from diffusers.training_utils import compute_density_for_timestep_sampling

    latents, scheduler, _ = setup
    gen = torch.Generator().manual_seed(0)
    u = compute_density_for_timestep_sampling(scheme, len(latents), 0.0, 1.0, 1.29, generator=gen)
    n = scheduler.config.num_train_timesteps
    return scheduler.sigmas[(u * n).long().clamp(0, n - 1)]


def test_preconditioned_error_is_sigma_squared_times_the_velocity_error(setup):
    # x0 estimate z_t - σ v minus x0 is σ (ε - x0 - v): the same error, times σ.
    plain = _loss(setup)
    preconditioned = _loss(setup, precondition_outputs=True)
    sigma = _sigmas(setup, "logit_normal")
    torch.testing.assert_close(preconditioned, sigma**2 * plain, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(preconditioned, plain)


def test_sigma_sqrt_weighting_undoes_preconditioning(setup):
    # Both draw t uniformly; σ⁻² · σ² · error = error.
    uniform_velocity = _loss(setup, weighting_scheme="uniform")
    weighted = _loss(setup, weighting_scheme="sigma_sqrt", precondition_outputs=True)
    torch.testing.assert_close(weighted, uniform_velocity, rtol=1e-4, atol=1e-6)


def test_unknown_weighting_scheme_is_refused(setup):
    with pytest.raises(ValueError, match="weighting_scheme"):
        _loss(setup, weighting_scheme="edm")
