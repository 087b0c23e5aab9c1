"""SD3 and SDXL prompt encoding with parameter-aware CLIP streams (paper eqs. 6–7).

:func:`encode_prompts` mirrors ``StableDiffusion3Pipeline.encode_prompt`` (diffusers 0.42):

* each CLIP encoder gets its own tokenizer's ids, padded to 77 with that tokenizer's pad token;
  the sequence output is ``hidden_states[-2]`` (penultimate layer, ``clip_skip=None``), the
  pooled output is the projected EOS state (``text_embeds``);
* ``c_vec = concat(pooled_L, pooled_G)``;
* ``c_ctxt = concat_seq(pad_channels(concat_ch(H_L, H_G), T5 width), H_T5)``; without a T5
  encoder the T5 part is zeros of ``transformer.config.joint_attention_dim`` as in diffusers.

The only difference is that, when ``conditions`` are given, the placeholder rows of the CLIP
token embeddings are replaced by the conditioner's vectors (see
:mod:`microgen.conditioning.tokens`) and T5 reads the prompt with the placeholders stripped.
The resulting tensors can be passed to the stock pipeline as ``prompt_embeds`` /
``pooled_prompt_embeds`` (and ``negative_...``).

:func:`encode_prompts_sdxl` mirrors ``StableDiffusionXLPipeline.encode_prompt`` the same way:
the two CLIP streams (CLIP-L ``CLIPTextModel``, CLIP-G ``CLIPTextModelWithProjection``) are
tokenised and injected identically, ``prompt_embeds = concat_ch(H_L, H_G)`` (penultimate
layers, 768 + 1280 = 2048 channels for SDXL) and the pooled vector is CLIP-G's projected EOS
state alone (SDXL ignores CLIP-L's pooled output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from microgen.conditioning.conditioner import ParameterConditioner
from microgen.conditioning.tokens import (
    PlaceholderInjector,
    ensure_placeholders,
    strip_placeholders,
    tokenize,
)

ENCODERS = ("clip_l", "clip_g")


def clip_components(pipe) -> dict[str, tuple[object, torch.nn.Module]]:
    """``{"clip_l": (tokenizer, text_encoder), "clip_g": (tokenizer_2, text_encoder_2)}``."""
    return {
        "clip_l": (pipe.tokenizer, pipe.text_encoder),
        "clip_g": (pipe.tokenizer_2, pipe.text_encoder_2),
    }


def encode_t5(
    pipe,
    prompts: Sequence[str],
    max_sequence_length: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """T5 sequence embeddings (B, L, D) exactly as the SD3 pipeline computes them."""
    device = torch.device(device) if device is not None else pipe.transformer.device
    if pipe.text_encoder_3 is None:
        return torch.zeros(
            (len(prompts), max_sequence_length, pipe.transformer.config.joint_attention_dim),
            device=device,
            dtype=pipe.text_encoder.dtype,
        )
    ids = pipe.tokenizer_3(
        list(prompts),
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    out = pipe.text_encoder_3(ids.to(pipe.text_encoder_3.device))[0]
    return out.to(device=device, dtype=pipe.text_encoder_3.dtype)


def encode_prompts(
    pipe,
    prompts: Sequence[str],
    *,
    conditioner: ParameterConditioner | None = None,
    conditions: Sequence[Mapping] | None = None,
    injectors: Mapping[str, PlaceholderInjector] | None = None,
    max_sequence_length: int = 256,
    t5_embeds: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SD3 ``prompt_embeds`` (B, 77 + L, D_T5) and ``pooled_prompt_embeds`` (B, d_L + d_G).

    Parameters
    ----------
    pipe : anything with the SD3 pipeline's ``tokenizer[_2,_3]``, ``text_encoder[_2,_3]`` and
        ``transformer`` attributes (the pipeline itself).
    prompts : prompt texts.
    conditioner, conditions, injectors : when ``conditions`` is given, placeholders missing
        from a prompt are appended, the conditioner computes the replacement vectors and the
        injectors (one per CLIP encoder) write them into the token embeddings. Without
        ``conditions`` the prompts are encoded as the stock pipeline does (a prompt that
        contains placeholders then raises).
    max_sequence_length : T5 length (the pipeline's default is 256).
    t5_embeds : precomputed T5 embeddings (B, L, D_T5) to use instead of running T5.
    device : where the outputs go (default: the transformer's device).
    """
    prompts = list(prompts)
    device = torch.device(device) if device is not None else pipe.transformer.device
    prompts, placeholders, values = _prepare(prompts, conditioner, conditions, injectors)
    seqs, pooled = _clip_streams(pipe, prompts, placeholders, values, injectors, device)

    if t5_embeds is None:
        t5_prompts = [strip_placeholders(p, placeholders) for p in prompts]
        t5_embeds = encode_t5(pipe, t5_prompts, max_sequence_length, device)
    t5_embeds = t5_embeds.to(device)
    clip_seq = torch.cat(seqs, dim=-1)
    clip_seq = torch.nn.functional.pad(clip_seq, (0, t5_embeds.shape[-1] - clip_seq.shape[-1]))
    prompt_embeds = torch.cat([clip_seq.to(t5_embeds.dtype), t5_embeds], dim=-2)
    pooled_embeds = torch.cat(pooled, dim=-1)
    return prompt_embeds, pooled_embeds


