"""SD3.5 at its published widths and a few layers, random weights, built in code: a base whose
every tensor shape but the layer count is SD3.5's, for tests and benchmarks that must exercise
the real sizes offline (nothing downloads).

The components are those of :data:`microgen.generate.parameter_counts.PUBLISHED` (the hub's
configs) with only the depth cut: the MM-DiT (width 2432 for Large, joint attention 4096,
pooled projections 2048, RMS q/k norm), CLIP-L (768) and CLIP-G (1280) with their 49 408-token
embedding tables, T5-XXL's encoder (d_model 4096, d_ff 10 240, 64 heads, 32 128 rows) and the
16-channel f = 8 VAE with its scaling and shift; the tokenizers are
:func:`~microgen.generate.tiny.build_full_size_tokenizers` (CLIP's and T5's sizes and special
ids); the scheduler is SD3.5's flow-matching Euler with shift 3. The result is a stock
``StableDiffusion3Pipeline`` that ``save_pretrained`` writes as a diffusers folder.

Two layers are the least that exercise every adapter: with two MM-DiT blocks every LoRA target
of :data:`~microgen.generate.finetune.TRANSFORMER_TARGETS` exists (the last block is
``context_pre_only`` and has no ``to_add_out``), and with two CLIP layers the penultimate
hidden state that SD3 reads passes through an adapted layer (with one it is the token
embedding itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from microgen.generate.parameter_counts import PUBLISHED, Component, build_components

#: Hub id of each size of :func:`sd35_configs`.
SD35_IDS = {
    "large": "stabilityai/stable-diffusion-3.5-large",
    "medium": "stabilityai/stable-diffusion-3.5-medium",
}
#: The layer-count key of each component's config.
DEPTH_KEYS = {
    "transformer": "num_layers",
    "text_encoder": "num_hidden_layers",
    "text_encoder_2": "num_hidden_layers",
    "text_encoder_3": "num_layers",
}
#: SD3.5's scheduler (``scheduler/scheduler_config.json``).
SD35_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)


def sd35_configs(
    size: str = "large", transformer_layers: int = 2, clip_layers: int = 2, t5_layers: int = 1
) -> dict[str, Component]:
    """The published component configs of SD3.5-``size`` with fewer layers.

    Parameters
    ----------
    size : ``"large"`` or ``"medium"``.
    transformer_layers, clip_layers, t5_layers : depth of the MM-DiT, of each CLIP encoder
        and of the T5 encoder; every width stays the published one. Medium's dual-attention
        layers are kept where they still exist.

    Returns
    -------
    ``{component: (library, class, config)}``, as
    :func:`~microgen.generate.parameter_counts.read_component_configs` reads them.
    """
    if size not in SD35_IDS:
        raise ValueError(f"unknown SD3.5 size {size!r}; expected one of {tuple(SD35_IDS)}")
    depth = {"transformer": transformer_layers, "text_encoder": clip_layers,
             "text_encoder_2": clip_layers, "text_encoder_3": t5_layers}  # fmt: skip
    out = {}
    for key, (library, name, config) in PUBLISHED[SD35_IDS[size]].items():
        config = dict(config)
        if key in depth:
            if depth[key] < 1:
                raise ValueError(f"{key} needs at least one layer, got {depth[key]}")
            config[DEPTH_KEYS[key]] = depth[key]
        if "dual_attention_layers" in config:
            config["dual_attention_layers"] = tuple(
                i for i in config["dual_attention_layers"] if i < transformer_layers
            )
        out[key] = (library, name, config)
    return out


def build_sd35_pipeline(
    texts: Sequence[str],
    size: str = "large",
    transformer_layers: int = 2,
    clip_layers: int = 2,
    t5_layers: int = 1,
    seed: int = 0,
):
    """A ``StableDiffusion3Pipeline`` of :func:`sd35_configs` at random weights (fp32, CPU)
    with tokenizers trained on ``texts`` (the prompts it will see, so they tokenise as words).

    The weights are each library's own initialisation, drawn after ``torch.manual_seed(seed)``,
    so a seed gives the same model in every process.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from microgen.generate.tiny import build_full_size_tokenizers

    tokenizer, tokenizer_2, tokenizer_3 = build_full_size_tokenizers(list(texts))
    torch.manual_seed(seed)
    modules = build_components(sd35_configs(size, transformer_layers, clip_layers, t5_layers),
                               device="cpu")  # fmt: skip
    for module in modules.values():
        module.eval()
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SD35_SCHEDULER),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        tokenizer_3=tokenizer_3,
        **modules,
    )
