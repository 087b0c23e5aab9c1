"""DreamBooth + LoRA fine-tuning of SD3 or SDXL with parameter-aware conditioning (paper
2.3.1–2.3.5, Table B4).

Families (``family``): ``sd3`` (SD3.5-Large / -Medium, MM-DiT) and ``sdxl`` (U-Net). Both
have the same two CLIP encoders, so the same conditioner injects the process variables at
the placeholder tokens of both CLIP streams.

Trainable: LoRA (or DoRA) adapters on the denoiser's attention projections — for SD3 the
MM-DiT's ``to_q/k/v``, ``to_out.0``, ``add_q/k/v_proj``, ``to_add_out`` (and the same names
inside ``attn2`` of dual-attention blocks), for SDXL the U-Net's ``to_q/k/v``, ``to_out.0`` of
self- and cross-attention — LoRA adapters on both CLIP encoders (``q/k/v_proj``,
``out_proj``) when ``train_text_encoder``, and the conditioner (per-encoder MLPs and category
tables). Everything else is frozen (asserted).

Loss: SD3 — rectified flow (``z_t = (1 - t) x0 + t ε``, target ``ε - x0``) with logit-normal
``t`` mapped through the scheduler's shifted sigma table; SDXL — ε-prediction DDPM loss with
uniform ``t`` and the size/crop ``time_ids``. DreamBooth prior preservation adds
``prior_loss_weight`` × the same loss on class images generated once by the base model from
``class_prompt`` (cached in ``out_dir/class_images``). Without prior preservation and with
``train_text_encoder=False`` the run is the paper's "LoRA only" SDXL variant (Table B1 (1)).

Caches: VAE posterior (mean, std) of every train image and of its mirror image, and (SD3) the
T5 embeddings of its prompt, are kept in dictionaries keyed by image id, so a shuffled batch
always pairs an image with its own conditions.

Randomness: every draw of the loop (batch ids, flips, latent sample, t, ε) comes from one CPU
``torch.Generator`` whose state is checkpointed with the adapters, conditioner and optimiser,
so a resumed run continues the same loss curve.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers.optimization import get_scheduler
from safetensors.torch import load_file, save_file

from microgen.checkpoint import (
    TRAINING_STATE,
    Checkpoints,
    load_state,
    reset_stale_checkpoints,
    save_state,
    write_history,
)
from microgen.conditioning.conditioner import ParameterConditioner, schema_to_config
from microgen.conditioning.encode import encode_t5
from microgen.conditioning.normalize import RobustNormalizer
from microgen.conditioning.tokens import (
    PlaceholderInjector,
    add_placeholder_tokens,
    strip_placeholders,
    token_row_norm,
)
from microgen.data.prepared import read_gray, write_png
from microgen.data.preprocess import resize_center_crop, to_model_range
from microgen.data.schema import PROMPT_MODES, ConditionSchema, load_schema
from microgen.data.split import read_split_table
from microgen.device import select_device
from microgen.generate.adapters import ParameterAwareAdapters, lora_state
from microgen.generate.common import (
    DENOISER,
    WEIGHTING_SCHEMES,
    atomic_write_csv,
    encode_latent_stats,
    epsilon_loss,
    flow_matching_loss,
    load_base_pipeline,
    load_images,
    sample_latents,
    sdxl_time_ids,
    t5_length,
    training_scheduler,
)
from microgen.generate.pipeline import (
    ParameterAwareText,
    generate_from_prompts,
)

TRANSFORMER_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
)
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
DENOISER_TARGETS = {"sd3": TRANSFORMER_TARGETS, "sdxl": UNET_TARGETS}
CLIP_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
FROZEN = ("transformer", "unet", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")


#: Learning-rate schedules of diffusers' ``get_scheduler`` (what the DreamBooth scripts offer).
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                 "polynomial")  # fmt: skip


def _lora_config(rank: int, alpha: float, targets, use_dora: bool):
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights="gaussian",
        target_modules=list(targets),
        use_dora=use_dora,
    )


def count_parameters(module: torch.nn.Module, added: bool = False) -> tuple[int, int, int]:
    """``(pretrained, added, trainable)`` parameter counts of ``module``: peft's ``lora_*``
    tensors (or, with ``added``, every tensor) are added to the base, the rest came with it.
    Shapes only, so a module built on the meta device counts like a loaded one."""
    pretrained = extra = trainable = 0
    for name, p in module.named_parameters():
        if added or "lora_" in name:
            extra += p.numel()
        else:
            pretrained += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return pretrained, extra, trainable


def parameter_table(
    pipe,
    conditioner: ParameterConditioner | None,
    token_ids: Mapping[str, Sequence[int]] | None = None,
) -> pd.DataFrame:
    """Parameters per component (like the paper's Table B3): those of the base
    (``pretrained``), those fine-tuning adds (``added``: LoRA adapters, the placeholder
    token rows ``token_ids`` of each CLIP encoder, the conditioner), their ``total``, how
    many are ``trainable`` and what ``percent`` of the total that is."""
    if getattr(pipe, "unet", None) is not None:
        head = [("U-Net (unet + LoRA)", pipe.unet)]
    else:
        head = [("MM-DiT (transformer + LoRA)", pipe.transformer)]
    parts = head + [("CLIP-L", pipe.text_encoder), ("CLIP-G", pipe.text_encoder_2)]
    if hasattr(pipe, "text_encoder_3"):  # SD3 lists T5 even when it is dropped (None)
        parts.append(("T5", pipe.text_encoder_3))
    parts += [("VAE", pipe.vae)]
    rows = [(name, *(count_parameters(m) if m is not None else (0, 0, 0))) for name, m in parts]
    # Placeholder rows appended to each CLIP embedding table are added, not pretrained.
    for k, enc in ((1, "clip_l"), (2, "clip_g")):
        width = parts[k][1].get_input_embeddings().weight.shape[1]
        moved = len((token_ids or {}).get(enc, ())) * width
        rows[k] = (rows[k][0], rows[k][1] - moved, rows[k][2] + moved, rows[k][3])
    name = "Parameter encoder (categorical + continuous)"
    rows.append((name, *(count_parameters(conditioner, added=True) if conditioner else (0, 0, 0))))
    table = pd.DataFrame(rows, columns=["component", "pretrained", "added", "trainable"])
    overall = table[["pretrained", "added", "trainable"]].sum()
    table.loc[len(table)] = ["Overall", *overall]
    table.insert(3, "total", table["pretrained"] + table["added"])
    table["percent"] = (100 * table["trainable"] / table["total"].clip(lower=1)).round(3)
    return table


def _assert_frozen(pipe, conditioner) -> None:
    """Only LoRA parameters and the conditioner may require gradients."""
    for name in FROZEN:
        module = getattr(pipe, name, None)
        if module is None:
            continue
        for pname, p in module.named_parameters():
            if p.requires_grad and "lora_" not in pname:
                raise AssertionError(f"{name}.{pname} is trainable but is not a LoRA weight")
    if conditioner is not None:
        assert all(p.requires_grad for p in conditioner.parameters())


def _set_lora_state(module, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(module, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise RuntimeError(f"unexpected LoRA keys in checkpoint: {unexpected[:3]}")


def _class_images(
    pipe,
    out_dir: Path,
    class_prompt: str,
    n: int,
    resolution: int,
    seed: int,
    steps: int,
    guidance: float,
    max_sequence_length: int,
) -> list[Path]:
    """Generate (once) the DreamBooth class images with the base model."""
    directory = out_dir / "class_images"
    directory.mkdir(parents=True, exist_ok=True)
    meta = directory / "class_images.json"
    wanted = {
        "prompt": class_prompt,
        "n": n,
        "resolution": resolution,
        "seed": seed,
        "steps": steps,
        "guidance": guidance,
    }
    paths = [directory / f"{i:05d}.png" for i in range(n)]
    if (
        meta.is_file()
        and json.loads(meta.read_text()) == wanted
        and all(p.is_file() for p in paths)
    ):
        return paths
    text = ParameterAwareText(pipe, None, None, None, max_sequence_length)
    images = generate_from_prompts(
        pipe,
        [class_prompt] * n,
        [seed + 10_000 + i for i in range(n)],
        text=text,
        steps=steps,
        guidance=guidance,
        height=resolution,
        width=resolution,
        batch_size=4,
    )
    for p, image in zip(paths, images, strict=True):
        write_png(p, image)
    meta.write_text(json.dumps(wanted))
    return paths


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of one DreamBooth-LoRA fine-tune; the defaults are stated here only.

    Attributes
    ----------
    prompt_mode : ``full_text`` or ``parameter_only`` (conditioner trained), or ``text_only``
        (plain DreamBooth-LoRA, no placeholders, no conditioner).
    family : ``"sd3"`` (the base is an SD3/SD3.5 pipeline) or ``"sdxl"`` (an SDXL pipeline).
    rank, lora_alpha : LoRA rank and alpha (alpha defaults to the rank).
    use_dora : DoRA instead of LoRA (trains a magnitude vector per adapted layer).
    learning_rate, text_encoder_lr, conditioner_lr : AdamW learning rates of the denoiser
        adapters, the CLIP adapters and the conditioner (default: learning_rate).
    lr_scheduler, lr_warmup_steps : their schedule, one of diffusers' ``get_scheduler``
        names (:data:`LR_SCHEDULERS`); the paper's is constant without warm-up.
    weight_decay : AdamW's decoupled weight decay; the paper's 0 ("without warmup or
        additional regularization", § 4.1).
    gradient_accumulation_steps : batches whose gradients are summed before each optimiser
        step (an effective batch of ``batch_size`` × this).
    train_text_encoder : put LoRA on both CLIP encoders.
    batch_size, max_steps, resolution, seed : training loop.
    prior_preservation, class_prompt, num_class_images, prior_loss_weight,
    class_inference_steps, class_guidance : DreamBooth prior preservation.
    mixed_precision : ``"bf16"`` (frozen weights bf16 and autocast on CUDA; trainable
        parameters stay fp32) or ``"no"``. CPU always runs fp32.
    gradient_checkpointing : trade compute for memory in the denoiser and CLIP encoders.
    checkpoint_every : save a resumable checkpoint every N steps (0: only at the end).
    conditioner_hidden : MLP hidden width (default: the encoder width).
    weighting_scheme, logit_mean, logit_std, mode_scale, precondition_outputs : the SD3
        loss (:func:`~microgen.generate.common.flow_matching_loss`); the defaults are those
        of diffusers' ``train_dreambooth_lora_sd3.py``, which the paper ran (Diffusers 0.33).
    max_sequence_length : T5 tokens of a prompt (SD3); default the base's own (the tiny
        base records it; a hub base: 77, the paper's Eq. 7).
    """

    prompt_mode: str = "full_text"
    family: str = "sd3"
    rank: int = 4
    lora_alpha: float | None = None
    use_dora: bool = False
    learning_rate: float = 8e-5
    text_encoder_lr: float = 8e-6
    conditioner_lr: float | None = None
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    train_text_encoder: bool = True
    batch_size: int = 2
    max_steps: int = 100
    resolution: int = 128
    seed: int = 0
    prior_preservation: bool = False
    class_prompt: str = "a micrograph of steel"
    num_class_images: int = 8
    prior_loss_weight: float = 1.0
    class_inference_steps: int = 20
    class_guidance: float = 2.0
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0
    conditioner_hidden: int | None = None
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    precondition_outputs: bool = True
    max_sequence_length: int | None = None

    def __post_init__(self) -> None:
        if self.weighting_scheme not in WEIGHTING_SCHEMES:
            raise ValueError(
                f"weighting_scheme must be one of {WEIGHTING_SCHEMES}, "
                f"got {self.weighting_scheme!r}"
            )
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(
                f"lr_scheduler must be one of {LR_SCHEDULERS}, got {self.lr_scheduler!r}"
            )
        if self.gradient_accumulation_steps < 1:
            raise ValueError(
                f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}"
            )
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(
                f"unknown prompt mode {self.prompt_mode!r}; expected one of {PROMPT_MODES}"
            )
        if self.mixed_precision not in ("bf16", "no"):
            raise ValueError("mixed_precision must be 'bf16' or 'no'")
        if self.family not in DENOISER:
            raise ValueError(
                f"unknown model family {self.family!r}; expected one of {tuple(DENOISER)}"
            )

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha if self.lora_alpha is not None else self.rank)

    @property
    def uses_conditioner(self) -> bool:
        return self.prompt_mode != "text_only"


