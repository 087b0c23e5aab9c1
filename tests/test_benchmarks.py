"""The benchmark scripts import against the library as it is (they run outside the suite, so
a renamed function would otherwise break them silently)."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

SCRIPTS = sorted((REPO / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_imports(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # main() runs only under __main__
    assert callable(module.main) and module.__doc__.strip()


def test_every_benchmark_runs_only_as_a_script():
    for path in SCRIPTS:
        assert 'if __name__ == "__main__":' in path.read_text(), path.name


def test_sd35_large_counts_are_table_b3():
    """The GPU benchmark's SD3.5-Large (its published config, LoRA rank 256 on fine_tune's
    targets) has Table B3's MM-DiT and LoRA sizes, counted on the meta device."""
    import torch

    spec = importlib.util.spec_from_file_location(
        "bench", REPO / "benchmarks" / "bench_sd35_gpu.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    net = bench.build_transformer(bench.SD35_TRANSFORMERS["large"], 256, "meta", torch.bfloat16)
    counts = bench.parameter_counts(net)
    assert round(counts["mmdit"], 1) == bench.TABLE_B3["mmdit"] == 8056.6
    assert round(counts["lora"], 1) == bench.TABLE_B3["lora"] == 377.3


def test_gpu_benchmark_runs_end_to_end_at_tiny_size():
    """The script a lent GPU runs, at two layers on the CPU: it trains, samples and reports."""
    import os
    import subprocess
    import sys

    args = ["--tiny", "--batch", "1", "--resolution", "64", "--rank", "4", "--steps", "1",
            "--warmup", "1", "--sample-steps", "2"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_sd35_gpu.py"), *args],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    for model in ("large", "medium"):
        assert f"sd3.5-{model}: MM-DiT" in out.stdout
    assert out.stdout.count("s/step") == 2 and out.stdout.count("s/image") == 2
