"""Networks of the 3D latent diffusion model (MicroGen3D, Baishnab et al. 2025).

Three modules, trained in this order with frozen predecessors (:mod:`.train`):

* :class:`VAE3D` — voxel volume of phase ids → latent ``(C, D/2ⁿ, H/2ⁿ, W/2ⁿ)`` → per-voxel
  phase logits. ``n`` = ``len(channel_mults)`` stride-2 stages, ``C`` = ``latent_channels``.
  The paper's latents are reachable by config: :func:`paper_vae_config` ``("ch")`` maps
  128×128×64 to 4×8×8×4, ``("exp")`` maps 64³ to 1×8×8×8.
* :class:`FeaturePredictor` — MLP on the flattened (deterministic, μ) latent → normalised
  descriptors and process parameters (φ, χ, log time).
* :class:`UNet3DConditional` — ε-prediction 3D U-Net on latents with a sinusoidal time
  embedding plus a context embedding of the *normalised* condition vector, both added inside
  every residual block; a learned null context replaces the context embedding for
  classifier-free guidance (dropout while training, unconditional branch while sampling).

Plus :class:`ConditionNormalizer` (fitted on the train split, saved next to the model it
serves). Every network is built from a small config dataclass and round-trips through
``save_pretrained(dir)`` / ``from_pretrained(dir)`` (``config.json`` + ``model.safetensors``).

Input convention of the VAE: volumes are ``(B, D, H, W)`` integer phase ids (0 donor,
1 acceptor, 2 mixed). ``input_mode="onehot"`` feeds ``n_phases`` one-hot channels
(``in_channels == n_phases``); ``"scalar"`` feeds one channel ``id / (n_phases - 1)``
(``in_channels == 1``, the reference code's single-channel input). The decoder always
returns ``n_phases`` logits; the phase volume is their argmax.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = [
    "VAE3DConfig",
    "VAE3D",
    "VAEOutput",
    "FeaturePredictorConfig",
    "FeaturePredictor",
    "UNet3DConfig",
    "UNet3DConditional",
    "ConditionNormalizer",
    "paper_vae_config",
    "one_hot_phases",
]

CONFIG_NAME = "config.json"
VAE_NORMS = ("instance", "batch", "none")
WEIGHTS_NAME = "model.safetensors"


# --------------------------------------------------------------------------- save / load


def _config_from_dict(cls, data: dict[str, Any]):
    """Build dataclass ``cls`` from JSON, turning lists back into tuples; unknown keys fail."""
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names - {"_class"}
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config key(s) {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**kwargs)


class PretrainedMixin:
    """``save_pretrained``/``from_pretrained`` for a module with a dataclass ``config``."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {"_class": type(self).__name__, **asdict(self.config)}
        (directory / CONFIG_NAME).write_text(json.dumps(cfg, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """Rebuild from ``save_pretrained`` output; returns the module in eval mode."""
        directory = Path(directory)
        data = json.loads((directory / CONFIG_NAME).read_text())
        if data.get("_class", cls.__name__) != cls.__name__:
            raise ValueError(f"{directory} holds a {data['_class']}, not a {cls.__name__}")
        model = cls(_config_from_dict(cls.config_class, data))
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME), device=str(device)))
        return model.to(device).eval()


# --------------------------------------------------------------------------- VAE


