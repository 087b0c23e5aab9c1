"""Shared pieces of pre-training, fine-tuning and sampling: base loading, images, losses.

Families: ``sd3`` (``StableDiffusion3Pipeline``: MM-DiT ``transformer``, rectified-flow loss)
and ``sdxl`` (``StableDiffusionXLPipeline``: ``unet``, ε-prediction DDPM loss with SDXL's
size/crop micro-conditioning). Both have the same two CLIP encoders, so the parameter-aware
conditioner serves both unchanged.

Image channels: micrographs are gray. They are replicated to the VAE's ``in_channels`` (1 for
the tiny offline base, 3 for SD3.5) before encoding, and decoded images are averaged over
channels back to gray, so the same code serves both bases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microgen.data.prepared import read_gray
from microgen.data.preprocess import resize_center_crop, to_model_range

BASE_INFO = "microgen_base.json"
#: T5 tokens of a hub base's prompt: 77, as in the paper's Eq. 7 (154 = 77 CLIP + 77 T5) and
#: diffusers' SD3 DreamBooth script.
DEFAULT_T5_LENGTH = 77


FAMILIES = ("sd3", "sdxl")
#: Example hub id per family, for error messages.
HUB_EXAMPLES = {
    "sd3": "stabilityai/stable-diffusion-3.5-large",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
#: Pipeline attribute of the denoising network per family.
DENOISER = {"sd3": "transformer", "sdxl": "unet"}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def pipeline_class(family: str):
    """The diffusers pipeline class of ``family``."""
    _check_family(family)
    from diffusers import StableDiffusion3Pipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if family == "sdxl" else StableDiffusion3Pipeline


def family_of(pipe) -> str:
    """``"sdxl"`` for a pipeline with a U-Net, ``"sd3"`` for one with an MM-DiT."""
    return "sdxl" if getattr(pipe, "unet", None) is not None else "sd3"


def denoiser(pipe) -> torch.nn.Module:
    """The pipeline's denoising network (``unet`` or ``transformer``)."""
    return getattr(pipe, DENOISER[family_of(pipe)])


def is_local_base(base: str | Path) -> bool:
    """Whether ``base`` names a local folder rather than a hub id (``owner/name``): it
    exists, starts like a path, or has other than one ``/``."""
    base = str(base)
    return Path(base).exists() or base.startswith((".", "/", "~")) or base.count("/") != 1


def load_base_pipeline(base: str | Path, dtype: torch.dtype = torch.float32, family: str = "sd3"):
    """Load an SD3 or SDXL pipeline from a local directory or a hub id, failing early.

    Parameters
    ----------
    base : local directory (e.g. the tiny base, or a downloaded snapshot) or hub id such as
        ``stabilityai/stable-diffusion-3.5-large`` or ``stabilityai/stable-diffusion-xl-base-1.0``.
    dtype : torch dtype of the weights.
    family : ``"sd3"`` or ``"sdxl"``.

    Raises
    ------
    FileNotFoundError
        When the model cannot be loaded (missing local path, gated or unreachable hub id).
    """
    cls = pipeline_class(family)
    example = HUB_EXAMPLES[family]
    base = str(base)
    local = Path(base)
    if is_local_base(base) and not (local / "model_index.json").is_file():
        raise FileNotFoundError(
            f"base model {base!r}: no model_index.json there. Give a hub id "
            f"(e.g. {example}) or the local path of a diffusers "
            "snapshot (`huggingface-cli download <id> --local-dir DIR`)."
        )
    # The invisible watermark of the SDXL pipeline perturbs the pixel values the descriptors
    # measure, so it is never applied to micrographs.
    extra = {"add_watermarker": False} if family == "sdxl" else {}
    try:
        pipe = cls.from_pretrained(base, dtype=dtype, **extra)
    except Exception as err:  # OSError, GatedRepoError, LocalEntryNotFoundError, ...
        raise FileNotFoundError(
            f"cannot load base model {base!r} ({type(err).__name__}: {err}). It is either not "
            "cached, gated (accept the licence on huggingface.co and log in), or the hub is "
            "unreachable. Download it once with `huggingface-cli download "
            f"{base} --local-dir DIR` and pass DIR as the base."
        ) from err
    if family_of(pipe) != family:
        raise ValueError(f"base model {base!r} is not an {family} pipeline")
    return pipe


