"""The workflow on a real Slurm: a single-node cluster on this machine (tests/slurm/start.sh)
runs the small embedded DAG through `snakemake --profile slurm`; GPU-tagged rules must reach
Slurm with a GPU request on the GPU partition, CPU rules with cpus-per-task on the CPU one.

Needs root and Debian's slurm-wlm and munge (.ci/run installs them); skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, copy_workflow

SLURM = REPO / "tests" / "slurm"

pytestmark = pytest.mark.skipif(
    shutil.which("slurmctld") is None or os.geteuid() != 0,
    reason="needs root and slurm-wlm + munge (apt-get install slurm-wlm munge)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        ["bash", str(SLURM / "start.sh"), str(state)], capture_output=True, text=True, timeout=120
    )
    assert start.returncode == 0, start.stderr
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    yield env
    subprocess.run(["bash", str(SLURM / "stop.sh"), str(state)], timeout=60)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    shutil.copy(REPO / "tests" / "config" / "small.yaml", root / "config" / "test.yaml")
    result = subprocess.run(
        [
            "snakemake",
            "--profile", "slurm",
            "--configfile", "config/test.yaml",
            # Test overrides: no accounting database (sacct has no data), no account.
            "--slurm-status-command", "squeue",
            "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "1",
            "--retries", "0",
            "--verbose",
            # A slice of the DAG with a GPU rule (segmenter training) and CPU rules of both
            # branches; each job is a Slurm round trip (sbatch, a jobstep that parses the
            # workflow, a status poll), so it stops at the trained segmenter.
            "results/ci-steel/segmenter/vgg16-jaccard/train_log.csv",
            "results/ci-volumes/volumes/split.csv",
        ],
        cwd=root, env=cluster, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    return root, result


def sbatch_calls(log: str) -> dict[str, str]:
    """Rule name → its sbatch command line, from the executor's verbose log."""
    calls = {}
    for line in log.splitlines():
        if "sbatch call:" in line:
            rule = re.search(r"--comment '?rule_([A-Za-z0-9_]+?)(?:_wildcards_|'| |$)", line)
            if rule:
                calls[rule.group(1)] = line
    return calls


def test_every_output_appears(slurm_run):
    root, result = slurm_run
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    config = yaml.safe_load((root / "config" / "test.yaml").read_text())
    out = root / "results" / config["dataset"]["name"]
    assert (out / "split.csv").is_file()
    assert (out / "segmenter" / "vgg16-jaccard" / "best" / "model.safetensors").is_file()
    assert (root / "results" / config["volumes"]["name"] / "volumes" / "split.csv").is_file()


def test_gpu_rules_request_a_gpu_on_the_gpu_partition(slurm_run):
    _, result = slurm_run
    calls = sbatch_calls(result.stdout + result.stderr)
    assert "train_segmenter" in calls, sorted(calls)
    gpu_call = calls["train_segmenter"]
    assert re.search(r"--gpus?[= ]1|--gres[= ]'?gpu:1", gpu_call), gpu_call
    assert re.search(r"-p '?gpu'?\b|--partition[= ]'?gpu", gpu_call), gpu_call
    assert "--cpus-per-gpu" in gpu_call and "--cpus-per-task" not in gpu_call
    cpu_call = calls["split_dataset"]
    assert "--gpus" not in cpu_call and "gres" not in cpu_call
    assert re.search(r"-p '?cpu'?\b|--partition[= ]'?cpu", cpu_call), cpu_call
    assert "--cpus-per-task" in cpu_call
    print(f"GPU job: {gpu_call}\nCPU job: {cpu_call}")  # shown with pytest -rP
