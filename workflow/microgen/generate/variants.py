"""Paper-style names of the fine-tuned Stable Diffusion models (Table B4, Fig. B2).

Standard library only: Table B1 and B3 (generate), Table B4 (evaluate) and Fig. B2's rows
(figures, whose environment has no torch) name the models the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["sd_model_name", "sd_variant_label"]


def sd_model_name(spec: Mapping) -> str:
    """Paper-style name of a fine-tuned model's base, e.g. ``SD3.5-Large``.

    Parameters
    ----------
    spec : a ``generate.models`` entry with its resolved ``base``. Family ``sdxl`` is SDXL
        (``SDXL (tiny)`` on the tiny offline base); an SD3 base whose id names ``large`` /
        ``medium`` is SD3.5-Large / -Medium, the tiny offline base is ``SD3 (tiny)``, any
        other SD3 base is named by its last path component.
    """
    base = str(spec.get("base", ""))
    if spec.get("family", "sd3") == "sdxl":
        return "SDXL (tiny)" if base == "tiny" else "SDXL"
    if "large" in base.lower():
        return "SD3.5-Large"
    if "medium" in base.lower():
        return "SD3.5-Medium"
    if base == "tiny":
        return "SD3 (tiny)"
    return f"SD3 ({Path(base).name})"


def sd_variant_label(spec: Mapping) -> str:
    """Paper-style name of a fine-tuned model entry, e.g. ``SDXL + DreamBooth + DoRA``.

    Parameters
    ----------
    spec : a ``generate.models`` entry with its resolved ``base``; ``label`` wins when given.
        The model is named by :func:`sd_model_name`. DreamBooth means prior preservation;
        the adapter is DoRA when ``use_dora``.
    """
    if spec.get("label"):
        return str(spec["label"])
    parts = [sd_model_name(spec)]
    if spec.get("prior_preservation", False):
        parts.append("DreamBooth")
    parts.append("DoRA" if spec.get("use_dora", False) else "LoRA")
    return " + ".join(parts)
