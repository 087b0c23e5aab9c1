"""Pixel-space conditional DDPM baseline (paper section 3.1.1, Table B2), trained from scratch.

Model: a diffusers :class:`~diffusers.UNet2DModel` on 1-channel images with
``class_embed_type="identity"``: the condition goes through :class:`ConditionEmbedder`
(MLP of the normalised continuous variables + one embedding table per categorical
variable) to a vector of the timestep-embedding width, which the U-Net adds to its
timestep embedding. Noise schedule: :class:`~diffusers.DDPMScheduler`, linear β,
1000 steps, ε-prediction. Training: AdamW, lr 1e-3, batch 16, classifier-free guidance
by replacing the condition embedding with a learned null embedding with probability
``p_uncond`` (0.1). Sampling: deterministic DDIM (η = 0), 50 steps, guidance 1.5.

Layout of a model directory (``save_pretrained`` / ``from_pretrained``)::

    unet/                   diffusers config.json + diffusion_pytorch_model.safetensors
    condition_embedder/     config.json + diffusion_pytorch_model.safetensors
    scheduler/              scheduler_config.json (the training DDPM schedule)
    condition_encoder.json  normalisation fitted on the training rows
    ddpm_config.json        DDPMConfig
    train_config.json       DDPMTrainConfig (written by train_ddpm)

``train_ddpm`` checkpoints to ``out_dir/checkpoints/step-NNNNNNN/``
(:class:`microgen.checkpoint.Checkpoints`): ``model/`` (the layout above),
``training_state`` (AdamW state) and ``train_log.csv`` up to that step. It resumes from the
newest checkpoint when one exists and, at the end of every run (also one with nothing left
to train), writes the model directory at ``out_dir`` with ``train_log.csv`` (step, loss,
seconds_per_step) from the newest checkpoint. A finished run keeps that checkpoint without
its training state, unless ``continuable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from microgen.checkpoint import MODEL, TRAINING_STATE, load_state, save_state
from microgen.device import channels_last
from microgen.generate.baseline_common import (
    ConditionEmbedder,
    draw_batch,
    encode_conditions,
    export_run,
    load_json_config,
    load_training_set,
    open_run,
    save_json_config,
    step_generator,
    to_uint8,
)
from microgen.generate.condition_vector import ConditionEncoder

DDPM_CONFIG = "ddpm_config.json"
TRAIN_CONFIG = "train_config.json"


@dataclass
class DDPMConfig:
    """Architecture, noise schedule and sampling defaults of the conditional DDPM.

    Attributes
    ----------
    resolution : image side in pixels.
    block_out_channels : U-Net channels per resolution level.
    attention_levels : whether each level has self-attention (same length as channels).
    layers_per_block : ResNet layers per U-Net block.
    norm_num_groups : GroupNorm groups (must divide every channel count).
    resnet_time_scale_shift : how ResNet blocks take the timestep + condition embedding:
        ``"scale_shift"`` (FiLM after the second GroupNorm, as in improved DDPM) or
        ``"default"`` (added before it, where the GroupNorm partly cancels per-channel
        offsets; conditioning then learns markedly slower in our tests).
    num_train_timesteps, beta_schedule, beta_start, beta_end, prediction_type :
        the DDPMScheduler (Table B2: 1000, linear, ε).
    p_uncond : probability of training with the null condition (classifier-free guidance).
    sampling_steps, guidance : DDIM defaults (Table B2: 50, 1.5).
    """

    resolution: int = 128
    block_out_channels: tuple[int, ...] = (64, 128, 256, 256)
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    resnet_time_scale_shift: str = "scale_shift"
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    p_uncond: float = 0.1
    sampling_steps: int = 50
    guidance: float = 1.5

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.attention_levels = tuple(bool(a) for a in self.attention_levels)
        if len(self.attention_levels) != len(self.block_out_channels):
            raise ValueError("attention_levels needs one entry per block_out_channels level")
        if self.resolution % 2 ** (len(self.block_out_channels) - 1):
            raise ValueError(
                f"resolution {self.resolution} is not divisible by the U-Net's "
                f"{len(self.block_out_channels) - 1} downsamplings"
            )

    @property
    def time_embed_dim(self) -> int:
        """Width of the U-Net's timestep embedding (and of the condition embedding)."""
        return self.block_out_channels[0] * 4


