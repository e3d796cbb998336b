"""The shape of the code, read from its source: imports run one way, down the layers, with no
circle; classes and bot modules stay small enough to read. docs/architecture.md draws the layers."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.census import PROJECT_PACKAGES, REPO_ROOT

MOST_METHODS = 25
MOST_BOT_LINES = 400

# Lowest first. A module may import from its own layer and the ones before it, never from a later
# one. The first prefix that matches a module names its layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("engine", ("core",)),
    ("records and workers", ("bot.guild_settings", "bot.results", "bot.thumbnails", "bot.store", "bot.executor",
                             "bot.settings")),
    ("the bot's language", ("bot.commands", "bot.inputs", "bot.progress")),
    ("service", ("bot.service",)),
    ("assembly", ("bot.wiring",)),
    ("fronts", ("bot.discord_front", "bot.web", "bot.console")),
    ("entry points", ("bot.cli", "bot.demo", "bot.__main__")),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if len(parts) > 1 or path.read_text(encoding="utf-8").strip():  # not the empty top-level packages
                found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports anywhere in its file: at the top, inside functions, and
    under `if TYPE_CHECKING:` alike."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from package import module` imports the module; `from module import name`, the module.
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_structure.py; add it where it belongs")


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_run_down_the_layers_only():
    upward = [f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
              for a, targets in GRAPH.items() for b in sorted(targets) if _layer(b) > _layer(a)]
    assert upward == []


def test_no_module_imports_one_that_imports_it_back():
    """Strongly connected groups of the import graph (Tarjan's algorithm): each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert circles == []


def test_the_checker_sees_a_circle_and_an_upward_import(monkeypatch):
    """The two checks above can fail: a made-up store module importing the service is caught by both."""
    monkeypatch.setitem(GRAPH, "bot.store.jobs", GRAPH["bot.store.jobs"] | {"bot.service.jobs"})
    with pytest.raises(AssertionError, match="bot.store.jobs"):
        test_imports_run_down_the_layers_only()
    with pytest.raises(AssertionError, match="bot.service.jobs"):
        test_no_module_imports_one_that_imports_it_back()


def test_classes_have_at_most_25_methods():
    crowded = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                if len(methods) > MOST_METHODS:
                    crowded.append(f"{name}.{node.name}: {len(methods)} methods")
    assert crowded == []


def test_bot_modules_have_at_most_400_lines():
    long = {name: n for name, path in MODULES.items() if name.startswith("bot")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MOST_BOT_LINES}
    assert long == {}


def test_the_graph_is_read_from_the_code():
    """A few imports every reader can check by eye, so a broken parser cannot pass the checks above vacuously."""
    assert "bot.store" in GRAPH["bot.service.jobs"] and "core.spec" in GRAPH["bot.service.jobs"]
    assert "bot.service.jobs" in GRAPH["bot.service"]
    assert "core.models.registry" in GRAPH["core.dream"]
    counts = defaultdict(int)
    for targets in GRAPH.values():
        for target in targets:
            counts[target] += 1
    assert counts["core.jobs"] >= 10, "core.jobs' types are used all over"
