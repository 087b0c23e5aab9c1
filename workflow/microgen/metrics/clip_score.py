"""CLIP score: image-text alignment (Hessel et al. 2021), only meaningful with real CLIP weights.

The review (sections 7-8) found CLIP scores low and poorly correlated with realism on
scientific images, since CLIP never saw micrographs: report it, do not rank models by it.
Note the scale: Hessel et al. and torchmetrics use ``100 * max(cos, 0)``; Phan et al. (2025,
Tables 2 and B4: 0.32) report the raw cosine, i.e. ``scale=1``.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_features

__all__ = ["clip_score", "clip_score_per_image"]


def clip_score_per_image(
    image_feats: np.ndarray, text_feats: np.ndarray, scale: float = 100.0
) -> np.ndarray:
    """``scale * max(cos(image_i, text_i), 0)`` for each image.

    Parameters
    ----------
    image_feats : (N, D) CLIP image embeddings (:class:`CLIPFeatures`).
    text_feats : (N, D) text embeddings of each image's prompt, or (1, D) / (D,) for one prompt
        shared by all images (:meth:`CLIPFeatures.encode_text`).
    """
    img = as_features(image_feats, "image_feats")
    txt = as_features(np.atleast_2d(text_feats), "text_feats")
    if txt.shape[1] != img.shape[1] or len(txt) not in (1, len(img)):
        raise ValueError(f"text_feats {txt.shape} does not match image_feats {img.shape}")
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    cos = (img * txt).sum(axis=1)
    return scale * np.maximum(cos, 0.0)


def clip_score(image_feats: np.ndarray, text_feats: np.ndarray, scale: float = 100.0) -> float:
    """Mean of :func:`clip_score_per_image`: ``scale * max(cos, 0)`` averaged over images."""
    return float(clip_score_per_image(image_feats, text_feats, scale).mean())
