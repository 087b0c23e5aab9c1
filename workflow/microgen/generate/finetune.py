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

Caches and memory: the VAE posterior (mean, std) of every train image (and of its mirror
image with ``random_flip``) is encoded once by an fp32 VAE and kept by image id, so a shuffled
batch always pairs an image with its own conditions; the embeddings of every prompt the run
uses are computed once by the encoders that stay frozen (SD3's T5; both CLIP encoders too when
nothing of theirs is trained: ``text_only`` without ``train_text_encoder``). All caches live
on the CPU and move to the device per batch; the encoders they replace, and the VAE when no
validation sampling needs it, then leave memory (:func:`release_cached_encoders`).

Randomness: every draw of the loop (batch ids, flips, latent sample, t, ε) comes from one CPU
``torch.Generator`` whose state is checkpointed with the adapters, conditioner and optimiser,
so a resumed run continues the same loss curve. Random crops are drawn once per image from a
generator of their own (``seed`` + 20000), validation sampling from fixed per-image seeds
with the global RNG state restored afterwards, so neither moves the training draws.

Several processes (``python -m torch.distributed.run --nproc_per_node N``, one per GPU): the
denoiser, the conditioner and the CLIP encoders (when their adapters train) are one module
under DDP (:mod:`microgen.generate.distributed`), so every trained gradient is averaged over
the ranks; ``batch_size`` is per process (the paper's per-GPU batches), each rank computes its
rows of the batch that all ranks draw alike, so N ranks of batch b train as one process of
batch N·b up to floating-point rounding. Rank 0 alone writes files (checkpoints, logs,
adapters, ``parameters.csv``, validation grids, class images, which the others then read);
every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
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
from microgen.data.preprocess import crop_room, resize_center_crop, resize_crop, to_model_range
from microgen.data.schema import PROMPT_MODES, ConditionSchema, load_schema
from microgen.data.split import read_split_table
from microgen.generate.adapters import ParameterAwareAdapters, lora_state
from microgen.generate.common import (
    DENOISER,
    WEIGHTING_SCHEMES,
    atomic_write_csv,
    encode_latent_stats,
    epsilon_loss,
    family_of,
    flow_matching_loss,
    load_base_pipeline,
    sample_latents,
    sdxl_time_ids,
    t5_length,
    training_scheduler,
)
from microgen.generate.distributed import Processes, processes
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
    checkpoints_total_limit : how many of the newest checkpoints stay while training (older
        ones are deleted after each save); diffusers' ``--checkpoints_total_limit``.
    validation_every : every N steps sample one image per validation condition into
        ``validation/step-NNNNNN.png`` in ``out_dir`` (0: never). The conditions are the
        first ``validation_images`` distinct ones of the split's non-train rows (the train
        rows when there are none), each with the fixed seed ``seed + k``, listed in
        ``validation/conditions.csv``; ``validation_inference_steps`` and
        ``validation_guidance`` set the sampler.
    use_8bit_adam : bitsandbytes' 8-bit AdamW instead of torch's (CUDA only; bitsandbytes is
        not in the lock file and must be installed by hand).
    random_crop, random_flip : augmentation of the training images, which are resized to
        ``resolution`` on their shorter side and then cropped to a square: at a random offset
        drawn once per image (``random_crop``) or at the centre; ``random_flip`` mirrors an
        image with probability 1/2 at every draw. The paper's preprocessing centre-crops
        (§ 2.1) and its Appendix B reports random flips and crops; diffusers'
        ``train_dreambooth_lora_sd3.py`` (Diffusers 0.33.0, the paper's release) crops at
        random unless ``--center_crop`` and flips only with ``--random_flip``, both drawn
        once per image. Defaults: centre crop, random flip (the flip this trainer always had).
    conditioner_hidden : MLP hidden width (default: the encoder width).
    category_word_init : start each category's vector at the mean input embedding of the
        words its text-only prompt uses for it (textual inversion's initializer token; see
        :meth:`~microgen.conditioning.conditioner.ParameterConditioner.init_from_words`),
        instead of a random row at the encoder's token norm. Not in the paper.
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
    category_word_init: bool = False
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    precondition_outputs: bool = True
    max_sequence_length: int | None = None
    checkpoints_total_limit: int = 2
    validation_every: int = 0
    validation_images: int = 4
    validation_inference_steps: int = 8
    validation_guidance: float = 2.0
    use_8bit_adam: bool = False
    random_crop: bool = False
    random_flip: bool = True

    def __post_init__(self) -> None:
        for key, low in (("checkpoints_total_limit", 1), ("validation_every", 0),
                         ("validation_images", 1), ("validation_inference_steps", 1)):  # fmt: skip
            value = getattr(self, key)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
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

    def modules(self) -> list[torch.nn.Module]:
        """The modules holding trained parameters: the denoiser, both CLIP encoders when
        their adapters train, the conditioner."""
        encoders = [self.pipe.text_encoder, self.pipe.text_encoder_2]
        conditioner = [self.conditioner] if self.conditioner is not None else []
        return [self.net] + (encoders if self.train_text_encoder else []) + conditioner

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


class _Step(torch.nn.Module):
    """One step's loss as a module that holds every trained module, so that DDP, which
    averages the gradients of the parameters of the module it wraps, averages all of them
    in one all-reduce; for a single process a plain call of ``loss``."""

    def __init__(self, trained: Sequence[torch.nn.Module], loss: Callable[[], torch.Tensor]):
        super().__init__()
        self.trained = torch.nn.ModuleList(trained)
        self.loss = loss

    def forward(self) -> torch.Tensor:
        return self.loss()


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
        if cfg.category_word_init:
            conditioner.init_from_words(tokenizers, encoders)
        conditioner.train()
        injectors = {enc: PlaceholderInjector(encoders[enc], token_ids[enc]) for enc in encoders}
    add_lora_adapters(net, encoders.values(), cfg)
    _assert_frozen(pipe, conditioner)
    if cfg.gradient_checkpointing:
        # Non-reentrant (diffusers' default, stated for the encoders): the reentrant kind runs
        # the checkpointed forward without autograd, so DDP's search for unused parameters
        # would take the checkpointed ones for unused, then see their gradients arrive.
        net.enable_gradient_checkpointing()
        if cfg.train_text_encoder:
            for m in encoders.values():
                m.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
    return _Trainables(
        pipe, net, conditioner, injectors, token_ids, encoders, cfg.train_text_encoder, cfg.family
    )


def adamw_class(cfg: FineTuneConfig, device: torch.device) -> type[torch.optim.Optimizer]:
    """torch's AdamW, or with ``use_8bit_adam`` bitsandbytes' ``AdamW8bit`` (which needs CUDA
    and the package; either missing stops here, before any model loads)."""
    if not cfg.use_8bit_adam:
        return torch.optim.AdamW
    if device.type != "cuda":
        raise ValueError(
            f"use_8bit_adam: true needs a CUDA device (bitsandbytes' 8-bit AdamW), but this "
            f"fine-tune runs on {device}; set use_8bit_adam: false"
        )
    try:
        import bitsandbytes
    except ImportError as err:
        raise ImportError(
            "use_8bit_adam: true needs the bitsandbytes package, which is not installed (it is "
            "not in requirements-lock.txt): `pip install bitsandbytes`, or set use_8bit_adam: "
            "false"
        ) from err
    return bitsandbytes.optim.AdamW8bit


def _optimizer(
    trainables: _Trainables, cfg: FineTuneConfig, adamw: type[torch.optim.Optimizer]
) -> torch.optim.Optimizer:
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
    return adamw(groups, weight_decay=cfg.weight_decay)


@dataclass
class _Batches:
    """Per-id VAE posteriors (of each image, and of its mirror image when ``flip``) and the
    DreamBooth class images'; draws a training batch from one generator."""

    ids: list[str]
    prompts: dict[str, str]
    conditions: dict[str, dict] | None
    latents: dict[str, tuple[torch.Tensor, ...]]
    flip: bool = True
    class_latents: tuple[torch.Tensor, torch.Tensor] | None = None

    def draw(self, vae, batch_size: int, gen: torch.Generator):
        pick = torch.randint(len(self.ids), (batch_size,), generator=gen).tolist()
        if self.flip:
            flips = (torch.rand(batch_size, generator=gen) < 0.5).tolist()
        else:
            flips = [False] * batch_size
        batch = [self.ids[k] for k in pick]
        pairs = list(zip(batch, flips, strict=True))
        m = torch.stack([self.latents[i][2 if f else 0] for i, f in pairs])
        s = torch.stack([self.latents[i][3 if f else 1] for i, f in pairs])
        latents = sample_latents(vae, m, s, gen)
        conditions = [self.conditions[i] for i in batch] if self.conditions else None
        return latents, [self.prompts[i] for i in batch], conditions


CROP_SEED_OFFSET = 20_000  # the crop generator's seed is ``seed`` + this


def train_images(
    data_dir: str | Path, ids: Sequence[str], resolution: int, random_crop: bool, seed: int
) -> torch.Tensor:
    """Gray training images (B, 1, R, R) in [-1, 1]: resized to ``resolution`` on the shorter
    side and cropped to a square at the centre or, with ``random_crop``, at an offset drawn per
    image (in ``ids`` order) from a generator seeded with ``seed`` + :data:`CROP_SEED_OFFSET`."""
    gen = torch.Generator().manual_seed(seed + CROP_SEED_OFFSET)
    arrays = []
    for i in ids:
        image = read_gray(Path(data_dir) / "images" / f"{i}.png")
        corner = None
        if random_crop:
            room = crop_room(image.shape, resolution)
            corner = tuple(int(torch.randint(r + 1, (1,), generator=gen)) for r in room)
        arrays.append(to_model_range(resize_crop(image, resolution, corner)))
    return torch.from_numpy(np.stack(arrays)[:, None])


@contextlib.contextmanager
def fp32_vae(pipe, base: str | Path) -> Iterator[torch.nn.Module]:
    """The VAE to cache latents with, in fp32 (as diffusers' script keeps its VAE): the
    pipeline's own when the pipeline is fp32, else a second one loaded from ``base`` in fp32
    (the bf16 weights cast back would not be the fp32 ones), on the pipeline VAE's device and
    deleted on leaving."""
    if pipe.vae.dtype == torch.float32:
        yield pipe.vae
        return
    vae = type(pipe.vae).from_pretrained(str(base), subfolder="vae", torch_dtype=torch.float32)
    vae.to(pipe.vae.device).requires_grad_(False).eval()
    try:
        yield vae
    finally:
        del vae
        _empty_caches()


def _empty_caches() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _encode_batches(
    pipe, base, data_dir, ids, prompts, conditions, cfg: FineTuneConfig, class_paths
) -> _Batches:
    images = train_images(data_dir, ids, cfg.resolution, cfg.random_crop, cfg.seed)
    class_latents = None
    with fp32_vae(pipe, base) as vae:
        stats = list(encode_latent_stats(vae, images))
        if cfg.random_flip:
            stats += encode_latent_stats(vae, images.flip(-1))
        if class_paths:
            side = cfg.resolution
            cimgs = np.stack([to_model_range(resize_center_crop(read_gray(p), side))
                              for p in class_paths])  # fmt: skip
            class_latents = encode_latent_stats(vae, torch.from_numpy(cimgs[:, None]))
    latents = {i: tuple(t[k] for t in stats) for k, i in enumerate(ids)}
    return _Batches(
        ids, prompts, conditions if cfg.uses_conditioner else None, latents, cfg.random_flip,
        class_latents,
    )  # fmt: skip


def clip_is_frozen(cfg: FineTuneConfig) -> bool:
    """Nothing of the CLIP encoders is trained and no conditioner injects into them, so their
    output depends on the prompt alone and can be cached."""
    return not cfg.train_text_encoder and not cfg.uses_conditioner


@dataclass
class CachedText(ParameterAwareText):
    """:class:`ParameterAwareText` on cached embeddings (CPU, moved per batch): T5's by
    placeholder-free prompt (SD3), and when the CLIP encoders are frozen
    (:func:`clip_is_frozen`) the finished ``(embeds, pooled)`` by prompt."""

    t5: dict[str, torch.Tensor] = field(default_factory=dict)
    finished: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    def encode(self, prompts, conditions=None, t5_embeds=None, device=None):
        prompts = list(prompts)
        if self.finished is not None:
            embeds = torch.stack([self.finished[p][0] for p in prompts]).to(device)
            return embeds, torch.stack([self.finished[p][1] for p in prompts]).to(device)
        if self.t5 and t5_embeds is None:
            places = self.schema.placeholders if self.schema is not None else ()
            t5_embeds = torch.stack([self.t5[strip_placeholders(p, places)] for p in prompts])
        return super().encode(prompts, conditions, t5_embeds=t5_embeds, device=device)


@torch.no_grad()
def cache_text(
    pipe, schema: ConditionSchema, prompts: Sequence[str], frozen_clip: bool, max_len: int,
    device, chunk: int = 8,
) -> CachedText:  # fmt: skip
    """Run the frozen text encoders once over every distinct prompt of ``prompts``."""
    unique = list(dict.fromkeys(prompts))
    plain = CachedText(pipe, schema, None, None, max_len)
    if family_of(pipe) == "sd3":
        stripped = list(dict.fromkeys(strip_placeholders(p, schema.placeholders) for p in unique))
        for k in range(0, len(stripped), chunk):
            part = stripped[k : k + chunk]
            plain.t5.update(zip(part, encode_t5(pipe, part, max_len, device).cpu(), strict=True))
    if not frozen_clip:
        return plain
    finished = {}
    for k in range(0, len(unique), chunk):
        part = unique[k : k + chunk]
        embeds, pooled = plain.encode(part, None, device=device)
        finished.update(zip(part, zip(embeds.cpu(), pooled.cpu(), strict=True), strict=True))
    plain.finished = finished
    return plain


def release_cached_encoders(pipe, clip: bool, vae: bool) -> list[str]:
    """Free what training no longer runs once the caches are filled: T5 (SD3.5's T5-XXL
    holds 4.76 B parameters, 8.9 GiB in bf16), with ``clip`` both CLIP encoders, with ``vae``
    the VAE. Their weights go to the ``meta`` device, which holds no memory on the
    accelerator or the host, while modules, shapes and configs stay (the parameter table
    still counts them, the VAE's scaling still applies). Returns the names freed."""
    names = ["text_encoder_3"]
    names += ["text_encoder", "text_encoder_2"] if clip else []
    names += ["vae"] if vae else []
    freed = []
    for name in names:
        module = getattr(pipe, name, None)
        if module is not None:
            to_meta(module)
            freed.append(name)
    _empty_caches()
    return freed


def to_meta(module: torch.nn.Module) -> torch.nn.Module:
    """``module.to("meta")`` with tied parameters kept tied.

    ``Module.to`` gives every submodule its own converted tensor, so a parameter shared by
    two submodules (T5's token table: ``shared`` and ``encoder.embed_tokens``, 132 M
    parameters in T5-XXL) would become two and be counted twice. The ties are read before
    the move and the shared parameter put back in place after it.
    """
    owner: dict[int, str] = {}
    ties = []
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in owner:
            ties.append((name, owner[id(p)]))
        else:
            owner[id(p)] = name
    module.to("meta")
    for name, source in ties:
        parent, _, attr = name.rpartition(".")
        setattr(module.get_submodule(parent), attr, module.get_parameter(source))
    return module


def _step_loss(
    pipe, net, text, batches: _Batches, cfg: FineTuneConfig, scheduler, gen, weight_dtype, device,
    procs: Processes,
) -> torch.Tensor:  # fmt: skip
    """The DreamBooth loss of this process's rows of one drawn batch (plus the prior term with
    class images). Every process draws the whole batch (``batch_size`` per process) with the
    same generator, so the ranks together compute one process's batch of that size."""
    batch = cfg.batch_size * procs.world
    latents, prompts, conditions = batches.draw(pipe.vae, batch, gen)
    mine = procs.rows(cfg.batch_size)
    prompts, conditions = prompts[mine], conditions[mine] if conditions else None
    n_inst = len(prompts)
    rows = torch.arange(batch)[mine]
    embeds, pooled = text.encode(prompts, conditions, device=device)
    if batches.class_latents is not None:
        cmean, cstd = batches.class_latents
        cpick = torch.randint(len(cmean), (batch,), generator=gen)
        clat = sample_latents(pipe.vae, cmean[cpick], cstd[cpick], gen)
        ce, cp = text.encode([cfg.class_prompt] * n_inst, None, device=device)
        latents, rows = torch.cat([latents, clat]), torch.cat([rows, batch + rows])
        embeds, pooled = torch.cat([embeds, ce]), torch.cat([pooled, cp])
    args = (net, latents.to(device, weight_dtype), embeds.to(weight_dtype), pooled.to(weight_dtype))
    if cfg.family == "sd3":
        per_sample = flow_matching_loss(
            *args, scheduler, gen, cfg.logit_mean, cfg.logit_std, per_sample=True,
            weighting_scheme=cfg.weighting_scheme, mode_scale=cfg.mode_scale,
            precondition_outputs=cfg.precondition_outputs, rows=rows,
        )  # fmt: skip
    else:
        time_ids = sdxl_time_ids(cfg.resolution, len(latents))
        per_sample = epsilon_loss(*args, time_ids, scheduler, gen, per_sample=True, rows=rows)
    loss = per_sample[:n_inst].mean()
    if batches.class_latents is not None:
        loss = loss + cfg.prior_loss_weight * per_sample[n_inst:].mean()
    return loss


VALIDATION = "validation"  # folder of the validation grids in ``out_dir``


@dataclass
class _Validation:
    """The fixed validation grid: one condition and seed per image, sampled every
    ``validation_every`` steps into ``{out_dir}/validation/step-NNNNNN.png``."""

    folder: Path
    conditions: list[dict]
    prompts: list[str]
    seeds: list[int]
    released: list[str] = field(default_factory=list)  # pipeline components hidden from it

    @classmethod
    def plan(cls, data_dir, split_csv, schema: ConditionSchema, cfg: FineTuneConfig,
             out_dir: Path, write: bool = True) -> _Validation:  # fmt: skip
        """Pick the conditions and (with ``write``) write ``conditions.csv`` (column k of
        every grid)."""
        names = pd.read_csv(split_csv, dtype={"id": str})["split"].astype(str)
        others = sorted(set(names) - {"train"})
        rows = read_split_table(data_dir, split_csv, others or ["train"])
        variables = list(schema.variables)
        rows = rows.drop_duplicates(subset=variables).head(cfg.validation_images)
        conditions = [{v: r[v] for v in variables} for r in rows.to_dict("records")]
        prompts = [schema.prompt(c, cfg.prompt_mode) for c in conditions]
        seeds = [cfg.seed + k for k in range(len(conditions))]
        folder = out_dir / VALIDATION
        if write:
            folder.mkdir(parents=True, exist_ok=True)
            table = pd.DataFrame(conditions).assign(seed=seeds, prompt=prompts)
            table.insert(0, "column", range(len(conditions)))
            atomic_write_csv(table, folder / "conditions.csv")
        return cls(folder, conditions, prompts, seeds)

    def sample(self, step: int, pipe, text, trainables: _Trainables, cfg: FineTuneConfig,
               autocast) -> Path:  # fmt: skip
        """Sample the grid of ``step`` in eval mode, leaving the global RNG state (CPU and
        CUDA), the training generator and every module's train/eval mode as they were."""
        modules = [trainables.net, *trainables.encoders.values()]
        modules += [trainables.conditioner] if trainables.conditioner is not None else []
        modes = {m: m.training for module in modules for m in module.modules()}
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices), autocast, _hidden(pipe, self.released):
            for module in modules:
                module.eval()
            try:
                images = generate_from_prompts(
                    pipe, self.prompts, self.seeds,
                    conditions=self.conditions if cfg.uses_conditioner else None, text=text,
                    steps=cfg.validation_inference_steps, guidance=cfg.validation_guidance,
                    height=cfg.resolution, width=cfg.resolution, batch_size=4,
                )  # fmt: skip
            finally:
                for m, training in modes.items():
                    m.training = training
        path = self.folder / f"step-{step:06d}.png"
        write_png(path, np.concatenate(images, axis=1))
        return path


