"""Shared pieces of the from-scratch baselines (DDPM, stylegan-lite): condition embedding,
training-set loading, step-seeded randomness, and resuming from and exporting their
checkpoints.

Randomness during training is drawn from one ``torch.Generator`` per step, seeded from
``(seed, step)`` (:func:`step_generator`). A resumed run therefore needs only the model and
optimiser states of its checkpoint to continue exactly as the uninterrupted run would.

Checkpoints follow :class:`microgen.checkpoint.Checkpoints`: ``out_dir/checkpoints/
step-NNNNNNN/`` holds ``model/`` (the model directory as a finished run exports it),
``training_state`` (optimisers, and weights needed only to continue) and the log up to
that step. :func:`open_run` opens a run and :func:`resume_point` finds where to continue;
:func:`export_run` writes the outputs from the newest checkpoint at the end of every run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from microgen.checkpoint import Checkpoints
from microgen.data.prepared import read_gray
from microgen.data.preprocess import resize_center_crop, to_model_range
from microgen.data.schema import ConditionSchema, load_schema
from microgen.data.split import read_split_table
from microgen.generate.condition_vector import ConditionEncoder


# ---------------------------------------------------------------------------- data
@dataclass
class TrainingSet:
    """Images of one split at the model resolution with their encoded conditions.

    Attributes
    ----------
    images : (N, 1, R, R) float32 tensor in [-1, 1].
    continuous : (N, n_continuous) normalised continuous conditions.
    categorical : (N, n_categorical) category indices.
    encoder : the condition encoder fitted on the training rows.
    metadata : the metadata rows of the images, in tensor order.
    """

    images: torch.Tensor
    continuous: torch.Tensor
    categorical: torch.Tensor
    encoder: ConditionEncoder
    metadata: pd.DataFrame


def load_training_set(
    data_dir: str | Path,
    split_csv: str | Path,
    schema: ConditionSchema | str | Path,
    resolution: int,
    split: str = "train",
) -> TrainingSet:
    """Read the ``split`` rows of a prepared data set, resized and centre-cropped.

    The condition encoder is always fitted on the ``train`` rows, whatever ``split`` is.
    """
    if not isinstance(schema, ConditionSchema):
        schema = load_schema(schema)
    table = read_split_table(data_dir, split_csv)
    train_rows = table[table["split"] == "train"]
    rows = table[table["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split {split!r} has no rows in {split_csv}")
    encoder = ConditionEncoder.fit(schema, train_rows.to_dict("records"))
    images = np.stack(
        [
            to_model_range(
                resize_center_crop(read_gray(Path(data_dir) / "images" / f"{i}.png"), resolution)
            )
            for i in rows["id"]
        ]
    )
    cont, cat = encoder.encode_many(rows.to_dict("records"))
    return TrainingSet(
        images=torch.from_numpy(images)[:, None],
        continuous=torch.from_numpy(cont),
        categorical=torch.from_numpy(cat),
        encoder=encoder,
        metadata=rows,
    )


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random generator of one training step, a function of ``(seed, step)`` only."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63))


def draw_batch(
    data: TrainingSet, batch_size: int, generator: torch.Generator, hflip: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch (with replacement) with random horizontal flips (paper A3)."""
    idx = torch.randint(len(data.images), (batch_size,), generator=generator)
    x = data.images[idx]
    if hflip:
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x, data.continuous[idx], data.categorical[idx]


