"""The parameter-aware conditioner: learned token vectors for placeholders (paper eqs. 3–5).

For each CLIP encoder ``j`` (``clip_l``, ``clip_g``; hidden width ``d_j``):

* continuous variables: one MLP ``f_j: R^N -> R^{d_j}``, ``Linear(N, h) -> SiLU ->
  Linear(h, d_j)``, maps the normalised continuous vector ``ũ`` to ONE token-sized vector
  ``e_num^(j)`` that is inserted at *every* continuous placeholder position (``<temp>``,
  ``<time>``, ``<mag>``). This is the paper's eq. 3 read literally: the MLP maps the whole
  vector ``ũ`` to a single embedding and "this vector is inserted at each continuous
  placeholder position". The tokens still differ inside the encoder because CLIP adds a
  position embedding and the neighbouring words differ; every placeholder carries all N
  values, so no information is lost by sharing.
* categorical variables: per variable one embedding table ``E_cat^(j)`` (K × d_j) whose
  selected row replaces that variable's placeholder.

:meth:`ParameterConditioner.forward` returns, per encoder, a (B, P, d_j) tensor of the
replacement vectors in the order of ``schema.placeholders`` (continuous first, then
categorical), which :mod:`microgen.conditioning.tokens` writes into the token embeddings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from microgen.conditioning.normalize import RobustNormalizer
from microgen.data.schema import CategoricalVariable, ConditionSchema, ContinuousVariable

WEIGHTS_NAME = "conditioner.safetensors"
CONFIG_NAME = "conditioner.json"


class ParameterConditioner(nn.Module):
    """Per-encoder continuous MLPs and categorical embedding tables.

    Parameters
    ----------
    schema : condition schema (variables, categories, placeholders).
    widths : hidden width of each CLIP encoder, e.g. ``{"clip_l": 768, "clip_g": 1280}``.
    normalizer : fitted :class:`RobustNormalizer` of the continuous variables.
    hidden : hidden width ``h`` of the MLPs; ``None`` uses ``d_j`` for encoder ``j``.
    init_std : standard deviation of the initial categorical table rows.
    """

    def __init__(
        self,
        schema: ConditionSchema,
        widths: Mapping[str, int],
        normalizer: RobustNormalizer,
        hidden: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__()
        if tuple(normalizer.names) != tuple(v.name for v in schema.continuous):
            raise ValueError(
                f"normaliser variables {normalizer.names} do not match the schema's continuous "
                f"variables {tuple(v.name for v in schema.continuous)}"
            )
        self.schema = schema
        self.widths = {str(k): int(v) for k, v in widths.items()}
        self.normalizer = normalizer
        self.hidden = hidden
        self.init_std = init_std
        n = len(schema.continuous)
        self.mlps = nn.ModuleDict()
        self.tables = nn.ModuleDict()
        for enc, d in self.widths.items():
            if n:
                h = hidden or d
                self.mlps[enc] = nn.Sequential(nn.Linear(n, h), nn.SiLU(), nn.Linear(h, d))
            tables = nn.ModuleDict()
            for c in schema.categorical:
                table = nn.Embedding(len(c.categories), d)
                nn.init.normal_(table.weight, std=init_std)
                tables[c.name] = table
            self.tables[enc] = tables

    @property
    def encoders(self) -> tuple[str, ...]:
        return tuple(self.widths)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return self.schema.placeholders

    def continuous_inputs(self, conditions: Sequence[Mapping]) -> torch.Tensor:
        """Normalised continuous vectors ``ũ`` (B, N) on the conditioner's device."""
        u = self.normalizer.transform(conditions)
        return torch.as_tensor(u, device=self._device())

    def category_indices(self, conditions: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Row index of each categorical variable (B,), raising on unknown categories."""
        out = {}
        for c in self.schema.categorical:
            rows = []
            for condition in conditions:
                if c.name not in condition or condition[c.name] is None:
                    raise ValueError(f"condition lacks categorical variable {c.name!r}")
                rows.append(c.index(str(condition[c.name])))
            out[c.name] = torch.tensor(rows, dtype=torch.long, device=self._device())
        return out

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, conditions: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Replacement vectors per encoder, (B, P, d_j) in ``schema.placeholders`` order."""
        conditions = list(conditions)
        cats = self.category_indices(conditions)
        u = self.continuous_inputs(conditions) if self.schema.continuous else None
        out = {}
        for enc in self.encoders:
            vectors = []
            if u is not None:
                mlp = self.mlps[enc]
                e_num = mlp(u.to(mlp[0].weight.dtype))
                vectors += [e_num] * len(self.schema.continuous)
            for c in self.schema.categorical:
                vectors.append(self.tables[enc][c.name](cats[c.name]))
            out[enc] = torch.stack(vectors, dim=1)
        return out

    @torch.no_grad()
    def match_token_scale(
        self, token_norms: Mapping[str, float], conditions: Sequence[Mapping]
    ) -> None:
        """Scale the initial vectors to the norm of each encoder's own token rows.

        A frozen CLIP has only seen inputs of its embedding rows' size: vectors several times
        larger (the default MLP's, at step 0) or smaller (a 0.02-std table row) put every
        placeholder out of its range. Each categorical row is set to norm
        ``token_norms[enc]``, and each continuous MLP's output layer is scaled so that its mean
        output norm over ``conditions`` (the training conditions) is that norm.
        """
        u = self.continuous_inputs(conditions) if self.schema.continuous else None
        for enc, target in token_norms.items():
            for table in self.tables[enc].values():
                rows = table.weight
                rows.mul_(target / rows.norm(dim=1, keepdim=True).clamp_min(1e-12))
            if u is not None:
                mlp = self.mlps[enc]
                norm = mlp(u.to(mlp[0].weight.dtype)).norm(dim=1).mean().clamp_min(1e-12)
                mlp[-1].weight.mul_(target / norm)
                mlp[-1].bias.mul_(target / norm)

    @torch.no_grad()
    def init_from_words(self, tokenizers: Mapping, encoders: Mapping[str, nn.Module]) -> None:
        """Set each category's row to the mean input embedding of its prompt words.

        The words are those a text-only prompt writes for the category
        (:meth:`CategoricalVariable.text`, e.g. "network" or "quenched"), tokenised by the
        encoder's own tokenizer without special tokens: the placeholder then starts where
        the words put the encoder, as textual inversion starts from an initializer token,
        and a base that already reads the words reads the category from step 0.
        """
        for enc, table_set in self.tables.items():
            rows = encoders[enc].get_input_embeddings().weight
            for c in self.schema.categorical:
                table = table_set[c.name].weight
                for k, category in enumerate(c.categories):
                    ids = tokenizers[enc](c.text(category), add_special_tokens=False).input_ids
                    if not ids:
                        raise ValueError(f"{c.name} = {category!r}: its words tokenise to nothing")
                    table[k] = rows[ids].float().mean(0).to(table.dtype)

    # -- serialisation -----------------------------------------------------------------------

    def config(self) -> dict:
        """JSON-serialisable description: variables, vocabularies, normalisation, widths."""
        return {
            **schema_to_config(self.schema),
            "normalizer": self.normalizer.to_dict(),
            "widths": self.widths,
            "hidden": self.hidden,
            "init_std": self.init_std,
        }

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``conditioner.safetensors`` and ``conditioner.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        (directory / CONFIG_NAME).write_text(
            json.dumps(self.config(), indent=2, ensure_ascii=False)
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ParameterConditioner:
        """Rebuild a conditioner written by :meth:`save_pretrained`."""
        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
        cfg = json.loads((directory / CONFIG_NAME).read_text())
        schema = schema_from_config(cfg)
        model = cls(
            schema,
            cfg["widths"],
            RobustNormalizer.from_dict(cfg["normalizer"]),
            hidden=cfg.get("hidden"),
            init_std=cfg.get("init_std", 0.02),
        )
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        return model


def schema_to_config(schema: ConditionSchema) -> dict:
    """JSON-serialisable form of a schema (variables, categories, prompts, label)."""
    return {
        "schema_name": schema.name,
        "continuous": [
            {
                "name": v.name,
                "label": v.label,
                "unit": v.unit,
                "placeholder": v.placeholder,
                "log": v.log,
                "clip": v.clip,
                "format": v.format,
            }
            for v in schema.continuous
        ],
        "categorical": [
            {
                "name": c.name,
                "label": c.label,
                "placeholder": c.placeholder,
                "categories": list(c.categories),
                "words": dict(c.words),
                "short": dict(c.short),
            }
            for c in schema.categorical
        ],
        "prompts": dict(schema.prompts),
        "condition_label": schema.condition_label,
    }


def schema_from_config(cfg: Mapping) -> ConditionSchema:
    """The :class:`ConditionSchema` stored in a ``conditioner.json``."""
    return ConditionSchema(
        name=cfg["schema_name"],
        continuous=tuple(ContinuousVariable(**v) for v in cfg["continuous"]),
        categorical=tuple(
            CategoricalVariable(
                name=c["name"],
                label=c["label"],
                placeholder=c["placeholder"],
                categories=tuple(c["categories"]),
                words=dict(c["words"]),
                short=dict(c["short"]),
            )
            for c in cfg["categorical"]
        ),
        prompts=dict(cfg["prompts"]),
        condition_label=cfg["condition_label"],
    )
