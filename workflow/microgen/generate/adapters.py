"""The fine-tuned model folder: what DreamBooth-LoRA fine-tuning adds to a base pipeline,
written and read in one place (:class:`ParameterAwareAdapters`).

A folder holds

* ``pytorch_lora_weights.safetensors``: diffusers' LoRA file (the denoiser's adapters and,
  when trained, both CLIP encoders'), loadable by the stock ``load_lora_weights``; its header
  is sorted, so equal tensors give equal bytes;
* ``conditioner.{json,safetensors}`` (:class:`ParameterConditioner`) and
  ``placeholder_tokens.{json,safetensors}`` (ids and embedding rows of the placeholder
  tokens), unless the model was fine-tuned with ``text_only`` prompts;
* ``finetune_config.json``: the base, family, prompt mode, schema and training settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from microgen.checkpoint import sort_safetensors_header
from microgen.conditioning.conditioner import ParameterConditioner, schema_from_config
from microgen.conditioning.tokens import load_placeholder_tokens, save_placeholder_tokens
from microgen.data.schema import ConditionSchema
from microgen.generate.common import DENOISER, pipeline_class

FINETUNE_CONFIG = "finetune_config.json"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


def lora_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA (or DoRA) weights of a peft-adapted module, fp32 on the CPU."""
    from peft import get_peft_model_state_dict

    return {
        k: v.detach().float().cpu().contiguous()
        for k, v in get_peft_model_state_dict(module, save_embedding_layers=False).items()
    }


def _adapter_metadata(module: torch.nn.Module) -> dict:
    # peft keeps target_modules as a set; sorted, the file's bytes depend only on content
    config = module.peft_config["default"].to_dict()
    if isinstance(config.get("target_modules"), set | list | tuple):
        config["target_modules"] = sorted(config["target_modules"])
    return config


@dataclass
class ParameterAwareAdapters:
    """What fine-tuning adds to the base pipeline ``pipe``, attached to it.

    Attributes
    ----------
    pipe : the base SD3 or SDXL pipeline, with the adapters in its modules.
    config : the contents of ``finetune_config.json`` (``family``, ``train_text_encoder``,
        ``use_dora``, ``conditioner``, ``schema``, …).
    conditioner : the parameter conditioner, or ``None`` (``text_only``).
    token_ids : placeholder token ids per CLIP encoder (``clip_l``, ``clip_g``).
    """

    pipe: object
    config: dict
    conditioner: ParameterConditioner | None = None
    token_ids: dict[str, list[int]] = field(default_factory=dict)

    @property
    def encoders(self) -> dict[str, torch.nn.Module]:
        return {"clip_l": self.pipe.text_encoder, "clip_g": self.pipe.text_encoder_2}

    @property
    def schema(self) -> ConditionSchema | None:
        if self.conditioner is not None:
            return self.conditioner.schema
        return schema_from_config(self.config["schema"]) if self.config.get("schema") else None

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the fine-tuned model folder (see the module docstring)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        family = self.config["family"]
        name = DENOISER[family]
        net = getattr(self.pipe, name)
        kwargs = {
            f"{name}_lora_layers": lora_state(net),
            f"{name}_lora_adapter_metadata": _adapter_metadata(net),
        }
        if self.config["train_text_encoder"]:
            for prefix, module in (("text_encoder", self.pipe.text_encoder),
                                   ("text_encoder_2", self.pipe.text_encoder_2)):  # fmt: skip
                kwargs[f"{prefix}_lora_layers"] = lora_state(module)
                kwargs[f"{prefix}_lora_adapter_metadata"] = _adapter_metadata(module)
        pipeline_class(family).save_lora_weights(str(directory), **kwargs)
        sort_safetensors_header(directory / LORA_WEIGHTS)
        if self.conditioner is not None:
            self.conditioner.save_pretrained(directory)
            placeholders = self.conditioner.schema.placeholders
            save_placeholder_tokens(directory, placeholders, self.token_ids, self.encoders)
        text = json.dumps(self.config, indent=2, ensure_ascii=False)
        (directory / FINETUNE_CONFIG).write_text(text)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, pipe) -> ParameterAwareAdapters:
        """Attach a fine-tuned model folder to ``pipe``, a fresh copy of its base: the
        placeholder tokens and their rows, the LoRA adapters, the conditioner."""
        directory = Path(directory)
        config = json.loads((directory / FINETUNE_CONFIG).read_text())
        adapters = cls(pipe, config)
        if config.get("conditioner"):
            tokenizers = {"clip_l": pipe.tokenizer, "clip_g": pipe.tokenizer_2}
            adapters.token_ids = load_placeholder_tokens(directory, tokenizers, adapters.encoders)
            adapters.conditioner = ParameterConditioner.from_pretrained(directory).eval()
        if (directory / LORA_WEIGHTS).is_file():
            pipe.load_lora_weights(str(directory), weight_name=LORA_WEIGHTS)
            if config.get("use_dora"):
                _restore_text_encoder_dora(pipe, directory / LORA_WEIGHTS)
        return adapters


@torch.no_grad()
def _restore_text_encoder_dora(pipe, weights: Path) -> None:
    """Copy the DoRA magnitude vectors of the CLIP adapters from ``weights`` into ``pipe``.

    ``load_lora_weights`` (diffusers 0.42 with transformers 5) restores the CLIP encoders'
    ``lora_A``/``lora_B`` but renames their ``lora_magnitude_vector`` keys so that they are
    dropped, leaving the magnitudes at their initial values (the weight norms): a DoRA model
    would then sample differently from the one that was trained. The denoiser's magnitudes
    load correctly.
    """
    from safetensors.torch import load_file

    state = load_file(str(weights))
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name)
        prefix = f"{name}."
        modules = {n: m for n, m in encoder.named_modules() if hasattr(m, "lora_magnitude_vector")}
        for key, value in state.items():
            if not (key.startswith(prefix) and key.endswith(".lora_magnitude_vector")):
                continue
            path = key[len(prefix) : -len(".lora_magnitude_vector")]
            found = [m for n, m in modules.items() if n == path or n.endswith(f".{path}")]
            if len(found) != 1:
                raise RuntimeError(f"{key}: {len(found)} matching DoRA layers in {name}")
            adapters = list(found[0].lora_magnitude_vector.values())
            if len(adapters) != 1:
                raise RuntimeError(f"{key}: expected one adapter, found {len(adapters)}")
            adapters[0].weight.copy_(value.to(adapters[0].weight.dtype))
