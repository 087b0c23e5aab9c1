"""`snakemake --profile slurm --configfile config/paper.yaml -n` plans the whole paper: every
item of the index has a job that writes it, every GPU job asks Slurm for a GPU and lands on
the GPU partition, and the SD3.5-Large jobs ask for the host memory its weights need.

The plan is made in a copy of the workflow whose ``../shared/data`` holds the real UHCS-24
and UHCSDB folders and the fabricated Aachen-Heerlen sample (the real release is not here).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, SHARED_DATA, copy_workflow

from microgen.paper import part_configs, part_results

AH_SAMPLE = REPO / "tests" / "data" / "aachen-heerlen"
# SD3.5-Large in bf16: Table B3's 14 228 M parameters at 2 bytes each, all in host memory
# while the base loads (T5 is freed only after the prompts are encoded).
SD35_LARGE_BF16_MB = 14228 * 2


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    for name in ("uhcs24", "uhcsdb"):
        if not (SHARED_DATA / name).is_dir():
            pytest.skip(f"real data not found at {SHARED_DATA / name}")
    top = tmp_path_factory.mktemp("paper")
    (top / "w").mkdir()
    root = copy_workflow(top / "w")
    data = top / "shared" / "data"
    data.mkdir(parents=True)
    for name in ("uhcs24", "uhcsdb"):
        os.symlink(SHARED_DATA / name, data / name)
    shutil.copytree(AH_SAMPLE, data / "aachen-heerlen")
    result = subprocess.run(
        ["snakemake", "--profile", "slurm", "-n", "--configfile", "config/paper.yaml"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, _jobs(result.stdout)


def _jobs(text: str) -> list[SimpleNamespace]:
    """The planned jobs of a dry run's log: rule, outputs and resources of each."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", text):
        head = re.match(r"(?:local)?rule (\S+):\n", block)
        if not head:
            continue
        fields = dict(re.findall(r"^\s+(output|resources): (.*)$", block, re.M))
        resources = {}
        for pair in fields.get("resources", "").split(", "):
            key, _, value = pair.partition("=")
            resources[key] = int(value) if value.isdigit() else value
        outputs = fields.get("output", "").split(", ") if fields.get("output") else []
        name = head.group(1)
        jobs.append(SimpleNamespace(name=name, rule=name, outputs=outputs, resources=resources,
                                    threads=1, is_group=lambda: False))  # fmt: skip
    return jobs


def test_every_index_item_is_planned(plan):
    root, jobs = plan
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())["paper"]
    folders = {n: part_results(p) for n, p in part_configs(paper, root).items()}
    planned = [o for job in jobs for o in job.outputs]
    items = yaml.safe_load((root / paper["index"]).read_text())["items"]
    unplanned = []
    for item in (i for i in items if "missing" not in i):
        patterns = [f"results/{folders[item['part']]}/{f}" for f in item["files"]]
        if not any(fnmatch.fnmatch(o, p) for o in planned for p in patterns):
            unplanned.append(item["id"])
    assert unplanned == []
    assert "results/paper/index.md" in planned


def test_gpu_jobs_ask_for_a_gpu_on_the_gpu_partition_with_the_memory_of_the_model(plan):
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    root, jobs = plan
    partitions = read_partition_file(root / "slurm" / "partitions.yaml")
    log = logging.getLogger("partitions")
    trained = {
        "fine_tune", "fine_tune_ddp", "sample_model", "sample_condition_table", "train_baseline",
        "train_segmenter", "cross_validate_segmenter", "train_ldm3d", "train_vae3d",
    }  # fmt: skip
    seen = set()
    for job in jobs:
        if job.rule == "paper" or job.rule.endswith("_all"):
            continue
        rule = job.rule.split("_", 1)[1]
        chosen = get_best_partition(partitions, job, log)
        if rule in trained:
            assert job.resources.get("gpu", 0) >= 1, f"{job.rule} asks for no GPU"
        if job.resources.get("gpu", 0) >= 1:
            assert chosen == "gpu", f"{job.rule} ({job.resources}) lands on {chosen}"
            assert "cpus_per_task" not in job.resources, job.rule
        else:
            assert chosen == "cpu", f"{job.rule} ({job.resources}) lands on {chosen}"
        if job.rule.startswith(("generation_fine_tune", "generation_sample_model")):
            assert job.resources["mem_mb"] >= SD35_LARGE_BF16_MB, job.rule
            seen.add(rule)
        if rule == "fine_tune_ddp":  # the SDXL rows: per-GPU batches on four GPUs
            assert job.resources["gpu"] == 4, job.rule
    assert seen == {"fine_tune", "fine_tune_ddp", "sample_model"}
