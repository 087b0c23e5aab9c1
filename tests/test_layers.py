"""The library's packages import only downwards: data → descriptors / metrics /
conditioning → segment / generate / volumes → evaluate → figures, with the shared
helpers (codegraph, config_checks, device, files, plan; checkpoint, which hashes with files)
below everything. Imports inside functions count. (config_checks reads the model classes'
fields from their source, not by import; plan, what the workflow builds for a config, is
standard library only: the Snakefile imports both at parse time.)"""

from __future__ import annotations

from conftest import REPO

from microgen.codegraph import imported_modules

ROOT = REPO / "workflow"
LAYERS = {
    "codegraph": 0,
    "device": 0,
    "checkpoint": 1,
    "files": 0,
    "config_checks": 0,
    "plan": 0,
    "paper": 0,
    "data": 1,
    "descriptors": 2,
    "metrics": 2,
    "conditioning": 2,
    "segment": 3,
    "generate": 3,
    "volumes": 3,
    "evaluate": 4,
    "figures": 5,
    "paper_index": 5,
}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the imports that make the edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted((ROOT / "microgen").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        source = package_of(name.removesuffix(".__init__"))
        for module in imported_modules(path, ROOT):
            target = package_of(module)
            if source and target and source != target:
                edges.setdefault((source, target), []).append(f"{name} imports {module}")
    return edges


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in (ROOT / "microgen").iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert packages == set(LAYERS)


def test_no_package_imports_upwards():
    upward = [
        f"{a} (layer {LAYERS[a]}) -> {b} (layer {LAYERS[b]}): {why[0]}"
        for (a, b), why in sorted(package_edges().items())
        if LAYERS[b] >= LAYERS[a]
    ]
    assert not upward, "\n".join(upward)


def test_package_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for a, b in package_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            assert cycle is None, " -> ".join(cycle)
