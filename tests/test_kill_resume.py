"""A training job killed at any moment (a Slurm time limit sends SIGTERM, the OOM killer
SIGKILL) completes when the workflow reruns it, with the bytes of an uninterrupted run.

The workflow manager deletes a failed job's declared outputs before the rerun; each test
deletes everything of the run but its checkpoints, so the rerun has only those to go on and
must write every output again. One :class:`Trainer` per training function: the segmenter,
the DDPM baseline and the 3D VAE (the cheapest 3D stage, trained with a weight average so
that its state is resumed too).
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TESTS = Path(__file__).parent
TIMING = ("seconds", "seconds_per_step")  # log columns that differ between runs


@dataclass(frozen=True)
class Trainer:
    """A training call that the tests run here or start in a subprocess to kill.

    ``function`` is ``"module:name"`` of a module in ``tests/``, called as
    ``name(out, **kwargs)`` (``kwargs`` must survive ``repr``: numbers, strings). The log
    ``train_log.csv`` must count ``index`` from 1 to ``count`` once each, and the SIGTERM
    test stops the run once checkpoint ``step-{term_after}`` exists.
    """

    function: str
    kwargs: dict = field(default_factory=dict)
    index: str = "epoch"
    count: int = 1
    term_after: int = 1

    def __call__(self, out: Path):
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)(out, **self.kwargs)

    def start(self, out: Path) -> subprocess.Popen:
        module, name = self.function.split(":")
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(TESTS)!r})
            from {module} import {name}
            {name}({str(out)!r}, **{self.kwargs!r})
            """
        )
        return subprocess.Popen([sys.executable, "-c", script])


# --------------------------------------------------------------------------- the trainers

SEGMENTER_EPOCHS = 4
SEGMENTER = Trainer(
    "test_segment_train:_train",
    dict(epochs=SEGMENTER_EPOCHS, steps_per_epoch=6),
    index="epoch",
    count=SEGMENTER_EPOCHS,
)


def train_tiny_ddpm(out, data_dir, split_csv, **kw):
    """The DDPM baseline at 16 px, a checkpoint every 4 of 16 steps, every step logged."""
    import torch
    from conftest import SCHEMA

    from microgen.generate.ddpm import DDPMConfig, train_ddpm

    torch.set_num_threads(1)
    config = DDPMConfig(
        resolution=16,
        block_out_channels=(16, 32),
        attention_levels=(False, False),
        layers_per_block=1,
        norm_num_groups=8,
    )
    args = dict(resolution=16, steps=16, batch_size=4, lr=1e-3, seed=3, checkpoint_every=4,
                log_every=1, model_config=config, progress=False)  # fmt: skip
    return train_ddpm(data_dir, split_csv, SCHEMA, out, **{**args, **kw})


def train_tiny_vae(out, h5, split_csv, **kw):
    """The 3D VAE on 16³ volumes, 6 epochs of 3 steps, with a weight average."""
    import torch

    from microgen.volumes.models import VAE3DConfig
    from microgen.volumes.train import FitSettings, train_vae

    torch.set_num_threads(1)
    config = VAE3DConfig(volume_shape=(16, 16, 16), channel_mults=(1, 2), latent_channels=2)
    fit = FitSettings(epochs=6, batch_size=4, lr=3e-3, min_lr=3e-4, ema_decay=0.9,
                      progress=False, **kw)  # fmt: skip
    return train_vae(h5, split_csv, out, config, fit)


def _volume_set(root: Path) -> tuple[Path, Path]:
    """4 runs × 4 snapshots of smoothed-noise three-phase 16³ volumes, split by run."""
    from scipy import ndimage

    from microgen.volumes.hdf5 import VolumeWriter
    from microgen.volumes.splits import split_h5

    h5, split = root / "tiny.h5", root / "split.csv"
    rng = np.random.default_rng(0)
    shape = (16, 16, 16)
    with VolumeWriter(h5, shape=shape, file_attrs={"three_phase": True}) as w:
        for r in range(4):
            for k in range(4):
                f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0 + k / 2, mode="wrap")
                lo, hi = np.quantile(f, [0.3 + 0.1 * r, 0.5 + 0.1 * r])
                vol = np.where(f < lo, 0, np.where(f < hi, 2, 1)).astype(np.uint8)
                w.add(f"r{r}_step_{k}", vol, {"phi": 0.3 + 0.1 * r, "run_id": f"r{r}"})
    split_h5(h5, split, val_fraction=0.25, seed=0)
    return h5, split


