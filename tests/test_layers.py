"""The package layers: rerankers build on the harness, never on retrievers (shared compute lives in harness.compute)."""

from __future__ import annotations

import ast

from tests.conftest import PROJECT


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_rerankers_import_nothing_from_retrievers():
    offenders = {
        str(path.relative_to(PROJECT)): sorted(m for m in imported_modules(path.read_text()) if "retrievers" in m)
        for path in sorted((PROJECT / "rerankers").rglob("*.py"))
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