@dataclass
class _Trainables:
    """What a fine-tune trains, and how it is saved in a checkpoint folder."""

    pipe: object
    net: torch.nn.Module
    conditioner: ParameterConditioner | None
    injectors: dict | None
    token_ids: dict[str, list[int]]
    encoders: dict[str, torch.nn.Module]
    train_text_encoder: bool
    family: str

    @property
    def net_file(self) -> str:
        return f"{DENOISER[self.family]}_lora.safetensors"

    def save(self, folder: Path) -> None:
        save_file(lora_state(self.net), str(folder / self.net_file))
        if self.train_text_encoder:
            save_file(lora_state(self.pipe.text_encoder), str(folder / "clip_l_lora.safetensors"))
            save_file(lora_state(self.pipe.text_encoder_2), str(folder / "clip_g_lora.safetensors"))
        if self.conditioner is not None:
            state = {
                k: v.detach().cpu().contiguous() for k, v in self.conditioner.state_dict().items()
            }
            save_file(state, str(folder / "conditioner.safetensors"))

    def load(self, folder: Path) -> None:
        _set_lora_state(self.net, load_file(str(folder / self.net_file)))
        if self.train_text_encoder:
            _set_lora_state(
                self.pipe.text_encoder, load_file(str(folder / "clip_l_lora.safetensors"))
            )
            _set_lora_state(
                self.pipe.text_encoder_2, load_file(str(folder / "clip_g_lora.safetensors"))
            )
        if self.conditioner is not None:
            self.conditioner.load_state_dict(load_file(str(folder / "conditioner.safetensors")))


