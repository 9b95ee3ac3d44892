"""The layers import downwards only: cli on top, then api and worker, then activities (which read
the delivery policy in workflows/policy.py), then workflows, then the engine; the dev server helper
and the shutdown helper stand apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Which of the project's top-level packages and modules each one may import.
ALLOWED: dict[str, set[str]] = {
    "engine": set(),
    "devserver": set(),
    "shutdown": set(),
    "workflows": {"engine"},
    "activities": {"engine", "workflows"},
    "worker": {"engine", "activities", "workflows", "shutdown"},
    "api": {"engine", "activities", "workflows", "worker", "shutdown"},
    "cli": {"engine", "activities", "workflows", "worker", "api", "devserver", "shutdown"},
}


def sources(unit: str) -> list[Path]:
    """The Python files of a package or a top-level module."""
    folder = REPO / unit
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [REPO / f"{unit}.py"]


def imported_units(path: Path) -> set[str]:
    """The project's top-level units that a file imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(unit: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in sources(unit)
        for name in imported_units(path) - ALLOWED[unit] - {unit}
    }
    assert not wrong, sorted(wrong)


def test_every_unit_is_packaged() -> None:
    text = (REPO / "pyproject.toml").read_text()
    for unit in ALLOWED:
        assert f'"{unit}"' in text, f"{unit} is missing from pyproject.toml's package lists"