def encode_conditions(
    encoder: ConditionEncoder, conditions: Sequence[Mapping]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded conditions as tensors (raises ``ValueError`` on an unknown category)."""
    cont, cat = encoder.encode_many(conditions)
    return torch.from_numpy(cont), torch.from_numpy(cat)


# ---------------------------------------------------------------------------- modules
class ConditionEmbedder(ModelMixin, ConfigMixin):
    """Learned embedding of an encoded condition: MLP(continuous) + Σ category embeddings.

    The continuous part follows the paper's eq. (3) (Linear-SiLU-Linear); every categorical
    variable has its own embedding table (eq. 4); the two are summed. A learned null
    embedding replaces the whole vector where ``drop`` is true (classifier-free guidance).

    Parameters
    ----------
    n_continuous : number of continuous variables.
    category_sizes : number of categories of each categorical variable.
    embed_dim : output width.
    hidden_dim : hidden width of the continuous MLP (``embed_dim`` when ``None``).
    """

    @register_to_config
    def __init__(
        self,
        n_continuous: int,
        category_sizes: tuple[int, ...] = (),
        embed_dim: int = 128,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        hidden_dim = hidden_dim or embed_dim
        self.continuous_mlp = (
            nn.Sequential(
                nn.Linear(n_continuous, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, embed_dim)
            )
            if n_continuous
            else None
        )
        self.category_tables = nn.ModuleList(nn.Embedding(k, embed_dim) for k in category_sizes)
        for table in self.category_tables:
            nn.init.normal_(table.weight, std=0.02)
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))

    def forward(
        self,
        continuous: torch.Tensor,
        categorical: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed a batch of conditions.

        Parameters
        ----------
        continuous : (B, n_continuous) normalised values.
        categorical : (B, n_categorical) category indices.
        drop : optional (B,) bool; true rows get the null embedding.

        Returns
        -------
        (B, embed_dim) tensor.
        """
        batch = continuous.shape[0] if continuous.ndim == 2 else categorical.shape[0]
        emb = self.null_embedding.new_zeros(batch, self.config.embed_dim)
        if self.continuous_mlp is not None:
            emb = emb + self.continuous_mlp(continuous.to(emb.dtype))
        for j, table in enumerate(self.category_tables):
            emb = emb + table(categorical[:, j])
        if drop is not None:
            emb = torch.where(drop[:, None], self.null_embedding.expand_as(emb), emb)
        return emb


# ---------------------------------------------------------------------------- checkpoints
def resume_point(checkpoints: Checkpoints, steps: int) -> tuple[int, Path | None]:
    """``(step, folder)`` of the newest checkpoint to continue to ``steps`` from, or
    ``(0, None)`` when there is none.

    Raises ``ValueError`` when that checkpoint cannot lead to ``steps``: it is past them,
    or it is the end of a finished run (no training state) and steps are left.
    """
    found = checkpoints.latest()
    if found is None:
        return 0, None
    step, folder = found
    restart = f"delete {checkpoints.root} to train {steps} steps from the start"
    if step > steps:
        raise ValueError(f"{folder} is past the {steps} steps asked for; {restart}")
    if step < steps and not Checkpoints.has_training_state(folder):
        raise ValueError(
            f"{folder} is the end of a finished run (no optimiser state is kept); {restart}"
        )
    return step, folder


def open_run(
    out_dir: str | Path, steps: int, keep: int, resume: bool
) -> tuple[Checkpoints, int, Path | None]:
    """The checkpoints of a baseline run in ``out_dir`` (created), and where to continue to
    ``steps`` from (:func:`resume_point`); ``resume=False`` forgets earlier checkpoints."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(out_dir, keep=keep)
    if not resume:
        shutil.rmtree(checkpoints.root, ignore_errors=True)
    return (checkpoints, *resume_point(checkpoints, steps))


def export_run(checkpoints: Checkpoints, out_dir: str | Path, continuable: bool = False) -> Path:
    """Write a finished run's outputs from its newest checkpoint and finish it.

    Every entry of the checkpoint's ``model/`` goes to ``out_dir`` (the model directory),
    its log to ``out_dir/train_log.csv``. This runs at the end of every run, also one
    that found nothing left to train: the workflow manager deletes the outputs of a
    killed job, and only the checkpoints survive it. ``continuable`` keeps the training
    state, so that a later call with more steps continues the run exactly.
    """
    return checkpoints.export_latest(out_dir, keep_training_state=continuable)


def save_json_config(obj: object, path: str | Path) -> None:
    """Write a dataclass as indented JSON."""
    Path(path).write_text(json.dumps(asdict(obj), indent=2, default=list) + "\n")


def load_json_config(cls: type, path: str | Path):
    """Read a dataclass written by :func:`save_json_config` (unknown keys are an error)."""
    data = json.loads(Path(path).read_text())
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    for f in fields(cls):
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    return cls(**data)


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    """(B, 1, H, W) model-range tensor → list of (H, W) uint8 arrays."""
    from microgen.data.preprocess import from_model_range

    return [from_model_range(a[0]) for a in x.detach().cpu().float().numpy()]
