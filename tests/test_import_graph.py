"""The import graph of ``compaudit``: no cycles, and no import runs up a layer.

The graph is read from the source with :mod:`ast` (nothing is imported).

* **Cycles** are checked on module-level imports only: these run when a
  module is first imported, so a cycle among them makes the import order
  matter (half-initialised modules). Imports inside functions run later and
  imports under ``if TYPE_CHECKING:`` never run; neither can form an
  import-time cycle. Importing ``a.b.c`` also runs ``a/__init__.py`` and
  ``a/b/__init__.py``, so an import adds an edge to each package above its
  target too (except packages that hold the importer: those are already
  being imported).
* **Layers** are checked on every import: module level, inside functions
  (lazy imports) and under ``if TYPE_CHECKING:`` (a type is a dependency
  too). A module may import modules of its own layer or of lower layers,
  never of a higher one. One exception: the ``if TYPE_CHECKING:`` imports
  of a package ``__init__`` that re-exports names lazily (the ``compaudit``
  facade: ``compaudit.audit(...)`` is loaded on first use by its
  ``__getattr__``) only tell type checkers what those names are; they are
  not the package's dependencies, so ``compaudit.__version__`` stays
  importable from every layer.
* The trainer, the models and the data layer (:data:`NO_LAZY_CYCLES`) are
  also free of cycles through function-level imports: a lazy import must
  not hide a cycle there (``train/`` once was a 9-module one).

Layers, bottom to top (``pkg.*`` is the package and everything in it)::

    0  compaudit, errors, _io, _npz,          the version, errors, file, bounded .npz
       _record, _text, _yaml                  and text helpers, the report form of records
    1  plugins                                hook specs, registry, resolution rule
    2  population, analysis.*                 population arrays and statistics
    3  data.*, models.*, cache                datasets; model formats (checkpoints,
                                              architectures), runners, devices, the
                                              inference path; the prediction cache
    4  train.*                                the trainer (evaluates through models)
    5  audit, _comparison, _noise, gates,     the audit, its settings and results,
       _gates_*, policy, _policy_files,       gates, policies, reports, studies and
       report.*, study, predictions,          population predictions
       settings, results, comparable, _frames,
       _compression, _influencers,
       _report_set, _model_data
    6  pipeline, api                          the library's entry points
    7  cli.*, demo.*, __main__                the command line and the demo

``plugins`` sits low because every built-in plugin module (``data.builtin``,
``models.builtin``, ``report.builtin``, ``train.builtin``) imports its
``hookimpl``; the registry finds those modules by name at run time
(``importlib``), which is the plugin indirection, not an import.

Every module must be in the table: a new module fails the test until it is
given a layer.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "compaudit"

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "compaudit",
        "compaudit.errors",
        "compaudit._io",
        "compaudit._npz",
        "compaudit._record",
        "compaudit._text",
        "compaudit._yaml",
    ),
    ("compaudit.plugins",),
    ("compaudit.population", "compaudit.analysis.*"),
    ("compaudit.data.*", "compaudit.models.*", "compaudit.cache"),
    ("compaudit.train.*",),
    (
        "compaudit.engine",
        "compaudit._comparison",
        "compaudit._noise",
        "compaudit.gates",
        "compaudit._gates_*",
        "compaudit.policy",
        "compaudit._policy_files",
        "compaudit.report.*",
        "compaudit.study",
        "compaudit.predictions",
        "compaudit.settings",
        "compaudit.results",
        "compaudit.comparable",
        "compaudit._frames",
        "compaudit._compression",
        "compaudit._influencers",
        "compaudit._report_set",
        "compaudit._model_data",
    ),
    ("compaudit.pipeline", "compaudit.api", "compaudit._api_inputs"),
    ("compaudit.cli.*", "compaudit.demo.*", "compaudit.__main__"),
)

NO_LAZY_CYCLES = ("compaudit.train.*", "compaudit.models.*", "compaudit.data.*")

Edge = tuple[str, str]


# -- building the graph ------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    """``compaudit/a/b.py`` -> ``compaudit.a.b``; ``compaudit/a/__init__.py`` -> ``compaudit.a``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


