"""The layering ARCHITECTURE.md draws, held by reading every import of the project's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the core's rooms, lowest first: a room may import only rooms listed before it
CORE = [
    "records",
    "storage",
    "egress",
    "config",
    "observability",
    "fleet",
    "tenants",
    "events",
    "provenance",
    "task",
    "modes",
]
# the top-level packages each package may import (beyond itself)
TOP = {
    "pipeline": set(),
    "facefleet": {"pipeline"},
    "api": {"facefleet"},
    "worker": {"facefleet", "pipeline"},
    "cli": {"api", "worker", "facefleet", "pipeline"},
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "facefleet" or len(parts) < 2:
        return None
    return parts[1]


@pytest.mark.parametrize("package", sorted(TOP))
def test_packages_import_only_the_packages_below_them(package):
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in TOP and name.split(".")[0] not in TOP[package] | {package}
    ]
    assert not wrong


def test_the_core_rooms_import_only_rooms_below_them():
    wrong = []
    for path in (ROOT / "facefleet").rglob("*.py"):
        own = path.relative_to(ROOT / "facefleet").parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        assert own in CORE, f"facefleet/{own} is in no room of ARCHITECTURE.md"
        for name in _imports(path):
            room = _room(name)
            if room and room != own and CORE.index(room) > CORE.index(own):
                wrong.append(f"{path.relative_to(ROOT)} ({own}) imports {name} ({room})")
    assert not wrong


def test_every_room_says_what_it_holds():
    for room in CORE:
        path = ROOT / "facefleet" / room
        if path.is_dir():
            init = (path / "__init__.py").read_text()
            assert ast.get_docstring(ast.parse(init)), f"facefleet/{room}/__init__.py has no docstring"
