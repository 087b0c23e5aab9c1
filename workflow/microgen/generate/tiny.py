"""Tiny, offline SD3- and SDXL-architecture base models for the embedded default and the tests.

Everything is built in code, nothing is downloaded: two ``CLIPTextModelWithProjection``
encoders (widths 32 and 48, projections 32 and 48, so ``pooled_projection_dim`` = 80), a
``T5EncoderModel`` (d_model 96 = ``joint_attention_dim``), tokenizers trained on the data
set's prompts (byte-level BPE wrapped as the stock ``CLIPTokenizer`` for both CLIP streams, a
unigram model wrapped as ``T5Tokenizer``), a 1-channel ``AutoencoderKL`` (f = 4, 4 latent
channels, no mid-block attention: at f = 8 the 4-px spheroidite particles of a 128-px image
fall inside one latent cell and do not survive reconstruction), a small
``SD3Transformer2DModel`` (patch 2, one dual-attention layer so the
``attn2`` LoRA targets of SD3.5 are exercised, RMS q/k norm) and
``FlowMatchEulerDiscreteScheduler(shift=3.0)``. The result is a real
``StableDiffusion3Pipeline`` saved with ``save_pretrained``; it reloads offline with
``StableDiffusion3Pipeline.from_pretrained(dir)``.

Channels: the tiny VAE is 1-channel (gray in, gray out), which the stock pipeline handles
with ``output_type="np"`` (a (B, H, W, 1) array). Microgen's code replicates gray input to the
VAE's ``in_channels`` and averages decoded channels, so SD3.5's 3-channel VAE works unchanged.

:func:`pretrain_tiny_base` then trains the VAE on crops (L1 + MSE reconstruction + small KL)
and the transformer together with the three text encoders with the flow-matching loss on
the train images and their ``text_only`` prompts (10 % empty prompts, so classifier-free
guidance has a learned unconditional), keeping an EMA of the weights. The base is a small
but real text-to-image model of the domain: with guidance its particle size follows the
temperature and magnification written in the prompt, which the fine-tunes then carry over
to the learned parameter tokens.

``family="sdxl"`` builds :func:`build_tiny_sdxl_pipeline` instead (the same CLIP encoders,
tokenizers and VAE, a small ``UNet2DConditionModel``) and runs the same two stages; only the
denoiser's loss and the latent convention differ, as they do between SD3 and SDXL: the
U-Net is an ε-prediction DDPM (:func:`microgen.generate.common.epsilon_loss` with SDXL's
size/crop ids; SDXL is not a flow-matching model, and the fine-tune trains it with the same
loss), its latents are ``z * scaling_factor`` without a shift (the SDXL pipeline decodes
``latents / scaling_factor`` and ignores ``shift_factor``), and dropped prompts are zero
embeddings, as SDXL-base was trained and as its pipeline's ``force_zeros_for_empty_prompt``
samples the unconditional branch. The result is a ``StableDiffusionXLPipeline`` folder that
the SDXL fine-tune and sampler load exactly as a downloaded SDXL snapshot.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from microgen.checkpoint import WeightAverage
from microgen.data.split import read_split_table
from microgen.generate.common import (
    BASE_INFO,
    DENOISER,
    FAMILIES,
    atomic_write_csv,
    denoiser,
    encode_latent_stats,
    epsilon_loss,
    family_of,
    flow_matching_loss,
    load_images,
    sample_latents,
    sdxl_time_ids,
    to_vae_channels,
    training_scheduler,
)

#: The side of a tiny base's pre-training images must be a multiple of this (mirrored by
#: ``microgen.config_checks``): 16 for SD3, the SDXL pipeline's 8 for SDXL.
PRETRAIN_MULTIPLE = {"sd3": 16, "sdxl": 8}

GENERIC_TEXT = [
    "a micrograph of steel",
    "scanning electron micrograph of ultra high carbon steel microstructure",
    "annealed quenched air cooled furnace cooled held at for hour minutes magnification",
]


@dataclass
class TinyConfig:
    """Sizes of the tiny base."""

    clip_l_width: int = 32
    clip_g_width: int = 48
    clip_layers: int = 2
    t5_width: int = 96
    t5_layers: int = 2
    t5_length: int = 32
    vocab_size: int = 400
    vae_channels: tuple[int, ...] = (8, 16, 32)
    vae_attention: bool = False
    latent_channels: int = 4
    image_channels: int = 1
    transformer_layers: int = 3
    heads: int = 2
    head_dim: int = 32
    shift: float = 3.0


def build_tokenizers(texts: list[str], vocab_size: int = 400):
    """A CLIP tokenizer (byte-level BPE) and a T5 tokenizer (unigram) trained on ``texts``.

    Deterministic: the same texts give the same vocabulary, merges and ids in every
    process. The ``tokenizers`` trainers are not (they break ties between equally frequent
    pairs, and number tokens, in hash-map order: two of four builds of the tiny base
    differed), so the vocabularies are learned here (:func:`_train_bpe`,
    :func:`_unigram_vocab`) and only wrapped by the stock tokenizers.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer, T5Tokenizer

    texts = [t for t in texts if t] + GENERIC_TEXT
    stock = CLIPTokenizer().backend_tokenizer  # the stock normaliser and pre-tokeniser
    words = [
        w
        for text in texts
        for w, _ in stock.pre_tokenizer.pre_tokenize_str(stock.normalizer.normalize_str(text))
    ]
    vocab, merges = _train_bpe(
        words, pre_tokenizers.ByteLevel.alphabet(), ["<|startoftext|>", "<|endoftext|>"],
        vocab_size,
    )  # fmt: skip
    clip_tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

    metaspace = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    words = [w for text in texts for w, _ in metaspace.pre_tokenize_str(text)]
    specials = ["<pad>", "</s>", "<unk>"]
    vocab = [(s, 0.0) for s in specials] + _unigram_vocab(words, vocab_size - len(specials))
    t5_tok = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)
    return clip_tok, t5_tok


