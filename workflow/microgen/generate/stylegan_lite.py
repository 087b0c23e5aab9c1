"""``stylegan-lite``: a small conditional style-based GAN baseline (paper Table B2).

The paper's GAN baseline is StyleGAN3. This is *not* StyleGAN3 (no alias-free filtered
layers, no Fourier-feature input): it is a compact StyleGAN2-style generator, named for
what it is, trained with the paper's Table B2 hyperparameters.

Generator
    Mapping network: 8 fully connected layers (equalised learning rate, lr multiplier
    0.01, leaky ReLU) from ``normalise(z) ++ normalise(embed(condition))`` to ``w``, where
    ``embed`` is a :class:`~microgen.generate.common.ConditionEmbedder` (MLP of the
    normalised continuous variables + one embedding table per categorical variable).
    Synthesis network: a learned 4×4 constant, then per resolution 8, 16, …, R a block of
    bilinear ×2 upsampling and two 3×3 modulated convolutions with weight demodulation
    (StyleGAN2), per-pixel noise inputs with learned strengths, bias and leaky ReLU; a
    1×1 modulated ``toRGB`` (no demodulation) per resolution summed over upsampled
    outputs (the StyleGAN2 "skip" generator: the image grows progressively to R). Every
    layer gets the same ``w`` (no style mixing). A running mean of ``w`` is tracked.
Discriminator
    StyleGAN2 residual discriminator (fromRGB, residual blocks with average-pool
    downsampling to 4×4, minibatch standard deviation, conv, FC) producing features
    φ(x); the output is ``linear(φ) + <embed(condition), φ>`` (projection discriminator,
    Miyato & Koyama 2018).
Training
    Non-saturating logistic loss; R1 on real images with γ = 5, applied *lazily* every
    ``r1_interval`` (16) discriminator steps and scaled by that interval (as StyleGAN2; set
    ``r1_interval=1`` for every step); Adam with β = (0, 0.99), generator lr 0.0015,
    discriminator lr 0.0001, batch 12 (Table B2); horizontal flips; an exponential moving
    average of the generator weights (β 0.999) is what is saved and sampled. No path
    length regularisation, no adaptive augmentation.

Layout of a model directory::

    generator/              EMA generator: config.json + diffusion_pytorch_model.safetensors
    discriminator/          config.json + diffusion_pytorch_model.safetensors
    condition_encoder.json
    train_config.json       StyleGANLiteTrainConfig

plus ``train_log.csv`` (step, loss_d, loss_g, r1, seconds_per_step). Training checkpoints
to ``checkpoints/step-NNNNNNN/`` (:class:`microgen.checkpoint.Checkpoints`): ``model/``
(the layout above), ``training_state`` (the raw generator's weights and both Adam states:
what only continuing needs) and ``train_log.csv`` up to that step. A run resumes from the
newest checkpoint and, at the end of every run (also one with nothing left to train),
writes the model directory and ``train_log.csv`` from it. A finished run keeps that
checkpoint without its training state, unless ``continuable``.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from tqdm.auto import tqdm

from microgen.checkpoint import TRAINING_STATE, Checkpoints, load_state, save_state
from microgen.generate.baseline_common import (
    MODEL,
    ConditionEmbedder,
    draw_batch,
    encode_conditions,
    export_run,
    load_training_set,
    resume_point,
    save_json_config,
    step_generator,
    to_uint8,
)
from microgen.generate.condition_vector import ConditionEncoder

TRAIN_CONFIG = "train_config.json"
Generators = torch.Generator | Sequence[torch.Generator] | None


# ---------------------------------------------------------------------------- layers
def _lrelu(x: torch.Tensor) -> torch.Tensor:
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
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1×1 modulated convolution to the single gray channel (no demodulation)."""

    def __init__(self, in_ch: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 1, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


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
            x = _lrelu(layer(x))
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
        x = _lrelu(self.conv0(x))
        x = _lrelu(self.conv1(F.avg_pool2d(x, 2)))
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
        x = _lrelu(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = _lrelu(self.conv(self._mbstd(x)))
        return _lrelu(self.fc(x.flatten(1)))

    def forward(
        self, x: torch.Tensor, continuous: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,): ``linear(φ(x)) + <embed(c), φ(x)> / √feature_dim``."""
        phi = self.features(x)
        proj = (self.embed(continuous, categorical) * phi).sum(dim=1)
        return self.out(phi)[:, 0] + proj / math.sqrt(self.config.feature_dim)


# ---------------------------------------------------------------------------- losses
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


# ---------------------------------------------------------------------------- training
@dataclass
class StyleGANLiteTrainConfig:
    """Training settings (Table B2: Adam, G lr 0.0015, D lr 0.0001, batch 12, γ 5)."""

    resolution: int = 128
    steps: int = 50_000
    batch_size: int = 12
    g_lr: float = 0.0015
    d_lr: float = 0.0001
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 5.0
    r1_interval: int = 16
    ema_beta: float = 0.999
    w_avg_beta: float = 0.995
    seed: int = 0
    hflip: bool = True
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 2  # step folders kept while training
    log_every: int = 50


def _generator_kwargs(encoder: ConditionEncoder, resolution: int, arch: Mapping) -> dict:
    return {
        "resolution": resolution,
        "n_continuous": encoder.n_continuous,
        "category_sizes": encoder.category_sizes,
        **arch,
    }


def train_stylegan_lite(
    data_dir: str | Path,
    split_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    resolution: int = 128,
    steps: int = 50_000,
    batch_size: int = 12,
    g_lr: float = 0.0015,
    d_lr: float = 0.0001,
    seed: int = 0,
    r1_gamma: float = 5.0,
    r1_interval: int = 16,
    checkpoint_every: int = 5_000,
    keep_checkpoints: int = 2,
    log_every: int = 50,
    generator_kwargs: Mapping | None = None,
    discriminator_kwargs: Mapping | None = None,
    resume: bool = True,
    continuable: bool = False,
    progress: bool = True,
) -> Path:
    """Train stylegan-lite on the ``train`` rows of a prepared data set.

    Parameters
    ----------
    data_dir, split_csv, schema_path : prepared data set, ``id, split`` table, schema YAML.
    out_dir : model directory to write (with ``train_log.csv`` and ``checkpoints/``).
    resolution : image side (power of two ≥ 8).
    steps : optimisation steps (one D and one G update each).
    batch_size, g_lr, d_lr : Table B2 (12, 0.0015, 0.0001).
    seed : seeds the initial weights and every step's randomness.
    r1_gamma, r1_interval : R1 weight (Table B2: 5) and lazy-regularisation interval.
    checkpoint_every, log_every : in steps; a final checkpoint is always written.
    keep_checkpoints : step folders kept while training (the newest ones).
    generator_kwargs, discriminator_kwargs : architecture overrides (``z_dim``,
        ``channel_base``, ``channel_max``, ``feature_dim``, …).
    resume : continue from the newest checkpoint in ``out_dir`` if there is one.
    continuable : keep the optimiser state of the finished run, so that a call with more
        ``steps`` continues it exactly (otherwise that call is an error).
    progress : show a tqdm bar.

    Returns
    -------
    ``out_dir``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tconf = StyleGANLiteTrainConfig(
        resolution=resolution,
        steps=steps,
        batch_size=batch_size,
        g_lr=g_lr,
        d_lr=d_lr,
        r1_gamma=r1_gamma,
        r1_interval=r1_interval,
        seed=seed,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
    )
    checkpoints = Checkpoints(out_dir, keep=keep_checkpoints)
    if not resume:
        shutil.rmtree(checkpoints.root, ignore_errors=True)
    start, folder = resume_point(checkpoints, steps)
    if start == steps:  # finished (its outputs may have been deleted): nothing to train
        return export_run(checkpoints, out_dir, continuable=continuable)
    data = load_training_set(data_dir, split_csv, schema_path, resolution)
    enc = data.encoder
    torch.manual_seed(seed)
    G = StyleGANLiteGenerator(**_generator_kwargs(enc, resolution, generator_kwargs or {}))
    D = StyleGANLiteDiscriminator(**_generator_kwargs(enc, resolution, discriminator_kwargs or {}))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=g_lr, betas=tconf.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=d_lr, betas=tconf.betas)
    # The last R1 value is logged until the next lazy R1 step, so it is training state too.
    r1_value = float("nan")
    rows = checkpoints.history(folder) if folder is not None else []
    if folder is not None:  # resume_point found its training state
        G_ema.load_state_dict(
            StyleGANLiteGenerator.from_pretrained(folder / MODEL / "generator").state_dict()
        )
        D.load_state_dict(
            StyleGANLiteDiscriminator.from_pretrained(folder / MODEL / "discriminator").state_dict()
        )
        state = load_state(folder / TRAINING_STATE)
        G.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["optimizer_g"])
        opt_d.load_state_dict(state["optimizer_d"])
        r1_value = float(state["r1"])
    G.train()
    D.train()
    z_dim = G.config.z_dim
    compute, n_timed = 0.0, 0
    bar = tqdm(
        range(start, steps),
        desc="stylegan-lite",
        disable=not progress,
        initial=start,
        total=steps,
    )
    for step in bar:
        tic = time.perf_counter()
        g = step_generator(seed, step)
        real, cont, cat = draw_batch(data, batch_size, g, hflip=tconf.hflip)
        # --- discriminator step (R1 lazily every r1_interval steps, scaled by it)
        with torch.no_grad():
            fake = G(randn((z_dim,), batch_size, g), cont, cat, generator=g)
        regularise = r1_gamma > 0 and step % r1_interval == 0
        if regularise:
            real = real.detach().requires_grad_(True)
        real_logits = D(real, cont, cat)
        loss_d = d_logistic_loss(real_logits, D(fake, cont, cat))
        total_d = loss_d
        if regularise:
            r1 = r1_from_logits(real_logits, real, r1_gamma)
            total_d = total_d + r1 * r1_interval
            r1_value = float(r1.detach())
        opt_d.zero_grad(set_to_none=True)
        total_d.backward()
        opt_d.step()
        # --- generator step
        z = randn((z_dim,), batch_size, g)
        w = G.mapping(z, cont, cat)
        with torch.no_grad():
            G.mapping.w_avg.copy_(torch.lerp(w.mean(0), G.mapping.w_avg, tconf.w_avg_beta))
        loss_g = g_nonsaturating_loss(D(G.synthesis(w, g), cont, cat))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # --- EMA generator
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - tconf.ema_beta)
            for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                b_ema.copy_(b)
        compute, n_timed = compute + time.perf_counter() - tic, n_timed + 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            rows.append(
                {
                    "step": done,
                    "loss_d": float(loss_d.detach()),
                    "loss_g": float(loss_g.detach()),
                    "r1": r1_value,
                    "seconds_per_step": compute / n_timed,
                }
            )
            compute, n_timed = 0.0, 0
            bar.set_postfix(d=f"{float(loss_d.detach()):.3f}", g=f"{float(loss_g.detach()):.3f}")
        if done % checkpoint_every == 0 or done == steps:
            with checkpoints.save(done, rows) as folder:
                G_ema.save_pretrained(folder / MODEL / "generator")
                D.save_pretrained(folder / MODEL / "discriminator")
                enc.save(folder / MODEL / "condition_encoder.json")
                save_json_config(tconf, folder / MODEL / TRAIN_CONFIG)
                save_state(
                    folder / TRAINING_STATE,
                    {
                        "generator": G.state_dict(),
                        "optimizer_g": opt_g.state_dict(),
                        "optimizer_d": opt_d.state_dict(),
                        "r1": r1_value,
                        "step": done,
                    },
                )
    bar.close()
    return export_run(checkpoints, out_dir, continuable=continuable)


