"""Loading a fine-tuned parameter-aware SD3 or SDXL model and sampling images from conditions.

Classifier-free guidance: the negative (unconditional) embeddings are what the stock pipeline
uses for an empty negative prompt, with the conditioner *not* applied: for SD3 the prompt
``""`` encoded through the same (LoRA-adapted) CLIP and T5 encoders; for SDXL zeros when the
pipeline's ``force_zeros_for_empty_prompt`` is set (as in SDXL-base), else ``""`` encoded by
both CLIP encoders. This is the unconditional branch the base was trained with; the parameter
information then only enters the conditional branch, so guidance pushes towards it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microgen.conditioning.conditioner import ParameterConditioner
from microgen.conditioning.encode import encode_prompts, encode_prompts_sdxl
from microgen.conditioning.tokens import PlaceholderInjector
from microgen.data.prepared import write_png
from microgen.data.schema import PROMPT_MODES, ConditionSchema
from microgen.device import select_device
from microgen.generate.adapters import FINETUNE_CONFIG, ParameterAwareAdapters
from microgen.generate.common import (
    atomic_write_csv,
    denoiser,
    family_of,
    load_base_pipeline,
    t5_length,
    to_gray_uint8,
)


@dataclass
class ParameterAwareText:
    """The text side of a parameter-aware pipeline: conditioner + placeholder injectors.

    ``conditioner`` and ``injectors`` are ``None`` for a model fine-tuned with ``text_only``
    prompts (no parameter-aware conditioning).
    """

    pipe: object
    schema: ConditionSchema | None
    conditioner: ParameterConditioner | None
    injectors: dict[str, PlaceholderInjector] | None
    max_sequence_length: int = 256

    def prompts(self, conditions: Sequence[Mapping], prompt_mode: str) -> list[str]:
        if self.schema is None:
            raise ValueError("this model has no schema; pass prompts directly")
        return [self.schema.prompt(c, prompt_mode) for c in conditions]

    def encode(
        self,
        prompts: Sequence[str],
        conditions: Sequence[Mapping] | None = None,
        t5_embeds: torch.Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt and pooled embeddings of the pipeline's family (``t5_embeds``: SD3 only);
        the conditioner is applied when ``conditions`` is given and the model has one."""
        use = conditions is not None and self.conditioner is not None
        if family_of(self.pipe) == "sdxl":
            return encode_prompts_sdxl(
                self.pipe,
                prompts,
                conditioner=self.conditioner,
                conditions=conditions if use else None,
                injectors=self.injectors if use else None,
                device=device,
            )
        return encode_prompts(
            self.pipe,
            prompts,
            conditioner=self.conditioner,
            conditions=conditions if use else None,
            injectors=self.injectors if use else None,
            max_sequence_length=self.max_sequence_length,
            t5_embeds=t5_embeds,
            device=device,
        )

    def negative(
        self, n: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconditional embeddings for ``n`` images (see the module docstring)."""
        embeds, pooled = self.encode([""] * n, None, device=device)
        if family_of(self.pipe) == "sdxl" and self.pipe.config.get(
            "force_zeros_for_empty_prompt", False
        ):
            return torch.zeros_like(embeds), torch.zeros_like(pooled)
        return embeds, pooled


def load_parameter_aware_pipeline(
    base: str | Path,
    model_dir: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
):
    """Base pipeline + LoRA adapters + placeholder tokens + conditioner, ready to sample.

    Parameters
    ----------
    base : the base model the adapters were trained on (local directory or hub id).
    model_dir : output directory of :func:`microgen.generate.finetune.fine_tune`.
    device : ``"cuda"``, ``"cpu"``, … (default: cuda when available).
    dtype : weight dtype (default: bf16 on cuda, fp32 on cpu).

    Returns
    -------
    ``(pipeline, text)``: a ``StableDiffusion3Pipeline`` or ``StableDiffusionXLPipeline``
    (the ``family`` recorded at fine-tuning) and its :class:`ParameterAwareText` (also
    attached as ``pipeline.microgen_text``).
    """
    model_dir = Path(model_dir)
    device = select_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    family = json.loads((model_dir / FINETUNE_CONFIG).read_text()).get("family", "sd3")
    pipe = load_base_pipeline(base, dtype, family)
    adapters = ParameterAwareAdapters.from_pretrained(model_dir, pipe)
    pipe.to(device)
    injectors = None
    if adapters.conditioner is not None:
        adapters.conditioner.to(device)
        encoders = adapters.encoders
        injectors = {
            e: PlaceholderInjector(encoders[e], ids) for e, ids in adapters.token_ids.items()
        }
    max_len = adapters.config.get("max_sequence_length", t5_length(base))
    text = ParameterAwareText(pipe, adapters.schema, adapters.conditioner, injectors, max_len)
    pipe.microgen_text = text
    return pipe, text


@torch.no_grad()
def generate_from_prompts(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    conditions: Sequence[Mapping] | None = None,
    text: ParameterAwareText | None = None,
    steps: int = 28,
    guidance: float = 2.0,
    height: int = 1024,
    width: int = 1024,
    batch_size: int = 4,
) -> list[np.ndarray]:
    """Images (uint8 gray) for explicit prompts, one seed per prompt.

    Each image's initial noise comes from its own ``torch.Generator(seed)``, so an image does
    not depend on which batch it was drawn in.
    """
    text = text or getattr(pipe, "microgen_text", None)
    if text is None:
        text = ParameterAwareText(pipe, None, None, None, 256)
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    device = denoiser(pipe).device
    out: list[np.ndarray] = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i : i + batch_size])
        cond = list(conditions[i : i + batch_size]) if conditions is not None else None
        embeds, pooled = text.encode(chunk, cond, device=device)
        kwargs = {}
        if guidance > 1:
            neg, neg_pooled = text.negative(len(chunk), device=device)
            kwargs = {"negative_prompt_embeds": neg, "negative_pooled_prompt_embeds": neg_pooled}
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i : i + batch_size]]
        result = pipe(
            prompt_embeds=embeds,
            pooled_prompt_embeds=pooled,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=height,
            width=width,
            generator=generators,
            output_type="np",
            **kwargs,
        )
        out += to_gray_uint8(result.images)
    return out


def generate_images(
    pipe,
    conditions: Sequence[Mapping],
    prompt_mode: str,
    seeds: Sequence[int],
    steps: int = 28,
    guidance: float = 2.0,
    height: int = 1024,
    width: int = 1024,
    batch_size: int = 4,
    text: ParameterAwareText | None = None,
) -> list[np.ndarray]:
    """Images (uint8 gray, (H, W)) of ``conditions`` in one prompt mode, one seed each.

    The prompt of each condition is the schema's template for ``prompt_mode``; the conditioner
    replaces the placeholders when the model has one (``text_only`` has none).
    """
    text = text or getattr(pipe, "microgen_text", None)
    if text is None or text.schema is None:
        raise ValueError("pipe has no parameter-aware text side; use load_parameter_aware_pipeline")
    if prompt_mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {prompt_mode!r}; expected one of {PROMPT_MODES}")
    prompts = text.prompts(conditions, prompt_mode)
    use = prompt_mode != "text_only"
    return generate_from_prompts(
        pipe,
        prompts,
        seeds,
        conditions=conditions if use else None,
        text=text,
        steps=steps,
        guidance=guidance,
        height=height,
        width=width,
        batch_size=batch_size,
    )


def sample_conditions_to_dir(
    base: str | Path,
    model_dir: str | Path,
    conditions_csv: str | Path,
    out_dir: str | Path,
    prompt_modes: Sequence[str] = ("full_text",),
    n_per_condition: int = 4,
    seed: int = 0,
    steps: int = 28,
    guidance: float = 2.0,
    resolution: int = 1024,
    batch_size: int = 4,
    device: str | None = None,
    samples_csv: str | Path | None = None,
) -> pd.DataFrame:
    """Sample ``n_per_condition`` images per condition row and prompt mode.

    Writes ``{out_dir}/{prompt_mode}/{condition_label}/{seed}.png`` and ``samples_csv``
    (default ``{out_dir}/samples.csv``: prompt_mode, label, every condition column, seed,
    path relative to ``out_dir``). Seeds are
    ``seed + k`` for the k-th image of a condition, identical across modes and conditions so
    that modes are compared on the same noise.
    """
    out_dir = Path(out_dir)
    pipe, text = load_parameter_aware_pipeline(base, model_dir, device=device)
    schema = text.schema
    conditions = pd.read_csv(conditions_csv)
    records = []
    for mode in prompt_modes:
        rows, seeds = [], []
        for condition in conditions.to_dict("records"):
            schema.validate_condition(condition)
            for k in range(n_per_condition):
                rows.append(condition)
                seeds.append(seed + k)
        images = generate_images(
            pipe, rows, mode, seeds, steps, guidance, resolution, resolution, batch_size, text
        )
        for condition, s, image in zip(rows, seeds, images, strict=True):
            label = schema.label(condition)
            rel = Path(mode) / label / f"{s}.png"
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            write_png(out_dir / rel, image)
            record = {"prompt_mode": mode, "label": label}
            record.update({v: condition[v] for v in schema.variables})
            record.update({"seed": s, "path": str(rel)})
            records.append(record)
    table = pd.DataFrame(records)
    atomic_write_csv(table, samples_csv or out_dir / "samples.csv")
    return table


def sample_condition_table(
    base: str | Path,
    model_dir: str | Path,
    schema_path: str | Path,
    table_csv: str | Path,
    data_dir: str | Path,
    split_csv: str | Path,
    samples_csv: str | Path,
    prompt_mode: str,
    n_per_condition: int = 4,
    seed: int = 0,
    steps: int = 28,
    guidance: float = 2.0,
    resolution: int = 1024,
    batch_size: int = 4,
    scale: float = 1.0,
    device: str | None = None,
) -> pd.DataFrame:
    """Sample a user's condition table with a fine-tuned model in one prompt mode.

    The table is checked against the schema and the prepared training rows before the
    model is loaded (:func:`microgen.data.condition_tables.read_condition_table`: errors
    name the file, line and column; values outside the training data warn and are sampled).
    Images come from :func:`generate_images` with the seeds ``seed + k`` of the validation
    samples, so prompts and conditioner are those of :func:`sample_conditions_to_dir`.
    Writes the images and ``samples_csv``
    (:func:`microgen.generate.sampling.write_table_samples`).
    """
    from microgen.data.prepared import read_metadata
    from microgen.generate.sampling import read_table_grid, write_table_samples

    schema, table, index, rows, seeds = read_table_grid(
        schema_path, table_csv, data_dir, split_csv, n_per_condition, seed
    )
    pipe, text = load_parameter_aware_pipeline(base, model_dir, device=device)
    images = generate_images(
        pipe, rows, prompt_mode, seeds, steps, guidance, resolution, resolution, batch_size, text
    )
    prompts = text.prompts(rows, prompt_mode)
    return write_table_samples(
        samples_csv, table, schema, prompt_mode, index, seeds, images, prompts,
        read_metadata(data_dir), scale,
    )  # fmt: skip
