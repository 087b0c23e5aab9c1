"""The stylegan-lite networks: the conditional style-based generator (mapping and synthesis
networks) and the residual projection discriminator (see the package docstring)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from microgen.generate.baseline_common import ConditionEmbedder
from microgen.generate.stylegan_lite.layers import (
    EqualConv2d,
    EqualLinear,
    Generators,
    SynthesisLayer,
    ToRGB,
    lrelu,
    normalise_2nd_moment,
)

__all__ = [
    "DiscriminatorBlock",
    "MappingNetwork",
    "StyleGANLiteDiscriminator",
    "StyleGANLiteGenerator",
]


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // res, channel_max))


def _check_resolution(resolution: int) -> int:
    log2 = int(round(math.log2(resolution)))
    if resolution < 8 or 2**log2 != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return log2


# ---------------------------------------------------------------------------- generator
class MappingNetwork(nn.Module):
    """``normalise(z) ++ normalise(embed(c))`` → 8 FC layers (lr multiplier 0.01) → ``w``."""

    def __init__(
        self,
        z_dim: int,
        embed_dim: int,
        w_dim: int,
        n_continuous: int,
        category_sizes: tuple[int, ...],
        num_layers: int = 8,
        lr_mul: float = 0.01,
    ) -> None:
        super().__init__()
        self.embed = ConditionEmbedder(n_continuous, tuple(category_sizes), embed_dim)
        dims = [z_dim + embed_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul) for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: torch.Tensor, continuous: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        c = self.embed(continuous, categorical)
        x = torch.cat([normalise_2nd_moment(z), normalise_2nd_moment(c)], dim=1)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class StyleGANLiteGenerator(ModelMixin, ConfigMixin):
    """Conditional style-based generator (see the module docstring).

    Parameters
    ----------
    resolution : output side (power of two ≥ 8).
    n_continuous, category_sizes : shape of the encoded condition.
    z_dim, w_dim, embed_dim : latent, style and condition-embedding widths.
    mapping_layers : depth of the mapping network (Table B2: 8).
    channel_base, channel_max : feature maps at resolution r are
        ``min(channel_base // r, channel_max)``.
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = 128,
        n_continuous: int = 3,
        category_sizes: tuple[int, ...] = (),
        z_dim: int = 256,
        w_dim: int = 256,
        embed_dim: int = 256,
        mapping_layers: int = 8,
        channel_base: int = 8192,
        channel_max: int = 256,
    ) -> None:
        super().__init__()
        log2 = _check_resolution(resolution)
        self.mapping = MappingNetwork(
            z_dim, embed_dim, w_dim, n_continuous, tuple(category_sizes), mapping_layers
        )
        ch = [_channels(2**i, channel_base, channel_max) for i in range(2, log2 + 1)]
        self.const = nn.Parameter(torch.randn(ch[0], 4, 4))
        self.layers = nn.ModuleList([SynthesisLayer(ch[0], ch[0], w_dim)])
        self.to_rgb = nn.ModuleList([ToRGB(ch[0], w_dim)])
        for i in range(1, len(ch)):
            self.layers.append(SynthesisLayer(ch[i - 1], ch[i], w_dim, up=True))
            self.layers.append(SynthesisLayer(ch[i], ch[i], w_dim))
            self.to_rgb.append(ToRGB(ch[i], w_dim))

    def synthesis(self, w: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """Image from styles ``w`` (B, w_dim); noise inputs drawn from ``generator``."""
        b = w.shape[0]
        x = self.const[None].expand(b, -1, -1, -1)
        x = self.layers[0](x, w, generator)
        img = self.to_rgb[0](x, w)
        for i in range(1, len(self.to_rgb)):
            x = self.layers[2 * i - 1](x, w, generator)
            x = self.layers[2 * i](x, w, generator)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + self.to_rgb[i](x, w)
        return img

    def forward(
        self,
        z: torch.Tensor,
        continuous: torch.Tensor,
        categorical: torch.Tensor,
        generator: Generators = None,
        truncation: float = 1.0,
        w_center: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images (B, 1, R, R) in model range for latents ``z`` and encoded conditions.

        ``truncation`` < 1 pulls ``w`` towards ``w_center`` (default: the tracked mean w).
        """
        w = self.mapping(z, continuous, categorical)
        if truncation != 1.0:
            center = self.mapping.w_avg if w_center is None else w_center
            w = center + truncation * (w - center)
        return self.synthesis(w, generator)


# ---------------------------------------------------------------------------- discriminator
class DiscriminatorBlock(nn.Module):
    """StyleGAN2 residual block: two 3×3 convs and a 1×1 skip, average-pool downsampling."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(F.avg_pool2d(x, 2))
        x = lrelu(self.conv0(x))
        x = lrelu(self.conv1(F.avg_pool2d(x, 2)))
        return (x + y) / math.sqrt(2.0)


class StyleGANLiteDiscriminator(ModelMixin, ConfigMixin):
    """Residual projection discriminator conditioned on the encoded condition.

    Parameters
    ----------
    resolution : input side (power of two ≥ 8).
    n_continuous, category_sizes : shape of the encoded condition.
    feature_dim : width of φ(x) and of the condition embedding it is projected on.
    channel_base, channel_max : as for the generator.
    mbstd_group : minibatch-standard-deviation group size.
    """

    @register_to_config
    def __init__(
        self,
        resolution: int = 128,
        n_continuous: int = 3,
        category_sizes: tuple[int, ...] = (),
        feature_dim: int = 256,
        channel_base: int = 8192,
        channel_max: int = 256,
        mbstd_group: int = 4,
    ) -> None:
        super().__init__()
        log2 = _check_resolution(resolution)
        ch = {2**i: _channels(2**i, channel_base, channel_max) for i in range(2, log2 + 1)}
        self.from_rgb = EqualConv2d(1, ch[resolution], 1)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch[2**i], ch[2 ** (i - 1)]) for i in range(log2, 2, -1)
        )
        self.conv = EqualConv2d(ch[4] + 1, ch[4], 3)
        self.fc = EqualLinear(ch[4] * 16, feature_dim)
        self.out = EqualLinear(feature_dim, 1)
        self.embed = ConditionEmbedder(n_continuous, tuple(category_sizes), feature_dim)

    def _mbstd(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.config.mbstd_group, b)
        while b % g:
            g -= 1
        y = x.reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (b/g,)
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): (B, feature_dim)."""
        x = lrelu(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = lrelu(self.conv(self._mbstd(x)))
        return lrelu(self.fc(x.flatten(1)))

    def forward(
        self, x: torch.Tensor, continuous: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,): ``linear(φ(x)) + <embed(c), φ(x)> / √feature_dim``."""
        phi = self.features(x)
        proj = (self.embed(continuous, categorical) * phi).sum(dim=1)
        return self.out(phi)[:, 0] + proj / math.sqrt(self.config.feature_dim)