@dataclass
class DDPMTrainConfig:
    """Optimisation settings (Table B2: AdamW, lr 1e-3, batch 16)."""

    steps: int = 50_000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    seed: int = 0
    hflip: bool = True
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 2  # step folders kept while training
    log_every: int = 50


class ConditionalDDPM:
    """U-Net + condition embedder + noise schedule + condition encoder of one DDPM."""

    def __init__(
        self,
        config: DDPMConfig,
        encoder: ConditionEncoder,
        unet: UNet2DModel | None = None,
        embedder: ConditionEmbedder | None = None,
        scheduler: DDPMScheduler | None = None,
    ) -> None:
        self.config = config
        self.encoder = encoder
        c = config
        self.unet = unet or UNet2DModel(
            sample_size=c.resolution,
            in_channels=1,
            out_channels=1,
            block_out_channels=c.block_out_channels,
            down_block_types=tuple(
                "AttnDownBlock2D" if a else "DownBlock2D" for a in c.attention_levels
            ),
            up_block_types=tuple(
                "AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(c.attention_levels)
            ),
            layers_per_block=c.layers_per_block,
            norm_num_groups=c.norm_num_groups,
            resnet_time_scale_shift=c.resnet_time_scale_shift,
            class_embed_type="identity",
        )
        self.embedder = embedder or ConditionEmbedder(
            n_continuous=encoder.n_continuous,
            category_sizes=encoder.category_sizes,
            embed_dim=c.time_embed_dim,
        )
        self.scheduler = scheduler or DDPMScheduler(
            num_train_timesteps=c.num_train_timesteps,
            beta_schedule=c.beta_schedule,
            beta_start=c.beta_start,
            beta_end=c.beta_end,
            prediction_type=c.prediction_type,
        )

    # ------------------------------------------------------------------ modules
    def parameters(self):
        """Trainable parameters (U-Net and condition embedder)."""
        return [*self.unet.parameters(), *self.embedder.parameters()]

    def train(self, mode: bool = True) -> ConditionalDDPM:
        self.unet.train(mode)
        self.embedder.train(mode)
        return self

    def eval(self) -> ConditionalDDPM:
        return self.train(False)

    def epsilon(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        continuous: torch.Tensor,
        categorical: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted noise ε(x_t, t, c); rows with ``drop`` true are unconditional."""
        if not torch.is_tensor(t) or t.ndim == 0:
            t = torch.full((x.shape[0],), int(t), dtype=torch.long)
        emb = self.embedder(continuous, categorical, drop)
        return self.unet(x, t, class_labels=emb).sample

    def guided_epsilon(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        continuous: torch.Tensor,
        categorical: torch.Tensor,
        guidance: float,
    ) -> torch.Tensor:
        """Classifier-free guided ε: ``ε_u + s (ε_c − ε_u)``, one batched U-Net call."""
        n = x.shape[0]
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        eps = self.epsilon(
            torch.cat([x, x]),
            t,
            torch.cat([continuous, continuous]),
            torch.cat([categorical, categorical]),
            drop,
        )
        return cfg_combine(eps[:n], eps[n:], guidance)

    # ------------------------------------------------------------------ sampling
    def ddim_scheduler(self) -> DDIMScheduler:
        """Deterministic DDIM sampler on the training noise schedule (final ᾱ = 1)."""
        return DDIMScheduler.from_config(self.scheduler.config, set_alpha_to_one=True)

    @torch.no_grad()
    def sample(
        self,
        conditions: Sequence[Mapping],
        seeds: Sequence[int],
        steps: int | None = None,
        guidance: float | None = None,
        batch_size: int = 8,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One uint8 image per ``(conditions[i], seeds[i])`` pair; see :func:`sample_ddpm`."""
        if len(conditions) != len(seeds):
            raise ValueError(f"{len(conditions)} conditions but {len(seeds)} seeds")
        steps = steps or self.config.sampling_steps
        guidance = self.config.guidance if guidance is None else guidance
        cont, cat = encode_conditions(self.encoder, conditions)
        self.eval()
        r = self.config.resolution
        out: list[np.ndarray] = []
        batches = range(0, len(seeds), batch_size)
        with channels_last(self.unet):
            for start in tqdm(batches, desc="DDPM sampling", disable=not progress):
                sl = slice(start, start + batch_size)
                noise = initial_noise(seeds[sl], (1, r, r))
                noise = noise.contiguous(memory_format=torch.channels_last)
                c, k = cont[sl], cat[sl]

                def eps_fn(x, t, c=c, k=k):
                    return self.guided_epsilon(x, t, c, k, guidance)

                out.extend(to_uint8(ddim_sample(eps_fn, noise, self.ddim_scheduler(), steps)))
        return out

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model directory (safetensors weights + JSON configs)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(directory / "unet")
        self.embedder.save_pretrained(directory / "condition_embedder")
        self.scheduler.save_pretrained(directory / "scheduler")
        self.encoder.save(directory / "condition_encoder.json")
        save_json_config(self.config, directory / DDPM_CONFIG)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ConditionalDDPM:
        """Read a model directory written by :meth:`save_pretrained`."""
        directory = Path(directory)
        return cls(
            config=load_json_config(DDPMConfig, directory / DDPM_CONFIG),
            encoder=ConditionEncoder.load(directory / "condition_encoder.json"),
            unet=UNet2DModel.from_pretrained(directory / "unet"),
            embedder=ConditionEmbedder.from_pretrained(directory / "condition_embedder"),
            scheduler=DDPMScheduler.from_pretrained(directory / "scheduler"),
        )

    def load_weights_from(self, directory: str | Path) -> None:
        """Copy U-Net and embedder weights from a saved model directory (resume)."""
        other = ConditionalDDPM.from_pretrained(directory)
        self.unet.load_state_dict(other.unet.state_dict())
        self.embedder.load_state_dict(other.embedder.state_dict())


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + scale * (eps_cond - eps_uncond)``."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Stacked N(0, 1) noise, each item drawn from its own seed (batching-independent)."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )


