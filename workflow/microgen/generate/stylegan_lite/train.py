"""Training stylegan-lite (Table B2 settings) with checkpoints that resume exactly.

Every step draws its batch, latents and noise inputs from one generator seeded by
``(seed, step)``, in a fixed order: batch, the discriminator step's latents and noise, the
generator step's latents and noise. A resumed run therefore continues bit for bit.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from microgen.checkpoint import MODEL, TRAINING_STATE, Checkpoints, load_state, save_state
from microgen.generate.baseline_common import (
    draw_batch,
    export_run,
    load_training_set,
    open_run,
    save_json_config,
    step_generator,
)
from microgen.generate.condition_vector import ConditionEncoder
from microgen.generate.stylegan_lite.layers import randn
from microgen.generate.stylegan_lite.losses import (
    d_logistic_loss,
    g_nonsaturating_loss,
    r1_from_logits,
)
from microgen.generate.stylegan_lite.models import (
    StyleGANLiteDiscriminator,
    StyleGANLiteGenerator,
)

__all__ = ["TRAIN_CONFIG", "StyleGANLiteTrainConfig", "train_stylegan_lite"]

TRAIN_CONFIG = "train_config.json"


@dataclass
class StyleGANLiteTrainConfig:
    """Training settings (Table B2: Adam, G lr 0.0015, D lr 0.0001, batch 12, γ 5)."""

    resolution: int = 128
    steps: int = 50_000
    batch_size: int = 12
    g_lr: float = 0.0015
    d_lr: float = 0.0001
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 5.0
    r1_interval: int = 16
    ema_beta: float = 0.999
    w_avg_beta: float = 0.995
    seed: int = 0
    hflip: bool = True
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 2  # step folders kept while training
    log_every: int = 50


def _generator_kwargs(encoder: ConditionEncoder, resolution: int, arch: Mapping) -> dict:
    return {
        "resolution": resolution,
        "n_continuous": encoder.n_continuous,
        "category_sizes": encoder.category_sizes,
        **arch,
    }


@dataclass
class _Nets:
    """What a training step updates.

    The last R1 value is logged until the next lazy R1 step, so it is training state too.
    """

    generator: StyleGANLiteGenerator
    discriminator: StyleGANLiteDiscriminator
    generator_ema: StyleGANLiteGenerator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    r1: float = float("nan")


def _start_nets(
    encoder: ConditionEncoder,
    tconf: StyleGANLiteTrainConfig,
    generator_kwargs: Mapping | None,
    discriminator_kwargs: Mapping | None,
    folder: Path | None,
) -> _Nets:
    """Networks and optimisers initialised from ``tconf.seed``, then, when ``folder`` (a
    checkpoint with training state) is given, loaded from it."""
    torch.manual_seed(tconf.seed)
    res = tconf.resolution
    G = StyleGANLiteGenerator(**_generator_kwargs(encoder, res, generator_kwargs or {}))
    D = StyleGANLiteDiscriminator(**_generator_kwargs(encoder, res, discriminator_kwargs or {}))
    nets = _Nets(
        generator=G,
        discriminator=D,
        generator_ema=copy.deepcopy(G).eval().requires_grad_(False),
        opt_g=torch.optim.Adam(G.parameters(), lr=tconf.g_lr, betas=tconf.betas),
        opt_d=torch.optim.Adam(D.parameters(), lr=tconf.d_lr, betas=tconf.betas),
    )
    if folder is not None:
        nets.generator_ema.load_state_dict(
            StyleGANLiteGenerator.from_pretrained(folder / MODEL / "generator").state_dict()
        )
        D.load_state_dict(
            StyleGANLiteDiscriminator.from_pretrained(folder / MODEL / "discriminator").state_dict()
        )
        state = load_state(folder / TRAINING_STATE)
        G.load_state_dict(state["generator"])
        nets.opt_g.load_state_dict(state["optimizer_g"])
        nets.opt_d.load_state_dict(state["optimizer_d"])
        nets.r1 = float(state["r1"])
    G.train()
    D.train()
    return nets


def _discriminator_step(
    nets: _Nets,
    step: int,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    g: torch.Generator,
    tconf: StyleGANLiteTrainConfig,
) -> torch.Tensor:
    """One D update on ``batch`` against fakes drawn from ``g``; R1 lazily every
    ``r1_interval`` steps, scaled by it. Returns the logistic loss (without R1)."""
    real, cont, cat = batch
    G, D = nets.generator, nets.discriminator
    with torch.no_grad():
        fake = G(randn((G.config.z_dim,), tconf.batch_size, g), cont, cat, generator=g)
    regularise = tconf.r1_gamma > 0 and step % tconf.r1_interval == 0
    if regularise:
        real = real.detach().requires_grad_(True)
    real_logits = D(real, cont, cat)
    loss_d = d_logistic_loss(real_logits, D(fake, cont, cat))
    total_d = loss_d
    if regularise:
        r1 = r1_from_logits(real_logits, real, tconf.r1_gamma)
        total_d = total_d + r1 * tconf.r1_interval
        nets.r1 = float(r1.detach())
    nets.opt_d.zero_grad(set_to_none=True)
    total_d.backward()
    nets.opt_d.step()
    return loss_d


def _generator_step(
    nets: _Nets,
    cont: torch.Tensor,
    cat: torch.Tensor,
    g: torch.Generator,
    tconf: StyleGANLiteTrainConfig,
) -> torch.Tensor:
    """One G update with latents and noise drawn from ``g``; tracks the mean ``w`` first."""
    G = nets.generator
    z = randn((G.config.z_dim,), tconf.batch_size, g)
    w = G.mapping(z, cont, cat)
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.lerp(w.mean(0), G.mapping.w_avg, tconf.w_avg_beta))
    loss_g = g_nonsaturating_loss(nets.discriminator(G.synthesis(w, g), cont, cat))
    nets.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    nets.opt_g.step()
    return loss_g


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """``ema <- beta ema + (1 - beta) model`` for the weights; buffers are copied."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - beta)
        for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def _save_checkpoint(
    checkpoints: Checkpoints,
    done: int,
    rows: list[dict],
    nets: _Nets,
    encoder: ConditionEncoder,
    tconf: StyleGANLiteTrainConfig,
) -> None:
    """Checkpoint ``done``: the model directory layout plus what only continuing needs."""
    with checkpoints.save(done, rows) as folder:
        nets.generator_ema.save_pretrained(folder / MODEL / "generator")
        nets.discriminator.save_pretrained(folder / MODEL / "discriminator")
        encoder.save(folder / MODEL / "condition_encoder.json")
        save_json_config(tconf, folder / MODEL / TRAIN_CONFIG)
        save_state(
            folder / TRAINING_STATE,
            {
                "generator": nets.generator.state_dict(),
                "optimizer_g": nets.opt_g.state_dict(),
                "optimizer_d": nets.opt_d.state_dict(),
                "r1": nets.r1,
                "step": done,
            },
        )


