"""Arrows point one way (docs/ARCHITECTURE.md): the module-level imports of ``generator``
form no cycle, stages never import the build that runs them, and only the renderers
themselves (under ``render/``) may import torch, diffusers or gfpgan."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "generator"
#: The shells around a build: nothing else may import them.
SHELLS = {"build", "cli", "serve", "publish", "maintenance", "scaffold", "importer", "__main__"}
HEAVY = ("torch", "diffusers", "transformers", "gfpgan", "facexlib", "basicsr", "numpy")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(genimg modules, other top-level packages) imported at module level, outside
    ``if TYPE_CHECKING:``."""
    parts = _module(path).split(".")
    own, other = set(), set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:len(parts) - node.level]
            if node.module:
                own.add(".".join([*base, node.module]))
            else:
                own.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            other.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            other.update(alias.name.split(".")[0] for alias in node.names)
    return own, other


GRAPH = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_module_imports_form_no_cycle() -> None:
    try:
        list(TopologicalSorter({m: own for m, (own, _) in GRAPH.items()}).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None


def test_stages_never_import_the_shells() -> None:
    for module, (own, _) in GRAPH.items():
        if module not in SHELLS:
            assert not own & SHELLS, f"{module} imports {own & SHELLS}"


def test_only_renderers_import_heavy_libraries_at_module_level() -> None:
    for module, (_, other) in GRAPH.items():
        assert not set(HEAVY) & other, f"{module} imports {set(HEAVY) & other} at load"
    for module, (own, _) in GRAPH.items():
        renderers = {m for m in own if m.startswith("render.") and m != "render.base"}
        if not module.startswith("render"):
            assert not renderers, f"{module} imports {renderers}: use modes.RENDERERS"