@contextlib.contextmanager
def _hidden(pipe, names: Sequence[str]) -> Iterator[None]:
    """The pipeline with the components ``names`` set to ``None`` (as a pipeline loaded without
    them): its call takes its device from the first component it finds, which must not be a
    released one (meta)."""
    saved = {name: vars(pipe)[name] for name in names}
    vars(pipe).update(dict.fromkeys(names))
    try:
        yield
    finally:
        vars(pipe).update(saved)


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
        before the optimiser step (gradients present, averaged over the ranks under DDP);
        ``state`` holds ``pipe``, ``conditioner``, ``text`` (the :class:`ParameterAwareText`
        being trained), ``optimizer`` and ``loss`` (the whole batch's, the mean over the
        ranks). Called in every process. For monitoring and tests.

    Returns
    -------
    ``out_dir`` holding ``pytorch_lora_weights.safetensors``, ``conditioner.safetensors``,
    ``conditioner.json``, ``placeholder_tokens.{json,safetensors}``, ``finetune_config.json``,
    ``parameters.csv``, ``train_log.csv`` and ``checkpoints/``.

    Launched as several processes (``torch.distributed.run``, ``accelerate launch``) it
    trains with DDP, ``batch_size`` per process, rank 0 writing (see the module's notes).
    """
    if config is None:
        config = FineTuneConfig(**settings)
    elif settings:
        raise TypeError(f"give either config or settings, not both: {sorted(settings)}")
    cfg = config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = processes(device)
    if procs.main:  # A rerun with other settings must not resume the old run's checkpoints.
        # The number of processes sets the batch; it is named only when several, so that a
        # single process keeps the checkpoints it always had.
        world = {"processes": procs.world} if procs.world > 1 else {}
        reset_stale_checkpoints(
            out_dir,
            {"base": str(base), "data_dir": str(data_dir), "split_csv": str(split_csv),
             "schema_path": str(schema_path), "device": str(device), **asdict(cfg), **world},
            inputs=(Path(data_dir) / "metadata.csv", Path(split_csv)),
        )  # fmt: skip
    procs.barrier()
    device = procs.device
    adamw = adamw_class(cfg, device)  # a missing 8-bit AdamW fails before any model loads
    use_bf16 = cfg.mixed_precision == "bf16" and device.type == "cuda"
    weight_dtype = torch.bfloat16 if use_bf16 else torch.float32
    torch.manual_seed(cfg.seed)

    schema = load_schema(schema_path)
    rows = read_split_table(data_dir, split_csv, ["train"])
    ids, conditions, prompts = _training_prompts(rows, schema, cfg.prompt_mode)
    max_len = cfg.max_sequence_length or t5_length(base)
    pipe = _frozen_base(base, weight_dtype, cfg.family, device)
    class_paths: list[Path] = []
    if cfg.prior_preservation:  # from the untouched base; rank 0 draws, the others read
        with procs.main_first():
            class_paths = _class_images(
                pipe, out_dir, cfg.class_prompt, cfg.num_class_images, cfg.resolution,
                cfg.seed, cfg.class_inference_steps, cfg.class_guidance, max_len,
            )  # fmt: skip
    batches = _encode_batches(pipe, base, data_dir, ids, prompts, conditions, cfg, class_paths)
    validation = None
    if cfg.validation_every:  # planned alike everywhere (the cached prompts), sampled by rank 0
        validation = _Validation.plan(data_dir, split_csv, schema, cfg, out_dir, procs.main)
    used = list(prompts.values()) + ([cfg.class_prompt] if class_paths else [])
    used += (validation.prompts + [""]) if validation else []  # "": the unconditional side
    frozen_clip = clip_is_frozen(cfg)
    cache = cache_text(pipe, schema, used, frozen_clip, max_len, device)
    released = release_cached_encoders(pipe, clip=frozen_clip, vae=validation is None)
    if validation is not None:
        validation.released = released
    trainables = _attach_trainables(pipe, schema, rows, cfg, device)
    if procs.main:
        table = parameter_table(pipe, trainables.conditioner, trainables.token_ids)
        atomic_write_csv(table, out_dir / "parameters.csv")
    optimizer = _optimizer(trainables, cfg, adamw)
    lr_schedule = get_scheduler(
        cfg.lr_scheduler, optimizer,
        num_warmup_steps=cfg.lr_warmup_steps, num_training_steps=cfg.max_steps,
    )  # fmt: skip
    text = CachedText(pipe, schema, trainables.conditioner, trainables.injectors, max_len,
                      t5=cache.t5, finished=cache.finished)  # fmt: skip
    scheduler = training_scheduler(pipe)
    gen = torch.Generator().manual_seed(cfg.seed)

    checkpoints = Checkpoints(out_dir, keep=cfg.checkpoints_total_limit)
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
    model = procs.prepare(
        _Step(
            trainables.modules(),
            lambda: _step_loss(pipe, trainables.net, text, batches, cfg, scheduler, gen,
                               weight_dtype, device, procs),
        )
    )  # fmt: skip
    t0 = time.time()
    accumulate = cfg.gradient_accumulation_steps
    for step in range(start + 1, cfg.max_steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for k in range(accumulate):  # mean of the batches' losses, as one larger batch
            with procs.no_sync(model, skip=k < accumulate - 1):  # all-reduce the last
                with autocast:
                    part = model() / accumulate
                part.backward()
            loss += part.item()
        loss = procs.mean(loss)
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
        if not procs.main:
            continue
        if validation is not None and step % cfg.validation_every == 0:
            validation.sample(step, pipe, text, trainables, cfg, autocast)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            save_checkpoint(step)
    if procs.main:
        if start < cfg.max_steps:
            save_checkpoint(cfg.max_steps)
        checkpoints.finish()
        write_history(log, out_dir / "train_log.csv", columns=("step", "loss", "lr", "seconds"))
        saved = _saved_config(base, cfg, schema, len(ids), use_bf16, max_len, procs.world)
        adapters = ParameterAwareAdapters(pipe, saved, trainables.conditioner, trainables.token_ids)
        adapters.save_pretrained(out_dir)
    procs.end()
    return out_dir


def _saved_config(
    base, cfg: FineTuneConfig, schema, n_images: int, use_bf16: bool, max_len: int,
    world: int = 1,
) -> dict:  # fmt: skip
    """``finetune_config.json``: what the sampling pipeline needs to rebuild the model, and
    how it was trained (``processes`` only when several, each of ``batch_size``)."""
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
    if world > 1:
        config["processes"] = world
    return config
