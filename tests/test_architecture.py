"""The package's shape, read from its source with ast: a declared layer order that no import
runs against, no import cycle, and keyword-only arguments where positional slips could hide."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "molgen"

LAYERS = [("diffusion",), ("nn",), ("data",), ("plotting",), ("train",), ("metrics",), ("tasks",),
          ("conformers", "proteins"), ("docking",), ("cli",)]
"""Lowest first: a module may import modules of its own layer or of lower ones only.  The core
(diffusion) knows no network, data set or task; the trainer knows tasks only by name
(molgen.train.task.TASKS), so the tasks sit above it; the two products (conformers,
proteins) share a layer, and docking sits above them (it builds poses on the conformer
generator's local structures)."""

MAX_POSITIONAL = 3
"""A public function with more than 4 parameters takes at most this many positionally."""
HOOKS = {"message"}
"""Methods a framework calls by parameter name (torch-geometric's MessagePassing.message)."""


def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, source: str, known: dict[str, Path]) -> set[str]:
    """The package's modules that a module (its name, file and source) imports anywhere in its
    body (deferred imports inside functions included: they run too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "molgen"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "molgen":
                continue
            # `from pkg import submodule` imports the submodule
            subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
            found |= subs or {target}
            if subs and len(subs) < len(node.names):
                found.add(target)
    return {m for m in found if m in known and m != name}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return next((i for i, names in enumerate(LAYERS) if len(parts) > 1 and parts[1] in names), None)


GRAPH = {name: imports(name, path, path.read_text(), modules())
         for name, path in modules().items()}


def test_every_module_has_a_layer():
    assert {name for name in GRAPH if layer(name) is None} == {"molgen"}


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{name} imports {dep}"
                    for name, deps in GRAPH.items() if layer(name) is not None
                    for dep in deps if layer(dep) is not None and layer(dep) > layer(name))
    assert upward == []


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]):
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_layer_test_sees_upward_imports():
    """The checks above can fail: a made-up core module importing a task is caught."""
    path = PACKAGE / "diffusion" / "made_up.py"
    source = "from ..tasks import toy\nfrom . import samplers\n\ndef f():\n    import molgen.cli\n"
    deps = imports("molgen.diffusion.made_up", path, source, modules())
    assert deps == {"molgen.tasks.toy", "molgen.diffusion.samplers", "molgen.cli"}
    assert layer("molgen.tasks.toy") > layer("molgen.diffusion.made_up")


def public_functions():
    """(where, function node) for every public function and method of the package, public
    classes' __init__ included (dataclasses' generated ones are not in the source)."""
    for name, path in sorted(modules().items()):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield f"{name}.{node.name}", node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name not in HOOKS and (
                            not item.name.startswith("_") or item.name == "__init__"):
                        yield f"{name}.{node.name}.{item.name}", item


def positional(fn: ast.FunctionDef) -> tuple[int, int]:
    """(parameters that can be passed by position, all parameters), self/cls not counted."""
    args = fn.args.posonlyargs + fn.args.args
    if args and args[0].arg in ("self", "cls"):
        args = args[1:]
    return len(args), len(args) + len(fn.args.kwonlyargs)


def test_long_signatures_are_keyword_only():
    long = sorted(f"{where}: {pos} positional of {total}" for where, fn in public_functions()
                  for pos, total in [positional(fn)] if total > 4 and pos > MAX_POSITIONAL)
    assert long == []
