"""The package's shape: three layers (library, lessons/, course/), no private names shared between
modules, and library code that leaves the course mode and the global random state to the lessons.
(`make test` also runs the import-linter contract of pyproject.toml, which sees the same layers.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nlpprune_lessons

PACKAGE = Path(nlpprune_lessons.__file__).parent
UPPER = ("lessons", "course")


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(PACKAGE)), ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _library_modules() -> list[tuple[str, ast.Module]]:
    return [(name, tree) for name, tree in _modules() if name.split("/")[0] not in UPPER]


def test_the_package_has_the_three_layers():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")} >= {
        "core", "data", "text", "models", "training", "pruning", "structured", "measure", "lessons", "course"}
    assert len(_library_modules()) > 30


def test_no_module_imports_another_modules_private_names():
    found = [f"{name}: from {node.module} import {alias.name}"
             for name, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nlpprune_lessons")
             for alias in node.names if alias.name.startswith("_")]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_library_imports_no_lesson_and_no_course_tooling():
    found = []
    for name, tree in _library_modules():
        for node in ast.walk(tree):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{name} imports {t}" for t in targets
                      if any(t == f"nlpprune_lessons.{u}" or t.startswith(f"nlpprune_lessons.{u}.") for u in UPPER)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("call", ["is_fast", "pick", "mode", "set_seed"])
def test_library_functions_leave_the_mode_and_the_global_seed_to_the_lessons(call):
    # The library takes sizes, seeds and `fast=` as arguments; only core/ defines these, and the
    # checkpoint cache names its files by mode. A library call that seeds uses config.seeded, which
    # gives the caller's random state back.
    allowed = {"core/config.py", "core/checkpoints.py"} if call == "mode" else {"core/config.py"}
    found = [f"{name}:{node.lineno}" for name, tree in _library_modules() if name not in allowed
             for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == call
             and isinstance(node.value, ast.Name) and node.value.id == "config"]
    assert not found, f"config.{call} called in the library: {found}"
