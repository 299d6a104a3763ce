"""The import contract: each layer imports only from the layers below it, and nothing cycles.

Layers (README, "Layout"):

1. ``analysis.core``: config, statistics, store format, filesets, executors, names, errors;
2. domain: ``processors`` (columnar physics), ``nn`` (networks), ``jobs`` generation,
   ``analysis.results`` (scan maths, plots, HTML) -- siblings that do not import each other;
3. ``analysis.stages``: one module per stage, ``run_*`` and ``merge_*``;
4. orchestration: ``analysis.pipeline`` (Dask) and the HTCondor batch jobs and DAG;
5. entry points: the commands.

Imports of project modules inside functions are not allowed (they would hide a cycle or a
layer violation); third-party imports inside functions are allowed only for optional or heavy
dependencies, with a comment on the line saying why.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "processors", "nn", "jobs")

#: (module prefix, layer, group): the first matching prefix wins; groups of one layer must not
#: import each other (the domain packages are independent of one another).
LAYERS = (
    ("analysis.core", 1, "core"),
    ("analysis.results", 2, "results"),
    ("analysis.stages", 3, "stages"),
    ("analysis.pipeline", 4, "orchestration"),
    ("analysis.run", 5, "commands"),
    ("analysis.process", 5, "commands"),
    ("analysis.cli", 5, "commands"),
    ("analysis", 1, "core"),  # the package's own __init__
    ("processors", 2, "processors"),
    ("nn", 2, "nn"),
    ("jobs.batch", 4, "orchestration"),
    ("jobs.steps", 4, "orchestration"),
    ("jobs.plan", 4, "orchestration"),
    ("jobs.dag", 4, "orchestration"),
    ("jobs.dag_local", 4, "orchestration"),
    ("jobs.submit", 5, "commands"),
    ("jobs", 2, "jobs"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> tuple[int, str]:
    for prefix, layer, group in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer, group
    raise AssertionError(f"module {module} has no layer in tests/test_layers.py")


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # ``from package import module`` imports the submodule
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _project(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` refers to (itself or its nearest existing parent)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(modules: dict[str, Path]):
    """(module, imported project module, line, inside a function?, the source line) for every import."""
    for module, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        nested = set()
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested.update(id(n) for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom)))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            targets = _resolve(module, node, path.name == "__init__.py")
            inside = id(node) in nested
            for target in targets:
                yield module, target, node.lineno, inside, lines[node.lineno - 1]


MODULES = _modules()
IMPORTS = list(_imports(MODULES))


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_layers_only_import_downwards_and_domain_packages_do_not_import_each_other():
    violations = []
    for module, target, line, _, _ in IMPORTS:
        imported = _project(target, MODULES)
        if imported is None or imported == module:
            continue
        (layer, group), (target_layer, target_group) = _layer(module), _layer(imported)
        if target_layer > layer or (target_layer == layer and layer == 2 and group != target_group):
            violations.append(f"{module}:{line} (layer {layer}, {group}) imports {imported} "
                              f"(layer {target_layer}, {target_group})")
    assert not violations, "\n".join(violations)


def test_no_project_import_hides_inside_a_function():
    hidden = sorted({f"{module}:{line}: {text.strip()}" for module, target, line, inside, text in IMPORTS
                     if inside and _project(target, MODULES) is not None})
    assert not hidden, "\n".join(hidden)


def test_function_level_imports_of_third_party_libraries_say_why():
    silent = sorted({f"{module}:{line}: {text.strip()}" for module, target, line, inside, text in IMPORTS
                     if inside and _project(target, MODULES) is None and "#" not in text})
    assert not silent, "imports inside functions need a comment saying why (optional/heavy):\n" + "\n".join(silent)


def test_module_level_imports_have_no_cycle():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, target, _, inside, _ in IMPORTS:
        imported = _project(target, MODULES)
        if not inside and imported is not None and imported != module and not module.startswith(imported + "."):
            graph[module].add(imported)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_contract_catches_a_violation(tmp_path):
    """The checker itself: a core module importing a stage is reported."""
    assert _layer("analysis.core.config") == (1, "core")
    assert _layer("analysis.stages.process")[0] > _layer("processors.processor")[0] > _layer("analysis.core.store")[0]
    node = ast.parse("from analysis.stages.process import run_processing").body[0]
    (target, *_) = _resolve("analysis.core.config", node, False)
    assert _layer(_project(target, MODULES))[0] > _layer("analysis.core.config")[0]
