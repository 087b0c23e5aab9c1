"""Which library files a script runs: the rerun triggers of the workflow's rules.

A rule declares as inputs the ``microgen`` source files its script can execute, so that
editing one reruns exactly the rules that use it. The set is derived here from the import
statements of the script, followed transitively through the package, imports inside
functions included (most heavy imports in ``microgen`` are deferred to the function that
needs them). Standard library only: the Snakefile calls this at parse time.

Parent packages count: importing ``microgen.data.split`` executes ``microgen/__init__.py``
and ``microgen/data/__init__.py`` too.
"""

from __future__ import annotations

import ast
import os
from functools import cache
from pathlib import Path

PACKAGE = "microgen"


def module_file(module: str, root: Path) -> Path | None:
    """The source file of ``module`` (dotted, e.g. ``microgen.data.split``) under ``root``,
    the folder that contains the package; None when it is not a module of the package."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    path = Path(root).joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module an ``import from`` statement names, with relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, root: Path) -> set[str]:
    """Package modules that the file ``path`` imports anywhere in its body (one level).

    ``from a.b import c`` names ``a.b`` and, when ``c`` is itself a module, ``a.b.c``.
    """
    path = Path(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = path.is_relative_to(root)
    importer = _module_name(path, root) if inside else ""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, importer, is_package)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if module_file(m, root) is not None}


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


@cache
def _closure(start: Path, root: Path) -> frozenset[Path]:
    seen: set[str] = set()
    todo = set().union(*map(_with_parents, imported_modules(start, root)))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in imported_modules(module_file(module, root), root):
            todo |= _with_parents(name) - seen
    return frozenset(module_file(m, root) for m in seen)


def code_files(script: Path, root: Path) -> list[Path]:
    """Every package source file ``script`` can execute, sorted.

    Parameters
    ----------
    script
        A Python file (a workflow script or a module of the package).
    root
        The folder that contains the ``microgen`` package (``workflow/`` here).
    """
    return sorted(_closure(Path(script).resolve(), Path(root).resolve()))


def rule_code(script: str, basedir: str | Path) -> list[str]:
    """The code inputs of a rule running ``workflow/scripts/{script}.py``: the library files
    it can execute (:func:`code_files`), relative to the working directory, so that a copied
    or moved checkout with its results plans nothing.

    Parameters
    ----------
    script
        The script's name without ``.py``.
    basedir
        The workflow's base directory (the one holding ``Snakefile`` and ``workflow/``).
    """
    workflow_dir = Path(basedir) / "workflow"
    files = code_files(workflow_dir / "scripts" / f"{script}.py", workflow_dir)
    return [os.path.relpath(f) for f in files]