def _prepare(
    prompts: list[str],
    conditioner: ParameterConditioner | None,
    conditions: Sequence[Mapping] | None,
    injectors: Mapping[str, PlaceholderInjector] | None,
) -> tuple[list[str], Sequence[str], dict[str, torch.Tensor] | None]:
    """Prompts with every placeholder present, the placeholders, and the conditioner's
    vectors per encoder (``None`` without ``conditions``)."""
    values = None
    placeholders: Sequence[str] = ()
    if conditions is not None:
        if conditioner is None or injectors is None:
            raise ValueError("conditions need a conditioner and its injectors")
        conditions = list(conditions)
        if len(conditions) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(conditions)} conditions")
        placeholders = conditioner.placeholders
        prompts = [ensure_placeholders(p, placeholders) for p in prompts]
        values = conditioner(conditions)
    elif conditioner is not None:
        placeholders = conditioner.placeholders
    return prompts, placeholders, values


def _clip_streams(
    pipe,
    prompts: list[str],
    placeholders: Sequence[str],
    values: Mapping[str, torch.Tensor] | None,
    injectors: Mapping[str, PlaceholderInjector] | None,
    device: torch.device,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Penultimate hidden states and first outputs (pooled for a projection model, last
    hidden state otherwise) of both CLIP encoders, placeholders injected when ``values``."""
    seqs, pooled = [], []
    for enc, (tokenizer, text_encoder) in clip_components(pipe).items():
        ids = tokenize(
            tokenizer,
            prompts,
            placeholders if values is not None else (),
            max_length=getattr(pipe, "tokenizer_max_length", 77),
        )
        ids = ids.to(text_encoder.device)
        if values is not None:
            with injectors[enc].active(values[enc]):
                out = text_encoder(ids, output_hidden_states=True)
        else:
            out = text_encoder(ids, output_hidden_states=True)
        pooled.append(out[0].to(device))
        seqs.append(out.hidden_states[-2].to(dtype=pipe.text_encoder.dtype, device=device))
    return seqs, pooled


def encode_prompts_sdxl(
    pipe,
    prompts: Sequence[str],
    *,
    conditioner: ParameterConditioner | None = None,
    conditions: Sequence[Mapping] | None = None,
    injectors: Mapping[str, PlaceholderInjector] | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL ``prompt_embeds`` (B, 77, d_L + d_G) and ``pooled_prompt_embeds`` (B, p_G).

    Parameters
    ----------
    pipe : a ``StableDiffusionXLPipeline`` (or anything with its ``tokenizer[_2]``,
        ``text_encoder[_2]`` and ``unet`` attributes).
    prompts, conditioner, conditions, injectors, device : as in :func:`encode_prompts`
        (default device: the U-Net's).
    """
    prompts = list(prompts)
    device = torch.device(device) if device is not None else pipe.unet.device
    prompts, placeholders, values = _prepare(prompts, conditioner, conditions, injectors)
    seqs, pooled = _clip_streams(pipe, prompts, placeholders, values, injectors, device)
    return torch.cat(seqs, dim=-1), pooled[-1]