ImportNode = ast.Import | ast.ImportFrom
MODULE, FUNCTION, TYPING = "module", "function", "typing"


def _imports(tree: ast.Module) -> Iterable[tuple[ImportNode, str]]:
    """Every import node, with when it runs: at import (``MODULE``), when a
    function is called (``FUNCTION``), or never (``TYPING``: ``if TYPE_CHECKING:``)."""

    def walk(nodes: Iterable[ast.AST], when: str) -> Iterable[tuple[ImportNode, str]]:
        for child in nodes:
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, when
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = TYPING if when == TYPING else FUNCTION
                yield from walk(ast.iter_child_nodes(child), inner)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from walk(child.body, TYPING)
                yield from walk(child.orelse, when)
            else:
                yield from walk(ast.iter_child_nodes(child), when)

    return walk(tree.body, MODULE)


def _targets(
    node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]
) -> list[str]:
    """The project modules an import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = importer.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # ``from pkg import sub`` imports the submodule when there is one.
        names = [
            f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names
        ]
    out = []
    for name in names:
        while name and name not in modules:  # ``import a.b.func``-like: the module part
            name = name.rpartition(".")[0]
        if name.split(".")[0] == PACKAGE and name:
            out.append(name)
    return out


def _with_packages(importer: str, target: str) -> list[str]:
    """``target`` and each package above it that does not also hold ``importer``."""
    parts = target.split(".")
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [m for m in chain if not (importer == m or importer.startswith(m + "."))]


def build_graphs(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[Edge]]:
    """Import graphs of modules given as ``name -> (source, is_package)``.

    Returns
    -------
    dict
        ``"runtime"``: module-level imports (with the packages they run, see
        the module docstring); ``"lazy"``: those plus function-level ones;
        ``"layers"``: every import, for the layer check (less a re-exporting
        package's ``TYPE_CHECKING`` imports).
    """
    modules = set(sources)
    graphs: dict[str, set[Edge]] = {"runtime": set(), "lazy": set(), "layers": set()}
    for name, (source, is_package) in sources.items():
        for node, when in _imports(ast.parse(source)):
            for target in _targets(node, name, is_package, modules):
                if target != name and not (is_package and when == TYPING):
                    graphs["layers"].add((name, target))
                ran = {(name, t) for t in _with_packages(name, target) if t != name}
                if when == MODULE:
                    graphs["runtime"] |= ran
                if when != TYPING:
                    graphs["lazy"] |= ran
    return graphs


def project_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """Every module of the package: name -> (source, is_package)."""
    return {
        module_name(p, root): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
        for p in sorted((root / PACKAGE).rglob("*.py"))
    }


# -- the checks ---------------------------------------------------------------------
def find_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int | None:
    """Index of the layer matching ``module`` (``pkg.*``: ``pkg`` and everything in it)."""
    for i, patterns in enumerate(layers):
        for pattern in patterns:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                if module == stem or module.startswith(stem + "."):
                    return i
            elif fnmatch.fnmatchcase(module, pattern):
                return i
    return None


def upward_imports(
    edges: Iterable[Edge], layers: tuple[tuple[str, ...], ...] = LAYERS
) -> list[str]:
    """``a (layer i) -> b (layer j > i)`` for every import that runs up a layer."""
    bad = []
    for a, b in sorted(edges):
        la, lb = layer_of(a, layers), layer_of(b, layers)
        if la is not None and lb is not None and lb > la:
            bad.append(f"{a} (layer {la}) -> {b} (layer {lb})")
    return bad


# -- tests --------------------------------------------------------------------------
def test_checker_finds_a_cycle_and_an_upward_import() -> None:
    sources = {
        "compaudit": ("", True),
        "compaudit.low": ("from compaudit import high\n", False),
        "compaudit.high": (
            "from typing import TYPE_CHECKING\n"
            "import compaudit.low\n"
            "if TYPE_CHECKING:\n    from compaudit import top\n",
            False,
        ),
        "compaudit.top": ("def f():\n    from compaudit.low import x\n", False),
        "compaudit.pkg": ("from compaudit.pkg.sub import y\n", True),
        "compaudit.pkg.sub": ("from . import other\n", False),
        "compaudit.pkg.other": ("import compaudit.pkg.sub.name\n", False),
    }
    graphs = build_graphs(sources)
    runtime, every = graphs["runtime"], graphs["layers"]
    # The TYPE_CHECKING and function-level imports are not runtime edges ...
    assert ("compaudit.high", "compaudit.top") not in runtime
    assert ("compaudit.top", "compaudit.low") not in runtime
    # ... a function-level one is a lazy edge, a TYPE_CHECKING one is not ...
    assert ("compaudit.top", "compaudit.low") in graphs["lazy"]
    assert ("compaudit.high", "compaudit.top") not in graphs["lazy"]
    # ... and both are dependencies.
    assert {("compaudit.high", "compaudit.top"), ("compaudit.top", "compaudit.low")} <= every
    # Relative imports resolve; a package's own parent is not an edge of its children.
    assert ("compaudit.pkg.sub", "compaudit.pkg.other") in runtime
    assert ("compaudit.pkg.sub", "compaudit.pkg") not in runtime
    assert find_cycles(runtime) == [
        ["compaudit.high", "compaudit.low"],
        ["compaudit.pkg.other", "compaudit.pkg.sub"],
    ]
    layers = (
        ("compaudit", "compaudit.low"),
        ("compaudit.high", "compaudit.pkg.*"),
        ("compaudit.top",),
    )
    assert layer_of("compaudit.pkg.sub", layers) == 1
    assert layer_of("compaudit.pkgx", layers) is None
    assert upward_imports(every, layers) == [
        "compaudit.high (layer 1) -> compaudit.top (layer 2)",
        "compaudit.low (layer 0) -> compaudit.high (layer 1)",
    ]


def test_importing_a_submodule_runs_the_packages_above_it() -> None:
    sources = {
        "compaudit": ("", True),
        "compaudit.a": ("from compaudit.b.c import f\n", False),
        "compaudit.b": ("import compaudit.a\n", True),
        "compaudit.b.c": ("", False),
    }
    runtime = build_graphs(sources)["runtime"]
    assert ("compaudit.a", "compaudit.b") in runtime
    assert find_cycles(runtime) == [["compaudit.a", "compaudit.b"]]


def test_a_facade_package_may_name_higher_layers_for_type_checkers() -> None:
    sources = {
        "compaudit": ("if TYPE_CHECKING:\n    from compaudit.top import f as f\n", True),
        "compaudit.top": ("from compaudit import __version__\n", False),
        "compaudit.mid": ("if TYPE_CHECKING:\n    from compaudit.top import f\n", False),
    }
    layers = (("compaudit",), ("compaudit.mid",), ("compaudit.top",))
    assert upward_imports(build_graphs(sources)["layers"], layers) == [
        "compaudit.mid (layer 1) -> compaudit.top (layer 2)"
    ]


@pytest.fixture(scope="module")
def graphs() -> dict[str, set[Edge]]:
    return build_graphs(project_sources())


def test_every_module_has_a_layer() -> None:
    missing = [m for m in project_sources() if layer_of(m) is None]
    assert missing == [], "give these modules a layer in LAYERS"


def test_no_import_cycles(graphs: dict[str, set[Edge]]) -> None:
    assert find_cycles(graphs["runtime"]) == []


def test_no_cycles_through_lazy_imports_in_train_models_data(graphs: dict[str, set[Edge]]) -> None:
    scope = (NO_LAZY_CYCLES,)
    inside = {e for e in graphs["lazy"] if all(layer_of(m, scope) == 0 for m in e)}
    assert find_cycles(inside) == []


def test_no_import_runs_up_a_layer(graphs: dict[str, set[Edge]]) -> None:
    assert upward_imports(graphs["layers"]) == []
