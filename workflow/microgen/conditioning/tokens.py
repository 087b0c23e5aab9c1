"""Placeholder tokens in the CLIP tokenizers and their replacement in the token embeddings.

* :func:`add_placeholder_tokens` adds the schema's placeholders (``<temp>``, ``<cool>``, …)
  to a CLIP tokenizer as added special tokens (never split, matched before lower-casing),
  resizes the text encoder's token embedding table (new rows set to zero; they are always
  overwritten, see below) and points the pooling at the tokenizer's real EOS id.

  Why the EOS fix: a CLIP config with the legacy ``eos_token_id == 2`` pools at
  ``argmax(input_ids)``, i.e. at the highest token id, which after adding tokens is a
  placeholder instead of ``<|endoftext|>``. Setting ``text_model.eos_token_id`` (and the
  config) to the tokenizer's EOS id makes transformers pool at the first EOS.

* :class:`PlaceholderInjector` registers a forward hook on the encoder's token embedding
  module (``CLIPTextModelWithProjection.forward`` no longer takes ``inputs_embeds`` in
  transformers 5): inside :meth:`PlaceholderInjector.active`, rows whose input id is a
  placeholder id are replaced by the conditioner's vector for that batch item, *before*
  position embeddings and the transformer layers (paper eq. 5). Outside ``active`` a
  sequence containing a placeholder raises, so the meaningless zero rows are never used.

* :func:`tokenize` truncates to 77 tokens like the SD3 pipeline but refuses to cut a
  placeholder: if truncation would drop one, a ``ValueError`` names it (shorten the prompt
  or move the placeholders forward). Placeholders are never moved silently.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

TOKENS_NAME = "placeholder_tokens.json"
ROWS_NAME = "placeholder_tokens.safetensors"


def ensure_placeholders(prompt: str, placeholders: Sequence[str]) -> str:
    """Append every placeholder missing from ``prompt`` (space separated, schema order)."""
    missing = [p for p in placeholders if p not in prompt]
    return " ".join([prompt.strip(), *missing]).strip()


def strip_placeholders(prompt: str, placeholders: Sequence[str]) -> str:
    """``prompt`` without placeholder tokens (what T5 sees), whitespace tidied."""
    for p in placeholders:
        prompt = prompt.replace(p, " ")
    prompt = re.sub(r"\s+([,.;:])", r"\1", prompt)
    return " ".join(prompt.split())


def add_placeholder_tokens(
    tokenizer, text_encoder: nn.Module, placeholders: Sequence[str]
) -> list[int]:
    """Add placeholders to ``tokenizer`` and resize ``text_encoder``'s token embeddings.

    Idempotent: tokens already present are kept with their ids. Returns the placeholder ids in
    the given order.
    """
    vocab = tokenizer.get_vocab()
    new = [p for p in placeholders if p not in vocab]
    if new:
        tokenizer.add_tokens(list(new), special_tokens=True)
    ids = [tokenizer.convert_tokens_to_ids(p) for p in placeholders]
    emb = text_encoder.get_input_embeddings()
    if emb.num_embeddings < len(tokenizer):
        old = emb.num_embeddings
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            text_encoder.get_input_embeddings().weight[old:].zero_()
    fix_eos_pooling(tokenizer, text_encoder)
    for p, i in zip(placeholders, ids, strict=True):
        if tokenizer.convert_ids_to_tokens(i) != p:
            raise RuntimeError(f"placeholder {p!r} did not become a single token")
    return ids


def token_row_norm(text_encoder: nn.Module, exclude: Sequence[int] = ()) -> float:
    """Mean Euclidean norm of the encoder's token embedding rows, ``exclude`` (the
    placeholders' zero rows) left out: the scale its first layer was trained on."""
    weight = text_encoder.get_input_embeddings().weight.detach()
    keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    keep[list(exclude)] = False
    return float(weight[keep].float().norm(dim=1).mean())


def fix_eos_pooling(tokenizer, text_encoder: nn.Module) -> None:
    """Make CLIP pool at the first real EOS token rather than at ``argmax(input_ids)``."""
    eos = int(tokenizer.eos_token_id)
    text_encoder.config.eos_token_id = eos
    text_model = getattr(text_encoder, "text_model", text_encoder)
    text_model.eos_token_id = eos
    if getattr(text_model, "config", None) is not None:
        text_model.config.eos_token_id = eos