def train_stylegan_lite(
    data_dir: str | Path,
    split_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    resolution: int = 128,
    steps: int = 50_000,
    batch_size: int = 12,
    g_lr: float = 0.0015,
    d_lr: float = 0.0001,
    seed: int = 0,
    r1_gamma: float = 5.0,
    r1_interval: int = 16,
    checkpoint_every: int = 5_000,
    keep_checkpoints: int = 2,
    log_every: int = 50,
    generator_kwargs: Mapping | None = None,
    discriminator_kwargs: Mapping | None = None,
    resume: bool = True,
    continuable: bool = False,
    progress: bool = True,
) -> Path:
    """Train stylegan-lite on the ``train`` rows of a prepared data set.

    Parameters
    ----------
    data_dir, split_csv, schema_path : prepared data set, ``id, split`` table, schema YAML.
    out_dir : model directory to write (with ``train_log.csv`` and ``checkpoints/``).
    resolution : image side (power of two ≥ 8).
    steps : optimisation steps (one D and one G update each).
    batch_size, g_lr, d_lr : Table B2 (12, 0.0015, 0.0001).
    seed : seeds the initial weights and every step's randomness.
    r1_gamma, r1_interval : R1 weight (Table B2: 5) and lazy-regularisation interval.
    checkpoint_every, log_every : in steps; a final checkpoint is always written.
    keep_checkpoints : step folders kept while training (the newest ones).
    generator_kwargs, discriminator_kwargs : architecture overrides (``z_dim``,
        ``channel_base``, ``channel_max``, ``feature_dim``, …).
    resume : continue from the newest checkpoint in ``out_dir`` if there is one.
    continuable : keep the optimiser state of the finished run, so that a call with more
        ``steps`` continues it exactly (otherwise that call is an error).
    progress : show a tqdm bar.

    Returns
    -------
    ``out_dir``.
    """
    checkpoints, start, folder = open_run(out_dir, steps, keep_checkpoints, resume)
    tconf = StyleGANLiteTrainConfig(
        resolution=resolution,
        steps=steps,
        batch_size=batch_size,
        g_lr=g_lr,
        d_lr=d_lr,
        r1_gamma=r1_gamma,
        r1_interval=r1_interval,
        seed=seed,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
    )
    if start == steps:  # finished (its outputs may have been deleted): nothing to train
        return export_run(checkpoints, out_dir, continuable=continuable)
    data = load_training_set(data_dir, split_csv, schema_path, resolution)
    nets = _start_nets(data.encoder, tconf, generator_kwargs, discriminator_kwargs, folder)
    rows = checkpoints.history(folder) if folder is not None else []
    compute, n_timed = 0.0, 0
    bar = tqdm(
        range(start, steps),
        desc="stylegan-lite",
        disable=not progress,
        initial=start,
        total=steps,
    )
    for step in bar:
        tic = time.perf_counter()
        g = step_generator(seed, step)
        batch = draw_batch(data, batch_size, g, hflip=tconf.hflip)
        loss_d = _discriminator_step(nets, step, batch, g, tconf)
        loss_g = _generator_step(nets, batch[1], batch[2], g, tconf)
        _update_ema(nets.generator_ema, nets.generator, tconf.ema_beta)
        compute, n_timed = compute + time.perf_counter() - tic, n_timed + 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            rows.append(
                {
                    "step": done,
                    "loss_d": float(loss_d.detach()),
                    "loss_g": float(loss_g.detach()),
                    "r1": nets.r1,
                    "seconds_per_step": compute / n_timed,
                }
            )
            compute, n_timed = 0.0, 0
            bar.set_postfix(d=f"{float(loss_d.detach()):.3f}", g=f"{float(loss_g.detach()):.3f}")
        if done % checkpoint_every == 0 or done == steps:
            _save_checkpoint(checkpoints, done, rows, nets, data.encoder, tconf)
    bar.close()
    return export_run(checkpoints, out_dir, continuable=continuable)