@dataclass
class VAE3DConfig:
    """Configuration of :class:`VAE3D`.

    Attributes
    ----------
    n_phases : number of phase ids (2 or 3); the decoder returns this many logits.
    input_mode : ``"onehot"`` (``n_phases`` channels) or ``"scalar"`` (1 channel,
        ``id / (n_phases - 1)``).
    volume_shape : ``(D, H, W)`` the VAE is built for; every axis divisible by
        ``2 ** len(channel_mults)``.
    base_channels : channels of the stem convolution.
    channel_mults : one multiplier per stride-2 stage (encoder) / transposed stage (decoder).
    latent_channels : channels of the latent.
    n_res_blocks : residual blocks after each stage.
    loss : ``"mse"`` (softmax probabilities vs one-hot, as the paper's MSE on the sigmoid
        output) or ``"ce"`` (per-voxel cross-entropy).
    kl_weight : weight of the KL term (paper 1e-6).
    norm : normalisation inside the encoder and decoder: ``"batch"`` (default,
        BatchNorm3d), ``"instance"`` (the reference VAE's InstanceNorm3d) or ``"none"``.
        InstanceNorm removes every channel's spatial mean per volume, i.e. the volume
        fractions: on the embedded run a ridge regression from its latents to
        ``vol_frac_D`` had held-out R² −1.5 (BatchNorm 0.74, none 0.94), and held-out
        voxel accuracy after 12 epochs was 0.867 (BatchNorm 0.873, none 0.815).
    """

    n_phases: int = 3
    input_mode: Literal["onehot", "scalar"] = "onehot"
    volume_shape: tuple[int, int, int] = (32, 32, 32)
    base_channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2, 2)
    latent_channels: int = 2
    n_res_blocks: int = 1
    loss: Literal["mse", "ce"] = "mse"
    kl_weight: float = 1e-6
    norm: Literal["instance", "batch", "none"] = "batch"

    @property
    def in_channels(self) -> int:
        return self.n_phases if self.input_mode == "onehot" else 1

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        f = 2 ** len(self.channel_mults)
        return (self.latent_channels, *(s // f for s in self.volume_shape))

    def validate(self) -> None:
        if self.n_phases < 2:
            raise ValueError("n_phases must be >= 2")
        if self.input_mode not in ("onehot", "scalar"):
            raise ValueError(f"input_mode must be 'onehot' or 'scalar', got {self.input_mode!r}")
        if self.loss not in ("mse", "ce"):
            raise ValueError(f"loss must be 'mse' or 'ce', got {self.loss!r}")
        if self.norm not in VAE_NORMS:
            raise ValueError(f"norm must be one of {VAE_NORMS}, got {self.norm!r}")
        f = 2 ** len(self.channel_mults)
        if len(self.volume_shape) != 3 or any(s % f for s in self.volume_shape):
            raise ValueError(
                f"volume_shape {self.volume_shape} must be 3 axes divisible by {f} "
                f"(2 ** len(channel_mults))"
            )


def paper_vae_config(dataset: Literal["ch", "exp"] = "ch", n_phases: int = 3) -> VAE3DConfig:
    """Configs reaching the paper's latent sizes (Table 1); channel widths are ours.

    ``"ch"``: 128×128×64 → 4×8×8×4 (four stride-2 stages); ``"exp"``: 64³ → 1×8×8×8 (three).
    The reference VAE has ~47 M parameters; these widths (base 32, mults up to 8) give
    ~15 M — widen ``base_channels`` to match it.
    """
    if dataset == "ch":
        return VAE3DConfig(
            n_phases=n_phases,
            volume_shape=(128, 128, 64),
            base_channels=32,
            channel_mults=(1, 2, 4, 8),
            latent_channels=4,
            n_res_blocks=1,
        )
    if dataset == "exp":
        return VAE3DConfig(
            n_phases=n_phases,
            volume_shape=(64, 64, 64),
            base_channels=32,
            channel_mults=(2, 4, 8),
            latent_channels=1,
            n_res_blocks=1,
        )
    raise ValueError(f"dataset must be 'ch' or 'exp', got {dataset!r}")


def one_hot_phases(volume: torch.Tensor, n_phases: int) -> torch.Tensor:
    """``(B, D, H, W)`` integer ids → ``(B, n_phases, D, H, W)`` float one-hot."""
    if volume.dtype.is_floating_point:
        raise TypeError("one_hot_phases expects integer phase ids")
    if volume.numel() and int(volume.max()) >= n_phases:
        raise ValueError(f"phase id {int(volume.max())} >= n_phases={n_phases}")
    return F.one_hot(volume.long(), n_phases).permute(0, 4, 1, 2, 3).float()


def _norm3d(kind: str, channels: int) -> nn.Module:
    """Normalisation layer of the VAE: ``"instance"``, ``"batch"`` or ``"none"``."""
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {VAE_NORMS}, got {kind!r}")


class _ResBlock3D(nn.Module):
    """Pre-activation residual block (normalisation per :func:`_norm3d`)."""

    def __init__(self, channels: int, norm: str = "batch"):
        super().__init__()
        self.block = nn.Sequential(
            _norm3d(norm, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
            _norm3d(norm, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@dataclass
class VAEOutput:
    """Result of :meth:`VAE3D.forward`."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class VAE3D(PretrainedMixin, nn.Module):
    """3D convolutional VAE: phase volume → (μ, log σ²) → z → per-voxel phase logits.

    Encoder: stem conv, then per stage a stride-2 ``Conv3d(k=4)`` + norm + SiLU +
    residual blocks, then a 3³ conv to ``2 · latent_channels`` (μ, log σ²). The decoder
    mirrors it with ``ConvTranspose3d(k=4, s=2)``.
    """

    config_class = VAE3DConfig

    def __init__(self, config: VAE3DConfig | None = None):
        super().__init__()
        self.config = config = config or VAE3DConfig()
        config.validate()
        chans = [config.base_channels * m for m in config.channel_mults]
        enc: list[nn.Module] = [nn.Conv3d(config.in_channels, config.base_channels, 3, padding=1)]
        prev = config.base_channels
        for ch in chans:
            enc += [
                nn.Conv3d(prev, ch, 4, stride=2, padding=1),
                _norm3d(config.norm, ch),
                nn.SiLU(),
            ]
            enc += [_ResBlock3D(ch, config.norm) for _ in range(config.n_res_blocks)]
            prev = ch
        enc += [nn.SiLU(), nn.Conv3d(prev, 2 * config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv3d(config.latent_channels, prev, 3, padding=1)]
        dec += [_ResBlock3D(prev, config.norm) for _ in range(config.n_res_blocks)]
        outs = list(reversed(chans[:-1])) + [config.base_channels]
        for ch in outs:
            dec += [
                nn.ConvTranspose3d(prev, ch, 4, stride=2, padding=1),
                _norm3d(config.norm, ch),
                nn.SiLU(),
            ]
            dec += [_ResBlock3D(ch, config.norm) for _ in range(config.n_res_blocks)]
            prev = ch
        dec += [nn.SiLU(), nn.Conv3d(prev, config.n_phases, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        # Channels-last ("NDHWC") weights and activations: with the few channels of a
        # voxel VAE, oneDNN's CPU convolution backward is ~4x faster in this layout (a
        # training step of the embedded VAE 0.52 s -> 0.28 s on one core); cuDNN takes it too.
        self.to(memory_format=torch.channels_last_3d)

    def prepare_input(self, volume: torch.Tensor) -> torch.Tensor:
        """Integer ids ``(B, D, H, W)`` → network input per ``input_mode``."""
        cfg = self.config
        if cfg.input_mode == "onehot":
            x = one_hot_phases(volume, cfg.n_phases)
        else:
            x = (volume.float() / (cfg.n_phases - 1)).unsqueeze(1)
        return x.contiguous(memory_format=torch.channels_last_3d)

    def encode(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase ids → ``(mu, logvar)``, each ``(B, *latent_shape)``."""
        h = self.encoder(self.prepare_input(volume))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent → per-voxel logits ``(B, n_phases, D, H, W)``."""
        return self.decoder(z.contiguous(memory_format=torch.channels_last_3d))

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(
        self, volume: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> VAEOutput:
        mu, logvar = self.encode(volume)
        z = self.reparameterize(mu, logvar, generator) if sample else mu
        return VAEOutput(self.decode(z), mu, logvar, z)

    def loss(self, volume: torch.Tensor, out: VAEOutput) -> dict[str, torch.Tensor]:
        """``{"loss", "recon", "kl"}``; KL is the per-sample sum averaged over the batch."""
        target = volume.long()
        if self.config.loss == "ce":
            recon = F.cross_entropy(out.logits.float(), target)
        else:
            probs = out.logits.float().softmax(dim=1)
            recon = F.mse_loss(probs, one_hot_phases(target, self.config.n_phases))
        mu, logvar = out.mu.float(), out.logvar.float()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).sum(1).mean()
        return {"loss": recon + self.config.kl_weight * kl, "recon": recon, "kl": kl}

    @torch.no_grad()
    def reconstruct(self, volume: torch.Tensor) -> torch.Tensor:
        """Deterministic (μ) reconstruction as phase ids ``uint8``."""
        return self.decode(self.encode(volume)[0]).argmax(1).to(torch.uint8)


# --------------------------------------------------------------------------- feature predictor


@dataclass
class FeaturePredictorConfig:
    """Configuration of :class:`FeaturePredictor`.

    ``in_features`` = flattened latent size (1024 for the CH paper latent); ``hidden`` the
    (decreasing) hidden widths; ``output_names`` the predicted columns in order (their
    normaliser is saved next to the model by :func:`.train.train_feature_predictor`).
    """

    in_features: int = 128
    output_names: tuple[str, ...] = ("vol_frac_D", "phi", "chi", "log_time")
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1


class FeaturePredictor(PretrainedMixin, nn.Module):
    """MLP: flattened latent → normalised features; Linear → LayerNorm → SiLU → Dropout.

    The paper writes "Instance Normalization" for these 1-D hidden layers; LayerNorm is the
    per-sample normalisation that is defined for a feature vector.
    """

    config_class = FeaturePredictorConfig

    def __init__(self, config: FeaturePredictorConfig | None = None):
        super().__init__()
        self.config = config = config or FeaturePredictorConfig()
        layers: list[nn.Module] = []
        prev = config.in_features
        for width in config.hidden:
            layers += [
                nn.Linear(prev, width),
                nn.LayerNorm(width),
                nn.SiLU(),
                nn.Dropout(config.dropout),
            ]
            prev = width
        layers.append(nn.Linear(prev, len(config.output_names)))
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent.flatten(1))


# --------------------------------------------------------------------------- U-Net


@dataclass
class UNet3DConfig:
    """Configuration of :class:`UNet3DConditional`.

    Attributes
    ----------
    in_channels : latent channels (the U-Net predicts ε of the same shape).
    sample_shape : latent spatial shape ``(D, H, W)`` (stored for sampling).
    cond_dim : length of the (normalised) condition vector; 0 = unconditional.
    base_channels, channel_mults : widths per resolution level (one stride-2 downsample
        between consecutive levels).
    n_res_blocks : residual blocks per level.
    emb_dim : width of the time/context embedding.
    dropout : dropout inside residual blocks.
    scale_shift : the embedding scales and shifts each block's second normalisation
        (``norm(h) * (1 + s) + b``, the "scale-shift norm" of Dhariwal & Nichol 2021)
        instead of only being added to its features.
    """

    in_channels: int = 2
    sample_shape: tuple[int, int, int] = (4, 4, 4)
    cond_dim: int = 4
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2)
    n_res_blocks: int = 1
    emb_dim: int = 64
    dropout: float = 0.0
    scale_shift: bool = False


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or float) timesteps ``(B,)`` → ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


class _EmbResBlock3D(nn.Module):
    """GroupNorm residual block conditioned on the (time + context) embedding: added after
    conv 1, or with ``scale_shift`` a scale and shift of the second normalisation."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class UNet3DConditional(PretrainedMixin, nn.Module):
    """3D U-Net (ε or v target) with time and context embeddings in every residual block.

    ``forward(x, t, cond, use_cond)``: ``cond`` is the *normalised* condition ``(B, K)``;
    rows where ``use_cond`` is False (or all rows when ``cond`` is None) use the learned
    ``null_context`` embedding instead — the unconditional branch of classifier-free
    guidance. Downsampling is a stride-2 conv, upsampling nearest-neighbour to the skip's
    size, so odd latent sizes (e.g. 8×8×4 → 4×4×2 → 2×2×1) work.
    """

    config_class = UNet3DConfig

    def __init__(self, config: UNet3DConfig | None = None):
        super().__init__()
        self.config = config = config or UNet3DConfig()
        e = config.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        if config.cond_dim > 0:
            self.context_mlp = nn.Sequential(
                nn.Linear(config.cond_dim, e), nn.SiLU(), nn.Linear(e, e)
            )
        else:
            self.context_mlp = None
        self.null_context = nn.Parameter(torch.zeros(e))
        chans = [config.base_channels * m for m in config.channel_mults]

        def block(c_in: int, c_out: int) -> _EmbResBlock3D:
            return _EmbResBlock3D(c_in, c_out, e, config.dropout, config.scale_shift)

        self.conv_in = nn.Conv3d(config.in_channels, chans[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_ch = [chans[0]]
        prev = chans[0]
        for i, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(config.n_res_blocks):
                blocks.append(block(prev, ch))
                prev = ch
                skip_ch.append(ch)
            self.down.append(blocks)
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv3d(prev, prev, 3, stride=2, padding=1))
                skip_ch.append(prev)
        self.mid = nn.ModuleList([block(prev, prev) for _ in range(2)])
        self.up = nn.ModuleList()
        for ch in reversed(chans):
            blocks = nn.ModuleList()
            for _ in range(config.n_res_blocks + 1):
                blocks.append(block(prev + skip_ch.pop(), ch))
                prev = ch
            self.up.append(blocks)
        self.norm_out = nn.GroupNorm(_groups(prev), prev)
        self.conv_out = nn.Conv3d(prev, config.in_channels, 3, padding=1)

    def embed(
        self, t: torch.Tensor, cond: torch.Tensor | None, use_cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Time embedding + context embedding (or the null context) ``(B, emb_dim)``."""
        b = t.shape[0]
        emb = self.time_mlp(timestep_embedding(t, self.config.emb_dim))
        null = self.null_context.to(emb.dtype).expand(b, -1)
        if cond is None or self.context_mlp is None:
            return emb + null
        if cond.shape != (b, self.config.cond_dim):
            raise ValueError(f"cond must be ({b}, {self.config.cond_dim}), got {tuple(cond.shape)}")
        ctx = self.context_mlp(cond.to(emb.dtype))
        if use_cond is not None:
            ctx = torch.where(use_cond.to(torch.bool)[:, None], ctx, null)
        return emb + ctx

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        cond: torch.Tensor | None = None,
        use_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.tensor([t], device=x.device)
        t = t.to(x.device).reshape(-1).expand(x.shape[0])
        emb = self.embed(t, cond, use_cond)
        h = self.conv_in(x)
        skips = [h]
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for blocks in self.up:
            for block in blocks:
                skip = skips.pop()
                if h.shape[2:] != skip.shape[2:]:
                    h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
                h = block(torch.cat([h, skip], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# --------------------------------------------------------------------------- normaliser


@dataclass
class ConditionNormalizer:
    """Per-column affine normalisation ``(x - loc) / scale`` fitted on the train split.

    ``method="standard"``: loc = mean, scale = std; ``"minmax"``: maps [min, max] to [-1, 1]
    (loc = midpoint, scale = half range). A constant column gets scale 1.
    """

    names: tuple[str, ...] = ()
    method: Literal["standard", "minmax"] = "standard"
    loc: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    n_fit: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, table: pd.DataFrame, names: list[str] | tuple[str, ...], method: str = "standard"
    ) -> ConditionNormalizer:
        names = tuple(names)
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise KeyError(f"condition column(s) {missing} not in table")
        x = table[list(names)].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot fit a normaliser on NaN/inf values; drop those rows first")
        if len(x) == 0:
            raise ValueError("cannot fit a normaliser on an empty table")
        if method == "standard":
            loc, scale = x.mean(0), x.std(0)
        elif method == "minmax":
            lo, hi = x.min(0), x.max(0)
            loc, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            raise ValueError(f"method must be 'standard' or 'minmax', got {method!r}")
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(names, method, tuple(map(float, loc)), tuple(map(float, scale)), len(x))

    def _values(self, x) -> np.ndarray:
        if isinstance(x, pd.DataFrame):
            missing = [n for n in self.names if n not in x.columns]
            if missing:
                raise KeyError(f"condition column(s) {missing} not in table")
            x = x[list(self.names)].to_numpy(dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.shape[-1] != len(self.names):
            raise ValueError(f"expected {len(self.names)} columns {self.names}, got {x.shape[-1]}")
        return x

    def transform(self, x) -> np.ndarray:
        """Raw values (DataFrame with the named columns, or ``(N, K)`` array) → normalised."""
        return ((self._values(x) - np.asarray(self.loc)) / np.asarray(self.scale)).astype(
            np.float32
        )

    def inverse_transform(self, z) -> np.ndarray:
        """Normalised ``(N, K)`` (array or tensor) → raw values ``float64``."""
        if torch.is_tensor(z):
            z = z.detach().float().cpu().numpy()
        return np.asarray(z, np.float64) * np.asarray(self.scale) + np.asarray(self.loc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ConditionNormalizer:
        return _config_from_dict(cls, json.loads(Path(path).read_text()))
