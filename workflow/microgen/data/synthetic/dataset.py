"""A prepared data set drawn from the synthetic steel generator.

Conditions are distinct combinations drawn from the configured value sets (subsets of the
paper's Table A1); each condition gets ``images_per_condition`` micrographs with their own
seeds, so a condition can be both in training and in the seen-validation set.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from microgen.data.checks import DataError
from microgen.data.prepared import write_prepared
from microgen.data.schema import load_schema
from microgen.data.synthetic.conditions import Condition
from microgen.data.synthetic.generator import generate
from microgen.data.synthetic.structure import CLASS_NAMES

VARIABLES = ("temperature", "time", "cooling", "magnification", "microconstituent")


def draw_conditions(
    values: Mapping[str, Sequence], n_conditions: int, seed: int
) -> list[Condition]:
    """``n_conditions`` distinct conditions drawn without replacement from the value grid."""
    missing = [v for v in VARIABLES if v not in values]
    if missing:
        raise ValueError(f"synthetic.values lacks {missing}")
    grid = list(itertools.product(*(values[v] for v in VARIABLES)))
    if n_conditions > len(grid):
        raise ValueError(f"asked for {n_conditions} conditions, the value grid has {len(grid)}")
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(grid), size=n_conditions, replace=False))
    return [Condition(**dict(zip(VARIABLES, grid[i], strict=True))) for i in picks]


def write_synthetic_dataset(
    out_dir: str | Path,
    schema_path: str | Path,
    values: Mapping[str, Sequence],
    n_conditions: int,
    images_per_condition: int,
    shape: Sequence[int],
    seed: int = 0,
) -> pd.DataFrame:
    """Generate the synthetic data set and write it in the prepared-data-set contract.

    Image ``k`` of condition ``c`` is generated with seed ``(seed, c, k)`` so the data set is
    byte-identical for the same configuration. The ground-truth law values of each image are
    kept in the metadata as ``truth_*`` columns. The schema names the generator's classes,
    one per mask id (:data:`~microgen.data.synthetic.structure.CLASS_NAMES`).
    """
    schema = load_schema(schema_path)
    if len(schema.classes) != len(CLASS_NAMES):
        raise DataError(
            f"{schema_path}: classes: the synthetic generator draws {len(CLASS_NAMES)} classes "
            f"({', '.join(CLASS_NAMES)}), the schema names {len(schema.classes)}"
        )
    conditions = draw_conditions(values, n_conditions, seed)
    rows, images, masks = [], [], []
    jobs = [(c, k) for c in range(len(conditions)) for k in range(images_per_condition)]
    for c, k in tqdm(jobs, desc="synthetic micrographs"):
        condition = conditions[c]
        image_seed = int(np.random.SeedSequence([seed, c, k]).generate_state(1)[0])
        micrograph = generate(condition, shape=tuple(shape), seed=image_seed)
        image_id = f"syn{c:04d}-{k:02d}"
        rows.append(
            {
                "id": image_id,
                **{v: getattr(condition, v) for v in VARIABLES},
                "pixel_size_um": micrograph.pixel_size_um,
                "seed": image_seed,
                **{
                    f"truth_{key}": value
                    for key, value in micrograph.truth.items()
                    if np.isscalar(value)
                },
            }
        )
        images.append((image_id, micrograph.image))
        masks.append((image_id, micrograph.mask))
    return write_prepared(out_dir, pd.DataFrame(rows), images, masks, schema=schema)