#: Token counts of SD3.5's tokenizers: CLIP's 49 408 (256 bytes, their 256 end-of-word forms,
#: 48 894 merges, ``<|startoftext|>`` and ``<|endoftext|>``), T5's 32 000 pieces and 100
#: sentinels (``<extra_id_k>``; the encoder's table has 32 128 rows).
CLIP_VOCAB_SIZE = 49408
T5_PIECES = 32000
T5_EXTRA_IDS = 100


def build_full_size_tokenizers(texts: list[str]):
    """CLIP tokenizers and a T5 tokenizer of SD3.5's sizes and special-token ids, trained on
    ``texts`` and filled up to size, for a real-width base built in code.

    The CLIP vocabulary is laid out as CLIP's: the 256 byte symbols (ids 0-255, ``!`` first),
    their end-of-word forms, the merges, then ``<|startoftext|>`` = 49406 and ``<|endoftext|>``
    = 49407; the merges are those learned on ``texts`` (:func:`_train_bpe`, run until every
    word is one token, so the prompts tokenise as words and fit 77 tokens) followed by filler
    merges of two byte symbols, which rank last and so never change how a learned word
    splits. SD3's second tokenizer pads with ``!`` (id 0), its first with ``<|endoftext|>``.
    The T5 tokenizer holds ``<pad>``, ``</s>``, ``<unk>`` (ids 0-2), the unigram pieces of
    :func:`_unigram_vocab`, filler pieces scored below every learned one (``▁`` and two or
    three letters or digits) up to :data:`T5_PIECES`, and :data:`T5_EXTRA_IDS` sentinels.
    Deterministic, like :func:`build_tokenizers`.

    Returns
    -------
    ``(tokenizer, tokenizer_2, tokenizer_3)``: two ``CLIPTokenizer`` of
    :data:`CLIP_VOCAB_SIZE` tokens and a ``T5Tokenizer`` of 32 100.
    """
    import itertools
    import string

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer, T5Tokenizer

    texts = [t for t in texts if t] + GENERIC_TEXT
    stock = CLIPTokenizer().backend_tokenizer
    words = [
        w
        for text in texts
        for w, _ in stock.pre_tokenizer.pre_tokenize_str(stock.normalizer.normalize_str(text))
    ]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ["<|startoftext|>", "<|endoftext|>"]
    size = CLIP_VOCAB_SIZE - len(specials)
    learned, merges = _train_bpe(words, alphabet, [], size)
    vocab = list(learned)
    known = set(vocab)
    for a, b in itertools.product(alphabet, alphabet):
        if len(vocab) >= size:
            break
        if a + b + "</w>" not in known:
            merges.append((a, b + "</w>"))
            vocab.append(a + b + "</w>")
    if len(vocab) < size:
        raise ValueError(f"{len(vocab)} CLIP tokens, {size} wanted")  # cannot happen: 65 536 pairs
    ids = {token: i for i, token in enumerate(vocab + specials)}
    clip = CLIPTokenizer(vocab=ids, merges=merges, model_max_length=77)
    clip_2 = CLIPTokenizer(vocab=ids, merges=merges, model_max_length=77, pad_token="!")

    metaspace = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    words = [w for text in texts for w, _ in metaspace.pre_tokenize_str(text)]
    t5_specials = ["<pad>", "</s>", "<unk>"]
    pieces = _unigram_vocab(words, T5_PIECES - len(t5_specials))
    floor = min(score for _, score in pieces) - 10.0
    have = {p for p, _ in pieces}
    chars = string.ascii_lowercase + string.digits
    filler = (
        "▁" + "".join(c)
        for n in (2, 3)
        for c in itertools.product(chars, repeat=n)
        if "▁" + "".join(c) not in have
    )
    missing = T5_PIECES - len(t5_specials) - len(pieces)
    pieces += [(p, floor) for p in itertools.islice(filler, missing)]
    vocab_t5 = [(s, 0.0) for s in t5_specials] + pieces
    t5 = T5Tokenizer(vocab=vocab_t5, extra_ids=T5_EXTRA_IDS, model_max_length=512)
    return clip, clip_2, t5


