"""The package's layers as folders (docs/architecture.md): folders import downward only,
no module imports another in a cycle (TYPE_CHECKING and function-level imports included),
and every name is imported from the module that defines it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fastesm_extract

PACKAGE = Path(fastesm_extract.__file__).parent

# Lowest first: a module may import its own layer and the layers before it, never after.
LAYERS = ["(root)", "model", "disk", "extract", "merge", "running", "api", "cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    folder = MODULES[module].parent
    return "(root)" if folder == PACKAGE else folder.name


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of the package."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "fastesm_extract":
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{base}.{name}" for name in names if f"{base}.{name}" in MODULES]
            if submodules:
                found.extend((sub, [], node.lineno) for sub in submodules)
            else:
                found.append((base, names, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastesm_extract":
                    found.append((alias.name, [], node.lineno))
    return found


def _defined_names(module: str) -> set[str]:
    names = set()
    for node in ast.parse(MODULES[module].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
    return names


def test_the_layers_are_folders_and_every_module_is_in_one():
    layers = {_layer(module) for module in MODULES}
    assert layers == set(LAYERS), f"folders {layers} are not the layers {LAYERS}"
    root = sorted(m for m in MODULES if _layer(m) == "(root)" and m != "fastesm_extract")
    assert root == [
        "fastesm_extract.demo",
        "fastesm_extract.errors",
        "fastesm_extract.results",
        "fastesm_extract.settings",
    ], "only shared leaves sit at the root"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"fastesm_extract"}))
def test_a_module_imports_only_its_own_layer_and_those_below(module):
    rank = LAYERS.index(_layer(module))
    upward = [
        f"{target} (line {line})"
        for target, _, line in _imports(module)
        if target == "fastesm_extract" or LAYERS.index(_layer(target)) > rank
    ]
    assert not upward, f"{module} imports upward: {upward}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"fastesm_extract"}))
def test_every_name_comes_from_the_module_that_defines_it(module):
    detours = [
        f"{name} from {target} (line {line})"
        for target, names, line in _imports(module)
        for name in names
        if name not in _defined_names(target)
    ]
    assert not detours, f"{module} imports names its source only passes on: {detours}"


def test_no_module_imports_itself_back_through_others():
    graph = {module: {target for target, _, _ in _imports(module)} for module in MODULES}
    graph.pop("fastesm_extract")  # the public face imports everything; nothing imports it
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target in graph and target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_benchmark_scripts_import_each_other_without_a_cycle():
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = {path.stem: path for path in folder.glob("*.py")}
    graph = {}
    for name, path in scripts.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in scripts:
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in scripts}
        graph[name] = targets
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                pytest.fail("benchmark import cycle: " + " -> ".join([*path, target]))
            if target not in done:
                visit(target, [*path, target])
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])
