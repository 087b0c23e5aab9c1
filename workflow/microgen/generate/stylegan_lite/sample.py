"""Sampling a trained stylegan-lite model: one image per (condition, seed), batch-independent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from microgen.generate.baseline_common import encode_conditions, to_uint8
from microgen.generate.condition_vector import ConditionEncoder
from microgen.generate.stylegan_lite.layers import randn
from microgen.generate.stylegan_lite.models import StyleGANLiteGenerator

__all__ = ["StyleGANLite", "sample_stylegan_lite"]


class StyleGANLite:
    """A trained (EMA) generator with its condition encoder, ready to sample."""

    def __init__(self, generator: StyleGANLiteGenerator, encoder: ConditionEncoder) -> None:
        self.generator = generator.eval()
        self.encoder = encoder

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> StyleGANLite:
        model_dir = Path(model_dir)
        return cls(
            StyleGANLiteGenerator.from_pretrained(model_dir / "generator"),
            ConditionEncoder.load(model_dir / "condition_encoder.json"),
        )

    def save_pretrained(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.generator.save_pretrained(model_dir / "generator")
        self.encoder.save(model_dir / "condition_encoder.json")
        return model_dir

    @torch.no_grad()
    def conditional_w_center(
        self, continuous: torch.Tensor, categorical: torch.Tensor, n: int = 512
    ) -> torch.Tensor:
        """Mean ``w`` of each condition over ``n`` fixed latents (the truncation centre)."""
        z = torch.randn(
            (n, self.generator.config.z_dim), generator=torch.Generator().manual_seed(0)
        )
        centers = []
        for c, k in zip(continuous, categorical, strict=True):
            w = self.generator.mapping(z, c.expand(n, -1), k.expand(n, -1))
            centers.append(w.mean(0))
        return torch.stack(centers)

    @torch.no_grad()
    def sample(
        self,
        conditions: Sequence[Mapping],
        seeds: Sequence[int],
        batch_size: int = 16,
        truncation: float = 1.0,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One uint8 image per ``(conditions[i], seeds[i])``; see :func:`sample_stylegan_lite`."""
        if len(conditions) != len(seeds):
            raise ValueError(f"{len(conditions)} conditions but {len(seeds)} seeds")
        cont, cat = encode_conditions(self.encoder, conditions)
        z_dim = self.generator.config.z_dim
        out: list[np.ndarray] = []
        for start in tqdm(
            range(0, len(seeds), batch_size), desc="stylegan-lite", disable=not progress
        ):
            sl = slice(start, start + batch_size)
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds[sl]]
            z = randn((z_dim,), len(gens), gens)
            center = None
            if truncation != 1.0:
                center = self.conditional_w_center(cont[sl], cat[sl])
            img = self.generator(
                z, cont[sl], cat[sl], generator=gens, truncation=truncation, w_center=center
            )
            out.extend(to_uint8(img))
        return out


def sample_stylegan_lite(
    model_dir: str | Path,
    conditions: Sequence[Mapping],
    seeds: Sequence[int],
    batch_size: int = 16,
    truncation: float = 1.0,
    progress: bool = False,
) -> list[np.ndarray]:
    """Generate one image per ``(conditions[i], seeds[i])`` pair.

    Parameters
    ----------
    model_dir : directory written by :func:`train_stylegan_lite`.
    conditions : condition dicts; an unknown category raises ``ValueError``.
    seeds : one per condition; the latent and the noise inputs of image ``i`` come from
        ``seeds[i]`` alone, so results do not depend on batching.
    batch_size : images per generator call.
    truncation : ψ; < 1 pulls ``w`` towards the condition's mean ``w``.

    Returns
    -------
    List of (R, R) uint8 arrays in the order of ``conditions``.
    """
    model = StyleGANLite.from_pretrained(model_dir)
    return model.sample(conditions, seeds, batch_size, truncation, progress)
