"""Per-rule conda environments: no conda channel is reachable here, so instead of building
them this checks that the env files parse, that every rule names one, and that every module
a rule's script imports — directly or through `microgen`, transitively — is provided by that
environment (microgen's core dependencies plus the extras the env installs)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RULES = REPO / "workflow" / "rules"
LIBRARY = REPO / "workflow" / "microgen"
# Imported only inside functions that need weights the user supplies (documented extras), or
# a CUDA-only package a setting asks for (bitsandbytes: `use_8bit_adam`, off by default).
OPTIONAL = {"lpips", "torch_fidelity", "bitsandbytes"}


def rules() -> list[tuple[str, str, str]]:
    """(rule, env file, script) for every rule with a script."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n\s*rule ", text)[1:]:
            name = block.split(":", 1)[0].strip()
            conda = re.search(r"conda:\s*\n\s*\"\.\./\.\./envs/([\w.-]+)\"", block)
            script = re.search(r"script:\s*\n\s*\"\.\./scripts/([\w.-]+)\"", block)
            if script:
                found.append((name, conda.group(1) if conda else "", script.group(1)))
    return found


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


@cache
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def expand(extras: tuple[str, ...]) -> set[str]:
    """Distribution names microgen installs with these extras (self-references expanded)."""
    project = pyproject()
    names = {_requirement_name(r) for r in project["dependencies"]}
    todo = list(extras)
    while todo:
        for req in project["optional-dependencies"][todo.pop()]:
            inner = re.fullmatch(r"microgen\[([\w,-]+)\]", req)
            if inner:
                todo += inner.group(1).split(",")
            else:
                names.add(_requirement_name(req))
    return names


def env_distributions(env_file: str) -> set[str]:
    spec = yaml.safe_load((REPO / "envs" / env_file).read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    names: set[str] = set()
    for entry in pip:
        if entry.startswith("-c "):  # the lock's pins, not a distribution
            continue
        editable = re.fullmatch(r"-e \.\./(?:\[([\w,-]+)\])?", entry.strip())
        if editable:
            names |= expand(tuple((editable.group(1) or "").split(",")) if editable.group(1)
                            else ())  # fmt: skip
        else:
            names.add(_requirement_name(entry))
    return names


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            package = path.parent.relative_to(LIBRARY.parent).as_posix().replace("/", ".")
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            names.add(f"{base}.{node.module}" if node.module else base)
    return names


def _module_file(module: str) -> Path | None:
    path = LIBRARY.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a script can import, following microgen transitively."""
    seen, todo, external = set(), [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "microgen":
                target = _module_file(name)
                if target:
                    todo.append(target)
            elif top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
    return external - {"snakemake"}  # the script: runner itself


@cache
def _packages_distributions() -> dict[str, list[str]]:
    # One scan of site-packages (≈0.5 s) per session instead of one per imported module.
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    mapping = _packages_distributions()
    return {d.lower().replace("_", "-") for d in mapping.get(module, [module])}


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_files_parse(env):
    spec = yaml.safe_load((REPO / "envs" / env).read_text())
    assert spec["name"].startswith("microgen-")
    assert any(str(d).startswith("python") for d in spec["dependencies"])
    assert env_distributions(env)  # resolvable against pyproject.toml's extras


def test_every_rule_names_an_existing_environment():
    assert rules(), "no rules found"
    for rule, env, _ in rules():
        assert env, f"rule {rule} has no conda: directive"
        assert (REPO / "envs" / env).is_file(), f"rule {rule}: envs/{env} does not exist"


@pytest.mark.parametrize("rule, env, script", rules(), ids=[r[0] for r in rules()])
def test_environment_provides_every_import(rule, env, script):
    provided = env_distributions(env)
    missing = {
        module
        for module in third_party_imports(REPO / "workflow" / "scripts" / script) - OPTIONAL
        if not distributions_of(module) & provided
    }
    assert not missing, f"rule {rule} imports {sorted(missing)} but envs/{env} lacks them"