def add_lora_adapters(
    net: torch.nn.Module, encoders: Iterable[torch.nn.Module], cfg: FineTuneConfig
) -> None:
    """The adapters a fine-tune trains: LoRA (DoRA with ``use_dora``) of ``cfg.rank`` and
    ``cfg.alpha`` on the denoiser ``net``'s attention projections (:data:`DENOISER_TARGETS`
    of ``cfg.family``) and, with ``train_text_encoder``, on each CLIP encoder of
    ``encoders`` (:data:`CLIP_TARGETS`); their weights in fp32 even when the base is bf16.
    The modules should be frozen before, so that only the adapters require gradients."""
    encoders = list(encoders)
    net.add_adapter(_lora_config(cfg.rank, cfg.alpha, DENOISER_TARGETS[cfg.family], cfg.use_dora))
    if cfg.train_text_encoder:
        # peft's own injection, not transformers' `add_adapter`, whose peft version gate moves
        # with every transformers release; the keys stay those `load_lora_weights` reads.
        from peft import inject_adapter_in_model

        for m in encoders:
            inject_adapter_in_model(
                _lora_config(cfg.rank, cfg.alpha, CLIP_TARGETS, cfg.use_dora), m
            )
    for m in [net] + (encoders if cfg.train_text_encoder else []):
        for p in m.parameters():
            if p.requires_grad:
                p.data = p.data.float()


