"""Every test checks something: a test function with no assertion and no expected exception passes
whatever the code does. Read from the source of tests/ (tests/README.md says how tests are written)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.census import REPO_ROOT

TESTS = REPO_ROOT / "tests"
# Calls that check by themselves: pytest's expected exceptions and warnings, and pytest.fail.
CHECKING_CALLS = {"raises", "warns", "fail", "deprecated_call", "approx"}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            function = call.func
            if isinstance(function, ast.Name):
                names.add(function.id)
            elif isinstance(function, ast.Attribute):
                names.add(function.attr)
    return names


def _raises_assertion(node: ast.AST) -> bool:
    return isinstance(node, ast.Raise) and node.exc is not None and "AssertionError" in ast.unparse(node.exc)


def _checks_directly(node: ast.AST) -> bool:
    """An assert statement, a raised AssertionError, pytest's checks, or an assert_* call
    (torch.testing.assert_close, numpy.testing.assert_array_equal, ...)."""
    called = _called_names(node)
    return (any(isinstance(n, ast.Assert) or _raises_assertion(n) for n in ast.walk(node))
            or bool(called & CHECKING_CALLS) or any(name.startswith("assert") for name in called))


def _functions() -> dict[str, list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]]:
    """Every function and method defined anywhere under tests/, by name."""
    found: dict[str, list] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(node.name, []).append((path, node))
    return found


def _checkers(functions) -> set[str]:
    """Names of the helpers that check: they assert, or call a helper that does (to any depth).
    A name counts when any function of that name checks (helpers are matched by name only)."""
    checking = {name for name, defs in functions.items() if any(_checks_directly(node) for _, node in defs)}
    while True:
        more = {name for name, defs in functions.items() if name not in checking
                and any(_called_names(node) & checking for _, node in defs)}
        if not more:
            return checking
        checking |= more


def unchecked_tests() -> list[str]:
    functions = _functions()
    checking = _checkers(functions)
    return sorted(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}"
                  for name, defs in functions.items() if name.startswith("test_")
                  for path, node in defs if name not in checking)


def test_every_test_function_asserts_or_expects_an_exception():
    assert unchecked_tests() == []


def test_the_check_finds_a_test_that_checks_nothing(tmp_path, monkeypatch):
    """The check above can fail: a test that only calls the code, and one whose helper asserts nothing."""
    (tmp_path / "test_made_up.py").write_text(
        "def helper(x):\n    return x + 1\n\n"
        "def checking_helper(x):\n    assert x\n\n"
        "def test_only_calls():\n    helper(1)\n\n"
        "def test_calls_a_checking_helper():\n    checking_helper(1)\n\n"
        "def test_expects():\n    import pytest\n    with pytest.raises(ValueError):\n        int('x')\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["TESTS"]), "TESTS", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["REPO_ROOT"]), "REPO_ROOT", tmp_path)
    assert unchecked_tests() == ["test_made_up.py:7 test_only_calls"]
