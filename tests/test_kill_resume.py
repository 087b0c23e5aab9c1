"""A training job killed at any moment (a Slurm time limit sends SIGTERM, the OOM killer
SIGKILL) completes when the workflow reruns it, with the bytes of an uninterrupted run.

The workflow manager deletes a failed job's declared outputs before the rerun; each test
does the same, so the rerun has only the checkpoints to go on.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

TESTS = Path(__file__).parent
EPOCHS = 4
SETTINGS = dict(epochs=EPOCHS, steps_per_epoch=6)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start(out: Path) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from test_segment_train import _train
        _train({str(out)!r}, **{SETTINGS!r})
        """
    )
    return subprocess.Popen([sys.executable, "-c", script])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (exit {proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def _delete_declared_outputs(out: Path) -> None:
    """What Snakemake does to a failed job before it runs it again."""
    shutil.rmtree(out / "best", ignore_errors=True)
    (out / "train_log.csv").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from test_segment_train import _train

    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = _train(out, **SETTINGS)
    return out, result


def _assert_same_run(out: Path, reference: Path) -> None:
    assert _sha256(out / "best" / "model.safetensors") == _sha256(
        reference / "best" / "model.safetensors"
    )
    log, ref = pd.read_csv(out / "train_log.csv"), pd.read_csv(reference / "train_log.csv")
    assert list(log["epoch"]) == list(range(1, EPOCHS + 1))  # every epoch, once
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), ref.drop(columns="seconds"))


def test_sigterm_right_after_the_best_epoch_reruns_to_the_same_best(tmp_path, uninterrupted):
    from test_segment_train import _train

    reference, result = uninterrupted
    out = tmp_path / "run"
    proc = _start(out)
    # The checkpoint of the best epoch is the last thing that epoch writes.
    _wait_for(out / "checkpoints" / f"step-{result.best_epoch:07d}", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0
    _delete_declared_outputs(out)
    _train(out, **SETTINGS)
    _assert_same_run(out, reference)


def test_sigkill_mid_epoch_reruns_to_the_same_run(tmp_path, uninterrupted):
    from test_segment_train import _train

    reference, _ = uninterrupted
    epoch_seconds = float(pd.read_csv(reference / "train_log.csv")["seconds"].median())
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(out / "checkpoints" / "step-0000001", proc)
    time.sleep(epoch_seconds / 2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    assert not (out / "checkpoints" / "step-0000002").exists()  # killed inside epoch 2
    _delete_declared_outputs(out)
    _train(out, **SETTINGS)
    _assert_same_run(out, reference)


def test_a_rerun_of_a_finished_run_rewrites_its_outputs(tmp_path, uninterrupted):
    """A code change makes the workflow rerun a finished job: same checkpoints, nothing
    left to train, the outputs come back from the checkpoints."""
    from test_segment_train import _train

    reference, _ = uninterrupted
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    _delete_declared_outputs(out)
    _train(out, **SETTINGS)
    _assert_same_run(out, reference)
