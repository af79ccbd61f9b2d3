"""The test stack stays a library: no test or bench imports a conftest or another test
module (shared helpers live in ``tests/harness/``), nothing drives a fixture by hand through
``__wrapped__``, and each conftest stays thin."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py")])


def _imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module if node.level == 0 else f"{'.' * node.level}{node.module}"
            modules.append(module)  # and each name, which may be a module (``import conftest``)
            modules.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return modules


def test_no_test_or_bench_imports_a_conftest_or_a_test_module():
    wrong = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in SOURCES
        for module in _imported_modules(path)
        if module.rsplit(".", 1)[-1] == "conftest" or module.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert not wrong, wrong


def test_no_private_name_is_imported_from_another_test_file():
    wrong = [
        f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("tests."))
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not wrong, wrong


def test_no_fixture_is_driven_by_hand():
    assert not [
        p.relative_to(ROOT) for p in SOURCES if "__wrapped__" in p.read_text() and p != Path(__file__)
    ]


def test_every_conftest_is_thin():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in (ROOT / "tests").rglob("conftest.py")
    }
    assert all(lines < 200 for lines in sizes.values()), sizes
