"""Fine-tuning on several processes (DDP over gloo on the CPU, the tiny SD3 base): launched as
the rule launches it (``python -m torch.distributed.run --standalone --nproc_per_node 2``),
both ranks end with the same weights, two ranks of batch b train as one process of batch 2b,
and a run stopped part-way resumes under two ranks to the bytes of an unbroken one.

The settings exercise what DDP could break: the conditioner and both CLIP encoders' adapters
trained beside the transformer's, gradient checkpointing, accumulated batches (``no_sync``),
prior preservation (class images drawn by rank 0, class rows sharded like the instance
rows), validation grids (rank 0 alone samples) and a checkpoint every step.

Run as a script, this file is the worker each rank executes: it fine-tunes, then saves the
weights its own process ends with to ``rank{RANK}.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

TESTS = Path(__file__).parent
REPO = TESTS.parent
LAUNCHER = REPO / "workflow" / "scripts" / "fine_tune_ddp.py"
RES = 32
PER_RANK = 2
SETTINGS = dict(
    max_steps=4, resolution=RES, learning_rate=1e-3, text_encoder_lr=1e-3, rank=2,
    mixed_precision="no", device="cpu", gradient_checkpointing=True,
    gradient_accumulation_steps=2, prior_preservation=True, num_class_images=2,
    class_inference_steps=2, validation_every=2, validation_images=2,
    validation_inference_steps=2, checkpoint_every=1,
)  # fmt: skip
# Two ranks of batch b against one process of batch 2b: the same examples, flips, timesteps
# and noise, but not the same additions. One process sums the 2b rows' gradients in one
# reduction, two ranks sum b rows each and all-reduce the two means, and the GEMMs of b and
# 2b rows may block differently: gradients differ in the last bits (~1e-7 relative), and
# Adam, dividing by √v, carries that into the weights over the 4 steps. Measured: 4e-7 at
# most (the LoRA B matrices, which start at zero, move by ~4e-3).
TOLERANCE = 1e-5


def trained_weights(pipe, conditioner) -> dict[str, torch.Tensor]:
    """Every trained tensor of a fine-tune as this process holds it: the LoRA of the
    transformer and of both CLIP encoders, the conditioner."""
    from microgen.generate.adapters import lora_state

    parts = {"transformer": pipe.transformer, "clip_l": pipe.text_encoder,
             "clip_g": pipe.text_encoder_2}  # fmt: skip
    weights = {f"{p}.{k}": v for p, m in parts.items() for k, v in lora_state(m).items()}
    weights.update({f"conditioner.{k}": v.detach().cpu().contiguous()
                    for k, v in conditioner.state_dict().items()})  # fmt: skip
    return weights


def fine_tune_holding(base, data: Path, out: Path, stop_at: int = 0, **settings):
    """Fine-tune and return the trained weights of this process; with ``stop_at``, raise
    after that step's backward pass in every rank, before its optimiser step (a job killed
    there: the checkpoints of the steps before it stay)."""
    from conftest import SCHEMA

    from microgen.generate.finetune import fine_tune

    held: dict = {}

    def hold(step, state):
        held.update(state)  # the live modules: after the run they hold the final weights
        if step == stop_at:
            raise RuntimeError(f"stopped at step {step}")

    fine_tune(base, data / "data", data / "split.csv", SCHEMA, out, step_callback=hold,
              **settings)  # fmt: skip
    return trained_weights(held["pipe"], held["conditioner"])


def launch(script: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``script`` in ``processes`` ranks, started as rule fine_tune_ddp starts them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "workflow"), str(TESTS), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", str(script), *args]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def two_ranks(base, data: Path, out: Path, stop_at: int = 0) -> subprocess.CompletedProcess:
    settings = json.dumps({**SETTINGS, "batch_size": PER_RANK})
    return launch(Path(__file__), str(base), str(data), str(out), settings, str(stop_at))


def _tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr)[-4000:]


@pytest.fixture(scope="module")
def data(tmp_path_factory, schema):
    from conftest import TOY_FINETUNE_SPLITS, write_toy_prepared

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp")
    return write_toy_prepared(root, schema, TOY_FINETUNE_SPLITS)


@pytest.fixture(scope="module")
def base(data):
    from conftest import pretrain_toy_base

    return pretrain_toy_base(data, RES)


@pytest.fixture(scope="module")
def ranks(base, data):
    """An unbroken two-rank run of batch PER_RANK: its folder."""
    out = data / "two-ranks"
    result = two_ranks(base, data, out)
    assert result.returncode == 0, _tail(result)
    return out


@pytest.fixture(scope="module")
def one_process(base, data):
    """One process of batch 2 × PER_RANK, here: its folder and final weights."""
    out = data / "one-process"
    weights = fine_tune_holding(base, data, out, **SETTINGS, batch_size=2 * PER_RANK)
    return out, weights


def test_both_ranks_end_with_identical_weights(ranks):
    """Every trained tensor (transformer, CLIP-L and CLIP-G LoRA, conditioner) is bitwise
    the same in both processes: DDP averaged all their gradients, so the same Adam steps
    were taken; rank 0's saved adapters are those weights."""
    rank0, rank1 = (load_file(str(ranks / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert {k.split(".", 1)[0] for k in rank0} == {"transformer", "clip_l", "clip_g",
                                                   "conditioner"}  # fmt: skip
    unequal = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert unequal == []
    saved = load_file(str(ranks / "conditioner.safetensors"))
    assert all(torch.equal(v, rank0[f"conditioner.{k}"]) for k, v in saved.items())
    log = pd.read_csv(ranks / "train_log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4]  # written once, by rank 0
    assert sorted(p.name for p in (ranks / "validation").glob("*.png")) == [
        "step-000002.png", "step-000004.png",
    ]  # fmt: skip


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(ranks, one_process):
    """Two ranks of batch 2 and one process of batch 4 end within TOLERANCE of each other
    (both the weights and the logged loss, which two ranks average), while training moved
    the weights by far more than that."""
    folder, single = one_process
    rank0 = load_file(str(ranks / "rank0.safetensors"))
    assert rank0.keys() == single.keys()
    worst = max((rank0[k] - single[k]).abs().max().item() for k in single)
    print(f"max |two ranks x {PER_RANK} - one process x {2 * PER_RANK}| = {worst:.3g}")
    assert worst < TOLERANCE
    moved = max(v.abs().max().item() for k, v in single.items() if "lora_B" in k)  # from 0
    assert moved > 100 * TOLERANCE
    losses = [pd.read_csv(f / "train_log.csv")["loss"] for f in (ranks, folder)]
    assert losses[0].to_numpy() == pytest.approx(losses[1].to_numpy(), rel=1e-6)


def test_a_stopped_two_rank_run_resumes_to_the_bytes_of_an_unbroken_one(base, data, ranks):
    """Stopped at step 3 (both ranks, before the optimiser step), left with its checkpoints
    only, and rerun by the rule's own script under two ranks, the run ends with the adapters
    and log of the unbroken run: every rank resumed the same checkpoint, generator state
    included."""
    out = data / "stopped"
    stopped = two_ranks(base, data, out, stop_at=3)
    assert stopped.returncode != 0 and "stopped at step 3" in _tail(stopped)
    assert [p.name for p in sorted((out / "checkpoints").glob("step-*"))] == [
        "step-0000001", "step-0000002",
    ]  # fmt: skip
    for path in out.iterdir():  # what a workflow manager leaves of a failed job, and less
        if path.name not in ("checkpoints", ".stage-params.json"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    settings = json.dumps({**SETTINGS, "batch_size": PER_RANK})
    resumed = launch(
        LAUNCHER, "--base", str(base), "--metadata", str(data / "data" / "metadata.csv"),
        "--split", str(data / "split.csv"), "--schema", _schema(),
        "--lora", str(out / "pytorch_lora_weights.safetensors"), "--settings", settings,
    )  # fmt: skip
    assert resumed.returncode == 0, _tail(resumed)
    for name in ("pytorch_lora_weights.safetensors", "conditioner.safetensors"):
        assert (out / name).read_bytes() == (ranks / name).read_bytes(), name
    columns = ["step", "loss", "lr"]
    logs = [pd.read_csv(f / "train_log.csv")[columns] for f in (out, ranks)]
    pd.testing.assert_frame_equal(*logs)


def test_the_rule_launches_one_process_per_gpu_of_a_model_and_asks_slurm_for_them(tmp_path):
    """In the embedded default with a second model on ``gpus: 2``, that model's fine-tune is
    rule fine_tune_ddp: torch's launcher with two processes of the script found from the
    workflow's base directory, and a Slurm request of two GPUs with CPUs per GPU; the
    default model stays rule fine_tune's on one GPU."""
    import yaml
    from conftest import copy_workflow

    root = copy_workflow(tmp_path)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    models = config["generate"]["models"]
    models["sd3-ddp"] = {**models["sd3-lora"], "prompt_modes": ["full_text"], "gpus": 2}
    (root / "config" / "ddp.yaml").write_text(yaml.safe_dump(config))
    folder = f"results/{config['dataset']['name']}/models"
    result = subprocess.run(
        ["snakemake", "-n", "-p", f"{folder}/sd3-ddp/full_text/pytorch_lora_weights.safetensors",
         f"{folder}/sd3-lora/full_text/pytorch_lora_weights.safetensors",
         "--configfile", "config/ddp.yaml"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, _tail(result)
    jobs = {m["rule"]: m for m in map(_job, result.stdout.split("\nrule ")[1:])}
    assert set(jobs) >= {"fine_tune", "fine_tune_ddp"}
    assert "model=sd3-ddp" in jobs["fine_tune_ddp"]["wildcards"]
    assert "model=sd3-lora" in jobs["fine_tune"]["wildcards"]
    assert jobs["fine_tune_ddp"]["resources"]["gpu"] == "2"
    assert jobs["fine_tune"]["resources"]["gpu"] == "1"
    for job in (jobs["fine_tune"], jobs["fine_tune_ddp"]):
        assert "cpus_per_gpu" in job["resources"] and "cpus_per_task" not in job["resources"]
    command = jobs["fine_tune_ddp"]["shell"]
    assert command.startswith(
        "python -m torch.distributed.run --standalone --nproc_per_node 2 "
        "workflow/scripts/fine_tune_ddp.py --base "
    ), command
    settings = json.loads(shlex.split(command)[shlex.split(command).index("--settings") + 1])
    assert "gpus" not in settings and settings["batch_size"] == models["sd3-lora"]["batch_size"]


def _job(block: str) -> dict:
    """A dry run's job block: its rule, wildcards, resources and shell command."""
    lines = block.splitlines()
    fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, re.M))
    resources = dict(p.split("=", 1) for p in fields.get("resources", "").split(", ") if p)
    shell = re.search(r"^Shell command: (.*)$", block, re.M)
    return {"rule": lines[0].rstrip(":"), "wildcards": fields.get("wildcards", ""),
            "resources": resources, "shell": shell.group(1) if shell else ""}  # fmt: skip


def _schema() -> str:
    from conftest import SCHEMA

    return str(SCHEMA)


def _worker() -> None:
    """One rank: ``base data out settings-json stop_at``; saves ``rank{RANK}.safetensors``."""
    parser = argparse.ArgumentParser()
    for name in ("base", "data", "out", "settings", "stop_at"):
        parser.add_argument(name)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    weights = fine_tune_holding(
        args.base, Path(args.data), out, stop_at=int(args.stop_at), **json.loads(args.settings)
    )
    save_file(weights, str(out / f"rank{os.environ['RANK']}.safetensors"))


if __name__ == "__main__":
    _worker()
