"""The SEM look of a synthetic micrograph: an 8-bit secondary-electron image rendered from the
label mask, which it only reads (so the mask stays the exact truth of what was drawn)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import Grains, smooth_noise
from .structure import MATRIX, NETWORK, PARTICLE, WIDMANSTATTEN

__all__ = ["render"]


def render(rng: np.random.Generator, mask: np.ndarray, grains: Grains | None) -> np.ndarray:
    """SEM secondary-electron look of a class-id mask.

    Bright cementite with bright rims on a darker textured matrix, blurred by the probe, with
    shot noise and uneven illumination; without a network, the prior-austenite boundaries
    show as faint etched grooves.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (texture, illumination angle, noise).
    mask : numpy.ndarray
        uint8 (H, W) class ids.
    grains : Grains or None
        Prior-austenite grains, if the structure has them.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W) image.
    """
    h, w = mask.shape
    cem = (mask == PARTICLE) | (mask == WIDMANSTATTEN)
    net = mask == NETWORK
    img = np.full((h, w), 98.0)
    img += 9.0 * smooth_noise(rng, (h, w), 60.0)
    img += 4.0 * smooth_noise(rng, (h, w), 6.0)
    # Network cementite resists the etch like the particles and laths, so it is bright too;
    # flat and untextured, between the matrix and the laths and particles whose rims glow.
    img[net] = 128.0 + 3.0 * smooth_noise(rng, (h, w), 30.0)[net]
    img[mask == PARTICLE] = 185.0
    img[mask == WIDMANSTATTEN] = 165.0
    # Secondary-electron edge effect: emission peaks where the surface tilts, i.e. at
    # phase edges; gradient magnitude of the blurred phase map approximates it.
    relief = cem.astype(np.float64) + 1.0 * net
    sm = ndimage.gaussian_filter(relief, 0.9)
    gy, gx = np.gradient(sm)
    img += 150.0 * np.hypot(gy, gx)
    if grains is not None and not net.any():
        # Etched prior-austenite boundaries show as faint dark grooves in the matrix.
        groove = np.exp(-0.5 * (grains.boundary_dist / 0.8) ** 2)
        img -= 25.0 * groove * (mask == MATRIX)
    img = ndimage.gaussian_filter(img, 0.7)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * (np.arange(w)[None, :] / w - 0.5) + np.sin(ang) * (
        np.arange(h)[:, None] / h - 0.5
    )
    img *= 1.0 + 0.12 * ramp
    img = np.clip(img, 0, None)
    # Shot noise (gain 1.5 grey levels per electron) plus detector read noise.
    img = img + np.sqrt(1.5 * img) * rng.standard_normal((h, w)) + 4.0 * rng.standard_normal((h, w))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
