"""The embedded DAG end to end: runs, is complete, reruns exactly what changed, lints clean,
and refuses a bad config before any job."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, UHCS24

PARTS = ("Snakefile", "config", "workflow", "resources", "envs")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-stats table of a dry run."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"job"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow with the embedded default run once."""
    root = tmp_path_factory.mktemp("workflow")
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / part)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["reference"]["uhcs24"] = str(UHCS24) if UHCS24.is_dir() else None
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_embedded_default_produces_every_output(workdir):
    out = workdir / "results" / "synthetic-steel"
    metadata = (out / "data" / "metadata.csv").read_text().splitlines()
    assert len(metadata) == 1 + 96
    assert (out / "split.csv").is_file() and (out / "tables" / "split-summary.md").is_file()
    assert (out / "figures" / "fig-a1-dataset.png").stat().st_size > 10_000
    if UHCS24.is_dir():
        assert (out / "figures" / "real-vs-synthetic.png").stat().st_size > 10_000


def test_second_run_has_nothing_to_do(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_split_parameter_reruns_the_split_not_the_generator(workdir):
    result = snakemake(workdir, "-n", "--config", "split={'seed': 7}")
    # --config merges into the loaded config; the split's other keys stay.
    assert result.returncode == 0, result.stderr[-2000:]
    rules = planned_rules(result)
    assert "split_dataset" in rules and "plot_dataset_histograms" in rules
    assert "synthesize_dataset" not in rules


def test_generator_parameter_reruns_everything_downstream(workdir):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["dataset"]["synthetic"]["seed"] = 1
    path = workdir / "seed1.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    rules = planned_rules(snakemake(workdir, "-n", "--configfile", str(path)))
    assert {"synthesize_dataset", "split_dataset", "plot_dataset_histograms"} <= rules


def test_code_change_reruns_only_its_rule(workdir):
    split_module = workdir / "workflow" / "microgen" / "data" / "split.py"
    split_module.write_text(split_module.read_text() + "\n# edited\n")
    try:
        rules = planned_rules(snakemake(workdir, "-n"))
        assert "split_dataset" in rules and "synthesize_dataset" not in rules
    finally:
        # Restore a consistent state for the other tests (mtime now newer than outputs).
        snakemake(workdir, "--touch")


def test_misspelt_key_fails_before_any_job(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["split"]["seen_cuont"] = config["split"].pop("seen_count")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(workdir, "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "seen_cuont" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_wrong_type_names_the_key(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["dataset"]["synthetic"]["n_conditions"] = "many"
    path = tmp_path / "type.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(workdir, "--configfile", str(path), "-n")
    assert result.returncode != 0
    assert "n_conditions" in result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run(
        ["snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