def _train_bpe(
    words: list[str], alphabet: list[str], specials: list[str], vocab_size: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE with CLIP's end-of-word suffix: repeatedly merge the most frequent
    adjacent pair, ties broken by the pair's text.

    ``words`` are pre-tokenised (byte-level) words, one entry per occurrence. As in CLIP,
    every symbol of ``alphabet`` exists alone and with ``</w>``, so any text encodes
    without unknown tokens; ``vocab_size`` counts the special tokens, the alphabet and the
    merges (the end-of-word symbols come on top, like the ``tokenizers`` trainer's).
    """
    from collections import Counter

    freq = Counter(words)
    split = {w: [*w[:-1], w[-1] + "</w>"] for w in freq}
    symbols = sorted(set(alphabet)) + sorted(f"{a}</w>" for a in set(alphabet))
    tokens = specials + symbols
    merges: list[tuple[str, str]] = []
    while len(specials) + len(alphabet) + len(merges) < vocab_size:
        pairs: Counter = Counter()
        for w, parts in split.items():
            for pair in zip(parts, parts[1:], strict=False):
                pairs[pair] += freq[w]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        tokens.append(best[0] + best[1])
        for w, parts in split.items():
            i, out = 0, []
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    out.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            split[w] = out
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}, merges


def _unigram_vocab(words: list[str], size: int) -> list[tuple[str, float]]:
    """A word-level unigram vocabulary: every character of ``words`` and of printable
    ASCII (so the numbers of unseen conditions encode), then the most frequent whole
    words (``▁``-prefixed), scored by their log-frequency; sorted by score, ties by text."""
    import math
    import string
    from collections import Counter

    freq = Counter(words)
    ascii_chars = string.ascii_letters + string.digits + string.punctuation + "▁"
    chars: Counter = Counter(dict.fromkeys(ascii_chars, 1))
    for w, n in freq.items():
        for ch in w:
            chars[ch] += n
    ranked = sorted(freq.items(), key=lambda item: (-item[1], item[0]))
    pieces = dict(chars)
    for w, n in ranked:
        if len(pieces) >= size:
            break
        pieces.setdefault(w, n)
    total = sum(pieces.values())
    scored = [(p, math.log(n / total)) for p, n in pieces.items()]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def _tiny_clip(tokenizer, width: int, act: str, layers: int, projection: bool = True):
    """A small CLIP text encoder (with a projection head as CLIP-G, without as SDXL's CLIP-L)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=width,
        hidden_act=act,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(cfg).eval()


def _tiny_vae(c: TinyConfig, resolution: int):
    from diffusers import AutoencoderKL

    n = len(c.vae_channels)
    return AutoencoderKL(
        in_channels=c.image_channels,
        out_channels=c.image_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=c.vae_channels,
        layers_per_block=1,
        latent_channels=c.latent_channels,
        norm_num_groups=8,
        sample_size=resolution,
        scaling_factor=1.0,
        shift_factor=0.0,
        mid_block_add_attention=c.vae_attention,
    ).eval()


def build_tiny_pipeline(
    texts: list[str], resolution: int, seed: int = 0, config: TinyConfig | None = None
):
    """An untrained tiny ``StableDiffusion3Pipeline`` (fp32, CPU)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import T5Config, T5EncoderModel

    c = config or TinyConfig()
    torch.manual_seed(seed)
    clip_tok, t5_tok = build_tokenizers(texts, c.vocab_size)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok),
            d_model=c.t5_width,
            d_kv=16,
            d_ff=2 * c.t5_width,
            num_layers=c.t5_layers,
            num_heads=2,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            pad_token_id=t5_tok.pad_token_id,
            eos_token_id=t5_tok.eos_token_id,
            decoder_start_token_id=t5_tok.pad_token_id,
        )
    )
    vae = _tiny_vae(c, resolution)
    factor = 2 ** (len(c.vae_channels) - 1)
    inner = c.heads * c.head_dim
    transformer = SD3Transformer2DModel(
        sample_size=resolution // factor,
        patch_size=2,
        in_channels=c.latent_channels,
        num_layers=c.transformer_layers,
        attention_head_dim=c.head_dim,
        num_attention_heads=c.heads,
        joint_attention_dim=c.t5_width,
        caption_projection_dim=inner,
        pooled_projection_dim=c.clip_l_width + c.clip_g_width,
        out_channels=c.latent_channels,
        pos_embed_max_size=max(64, resolution // factor),
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    for module in (transformer, t5):
        module.eval()
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=c.shift),
        vae=vae,
        text_encoder=_tiny_clip(clip_tok, c.clip_l_width, "quick_gelu", c.clip_layers),
        tokenizer=clip_tok,
        text_encoder_2=_tiny_clip(clip_tok, c.clip_g_width, "gelu", c.clip_layers),
        tokenizer_2=copy.deepcopy(clip_tok),
        text_encoder_3=t5,
        tokenizer_3=t5_tok,
    )


@dataclass
class TinyUNetConfig:
    """Sizes of the tiny SDXL U-Net (the CLIP encoders and VAE follow :class:`TinyConfig`)."""

    block_out_channels: tuple[int, ...] = (16, 32)
    layers_per_block: int = 1
    head_dim: int = 8
    addition_time_embed_dim: int = 8


def build_tiny_sdxl_pipeline(
    texts: list[str],
    resolution: int,
    seed: int = 0,
    config: TinyConfig | None = None,
    unet_config: TinyUNetConfig | None = None,
):
    """An untrained tiny ``StableDiffusionXLPipeline`` (fp32, CPU), for tests.

    SDXL's layout at small size: CLIP-L is a ``CLIPTextModel`` (no projection), CLIP-G a
    ``CLIPTextModelWithProjection``; the U-Net cross-attends to their concatenated
    penultimate states (``cross_attention_dim`` = the sum of the CLIP widths, 2048 in SDXL)
    and takes CLIP-G's pooled vector plus six Fourier-embedded size/crop ids through its
    ``text_time`` added embedding (``projection_class_embeddings_input_dim`` = pooled width
    + 6 × ``addition_time_embed_dim``). The VAE is the tiny SD3 one (1 image channel,
    4 latent channels, f = ``2 ** (len(vae_channels) - 1)`` = 4), so a side must be a
    multiple of 8 (the SDXL pipeline's own requirement; the U-Net halves the latent
    ``len(block_out_channels) - 1`` = 1 time); the scheduler is SDXL's (Euler over a
    scaled-linear DDPM).
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    c = config or TinyConfig()
    u = unet_config or TinyUNetConfig()
    torch.manual_seed(seed)
    clip_tok, _ = build_tokenizers(texts, c.vocab_size)
    n = len(u.block_out_channels)
    unet = UNet2DConditionModel(
        sample_size=resolution // 2 ** (len(c.vae_channels) - 1),
        in_channels=c.latent_channels,
        out_channels=c.latent_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        block_out_channels=u.block_out_channels,
        layers_per_block=u.layers_per_block,
        attention_head_dim=tuple(ch // u.head_dim for ch in u.block_out_channels),
        cross_attention_dim=c.clip_l_width + c.clip_g_width,
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=u.addition_time_embed_dim,
        projection_class_embeddings_input_dim=c.clip_g_width + 6 * u.addition_time_embed_dim,
    ).eval()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        timestep_spacing="leading",
        steps_offset=1,
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(c, resolution),
        text_encoder=_tiny_clip(clip_tok, c.clip_l_width, "quick_gelu", c.clip_layers, False),
        text_encoder_2=_tiny_clip(clip_tok, c.clip_g_width, "gelu", c.clip_layers),
        tokenizer=clip_tok,
        tokenizer_2=copy.deepcopy(clip_tok),
        unet=unet,
        scheduler=scheduler,
        add_watermarker=False,
    )


def pretrain_tiny_base(
    data_dir: str | Path,
    split_csv: str | Path,
    out_dir: str | Path,
    resolution: int = 128,
    steps: int = 600,
    vae_steps: int = 400,
    seed: int = 0,
    batch_size: int = 8,
    vae_batch_size: int = 8,
    vae_crop: int = 64,
    learning_rate: float = 3e-4,
    text_encoder_lr: float = 3e-4,
    vae_learning_rate: float = 3e-3,
    kl_weight: float = 1e-4,
    prompt_dropout: float = 0.1,
    ema_decay: float = 0.999,
    adaln_zero: bool = False,
    config: TinyConfig | None = None,
    family: str = "sd3",
    unet_config: TinyUNetConfig | None = None,
) -> Path:
    """Build the tiny base and pre-train it on the train split, then ``save_pretrained``.

    The VAE learns to reconstruct random crops of the train images; then the transformer
    and the three text encoders learn together, with the flow-matching loss, to generate
    the train images from their ``text_only`` prompts (10 % empty, so classifier-free
    guidance has a learned unconditional). Training the encoders is what makes the base a
    text-conditioned model: frozen random encoders map prompts that differ in one number
    to nearly the same vectors, and the transformer then learns the data set's average.

    Parameters
    ----------
    data_dir, split_csv : prepared data set and its split file (``train`` rows are used).
    out_dir : where the diffusers pipeline directory is written.
    resolution : training image size (square, a multiple of 16).
    steps, vae_steps : optimiser steps of the transformer (with the encoders) and of the VAE.
    seed : seeds the initial weights and every random draw.
    batch_size, learning_rate, text_encoder_lr : transformer batch and learning rates
        (cosine-decayed).
    vae_batch_size, vae_crop, vae_learning_rate, kl_weight : VAE batch of ``vae_crop``-pixel
        crops (the VAE is convolutional, so crops teach it at a fraction of the cost),
        warm-up + cosine learning rate and KL weight.
    prompt_dropout : fraction of empty prompts when training the transformer.
    ema_decay : the saved transformer and encoders are the exponential moving average of
        their weights (sampling from the raw weights of so short a run draws blocky noise).
    adaln_zero : SD3 only: start the transformer as DiT's adaLN-Zero (see
        :func:`zero_init_modulation`) instead of diffusers' default initialisation, which
        assumes pre-trained weights will be loaded.
    config : model sizes.
    family : ``"sd3"`` (a ``StableDiffusion3Pipeline``, flow matching) or ``"sdxl"`` (a
        ``StableDiffusionXLPipeline``, ε-prediction DDPM; see the module docstring). The
        SDXL base trains its U-Net where the SD3 base trains its transformer, with the same
        settings, and its two CLIP encoders (it has no T5).
    unet_config : U-Net sizes of the SDXL base.

    Returns
    -------
    ``out_dir``. Also writes ``pretrain_log.csv`` (stage, step, loss, seconds; the
    denoiser's stage is ``transformer`` or ``unet``) and ``microgen_base.json`` (family,
    sizes, T5 length, timings).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    if adaln_zero and family != "sd3":
        raise ValueError("adaln_zero initialises the SD3 transformer; the SDXL U-Net has no adaLN")
    c = config or TinyConfig()
    multiple = PRETRAIN_MULTIPLE[family]
    if resolution % multiple:
        raise ValueError(
            f"resolution must be a multiple of {multiple} for the tiny {family} base, "
            f"got {resolution}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = read_split_table(data_dir, split_csv, ["train"])
    prompts = rows["prompt_text_only"].fillna("").astype(str).tolist()
    texts = prompts + rows.get("prompt_full_text", pd.Series(dtype=str)).fillna("").tolist()
    if family == "sdxl":
        pipe = build_tiny_sdxl_pipeline(texts, resolution, seed, c, unet_config)
    else:
        pipe = build_tiny_pipeline(texts, resolution, seed, c)
        if adaln_zero:
            zero_init_modulation(pipe.transformer)
    images = load_images(data_dir, rows["id"].tolist(), resolution)
    gen = torch.Generator().manual_seed(seed)
    log = TrainingLog()
    vae_settings = dict(steps=vae_steps, batch_size=vae_batch_size, crop=min(vae_crop, resolution),
                        lr=vae_learning_rate, kl_weight=kl_weight,
                        latent_shift=family == "sd3")  # fmt: skip
    latent_stats = _train_vae(pipe.vae, images, gen, log, **vae_settings)
    vae_seconds = log.seconds()
    _train_text_to_image(
        pipe, latent_stats, prompts, gen, log, steps=steps, batch_size=batch_size,
        lr=learning_rate, text_encoder_lr=text_encoder_lr, prompt_dropout=prompt_dropout,
        max_sequence_length=c.t5_length, ema_decay=ema_decay,
    )  # fmt: skip
    pipe.save_pretrained(out_dir)
    atomic_write_csv(log.frame(), out_dir / "pretrain_log.csv")
    net = DENOISER[family]
    info = {
        "kind": f"microgen-tiny-{family}",
        "family": family,
        "resolution": resolution,
        "config": asdict(c),
        "steps": steps,
        "vae_steps": vae_steps,
        "seed": seed,
        "adaln_zero": adaln_zero,
        "vae_seconds": round(vae_seconds, 2),
        f"{net}_seconds": round(log.seconds() - vae_seconds, 2),
        "parameters": {
            name: sum(p.numel() for p in getattr(pipe, name).parameters())
            for name in (net, "vae", *text_encoder_names(pipe))
        },
    }
    if family == "sd3":
        info["max_sequence_length"] = c.t5_length
    else:
        info["unet_config"] = asdict(unet_config or TinyUNetConfig())
    (out_dir / BASE_INFO).write_text(json.dumps(info, indent=2))
    return out_dir


def zero_init_modulation(transformer) -> None:
    """DiT's adaLN-Zero initialisation of an SD3 transformer, in place.

    The linear layers that map the timestep and pooled text to each block's shifts, scales
    and gates, and the output projection, start at zero: every block starts as the identity
    and the model as the zero velocity, and it learns its residual updates from there. Peebles
    and Xie (DiT, 2023, § 3.2) found it the fastest-converging block design. Measured on the
    embedded data (pre-training alone, 2 000 steps, 1 thread, flow-matching loss over 96
    training images, 4 shared draws): diffusers' default initialisation 0.4750, adaLN-Zero
    0.4711 at the same learning rate and 0.4672 at 2e-3; how much the base reads its
    microconstituent words did not change (loss +1.61, +1.63, +1.70 % when they are swapped,
    ± 0.3).
    """
    for name, module in transformer.named_modules():
        modulation = name.endswith(("norm1.linear", "norm1_context.linear", "norm_out.linear"))
        if modulation or name == "proj_out":
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float, floor: float = 0.04
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over a ``warmup`` fraction of ``steps`` (at least one step), then a
    cosine decay to ``floor`` times each group's learning rate."""
    import math

    n_warm = max(1, round(warmup * steps))

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        done = (step - n_warm) / max(1, steps - n_warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TrainingLog:
    """(stage, step, loss, seconds since the start) rows of a pre-training run."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float, float]] = []
        self.start = time.time()

    def add(self, stage: str, step: int, loss: float) -> None:
        self.rows.append((stage, step, loss, time.time() - self.start))

    def seconds(self) -> float:
        return time.time() - self.start

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["stage", "step", "loss", "seconds"])


def _train_vae(
    vae, images: torch.Tensor, gen: torch.Generator, log: TrainingLog, *, steps: int,
    batch_size: int, crop: int, lr: float, kl_weight: float, latent_shift: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """L1 + MSE reconstruction of random (flipped) crops plus a small KL; then the latent
    scale is set from the posterior means of the full images, whose posterior (mean, std)
    is returned.

    ``latent_shift`` (SD3): ``shift_factor`` = the means' mean and ``scaling_factor`` =
    1 / their std about it, so ``(z - shift) * scale`` is centred with unit variance.
    Without (SDXL, whose pipeline decodes ``latents / scaling_factor`` and has no shift):
    ``shift_factor`` = None and ``scaling_factor`` = 1 / the means' root mean square, so
    ``z * scale`` has unit second moment.
    """
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    sched = warmup_cosine(opt, steps, warmup=0.1)
    size = images.shape[-1]
    for step in range(steps):
        x = images[torch.randint(len(images), (batch_size,), generator=gen)]
        i, j = torch.randint(0, size - crop + 1, (2,), generator=gen).tolist()
        x = x[..., i : i + crop, j : j + crop]
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        x = to_vae_channels(x, vae)
        dist = vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        err = rec - x
        loss = err.abs().mean() + (err**2).mean() + kl_weight * dist.kl().mean() / x[0].numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log.add("vae", step, loss.item())
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        mean, std = encode_latent_stats(vae, images)
    if latent_shift:
        shift = float(mean.mean())
        scale = float(1.0 / (mean - shift).std().clamp_min(1e-6))
        vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    else:
        scale = float(1.0 / mean.pow(2).mean().sqrt().clamp_min(1e-6))
        vae.register_to_config(shift_factor=None, scaling_factor=scale)
    return mean, std


def _train_text_to_image(
    pipe, latent_stats: tuple[torch.Tensor, torch.Tensor], prompts: list[str],
    gen: torch.Generator, log: TrainingLog, *,
    steps: int, batch_size: int, lr: float, text_encoder_lr: float, prompt_dropout: float,
    max_sequence_length: int, ema_decay: float,
) -> None:  # fmt: skip
    """The denoiser and the text encoders learn together on (image, prompt) pairs; the
    modules end holding the EMA of their weights.

    One loop for both families; per family (:func:`_denoising_loss`) the SD3 transformer
    takes the flow-matching loss, the SDXL U-Net the ε-prediction DDPM loss, since SDXL is a
    DDPM and samples with its Euler discretisation. A dropped prompt is ``""`` through the
    encoders for SD3 and a zero embedding for SDXL (see the module docstring).
    """
    mean, std = latent_stats
    family = family_of(pipe)
    encoders = [getattr(pipe, name) for name in text_encoder_names(pipe)]
    transformer = denoiser(pipe).train()
    groups = [{"params": list(transformer.parameters()), "lr": lr}]
    if text_encoder_lr > 0:
        groups.append({"params": [p for m in encoders for p in m.parameters()],
                       "lr": text_encoder_lr})  # fmt: skip
        for m in encoders:
            m.train()
    else:
        for m in encoders:
            m.eval().requires_grad_(False)
    opt = torch.optim.AdamW(groups)
    sched = warmup_cosine(opt, steps, warmup=0.05)
    scheduler = training_scheduler(pipe)
    params = [p for g in groups for p in g["params"]]
    trained = [transformer, *encoders] if text_encoder_lr > 0 else [transformer]
    averages = [WeightAverage(m, ema_decay) for m in trained]
    for step in range(steps):
        idx = torch.randint(len(mean), (batch_size,), generator=gen)
        latents = sample_latents(pipe.vae, mean[idx], std[idx], gen)
        if torch.rand((), generator=gen) < 0.5:
            latents = latents.flip(-1)
        drop = torch.rand(batch_size, generator=gen) < prompt_dropout
        batch = ["" if d else prompts[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
        loss = _denoising_loss(
            pipe, family, latents, batch, drop, scheduler, gen, max_sequence_length
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for m, average in zip(trained, averages, strict=True):
            average.update(m, step)
        log.add(DENOISER[family], step, loss.item())
    for m, average in zip(trained, averages, strict=True):
        m.load_state_dict(average.shadow, strict=False)
    for m in [transformer, *encoders]:
        m.eval().requires_grad_(False)


def text_encoder_names(pipe) -> list[str]:
    """The pipeline's text encoders: both CLIPs, and T5 for SD3."""
    names = ["text_encoder", "text_encoder_2"]
    return names + ["text_encoder_3"] if family_of(pipe) == "sd3" else names


def _denoising_loss(
    pipe, family: str, latents: torch.Tensor, prompts: list[str], drop: torch.Tensor,
    scheduler, gen: torch.Generator, max_sequence_length: int,
) -> torch.Tensor:  # fmt: skip
    """The pre-training loss of one batch: flow matching (SD3) or ε-prediction (SDXL)."""
    from microgen.conditioning.encode import encode_prompts, encode_prompts_sdxl

    if family == "sd3":
        embeds, pooled = encode_prompts(pipe, prompts, max_sequence_length=max_sequence_length)
        return flow_matching_loss(pipe.transformer, latents, embeds, pooled, scheduler, gen)
    embeds, pooled = encode_prompts_sdxl(pipe, prompts)
    keep = (~drop).to(embeds.dtype)
    embeds, pooled = embeds * keep.view(-1, 1, 1), pooled * keep.view(-1, 1)
    time_ids = sdxl_time_ids(latents.shape[-1] * pipe.vae_scale_factor, len(latents))
    return epsilon_loss(pipe.unet, latents, embeds, pooled, time_ids, scheduler, gen)
