"""The rerun triggers: the library files derived from each script's imports agree with the
standard library's ModuleFinder, imports inside functions and relative imports included."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, modules_reached

from microgen.codegraph import code_files, module_file

ROOT = REPO / "workflow"
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_code_files_match_modulefinder(script):
    expected = {module_file(m, ROOT) for m in modules_reached(script, ROOT)}
    assert set(code_files(script, ROOT)) == expected


def test_imports_inside_functions_and_relative_imports_count(tmp_path):
    pkg = tmp_path / "microgen"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from ..c import g\n")
    (pkg / "c.py").write_text("g = 1\n")
    (pkg / "unused.py").write_text("")
    script = tmp_path / "run.py"
    script.write_text("import sys\nfrom microgen.sub.a import f\n")
    names = {p.relative_to(tmp_path).as_posix() for p in code_files(script, tmp_path)}
    assert names == {
        "microgen/__init__.py",
        "microgen/sub/__init__.py",
        "microgen/sub/a.py",
        "microgen/sub/b.py",
        "microgen/c.py",
    }
    assert {module_file(m, tmp_path) for m in modules_reached(script, tmp_path)} == {
        tmp_path / n for n in names
    }


def test_a_name_that_is_not_a_module_is_not_a_file():
    assert module_file("microgen.data.split.split_dataset", ROOT) is None
    assert module_file("numpy", ROOT) is None
    assert module_file("microgen.data", ROOT) == ROOT / "microgen" / "data" / "__init__.py"


def test_every_rule_derives_its_code_from_its_own_script():
    import re

    for smk in (ROOT / "rules").glob("*.smk"):
        # Rules inside `if` blocks are indented.
        for block in re.split(r"(?m)^(?=[ \t]*(?:rule|checkpoint) \w+:)", smk.read_text()):
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', block)
            if script:
                name = block.strip().split(":", 1)[0]
                assert f'code=code("{script.group(1)}")' in block, f"{smk.name}: {name}"


def test_paths_are_relative_to_the_package_root():
    files = code_files(Path(ROOT / "scripts" / "split_dataset.py"), ROOT)
    assert all(f.is_relative_to(ROOT.resolve()) for f in files)
