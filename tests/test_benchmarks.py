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
