"""The house's layout, checked from the code's own imports (every import, lazy ones too).

Floors, top to bottom: ``finloom_cli`` -> ``flows`` -> ``tasks`` -> ``finloom_ops`` ->
``finloom_core``. An import may only point down; ``finloom_cli`` (the CLI and ``finloom
serve``) imports no ``tasks`` module; ``finloom_core`` imports neither Prefect nor
prometheus-client; ``tasks/`` holds only ``@task`` modules; no module is over 500 lines;
the EDGAR package keeps no module-level registry; and there is no import loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("finloom_cli", "flows", "tasks", "finloom_ops", "finloom_core")
FLOOR = {name: level for level, name in enumerate(reversed(PACKAGES))}
MAX_LINES = 500


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (anywhere in the file), resolved to FinLoom modules
    where possible and otherwise to the top-level distribution name."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_imports_point_down_only() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if _top(target) in FLOOR and FLOOR[_top(target)] > FLOOR[_top(name)]
    ]
    assert upward == []


def test_cli_and_serve_import_no_task_module() -> None:
    reaching = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if _top(name) == "finloom_cli"
        for target in targets
        if _top(target) == "tasks"
    ]
    assert reaching == []


@pytest.mark.parametrize("library", ["prefect", "prometheus_client"])
def test_core_imports_neither_prefect_nor_prometheus(library: str) -> None:
    users = [
        name
        for name, targets in GRAPH.items()
        if _top(name) == "finloom_core" and any(_top(t) == library for t in targets)
    ]
    assert users == []


def test_no_import_loop_between_modules() -> None:
    inner = {
        name: {t for t in targets if t in MODULES and t != name} for name, targets in GRAPH.items()
    }
    # a package's __init__ re-exporting its own modules is not a loop back into it
    for name in inner:
        inner[name] = {t for t in inner[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    loops: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(inner[node]):
            if state.get(target) == 1:
                loops.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(inner):
        if name not in state:
            visit(name, [name])
    assert loops == []


def test_tasks_holds_only_task_modules() -> None:
    without = []
    for name, path in MODULES.items():
        if _top(name) != "tasks" or path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        decorated = [
            d
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            for d in node.decorator_list
            if (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "task")
            or getattr(d, "id", None) == "task"
        ]
        if not decorated:
            without.append(name)
    assert without == []


def test_no_module_is_over_500_lines() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        called = getattr(func, "id", None) or getattr(func, "attr", None)
        return called in {"dict", "list", "set", "deque", "defaultdict", "WeakSet"}
    return False


def test_edgar_package_keeps_no_module_level_registry() -> None:
    registries = []
    for name, path in MODULES.items():
        if not name.startswith("finloom_core.edgar"):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and _mutable(node.value):
                targets = [getattr(t, "id", "?") for t in node.targets]
                registries.append(f"{name}: {', '.join(targets)}")
            elif isinstance(node, ast.AnnAssign) and _mutable(node.value):
                registries.append(f"{name}: {getattr(node.target, 'id', '?')}")
    assert registries == []


def test_the_layout_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a core module importing a task is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from tasks.ingest import load_task\n")
    targets = _imports("finloom_core.bad", bad)
    assert any(_top(t) == "tasks" for t in targets)
    assert FLOOR["tasks"] > FLOOR["finloom_core"]