def t5_length(base: str | Path) -> int:
    """T5 sequence length to use with ``base`` (the tiny base records a short one)."""
    info = Path(base) / BASE_INFO
    if info.is_file():
        return int(json.loads(info.read_text()).get("max_sequence_length", DEFAULT_T5_LENGTH))
    return DEFAULT_T5_LENGTH


def load_images(data_dir: str | Path, ids: Sequence[str], resolution: int) -> torch.Tensor:
    """Gray images (B, 1, R, R) in [-1, 1] after the shared resize and centre crop."""
    arrays = [
        to_model_range(
            resize_center_crop(read_gray(Path(data_dir) / "images" / f"{i}.png"), resolution)
        )
        for i in ids
    ]
    return torch.from_numpy(np.stack(arrays)[:, None])


def to_vae_channels(images: torch.Tensor, vae) -> torch.Tensor:
    """Replicate gray (B, 1, H, W) to the VAE's input channels."""
    return images.expand(-1, vae.config.in_channels, -1, -1)


def to_gray_uint8(images: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """Decoded images in [-1, 1], (B, C, H, W) or pipeline ``np`` output (B, H, W, C) in
    [0, 1], to a list of (H, W) uint8 gray arrays (channel mean)."""
    if isinstance(images, torch.Tensor):
        x = images.float().clamp(-1, 1).mean(1).cpu().numpy()
        x = (x + 1) / 2
    else:
        x = np.asarray(images, dtype=np.float32).mean(-1)
    return [np.round(np.clip(a, 0, 1) * 255).astype(np.uint8) for a in x]


@torch.no_grad()
def encode_latent_stats(
    vae, images: torch.Tensor, batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the VAE posterior of each image (cached; sampled at each step)."""
    means, stds = [], []
    for i in range(0, len(images), batch_size):
        x = to_vae_channels(images[i : i + batch_size], vae).to(vae.device, vae.dtype)
        dist = vae.encode(x).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def sample_latents(
    vae, mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Posterior sample, shifted and scaled like SD3 (``(z - shift) * scale``)."""
    z = mean + std * torch.randn(mean.shape, generator=generator)
    shift = vae.config.shift_factor or 0.0
    return (z - shift) * vae.config.scaling_factor


#: Timestep densities and loss weightings of diffusers' SD3 training utilities.
WEIGHTING_SCHEMES = ("logit_normal", "mode", "uniform", "sigma_sqrt", "cosmap", "none")


def flow_matching_loss(
    transformer,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor,
    scheduler,
    generator: torch.Generator,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    per_sample: bool = False,
    weighting_scheme: str = "logit_normal",
    mode_scale: float = 1.29,
    precondition_outputs: bool = False,
    rows: torch.Tensor | slice | None = None,
) -> torch.Tensor:
    """Rectified-flow loss of SD3 (paper eqs. 9–10).

    ``t`` is drawn from the density of ``weighting_scheme``
    (``diffusers.training_utils.compute_density_for_timestep_sampling``: logit-normal
    ``sigmoid(N(logit_mean, logit_std))``, ``mode`` with ``mode_scale``, else uniform), mapped
    to the scheduler's shifted sigma table (``shift`` from the scheduler config, 3.0 for
    SD3), then ``z_t = (1 - σ) x0 + σ ε``. The transformer's output is the velocity
    ``ε - x0``; with ``precondition_outputs`` it is turned into an estimate of ``x0``
    (``z_t - σ v``) and regressed on ``x0`` (a loss weighted by σ², the EDM-style target of
    diffusers' SD3 DreamBooth scripts), else regressed on the velocity. Each sample's error
    is weighted by ``compute_loss_weighting_for_sd3`` (``sigma_sqrt``: σ⁻², ``cosmap``,
    else 1). All random draws come from ``generator`` (CPU) so a resumed run repeats them.

    ``rows`` (one DDP rank's share): ``t`` and ε are drawn for every row of ``latents`` (the
    whole batch, as one process draws them) and only ``rows`` go through the transformer;
    ``prompt_embeds`` and ``pooled_embeds`` are those rows' alone.
    """
    from diffusers.training_utils import (
        compute_density_for_timestep_sampling,
        compute_loss_weighting_for_sd3,
    )

    if weighting_scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"weighting_scheme must be one of {WEIGHTING_SCHEMES}")
    n = scheduler.config.num_train_timesteps
    u = compute_density_for_timestep_sampling(
        weighting_scheme, len(latents), logit_mean, logit_std, mode_scale, generator=generator
    )
    idx = (u * n).long().clamp(0, n - 1)
    sigmas = scheduler.sigmas[idx].to(latents.device, latents.dtype).view(-1, 1, 1, 1)
    timesteps = scheduler.timesteps[idx].to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    if rows is not None:
        latents, sigmas, timesteps, noise = (x[rows] for x in (latents, sigmas, timesteps, noise))
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    pred = transformer(
        hidden_states=noisy,
        timestep=timesteps,
        encoder_hidden_states=prompt_embeds,
        pooled_projections=pooled_embeds,
        return_dict=False,
    )[0]
    if precondition_outputs:
        pred, target = pred * (-sigmas) + noisy, latents
    else:
        target = noise - latents
    weighting = compute_loss_weighting_for_sd3(weighting_scheme, sigmas).float()
    err = weighting * (pred.float() - target.float()) ** 2
    err = err.reshape(len(latents), -1).mean(1)
    return err if per_sample else err.mean()


def training_scheduler(pipe):
    """A fresh training scheduler with the full timestep table: the pipeline's flow-matching
    scheduler for SD3, a ``DDPMScheduler`` with the pipeline's betas for SDXL (which samples
    with Euler but is trained as a DDPM)."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    if family_of(pipe) == "sdxl":
        return DDPMScheduler.from_config(pipe.scheduler.config)
    return FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)


def sdxl_time_ids(resolution: int, batch: int) -> torch.Tensor:
    """SDXL micro-conditioning ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)``.

    Training images are brought to ``resolution`` (resize + centre crop) before they are
    cached, and samples are drawn with the pipeline's defaults (original = target = sampled
    size, crop (0, 0)), so both use the same tuple.
    """
    ids = torch.tensor([resolution, resolution, 0, 0, resolution, resolution], dtype=torch.float32)
    return ids.expand(batch, -1)


def epsilon_loss(
    unet,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor,
    time_ids: torch.Tensor,
    scheduler,
    generator: torch.Generator,
    per_sample: bool = False,
    rows: torch.Tensor | slice | None = None,
) -> torch.Tensor:
    """DDPM loss of SDXL: ``t ~ U{0..T-1}``, ``x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε``, the U-Net
    regresses ε (or ``v`` when the scheduler's ``prediction_type`` is ``v_prediction``).

    ``pooled_embeds`` (CLIP-G) and ``time_ids`` enter through SDXL's ``text_time`` added
    embedding. All random draws come from ``generator`` (CPU) so a resumed run repeats them;
    with ``rows`` they are drawn for the whole batch ``latents`` and only ``rows`` are
    computed (see :func:`flow_matching_loss`).
    """
    n = scheduler.config.num_train_timesteps
    t = torch.randint(n, (len(latents),), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    if rows is not None:
        latents, t, noise, time_ids = latents[rows], t[rows], noise[rows], time_ids[rows]
    noisy = scheduler.add_noise(latents.float().cpu(), noise, t)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents.float().cpu(), noise, t)
    else:
        target = noise
    device, dtype = latents.device, latents.dtype
    pred = unet(
        noisy.to(device, dtype),
        t.to(device),
        encoder_hidden_states=prompt_embeds,
        added_cond_kwargs={
            "text_embeds": pooled_embeds,
            "time_ids": time_ids.to(device, dtype),
        },
        return_dict=False,
    )[0]
    err = (pred.float() - target.to(device).float()) ** 2
    err = err.reshape(len(latents), -1).mean(1)
    return err if per_sample else err.mean()


def atomic_write_csv(df: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