# ---------------------------------------------------------------------------- sampling
class StyleGANLite:
    """A trained (EMA) generator with its condition encoder, ready to sample."""

    def __init__(self, generator: StyleGANLiteGenerator, encoder: ConditionEncoder) -> None:
        self.generator = generator.eval()
        self.encoder = encoder

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> StyleGANLite:
        model_dir = Path(model_dir)
        return cls(
            StyleGANLiteGenerator.from_pretrained(model_dir / "generator"),
            ConditionEncoder.load(model_dir / "condition_encoder.json"),
        )

    def save_pretrained(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.generator.save_pretrained(model_dir / "generator")
        self.encoder.save(model_dir / "condition_encoder.json")
        return model_dir

    @torch.no_grad()
    def conditional_w_center(
        self, continuous: torch.Tensor, categorical: torch.Tensor, n: int = 512
    ) -> torch.Tensor:
        """Mean ``w`` of each condition over ``n`` fixed latents (the truncation centre)."""
        z = torch.randn(
            (n, self.generator.config.z_dim), generator=torch.Generator().manual_seed(0)
        )
        centers = []
        for c, k in zip(continuous, categorical, strict=True):
            w = self.generator.mapping(z, c.expand(n, -1), k.expand(n, -1))
            centers.append(w.mean(0))
        return torch.stack(centers)

    @torch.no_grad()
    def sample(
        self,
        conditions: Sequence[Mapping],
        seeds: Sequence[int],
        batch_size: int = 16,
        truncation: float = 1.0,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One uint8 image per ``(conditions[i], seeds[i])``; see :func:`sample_stylegan_lite`."""
        if len(conditions) != len(seeds):
            raise ValueError(f"{len(conditions)} conditions but {len(seeds)} seeds")
        cont, cat = encode_conditions(self.encoder, conditions)
        z_dim = self.generator.config.z_dim
        out: list[np.ndarray] = []
        for start in tqdm(
            range(0, len(seeds), batch_size), desc="stylegan-lite", disable=not progress
        ):
            sl = slice(start, start + batch_size)
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds[sl]]
            z = randn((z_dim,), len(gens), gens)
            center = None
            if truncation != 1.0:
                center = self.conditional_w_center(cont[sl], cat[sl])
            img = self.generator(
                z, cont[sl], cat[sl], generator=gens, truncation=truncation, w_center=center
            )
            out.extend(to_uint8(img))
        return out


def sample_stylegan_lite(
    model_dir: str | Path,
    conditions: Sequence[Mapping],
    seeds: Sequence[int],
    batch_size: int = 16,
    truncation: float = 1.0,
    progress: bool = False,
) -> list[np.ndarray]:
    """Generate one image per ``(conditions[i], seeds[i])`` pair.

    Parameters
    ----------
    model_dir : directory written by :func:`train_stylegan_lite`.
    conditions : condition dicts; an unknown category raises ``ValueError``.
    seeds : one per condition; the latent and the noise inputs of image ``i`` come from
        ``seeds[i]`` alone, so results do not depend on batching.
    batch_size : images per generator call.
    truncation : ψ; < 1 pulls ``w`` towards the condition's mean ``w``.

    Returns
    -------
    List of (R, R) uint8 arrays in the order of ``conditions``.
    """
    model = StyleGANLite.from_pretrained(model_dir)
    return model.sample(conditions, seeds, batch_size, truncation, progress)


__all__ = [
    "MappingNetwork",
    "ModulatedConv2d",
    "StyleGANLite",
    "StyleGANLiteDiscriminator",
    "StyleGANLiteGenerator",
    "StyleGANLiteTrainConfig",
    "d_logistic_loss",
    "g_nonsaturating_loss",
    "modulated_conv2d",
    "r1_from_logits",
    "r1_penalty",
    "sample_stylegan_lite",
    "train_stylegan_lite",
]