def _attach_trainables(
    pipe, schema, rows: pd.DataFrame, cfg: FineTuneConfig, device
) -> _Trainables:
    """Placeholder tokens and the conditioner (unless ``text_only``), LoRA adapters on the
    denoiser and (``train_text_encoder``) both CLIP encoders; everything else frozen."""
    net = getattr(pipe, DENOISER[cfg.family])
    encoders = {"clip_l": pipe.text_encoder, "clip_g": pipe.text_encoder_2}
    tokenizers = {"clip_l": pipe.tokenizer, "clip_g": pipe.tokenizer_2}
    conditioner = injectors = None
    token_ids: dict[str, list[int]] = {}
    if cfg.uses_conditioner:
        for enc in encoders:
            token_ids[enc] = add_placeholder_tokens(
                tokenizers[enc], encoders[enc], schema.placeholders
            )
            encoders[enc].requires_grad_(False)
        normalizer = RobustNormalizer.fit(schema, rows)
        widths = {enc: int(m.config.hidden_size) for enc, m in encoders.items()}
        conditioner = ParameterConditioner(
            schema, widths, normalizer, hidden=cfg.conditioner_hidden
        )
        conditioner.to(device=device, dtype=torch.float32)
        conditioner.match_token_scale(
            {enc: token_row_norm(encoders[enc], token_ids[enc]) for enc in encoders},
            rows.to_dict("records"),
        )
        conditioner.train()
        injectors = {enc: PlaceholderInjector(encoders[enc], token_ids[enc]) for enc in encoders}
    add_lora_adapters(net, encoders.values(), cfg)
    _assert_frozen(pipe, conditioner)
    if cfg.gradient_checkpointing:
        net.enable_gradient_checkpointing()
        if cfg.train_text_encoder:
            for m in encoders.values():
                m.gradient_checkpointing_enable()
    return _Trainables(
        pipe, net, conditioner, injectors, token_ids, encoders, cfg.train_text_encoder, cfg.family
    )


