"""The rules are snakefmt-formatted and the Python is ruff clean (config in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("snakefmt", ["--check", "Snakefile", "workflow/rules"]),
        ("ruff", ["check", "workflow", "tests", "benchmarks"]),
        ("ruff", ["format", "--check", "workflow", "tests", "benchmarks"]),
    ],
)
def test_formatted(tool: str, args: list[str]):
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    done = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"{tool} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
