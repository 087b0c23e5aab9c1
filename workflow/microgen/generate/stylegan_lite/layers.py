"""The building blocks of stylegan-lite: equalised-learning-rate linear and convolution layers,
StyleGAN2's modulated convolution and the synthesis layers made of it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EqualConv2d",
    "EqualLinear",
    "Generators",
    "ModulatedConv2d",
    "SynthesisLayer",
    "ToRGB",
    "lrelu",
    "modulated_conv2d",
    "normalise_2nd_moment",
    "randn",
]

Generators = torch.Generator | Sequence[torch.Generator] | None


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (0.2) with the StyleGAN gain √2 that keeps activations at unit scale."""
    return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


def normalise_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's pixel norm on latent vectors)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def randn(shape: tuple[int, ...], batch: int, generator: Generators) -> torch.Tensor:
    """``(batch, *shape)`` normal noise; a list of generators draws item ``i`` from ``[i]``."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn((batch, *shape), generator=generator)
    if len(generator) != batch:
        raise ValueError(f"{len(generator)} generators for a batch of {batch}")
    return torch.stack([torch.randn(shape, generator=g) for g in generator])


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate (weights scaled at run time)."""

    def __init__(
        self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution: per-sample weights ``w · s``, optionally demodulated.

    Parameters
    ----------
    x : (B, C_in, H, W) input.
    weight : (C_out, C_in, k, k) base weight (already equalised-lr scaled).
    styles : (B, C_in) per-sample input-channel scales.
    demodulate : divide each output filter by its L2 norm, so an input with i.i.d.
        unit-variance entries gives unit-variance output per output channel.

    Returns
    -------
    (B, C_out, H, W), "same" padding.
    """
    b, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    wts = weight[None] * styles[:, None, :, None, None]  # (B, C_out, C_in, k, k)
    if demodulate:
        wts = wts * (wts.square().sum(dim=(2, 3, 4), keepdim=True) + eps).rsqrt()
    out = F.conv2d(
        x.reshape(1, b * c_in, h, w),
        wts.reshape(b * c_out, c_in, k, k),
        padding=k // 2,
        groups=b,
    )
    return out.reshape(b, c_out, h, w)


class ModulatedConv2d(nn.Module):
    """Modulated convolution whose styles come from ``w`` through a learned affine map."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        if not self.demodulate:  # toRGB: StyleGAN2 folds the weight gain into the styles
            styles = styles * self.scale
            return modulated_conv2d(x, self.weight, styles, demodulate=False)
        return modulated_conv2d(x, self.weight * self.scale, styles, demodulate=True)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv + per-pixel noise (learned strength) + bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, generator: Generators) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        noise = randn((1, *x.shape[2:]), x.shape[0], generator).to(x.dtype)
        x = x + noise * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1×1 modulated convolution to the single gray channel (no demodulation)."""

    def __init__(self, in_ch: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 1, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]
