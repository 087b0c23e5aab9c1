"""Which real and generated images are compared by the paired metrics (SSIM, LPIPS-style).

A generated micrograph has no ground-truth counterpart: it is conditioned on process
parameters, not on a particular real image. So the default pairing, ``"all"``, compares every
generated image of a condition with every real image of that condition and averages over the
``N_real x N_fake`` pairs (the expected similarity of a random real/generated pair). ``"index"``
compares ``real[i]`` with ``fake[i]`` for image-conditioned generation where a pairing exists.
"""

from __future__ import annotations

import numpy as np

from .features import as_gray_uint8

PAIRINGS = ("all", "index")


def check_pair_sets(real: np.ndarray, fake: np.ndarray, pairing: str):
    """Validate two gray uint8 stacks for a pairing and return them as (N, H, W)."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    real, fake = as_gray_uint8(real), as_gray_uint8(fake)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image sizes differ: {real.shape[1:]} vs {fake.shape[1:]}")
    if pairing == "index" and len(real) != len(fake):
        raise ValueError(f"pairing='index' needs equal counts, got {len(real)} and {len(fake)}")
    return real, fake