def ddim_sample(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    scheduler: DDIMScheduler,
    steps: int = 50,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from ``noise`` with the noise predictor ``eps_fn(x, t)``.

    Parameters
    ----------
    eps_fn : maps ``(x_t, t)`` (t a scalar long tensor) to the predicted noise.
    noise : (B, C, H, W) starting sample x_T.
    scheduler : a DDIMScheduler (its timesteps are reset to ``steps``).

    Returns
    -------
    The final sample x_0 in model range.
    """
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, t), t, x, eta=0.0).prev_sample
    return x


# ---------------------------------------------------------------------------- training
def train_ddpm(
    data_dir: str | Path,
    split_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    resolution: int = 128,
    steps: int = 50_000,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoint_every: int = 5_000,
    keep_checkpoints: int = 2,
    log_every: int = 50,
    model_config: DDPMConfig | None = None,
    resume: bool = True,
    continuable: bool = False,
    progress: bool = True,
) -> Path:
    """Train the conditional DDPM on the ``train`` rows of a prepared data set.

    Parameters
    ----------
    data_dir : prepared data set (``images/``, ``metadata.csv``).
    split_csv : ``id, split`` table; only ``train`` rows are used (they also fit the
        condition normalisation).
    schema_path : condition schema YAML.
    out_dir : model directory to write (with ``train_log.csv`` and ``checkpoints/``).
    resolution : image side; overrides ``model_config.resolution``.
    steps, batch_size, lr, seed : optimisation (Table B2: batch 16, lr 1e-3).
    checkpoint_every, log_every : in steps; a final checkpoint is always written.
    keep_checkpoints : step folders kept while training (the newest ones).
    model_config : architecture; defaults to :class:`DDPMConfig`.
    resume : continue from the newest checkpoint in ``out_dir`` if there is one.
    continuable : keep the optimiser state of the finished run, so that a call with more
        ``steps`` continues it exactly (otherwise that call is an error).
    progress : show a tqdm bar.

    Returns
    -------
    ``out_dir``.
    """
    checkpoints, start, folder = open_run(out_dir, steps, keep_checkpoints, resume)
    config = model_config or DDPMConfig()
    config = DDPMConfig(**{**config.__dict__, "resolution": resolution})
    tconf = DDPMTrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
    )
    if start == steps:  # finished (its outputs may have been deleted): nothing to train
        return export_run(checkpoints, out_dir, continuable=continuable)
    data = load_training_set(data_dir, split_csv, schema_path, resolution)
    torch.manual_seed(seed)
    model = ConditionalDDPM(config, data.encoder)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=tconf.weight_decay)
    rows = checkpoints.history(folder) if folder is not None else []
    if folder is not None:  # resume_point found its training state
        model.load_weights_from(folder / MODEL)
        opt.load_state_dict(load_state(folder / TRAINING_STATE)["optimizer"])
    model.train()
    scheduler = model.scheduler
    compute, n_timed = 0.0, 0
    bar = tqdm(
        range(start, steps), desc="DDPM training", disable=not progress, initial=start, total=steps
    )
    for step in bar:
        tic = time.perf_counter()
        g = step_generator(seed, step)
        x0, cont, cat = draw_batch(data, batch_size, g, hflip=tconf.hflip)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(config.num_train_timesteps, (batch_size,), generator=g)
        drop = torch.rand(batch_size, generator=g) < config.p_uncond
        xt = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model.epsilon(xt, t, cont, cat, drop), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tconf.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tconf.grad_clip)
        opt.step()
        compute, n_timed = compute + time.perf_counter() - tic, n_timed + 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            rows.append(
                {"step": done, "loss": float(loss.detach()), "seconds_per_step": compute / n_timed}
            )
            compute, n_timed = 0.0, 0
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if done % checkpoint_every == 0 or done == steps:
            with checkpoints.save(done, rows) as folder:
                model.save_pretrained(folder / MODEL)
                save_json_config(tconf, folder / MODEL / TRAIN_CONFIG)
                save_state(folder / TRAINING_STATE, {"optimizer": opt.state_dict(), "step": done})
    bar.close()
    return export_run(checkpoints, out_dir, continuable=continuable)


def sample_ddpm(
    model_dir: str | Path,
    conditions: Sequence[Mapping],
    seeds: Sequence[int],
    steps: int = 50,
    guidance: float = 1.5,
    batch_size: int = 8,
    progress: bool = False,
) -> list[np.ndarray]:
    """Generate one image per ``(conditions[i], seeds[i])`` pair with guided DDIM.

    Parameters
    ----------
    model_dir : directory written by :func:`train_ddpm` / ``save_pretrained``.
    conditions : condition dicts (schema variable → value); an unknown category raises
        ``ValueError``.
    seeds : one seed per condition; an image depends only on its own seed and condition,
        not on the batching.
    steps : DDIM steps (Table B2: 50).
    guidance : classifier-free guidance scale (Table B2: 1.5; 1.0 = purely conditional).
    batch_size : images per U-Net batch (each is evaluated twice for guidance).

    Returns
    -------
    List of (R, R) uint8 arrays in the order of ``conditions``.
    """
    model = ConditionalDDPM.from_pretrained(model_dir)
    return model.sample(conditions, seeds, steps, guidance, batch_size, progress)


__all__ = [
    "ConditionalDDPM",
    "DDPMConfig",
    "DDPMTrainConfig",
    "cfg_combine",
    "ddim_sample",
    "initial_noise",
    "sample_ddpm",
    "train_ddpm",
]
