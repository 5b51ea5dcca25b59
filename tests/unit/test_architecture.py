"""The architecture of docs/architecture.md, held against the code: imports point down the flow, never up.

Every ``import``/``from … import`` of an ``ociinspect`` module (type-only and function-level imports included) is
read with :mod:`ast`; each package (or top-level module) has a layer; a module may import its own package and any
lower layer.  ``model/`` imports only the standard library (and oras' media-type constants); no module outside
``registry/`` imports an HTTP or TLS stack (``http.client``, ``ssl``, ``requests``, ``urllib3``); the audit never
does.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "ociinspect"

#: lowest first; a module may import its own unit and any unit of a lower layer (docs/architecture.md)
LAYERS: list[set[str]] = [
    {"_version", "errors", "threads"},
    {"model"},
    {
        "content.compression"
    },  # codecs only (imports errors): shared by the archive sources, sizes and the scanner
    {"registry", "store"},
    {"sources"},
    {"content"},
    {"image"},
    {"session", "analyzers"},
    {"policy", "audit", "verbs"},
    {"reports"},
    {"__init__", "api", "cli", "__main__"},
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}
THIRD_PARTY_OK_IN_MODEL = {"oras"}


def _unit(module: str) -> str:
    """``ociinspect.image.loader`` → ``image``; ``ociinspect.session`` → ``session``; ``ociinspect`` → ``__init__``
    (a module named in LAYERS on its own, like ``content.compression``, is its own unit)."""
    parts = module.split(".")
    if ".".join(parts[1:3]) in LAYER_OF:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


MODULES = _modules()
_NAMES = {name for name, _ in MODULES}


def _imports(path: Path, module: str) -> list[str]:
    """Every module ``module`` imports (absolute dotted names; submodules named by ``from pkg import sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # `from ociinspect.content import compression` imports the submodule
                sub = f"{target}.{alias.name}"
                if sub in _NAMES:
                    found.append(sub)
                elif target != "ociinspect":  # names of the package face are not modules of it
                    found.append(target)
    return found


def test_every_unit_has_a_layer() -> None:
    units = {_unit(name) for name, _ in MODULES}
    assert units <= set(LAYER_OF), f"units without a layer in docs/architecture.md: {units - set(LAYER_OF)}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down_the_flow(module: str, path: Path) -> None:
    mine = LAYER_OF[_unit(module)]
    upward = []
    for target in _imports(path, module):
        if not target.startswith("ociinspect"):
            continue
        unit = _unit(target)
        if unit not in LAYER_OF:  # `from ociinspect import Session` names, not modules
            continue
        if _unit(target) != _unit(module) and LAYER_OF[unit] > mine:
            upward.append(target)
    assert not upward, f"{module} imports modules above it in the flow: {sorted(set(upward))}"


@pytest.mark.parametrize(
    ("module", "path"), [(m, p) for m, p in MODULES if _unit(m) == "model"], ids=lambda v: str(v)
)
def test_model_uses_the_standard_library_only(module: str, path: Path) -> None:
    foreign = [
        t
        for t in _imports(path, module)
        if t
        and t.split(".")[0] not in sys.stdlib_module_names
        and t.split(".")[0] not in THIRD_PARTY_OK_IN_MODEL
        and not (t.startswith("ociinspect.model") or t in ("ociinspect.errors", "ociinspect._version"))
        and t != "__future__"
    ]
    assert not foreign, f"{module} imports {foreign}"


HTTP_STACKS = ("http", "ssl", "requests", "urllib3")


def test_only_the_registry_speaks_http() -> None:
    speakers = sorted(
        module
        for module, path in MODULES
        if any(t.split(".")[0] in HTTP_STACKS for t in _imports(path, module)) and _unit(module) != "registry"
    )
    assert speakers == [], speakers


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in MODULES}
    for module, path in MODULES:
        graph[module] = {t for t in _imports(path, module) if t in names and t != module}
    # Tarjan-free check: depth-first search for a back edge
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            # a package __init__ importing its own submodules is not a circle of logic
            pytest.fail(f"import circle: {' -> '.join(cycle)}")
