"""The package's layering, as docs/architecture.md states it: imports run one way."""

from __future__ import annotations

import ast
from pathlib import Path

import initlab

SRC = Path(initlab.__file__).parent

#: Top-level modules in data-flow order: each may import only those before it.
ORDER = [
    "_validation",
    "_blas",
    "_spec",
    "_io",
    "_repr",
    "fetch",
    "activations",
    "init",
    "norm",
    "data",
    "models",
    "lsuv",
    "meanfield",
    "clip",
    "native",
    "train",
    "store",
    "probe",
    "lightning",
    "surfaces",
    "experiments",
    "report",
    "studies",
    "lessons",
    "playground",
    "cli",
    "_entry",
    "__main__",
]


def _top(module: str) -> str | None:
    """``initlab.x.y`` → ``x``; None for anything outside initlab (or the package itself)."""
    parts = module.split(".")
    if parts[0] != "initlab" or len(parts) == 1:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    """The top-level initlab modules ``path`` imports (``from initlab import x`` counts x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "initlab":
                found |= {a.name for a in node.names}
            elif (top := _top(node.module)) is not None:
                found.add(top)
        elif isinstance(node, ast.Import):
            found |= {t for a in node.names if (t := _top(a.name)) is not None}
    return found


def _owner(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def test_every_module_is_placed_in_the_order() -> None:
    owners = {_owner(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert owners <= set(ORDER), sorted(owners - set(ORDER))


def test_imports_run_one_way() -> None:
    rank = {name: i for i, name in enumerate(ORDER)}
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        owner = _owner(path)
        if owner == "__init__":  # the package's lazy attribute access names every module
            continue
        for imported in _imports(path) - {owner}:
            if imported in rank and rank[imported] > rank[owner]:
                upward.append(f"{path.relative_to(SRC)} imports {imported}")
    assert not upward, upward


def test_the_architecture_page_names_every_module() -> None:
    page = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in ORDER[:-2]:  # the entry point and __main__ are not worth a row
        assert f"`{name}" in page, name
