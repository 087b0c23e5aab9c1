"""The stylegan-lite losses: non-saturating logistic GAN losses and the R1 penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["d_logistic_loss", "g_nonsaturating_loss", "r1_from_logits", "r1_penalty"]


def r1_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    continuous: torch.Tensor,
    categorical: torch.Tensor,
    gamma: float = 5.0,
) -> torch.Tensor:
    """R1 regulariser ``γ/2 · E‖∇ₓ D(x, c)‖²`` on real images (differentiable)."""
    real = real.detach().requires_grad_(True)
    return r1_from_logits(discriminator(real, continuous, categorical), real, gamma)


def r1_from_logits(logits: torch.Tensor, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 from logits already computed on ``real`` (which must require grad)."""
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.square().sum(dim=(1, 2, 3)).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``softplus(D(fake)) + softplus(−D(real))``, batch mean."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(−D(G(z)))``, batch mean."""
    return F.softplus(-fake_logits).mean()
