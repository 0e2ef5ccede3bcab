"""The folders show the data flow (api -> store; jobs -> git -> scan -> deliver -> store):
imports point one way only, and store/ is the bottom layer."""

from __future__ import annotations

import ast
from pathlib import Path

import docora

PACKAGE_ROOT = Path(docora.__file__).parent
LAYERS = ("api", "jobs", "git", "scan", "deliver", "store")
# Plain modules of rules and values that any layer may use; they import no layer.
FOUNDATION = {"docora.binary", "docora.ids", "docora.errors", "docora.lease"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def docora_imports(path: Path) -> set[str]:
    """Every docora module this file imports, at any depth (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("docora"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("docora"):
            found.add(node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): docora_imports(p) for p in PACKAGE_ROOT.rglob("*.py")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else None


def test_store_imports_nothing_above_it():
    wrong = {
        (module, target)
        for module, targets in import_graph().items()
        if layer_of(module) == "store"
        for target in targets
        if layer_of(target) != "store" and target not in FOUNDATION
    }
    assert not wrong, f"store/ must not import upwards: {sorted(wrong)}"


def test_foundation_modules_import_no_layer():
    graph = import_graph()
    wrong = {(m, t) for m in FOUNDATION if m in graph for t in graph[m] if layer_of(t)}
    assert not wrong, sorted(wrong)


def test_layers_form_no_cycle():
    edges: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for module, targets in import_graph().items():
        source = layer_of(module)
        for target in targets:
            destination = layer_of(target)
            if source and destination and destination != source:
                edges[source].add(destination)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in edges[start] - seen)

    cycles = sorted(layer for layer in LAYERS if reaches(layer, layer, set()))
    assert not cycles, f"layers in an import cycle: {cycles}; edges: {edges}"


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 else None


def _imports_between(sources: set[str], targets: set[str]) -> set[tuple[str, str]]:
    return {
        (module, target)
        for module, imported in import_graph().items()
        if _package(module) in sources
        for target in imported
        if _package(target) in targets
    }


def test_the_rest_api_and_the_console_do_not_know_each_other():
    assert not _imports_between({"api"}, {"console"})
    assert not _imports_between({"console"}, {"api"})


def test_what_both_front_ends_stand_on_imports_neither():
    """web/ (context, errors, observability) and admin/ (what operators read and do) are
    below both front ends; only docora.asgi composes them."""
    assert not _imports_between({"web", "admin"}, {"api", "console", "asgi"})
    assert not _imports_between({"admin"}, {"web"})
    composers = {m for m, imported in import_graph().items() if "docora.asgi" in imported}
    assert composers <= {"docora.runtime"}, composers