@pytest.fixture(scope="module")
def ddpm(tmp_path_factory, schema) -> Trainer:
    from baselines_data import make_two_condition_set

    data_dir, split_csv = make_two_condition_set(tmp_path_factory.mktemp("ddpm-data"), schema)
    kwargs = dict(data_dir=str(data_dir), split_csv=str(split_csv))
    return Trainer("test_kill_resume:train_tiny_ddpm", kwargs, index="step", count=16,
                   term_after=4)  # fmt: skip


@pytest.fixture(scope="module")
def vae(tmp_path_factory) -> Trainer:
    h5, split_csv = _volume_set(tmp_path_factory.mktemp("vae-data"))
    kwargs = dict(h5=str(h5), split_csv=str(split_csv))
    return Trainer("test_kill_resume:train_tiny_vae", kwargs, index="epoch", count=6,
                   term_after=2)  # fmt: skip


@pytest.fixture(scope="module")
def segmenter() -> Trainer:
    return SEGMENTER


@pytest.fixture(scope="module")
def trainer(request) -> Trainer:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def uninterrupted(trainer, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    return out, trainer(out)


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (exit {proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def _delete_outputs(out: Path) -> None:
    """What Snakemake does to a failed job's declared outputs before it runs it again,
    done to everything but the checkpoints: the rerun must rewrite all of it."""
    for path in out.iterdir():
        if path.name == "checkpoints":
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _outputs(out: Path) -> dict[str, str]:
    """SHA-256 of every file of a run outside its checkpoints, but the log."""
    return {
        str(p.relative_to(out)): _sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and "checkpoints" not in p.relative_to(out).parts
        and p.name != "train_log.csv"
    }


def _assert_same_run(out: Path, reference: Path, trainer: Trainer) -> None:
    outputs = _outputs(out)
    assert any(name.endswith(".safetensors") for name in outputs)  # the weights are there
    assert outputs == _outputs(reference)
    log, ref = pd.read_csv(out / "train_log.csv"), pd.read_csv(reference / "train_log.csv")
    assert list(log[trainer.index]) == list(range(1, trainer.count + 1))  # each once
    timing = [c for c in TIMING if c in log.columns]
    pd.testing.assert_frame_equal(log.drop(columns=timing), ref.drop(columns=timing))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("trainer", ["segmenter"], indirect=True)
def test_sigterm_right_after_the_best_epoch_reruns_to_the_same_best(
    tmp_path, trainer, uninterrupted
):
    reference, result = uninterrupted
    out = tmp_path / "run"
    proc = trainer.start(out)
    # The checkpoint of the best epoch is the last thing that epoch writes.
    _wait_for(out / "checkpoints" / f"step-{result.best_epoch:07d}", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0
    _delete_outputs(out)
    trainer(out)
    _assert_same_run(out, reference, trainer)


@pytest.mark.parametrize("trainer", ["segmenter"], indirect=True)
def test_sigkill_mid_epoch_reruns_to_the_same_run(tmp_path, trainer, uninterrupted):
    reference, _ = uninterrupted
    epoch_seconds = float(pd.read_csv(reference / "train_log.csv")["seconds"].median())
    out = tmp_path / "run"
    proc = trainer.start(out)
    _wait_for(out / "checkpoints" / "step-0000001", proc)
    time.sleep(epoch_seconds / 2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    assert not (out / "checkpoints" / "step-0000002").exists()  # killed inside epoch 2
    _delete_outputs(out)
    trainer(out)
    _assert_same_run(out, reference, trainer)


@pytest.mark.parametrize("trainer", ["ddpm", "vae"], indirect=True)
def test_sigterm_right_after_a_checkpoint_reruns_to_the_same_run(tmp_path, trainer, uninterrupted):
    reference, _ = uninterrupted
    out = tmp_path / "run"
    proc = trainer.start(out)
    _wait_for(out / "checkpoints" / f"step-{trainer.term_after:07d}", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM  # stopped, not finished
    assert not (out / "train_log.csv").exists()
    _delete_outputs(out)
    trainer(out)
    _assert_same_run(out, reference, trainer)


@pytest.mark.parametrize("trainer", ["segmenter", "ddpm", "vae"], indirect=True)
def test_a_rerun_of_a_finished_run_rewrites_its_outputs(tmp_path, trainer, uninterrupted):
    """A code change makes the workflow rerun a finished job: same checkpoints, nothing
    left to train, the outputs come back from the checkpoints."""
    reference, _ = uninterrupted
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    _delete_outputs(out)
    assert [p.name for p in out.iterdir()] == ["checkpoints"]
    trainer(out)
    _assert_same_run(out, reference, trainer)