def _optimizer(trainables: _Trainables, cfg: FineTuneConfig) -> torch.optim.AdamW:
    def params(module):
        return [p for p in module.parameters() if p.requires_grad]

    pipe = trainables.pipe
    groups = [
        {"params": params(trainables.net), "lr": cfg.learning_rate, "name": DENOISER[cfg.family]}
    ]
    if cfg.train_text_encoder:
        text_params = params(pipe.text_encoder) + params(pipe.text_encoder_2)
        groups.append({"params": text_params, "lr": cfg.text_encoder_lr, "name": "text_encoders"})
    if trainables.conditioner is not None:
        lr = cfg.conditioner_lr if cfg.conditioner_lr is not None else cfg.learning_rate
        groups.append(
            {"params": list(trainables.conditioner.parameters()), "lr": lr, "name": "conditioner"}
        )
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


@dataclass
class _Batches:
    """Per-id caches (VAE posterior of each image and its mirror, SD3's T5 embeddings) and
    the DreamBooth class images; draws a training batch from one generator."""

    ids: list[str]
    prompts: dict[str, str]
    conditions: dict[str, dict] | None
    latents: dict[str, tuple[torch.Tensor, ...]]
    t5: dict[str, torch.Tensor]
    class_latents: tuple[torch.Tensor, torch.Tensor] | None = None
    class_t5: torch.Tensor | None = None

    def draw(self, vae, batch_size: int, gen: torch.Generator):
        pick = torch.randint(len(self.ids), (batch_size,), generator=gen).tolist()
        flips = (torch.rand(batch_size, generator=gen) < 0.5).tolist()
        batch = [self.ids[k] for k in pick]
        pairs = list(zip(batch, flips, strict=True))
        m = torch.stack([self.latents[i][2 if f else 0] for i, f in pairs])
        s = torch.stack([self.latents[i][3 if f else 1] for i, f in pairs])
        latents = sample_latents(vae, m, s, gen)
        t5 = torch.stack([self.t5[i] for i in batch]) if self.t5 else None
        conditions = [self.conditions[i] for i in batch] if self.conditions else None
        return latents, [self.prompts[i] for i in batch], conditions, t5


def _encode_batches(
    pipe,
    data_dir,
    ids,
    prompts,
    conditions,
    schema,
    cfg,
    class_paths,
    max_len,
    weight_dtype,
    device,
) -> _Batches:
    images = load_images(data_dir, ids, cfg.resolution)
    mean, std = encode_latent_stats(pipe.vae, images.to(weight_dtype))
    fmean, fstd = encode_latent_stats(pipe.vae, images.flip(-1).to(weight_dtype))
    latents = {i: (mean[k], std[k], fmean[k], fstd[k]) for k, i in enumerate(ids)}
    t5_cache: dict[str, torch.Tensor] = {}
    is_sd3 = cfg.family == "sd3"
    if is_sd3:
        stripped = [strip_placeholders(prompts[i], schema.placeholders) for i in ids]
        with torch.no_grad():
            t5 = encode_t5(pipe, stripped, max_len, device).cpu()
        t5_cache = {i: t5[k] for k, i in enumerate(ids)}
    batches = _Batches(
        ids, prompts, conditions if cfg.uses_conditioner else None, latents, t5_cache
    )
    if class_paths:
        cimgs = torch.from_numpy(
            np.stack(
                [
                    to_model_range(resize_center_crop(read_gray(p), cfg.resolution))
                    for p in class_paths
                ]
            )[:, None]
        )
        batches.class_latents = encode_latent_stats(pipe.vae, cimgs.to(weight_dtype))
        if is_sd3:
            with torch.no_grad():
                batches.class_t5 = encode_t5(pipe, [cfg.class_prompt], max_len, device).cpu()
    return batches


