"""The from-scratch baselines as stages: train or sample a baseline named by its kind.

``ddpm`` is the conditional pixel-space DDPM (:mod:`.ddpm`), ``stylegan-lite`` the
conditional style-based GAN (:mod:`.stylegan_lite`); both see only the process parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from microgen.checkpoint import reset_stale_checkpoints
from microgen.data.schema import load_schema
from microgen.generate.sampling import write_samples

BASELINES = ("ddpm", "stylegan-lite")


def _check(kind: str) -> None:
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}")


def train_baseline(
    kind: str,
    data_dir: str | Path,
    split_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    architecture: Mapping | None = None,
    **train: object,
) -> Path:
    """Train baseline ``kind``; ``architecture`` holds the DDPM's :class:`DDPMConfig` fields
    or stylegan-lite's ``generator_kwargs`` / ``discriminator_kwargs``."""
    _check(kind)
    reset_stale_checkpoints(
        out_dir,
        {"kind": kind, "architecture": architecture, **train},
        inputs=(Path(data_dir) / "metadata.csv", Path(split_csv)),
    )
    common = dict(data_dir=data_dir, split_csv=split_csv, schema_path=schema_path,
                  out_dir=out_dir)  # fmt: skip
    architecture = dict(architecture or {})
    if kind == "ddpm":
        from microgen.generate.ddpm import DDPMConfig, train_ddpm

        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in architecture.items()}
        config = DDPMConfig(resolution=int(train.get("resolution", 128)), **fields)
        return train_ddpm(**common, model_config=config, **train)
    from microgen.generate.stylegan_lite.train import train_stylegan_lite

    return train_stylegan_lite(
        **common,
        generator_kwargs=architecture.get("generator"),
        discriminator_kwargs=architecture.get("discriminator"),
        **train,
    )


def draw_baseline(
    kind: str,
    model_dir: str | Path,
    conditions: Sequence[Mapping],
    seeds: Sequence[int],
    batch_size: int = 8,
    **sampler: object,
) -> list:
    """Images (uint8 gray) of a trained baseline, one per condition and seed."""
    _check(kind)
    if kind == "ddpm":
        from microgen.generate.ddpm import sample_ddpm as sample
    else:
        from microgen.generate.stylegan_lite.sample import sample_stylegan_lite as sample
    return sample(model_dir, list(conditions), list(seeds), batch_size=batch_size, **sampler)


def sample_baseline_to_dir(
    kind: str,
    model_dir: str | Path,
    conditions_csv: str | Path,
    schema_path: str | Path,
    out_dir: str | Path,
    samples_csv: str | Path,
    n_per_condition: int,
    seed: int = 0,
    batch_size: int = 8,
    **sampler: object,
) -> pd.DataFrame:
    """Sample a from-scratch baseline (``ddpm`` or ``stylegan-lite``) for every condition of
    ``conditions_csv`` with seeds ``seed + k`` and write them in the samples layout, prompt
    mode ``parameter_only`` (the baselines see only the process parameters)."""
    schema = load_schema(schema_path)
    table = pd.read_csv(conditions_csv)
    conditions = {}
    for record in table.to_dict("records"):
        cond = {v: record[v] for v in schema.variables}
        conditions[schema.label(cond)] = cond
    labels = [label for label in conditions for _ in range(n_per_condition)]
    seeds = [seed + k for _ in conditions for k in range(n_per_condition)]
    images = draw_baseline(
        kind, model_dir, [conditions[label] for label in labels], seeds, batch_size, **sampler
    )
    by_key = {
        ("parameter_only", label, s): image
        for label, s, image in zip(labels, seeds, images, strict=True)
    }
    return write_samples(out_dir, by_key, conditions, schema, samples_csv=samples_csv)


def sample_baseline_table(
    kind: str,
    model_dir: str | Path,
    schema_path: str | Path,
    table_csv: str | Path,
    data_dir: str | Path,
    split_csv: str | Path,
    samples_csv: str | Path,
    n_per_condition: int,
    seed: int = 0,
    batch_size: int = 8,
    scale: float = 1.0,
    **sampler: object,
) -> pd.DataFrame:
    """Sample a user's condition table with a baseline, checked as for the fine-tuned models
    (:func:`microgen.generate.pipeline.sample_condition_table`), prompt mode
    ``parameter_only`` and an empty prompt (a baseline reads none)."""
    from microgen.data.prepared import read_metadata
    from microgen.generate.sampling import read_table_grid, write_table_samples

    schema, table, index, rows, seeds = read_table_grid(
        schema_path, table_csv, data_dir, split_csv, n_per_condition, seed
    )
    images = draw_baseline(kind, model_dir, rows, seeds, batch_size, **sampler)
    return write_table_samples(
        samples_csv, table, schema, "parameter_only", index, seeds, images, [""] * len(rows),
        read_metadata(data_dir), scale,
    )  # fmt: skip