def tokenize(
    tokenizer, prompts: Sequence[str], placeholders: Sequence[str], max_length: int = 77
) -> torch.Tensor:
    """Token ids (B, max_length) padded and truncated like the SD3 pipeline.

    Raises
    ------
    ValueError
        When truncation at ``max_length`` would cut a placeholder token.
    """
    ids = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    full = tokenizer(list(prompts), padding=False, truncation=False).input_ids
    if placeholders:
        pid = [tokenizer.convert_tokens_to_ids(p) for p in placeholders]
        for b, prompt in enumerate(prompts):
            for p, i in zip(placeholders, pid, strict=True):
                kept = int((ids[b] == i).sum())
                wanted = sum(1 for t in full[b] if t == i)
                if kept != wanted:
                    raise ValueError(
                        f"placeholder {p} would be cut by truncation at {max_length} CLIP tokens "
                        f"(prompt has {len(full[b])} tokens): shorten the prompt or put the "
                        f"placeholders earlier: {prompt!r}"
                    )
    return ids


class PlaceholderInjector:
    """Forward hook writing conditioner vectors into one CLIP encoder's token embeddings.

    Parameters
    ----------
    text_encoder : a CLIP text encoder whose vocabulary already holds the placeholders.
    placeholder_ids : token id of each placeholder, in the order of the conditioner's
        vectors (``schema.placeholders``).
    """

    def __init__(self, text_encoder: nn.Module, placeholder_ids: Sequence[int]):
        self.placeholder_ids = [int(i) for i in placeholder_ids]
        self._values: torch.Tensor | None = None
        self._handle = text_encoder.get_input_embeddings().register_forward_hook(self._hook)

    def remove(self) -> None:
        self._handle.remove()

    @contextlib.contextmanager
    def active(self, values: torch.Tensor | None) -> Iterator[None]:
        """Within the block, replace placeholder rows by ``values`` (B, P, d); ``None``
        means no conditioning (a sequence with a placeholder then raises)."""
        previous, self._values = self._values, values
        try:
            yield
        finally:
            self._values = previous

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        input_ids = args[0] if args else None
        if input_ids is None:
            return output
        pid = torch.tensor(self.placeholder_ids, device=input_ids.device)
        is_placeholder = (input_ids.unsqueeze(-1) == pid).any(-1)
        if self._values is None:
            if bool(is_placeholder.any()):
                raise RuntimeError(
                    "placeholder tokens in a CLIP sequence but no conditioner values are active"
                )
            return output
        values = self._values.to(device=output.device, dtype=output.dtype)
        if values.shape[0] != output.shape[0]:
            raise ValueError(
                f"conditioner batch {values.shape[0]} != token batch {output.shape[0]}"
            )
        for p, i in enumerate(self.placeholder_ids):
            mask = (input_ids == i).unsqueeze(-1)
            output = torch.where(mask, values[:, p : p + 1, :], output)
        return output


def save_placeholder_tokens(
    directory: str | Path,
    placeholders: Sequence[str],
    ids: Mapping[str, Sequence[int]],
    encoders: Mapping[str, nn.Module],
) -> None:
    """Record the placeholder tokens, their ids and embedding rows per encoder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "placeholders": list(placeholders),
        "ids": {k: list(map(int, v)) for k, v in ids.items()},
    }
    (directory / TOKENS_NAME).write_text(json.dumps(meta, indent=2))
    rows = {
        enc: encoders[enc].get_input_embeddings().weight[list(ids[enc])].detach().float().cpu()
        for enc in ids
    }
    save_file({k: v.contiguous() for k, v in rows.items()}, str(directory / ROWS_NAME))


def load_placeholder_tokens(
    directory: str | Path, tokenizers: Mapping[str, object], encoders: Mapping[str, nn.Module]
) -> dict[str, list[int]]:
    """Re-add the recorded placeholders to the base tokenizers/encoders and restore the rows.

    Raises if a placeholder gets a different id than at training time (a different base).
    """
    directory = Path(directory)
    meta = json.loads((directory / TOKENS_NAME).read_text())
    rows = load_file(str(directory / ROWS_NAME))
    out = {}
    for enc, saved in meta["ids"].items():
        got = add_placeholder_tokens(tokenizers[enc], encoders[enc], meta["placeholders"])
        if got != list(saved):
            raise ValueError(
                f"{enc}: placeholder ids {got} differ from training ({saved}); "
                "was the model fine-tuned from a different base?"
            )
        with torch.no_grad():
            weight = encoders[enc].get_input_embeddings().weight
            weight[got] = rows[enc].to(weight.dtype).to(weight.device)
        out[enc] = got
    return out