def offload_t5(pipe) -> None:
    """Move T5 off the accelerator once the embedding cache is filled: training never calls
    it again (SD3.5's T5-XXL holds 4.76 B parameters, 8.9 GiB in bf16). It stays in host
    memory so that the parameter table still counts it."""
    t5 = getattr(pipe, "text_encoder_3", None)
    if t5 is None:
        return
    t5.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _step_loss(
    pipe, net, text, batches: _Batches, cfg: FineTuneConfig, scheduler, gen, weight_dtype, device
) -> torch.Tensor:
    """The DreamBooth loss of one drawn batch (plus the prior term with class images)."""
    latents, prompts, conditions, t5_batch = batches.draw(pipe.vae, cfg.batch_size, gen)
    n_inst = len(prompts)
    embeds, pooled = text.encode(prompts, conditions, t5_embeds=t5_batch, device=device)
    if batches.class_latents is not None:
        cmean, cstd = batches.class_latents
        cpick = torch.randint(len(cmean), (cfg.batch_size,), generator=gen)
        clat = sample_latents(pipe.vae, cmean[cpick], cstd[cpick], gen)
        class_t5 = batches.class_t5
        ce, cp = text.encode(
            [cfg.class_prompt] * cfg.batch_size,
            None,
            t5_embeds=class_t5.expand(cfg.batch_size, -1, -1) if class_t5 is not None else None,
            device=device,
        )
        latents = torch.cat([latents, clat])
        embeds, pooled = torch.cat([embeds, ce]), torch.cat([pooled, cp])
    args = (net, latents.to(device, weight_dtype), embeds.to(weight_dtype), pooled.to(weight_dtype))
    if cfg.family == "sd3":
        per_sample = flow_matching_loss(
            *args, scheduler, gen, cfg.logit_mean, cfg.logit_std, per_sample=True,
            weighting_scheme=cfg.weighting_scheme, mode_scale=cfg.mode_scale,
            precondition_outputs=cfg.precondition_outputs,
        )  # fmt: skip
    else:
        time_ids = sdxl_time_ids(cfg.resolution, len(latents))
        per_sample = epsilon_loss(*args, time_ids, scheduler, gen, per_sample=True)
    loss = per_sample[:n_inst].mean()
    if batches.class_latents is not None:
        loss = loss + cfg.prior_loss_weight * per_sample[n_inst:].mean()
    return loss


def _resume(
    checkpoints: Checkpoints,
    trainables: _Trainables,
    optimizer: torch.optim.Optimizer,
    lr_schedule: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    max_steps: int,
) -> tuple[int, list[dict]]:
    """Restore the latest checkpoint, if any; returns its step and the log up to it."""
    found = checkpoints.latest()
    if found is None:
        return 0, []
    start, latest = found
    trainables.load(latest)
    if start < max_steps:
        if not Checkpoints.has_training_state(latest):
            raise ValueError(
                f"{latest} is the end of a finished run (no optimiser state is kept); "
                f"delete {checkpoints.root} to train {max_steps} steps from the start"
            )
        state = load_state(latest / TRAINING_STATE)
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch"])
    return start, checkpoints.history(latest)


