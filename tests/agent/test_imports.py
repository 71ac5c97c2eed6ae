"""The import rules: what importing the edge agent loads (no database code), no package cycle
between the services' library (``shared``) and the edge programs (``edge_ai``), and inside a
service, folders that depend one way (the layers of the optimizer and the master)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_agent_imports_no_database_code() -> None:
    proc = _fresh_python(
        "import edge_ai.agent.app, sys; "
        "loaded = [m for m in ('sqlalchemy', 'alembic', 'asyncpg') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    assert proc.returncode == 0, proc.stderr


def test_shared_and_edge_common_never_import_the_edge_programs() -> None:
    proc = _fresh_python(
        "import importlib, pkgutil, sys\n"
        "import shared, edge_common\n"
        "for pkg in (shared, edge_common):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "assert not [m for m in sys.modules if m.startswith('edge_ai')]\n"
        "from edge_common import log_format, redaction\n"
        "assert not [m for m in ('shared', 'edge_ai') if m in dir(log_format) + dir(redaction)]"
    )
    assert proc.returncode == 0, proc.stderr


def test_edge_common_needs_the_standard_library_only() -> None:
    proc = _fresh_python(
        "import sys\n"
        "before = set(sys.modules)\n"
        "import edge_common.log_format, edge_common.redaction, edge_common.vocabulary\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "outside = sorted(m for m in new - {'edge_common'} if m not in sys.stdlib_module_names)\n"
        "assert not outside, outside"
    )
    assert proc.returncode == 0, proc.stderr


# --- Folders that depend one way -------------------------------------------------------------
#
# Inside a service, each folder (or top-level module) is a unit; the imports between units
# (any ``import``, at module level or inside a function) must form no cycle, and the layers
# named below hold: the optimizer's shared model is below both the engine and the policies;
# the master's composition root (``runners``) is imported by ``app`` only.

SERVICES = REPO / "services"


def _unit_imports(service: str) -> dict[str, set[str]]:
    root = SERVICES / service
    prefix = f"services.{service}."
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "migrations":
            continue
        unit = rel.parts[0].removesuffix(".py")
        module = ".".join(("services", service, *rel.with_suffix("").parts))
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        targets = graph.setdefault(unit, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    names = [f"{base}.{node.module}" if node.module else base]
                elif node.module:
                    names = [node.module]
                    names += [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.startswith(prefix):
                    target = name.removeprefix(prefix).split(".")[0]
                    known = (root / target).is_dir() or (root / f"{target}.py").is_file()
                    if target != unit and known:
                        targets.add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least unit
                walk(nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def _reach(graph: dict[str, set[str]], unit: str) -> set[str]:
    seen: set[str] = set()
    todo = [unit]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("service", ["analysis", "console", "master", "optimizer", "setup", "vms"])
def test_no_two_folders_of_a_service_import_each_other(service: str) -> None:
    assert _cycles(_unit_imports(service)) == []


def test_the_optimizer_model_is_below_the_engine_and_the_policies() -> None:
    graph = _unit_imports("optimizer")
    assert _reach(graph, "model") == set()
    assert "engine" not in _reach(graph, "policies")
    assert {"model"} <= graph["policies"] and {"model", "policies"} <= graph["engine"]


def test_the_master_folders_depend_one_way() -> None:
    graph = _unit_imports("master")
    assert [unit for unit, targets in graph.items() if "runners" in targets] == ["app"]
    for lower, upper in [
        ("packages", "uploads"),  # uploads use the package library, never the other way
        ("registry", "builds"),  # images and Dockerfiles: the builds use them
        ("builds", "uploads"),  # builds own the build; uploads hand archives to it
        ("drivers", "pull"),  # the pull runtime uses the agent driver's spec
        ("pull", "reconcile"),  # the reconciler owns the pull runtime and its routes
        ("artifacts", "reconcile"),
        ("context", "builds"),
    ]:
        assert upper not in _reach(graph, lower), f"{lower} reaches {upper}"
        assert lower in _reach(graph, upper), f"{upper} no longer uses {lower}: update the rule"
