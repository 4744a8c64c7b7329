"""The tree reads as the architecture: packages by stage, dependencies one way, typer only in the CLI,
no import cycles, small modules (docs/architecture.md has the map these rules enforce)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.harness import ROOT

OBSD = ROOT / "obsd"
MAX_LINES = 450
# What each package (or top-level module) may import from obsd. `obsd` itself (the version) is free.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "faults": set(),
    "vocabulary": set(),
    "httperrors": set(),
    "settings": {"errors", "vocabulary", "privacy"},
    "privacy": {"httperrors"},
    "store": {"errors", "faults", "settings", "vocabulary"},
    "ops": {"errors", "httperrors", "settings", "store"},
    "pipeline": {"errors", "faults", "settings", "store", "ops"},
    "ingest": {"errors", "httperrors", "settings", "vocabulary", "privacy", "ops", "pipeline", "store"},
    "query": {"errors", "httperrors", "settings", "vocabulary", "privacy", "store"},
    "server": {"errors", "faults", "httperrors", "settings", "vocabulary", "privacy", "store", "ops", "pipeline",
               "ingest", "query"},
    "cli": {"errors", "faults", "httperrors", "settings", "vocabulary", "privacy", "store", "ops", "pipeline",
            "ingest", "query", "server"},
}
DAEMON = {"ingest", "pipeline", "store", "privacy", "query", "ops"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    out = {}
    for path in sorted(OBSD.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def unit(module: str) -> str:
    """The package (or top-level module) a dotted obsd module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "obsd"


def imports(path: Path, module: str, *, top_level_only: bool = False) -> set[str]:
    """Modules a file imports (absolute names), anywhere in it or only at module scope."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                base = ".".join([*pkg, node.module])
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependencies_point_one_way(module: str) -> None:
    """A module imports only from the packages its stage may know (the daemon never imports the CLI)."""
    own = unit(module)
    if own == "obsd":
        return
    allowed = ALLOWED[own] | {own, "obsd"}
    for name in imports(MODULES[module], module):
        if name.startswith("obsd.") and name in MODULES:
            assert unit(name) in allowed, f"{module} imports {name}: {own} may import {sorted(allowed)}"
        if unit(module) in DAEMON or own == "server":
            assert name.split(".")[0] != "typer", f"{module} imports typer; only obsd.cli may"


def test_no_import_cycles() -> None:
    """Module-level imports form no cycle (a cycle hidden behind a lazy import would break an import order)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        graph[module] = {m for m in imports(path, module, top_level_only=True) if m in MODULES and m != module}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " → ".join([*trail[trail.index(n):], n]))
            if n not in state:
                visit(n, [*trail, n])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    """No module grows past ~450 lines: a bigger one has more than one job."""
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by job"


def test_the_rules_have_one_owner() -> None:
    """The id patterns and the event-type vocabulary are written once, in obsd/vocabulary.py."""
    patterns = {"[a-z0-9][a-z0-9_-]{0,63}": "project id", "[A-Za-z0-9_-]{1,64}": "session id",
                '"web_vital", "custom"': "event types"}
    for module, path in MODULES.items():
        if module == "obsd.vocabulary":
            continue
        text = path.read_text()
        for pattern, what in patterns.items():
            assert pattern not in text, f"{module} spells out the {what} rule; import it from obsd.vocabulary"


def test_test_helpers_are_not_shipped() -> None:
    """The package holds no test harness (it lives in tests/harness.py)."""
    assert not (OBSD / "testing.py").exists()
    for path in OBSD.rglob("*.py"):
        assert "pytest" not in imports(path, "obsd"), f"{path} imports pytest"