def _training_prompts(
    rows: pd.DataFrame, schema: ConditionSchema, mode: str
) -> tuple[list[str], dict[str, dict], dict[str, str]]:
    """Ids of the training rows, each one's conditions and its prompt in ``mode``."""
    ids = rows["id"].astype(str).tolist()
    conditions = {
        i: {v: r[v] for v in schema.variables}
        for i, r in zip(ids, rows.to_dict("records"), strict=True)
    }
    return ids, conditions, {i: schema.prompt(conditions[i], mode) for i in ids}


def _frozen_base(base: str | Path, dtype: torch.dtype, family: str, device: torch.device):
    """The base pipeline on ``device`` with every pretrained module frozen in eval mode."""
    pipe = load_base_pipeline(base, dtype, family)
    pipe.to(device)
    for name in FROZEN:
        module = getattr(pipe, name, None)
        if module is not None:
            module.requires_grad_(False).eval()
    return pipe


def fine_tune(
    base: str | Path,
    data_dir: str | Path,
    split_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    config: FineTuneConfig | None = None,
    *,
    resume: bool = True,
    device: str | torch.device | None = None,
    step_callback: Callable[[int, dict], None] | None = None,
    **settings: object,
) -> Path:
    """Fine-tune ``base`` on the train split; write adapters, conditioner and logs.

    Parameters
    ----------
    base : diffusers SD3/SDXL pipeline directory or hub id (e.g. the tiny base, or
        ``stabilityai/stable-diffusion-3.5-large``); a missing or gated model fails at once.
    data_dir, split_csv, schema_path : prepared data set, its split file, its schema.
    out_dir : output directory.
    config : the training settings (:class:`FineTuneConfig`); or give its fields as keyword
        ``settings``.
    resume : continue from the latest checkpoint in ``out_dir``.
    device : default cuda when available.
    step_callback : called as ``step_callback(step, state)`` after each backward pass,
        before the optimiser step (gradients present); ``state`` holds ``pipe``,
        ``conditioner``, ``text`` (the :class:`ParameterAwareText` being trained),
        ``optimizer`` and ``loss``. For monitoring and tests.

    Returns
    -------
    ``out_dir`` holding ``pytorch_lora_weights.safetensors``, ``conditioner.safetensors``,
    ``conditioner.json``, ``placeholder_tokens.{json,safetensors}``, ``finetune_config.json``,
    ``parameters.csv``, ``train_log.csv`` and ``checkpoints/``.
    """
    if config is None:
        config = FineTuneConfig(**settings)
    elif settings:
        raise TypeError(f"give either config or settings, not both: {sorted(settings)}")
    cfg = config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rerun with other settings must not resume the old run's checkpoints.
    reset_stale_checkpoints(
        out_dir,
        {"base": str(base), "data_dir": str(data_dir), "split_csv": str(split_csv),
         "schema_path": str(schema_path), "device": str(device), **asdict(cfg)},
        inputs=(Path(data_dir) / "metadata.csv", Path(split_csv)),
    )  # fmt: skip
    device = select_device(device)
    use_bf16 = cfg.mixed_precision == "bf16" and device.type == "cuda"
    weight_dtype = torch.bfloat16 if use_bf16 else torch.float32
    torch.manual_seed(cfg.seed)

    schema = load_schema(schema_path)
    rows = read_split_table(data_dir, split_csv, ["train"])
    ids, conditions, prompts = _training_prompts(rows, schema, cfg.prompt_mode)
    max_len = cfg.max_sequence_length or t5_length(base)
    pipe = _frozen_base(base, weight_dtype, cfg.family, device)
    class_paths: list[Path] = []
    if cfg.prior_preservation:  # from the untouched base
        class_paths = _class_images(
            pipe, out_dir, cfg.class_prompt, cfg.num_class_images, cfg.resolution, cfg.seed,
            cfg.class_inference_steps, cfg.class_guidance, max_len,
        )  # fmt: skip
    batches = _encode_batches(
        pipe, data_dir, ids, prompts, conditions, schema, cfg, class_paths, max_len,
        weight_dtype, device,
    )  # fmt: skip
    offload_t5(pipe)  # the cache (on the CPU) replaces it from here on
    trainables = _attach_trainables(pipe, schema, rows, cfg, device)
    table = parameter_table(pipe, trainables.conditioner, trainables.token_ids)
    atomic_write_csv(table, out_dir / "parameters.csv")
    optimizer = _optimizer(trainables, cfg)
    lr_schedule = get_scheduler(
        cfg.lr_scheduler, optimizer,
        num_warmup_steps=cfg.lr_warmup_steps, num_training_steps=cfg.max_steps,
    )  # fmt: skip
    text = ParameterAwareText(pipe, schema, trainables.conditioner, trainables.injectors, max_len)
    scheduler = training_scheduler(pipe)
    gen = torch.Generator().manual_seed(cfg.seed)

    checkpoints = Checkpoints(out_dir)
    start, log = 0, []
    if resume:
        start, log = _resume(checkpoints, trainables, optimizer, lr_schedule, gen, cfg.max_steps)

    def save_checkpoint(step: int) -> None:
        with checkpoints.save(step, log) as folder:
            trainables.save(folder)
            state = {"optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                     "lr_scheduler": lr_schedule.state_dict(),
                     "torch": torch.get_rng_state()}  # fmt: skip
            save_state(folder / TRAINING_STATE, state)

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    )
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    t0 = time.time()
    accumulate = cfg.gradient_accumulation_steps
    for step in range(start + 1, cfg.max_steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for _ in range(accumulate):  # mean of the batches' losses, as one larger batch
            with autocast:
                part = (
                    _step_loss(
                        pipe,
                        trainables.net,
                        text,
                        batches,
                        cfg,
                        scheduler,
                        gen,
                        weight_dtype,
                        device,
                    )
                    / accumulate
                )
            part.backward()
            loss += part.item()
        if step_callback is not None:
            state = {"pipe": pipe, "conditioner": trainables.conditioner, "text": text,
                     "optimizer": optimizer, "loss": loss}  # fmt: skip
            step_callback(step, state)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        lr = lr_schedule.get_last_lr()[0]  # the denoiser's, at this step
        optimizer.step()
        lr_schedule.step()
        log.append({"step": step, "loss": loss, "lr": lr,
                    "seconds": round(time.time() - t0, 4)})  # fmt: skip
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            save_checkpoint(step)
    if start < cfg.max_steps:
        save_checkpoint(cfg.max_steps)
    checkpoints.finish()
    write_history(log, out_dir / "train_log.csv", columns=("step", "loss", "lr", "seconds"))
    saved = _saved_config(base, cfg, schema, len(ids), use_bf16, max_len)
    adapters = ParameterAwareAdapters(pipe, saved, trainables.conditioner, trainables.token_ids)
    adapters.save_pretrained(out_dir)
    return out_dir


def _saved_config(
    base, cfg: FineTuneConfig, schema, n_images: int, use_bf16: bool, max_len: int
) -> dict:
    """``finetune_config.json``: what the sampling pipeline needs to rebuild the model."""
    config = {
        "base": str(base),
        "family": cfg.family,
        "prompt_mode": cfg.prompt_mode,
        "conditioner": cfg.uses_conditioner,
        "schema": schema_to_config(schema),
        "rank": cfg.rank,
        "lora_alpha": cfg.alpha,
        "use_dora": cfg.use_dora,
        "learning_rate": cfg.learning_rate,
        "text_encoder_lr": cfg.text_encoder_lr,
        "conditioner_lr": cfg.conditioner_lr
        if cfg.conditioner_lr is not None
        else cfg.learning_rate,
        "train_text_encoder": cfg.train_text_encoder,
        "batch_size": cfg.batch_size,
        "max_steps": cfg.max_steps,
        "resolution": cfg.resolution,
        "seed": cfg.seed,
        "prior_preservation": cfg.prior_preservation,
        "class_prompt": cfg.class_prompt,
        "num_class_images": cfg.num_class_images,
        "prior_loss_weight": cfg.prior_loss_weight,
        "weighting_scheme": cfg.weighting_scheme,
        "precondition_outputs": cfg.precondition_outputs,
        "mixed_precision": "bf16" if use_bf16 else "no",
        "n_train_images": n_images,
    }
    if cfg.family == "sd3":
        config["max_sequence_length"] = max_len
    return config
