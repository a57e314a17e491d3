"""The public surface: what ``compaudit.__all__`` promises, and that ``examples/`` keeps to it.

The studies in ``examples/`` are read with :mod:`ast` (nothing is run): they
may import the package itself (``import compaudit``, ``from compaudit import
NAME`` for a public NAME) and the two public modules :mod:`compaudit.study` and
:mod:`compaudit.results`, nothing deeper, and never touch a private name
(``compaudit._x``, ``compaudit.study._x``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import compaudit

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PACKAGE = ROOT / "compaudit"
PUBLIC_MODULES = ("compaudit.study", "compaudit.results")
IMPORT_FUNCTIONS = ("import_module", "__import__")

ERR_MODULE = "{where}: imports {module}; examples use compaudit, {allowed} only"
ERR_NAME = "{where}: {name} is not public (not in {module}.__all__)"
ERR_ATTRIBUTE = "{where}: {expr} is not public"


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.py") if ".mypy_cache" not in p.parts)


def _public(module: str) -> set[str]:
    """``__all__`` of a public module (the package: plus its public modules' short names)."""
    mod = importlib.import_module(module)
    names = set(getattr(mod, "__all__", ()))
    if module == "compaudit":
        names |= {m.rsplit(".", 1)[1] for m in PUBLIC_MODULES}
    return names


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` -> ``["a", "b", "c"]``; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def violations(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every use of compaudit beyond its public surface in one file (named relative to root)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root)
    allowed = ", ".join(PUBLIC_MODULES)
    aliases: dict[str, str] = {}  # local name -> the compaudit module it is bound to
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "compaudit":
                    continue
                if alias.name not in ("compaudit", *PUBLIC_MODULES):
                    yield ERR_MODULE.format(where=where, module=alias.name, allowed=allowed)
                elif alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases["compaudit"] = "compaudit"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "compaudit":
            module = node.module or ""
            if module not in ("compaudit", *PUBLIC_MODULES):
                yield ERR_MODULE.format(where=where, module=module, allowed=allowed)
                continue
            public = _public(module)
            for alias in node.names:
                if alias.name not in public or alias.name.startswith("_"):
                    yield ERR_NAME.format(where=where, name=alias.name, module=module)
                elif f"{module}.{alias.name}" in PUBLIC_MODULES:
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = _dotted(node.func)
            arg = node.args[0]
            if (
                func
                and func[-1] in IMPORT_FUNCTIONS
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.split(".")[0] == "compaudit"
                and arg.value not in ("compaudit", *PUBLIC_MODULES)
            ):
                yield ERR_MODULE.format(where=where, module=arg.value, allowed=allowed)
    # Attribute chains on a bound module: compaudit.NAME, compaudit.study.NAME ...
    seen: set[tuple[int, int]] = set()  # a.b.c holds a.b: judge each chain once
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or (node.lineno, node.col_offset) in seen:
            continue
        seen.add((node.lineno, node.col_offset))
        parts = _dotted(node)
        if not parts or parts[0] not in aliases:
            continue
        module, rest = aliases[parts[0]], parts[1:]
        while rest and f"{module}.{rest[0]}" in PUBLIC_MODULES:
            module, rest = f"{module}.{rest[0]}", rest[1:]
        if rest and (rest[0] not in _public(module) or rest[0].startswith("_")):
            where = f"{rel}:{node.lineno}"
            yield ERR_ATTRIBUTE.format(where=where, expr=".".join(parts))


def test_there_are_examples_to_check() -> None:
    files = {p.relative_to(EXAMPLES).as_posix() for p in example_files()}
    assert {"adult/study.py", "fashion-mnist/study.py", "calibration/study.py"} <= files


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_examples_use_only_the_public_api(path: Path) -> None:
    assert list(violations(path)) == []


def test_the_checker_catches_private_and_internal_uses(tmp_path: Path) -> None:
    bad = tmp_path / "examples" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import compaudit\n"
        "import compaudit.engine\n"
        "import compaudit.study as st\n"
        "from compaudit import _EXPORTS, audit\n"
        "from compaudit.pipeline import execute\n"
        "from compaudit.study import _row, write_text\n"
        "compaudit._io.atomic_write_text\n"
        "compaudit.gates.evaluate_gates\n"
        "compaudit.study.markdown_table\n"
        "st._cell\n"
        "importlib.import_module('compaudit.report._plot')\n"
    )
    found = list(violations(bad, tmp_path))
    lines = sorted(int(v.split(":")[1]) for v in found)
    assert lines == [2, 4, 5, 6, 7, 8, 10, 11], found


def test_every_public_name_is_importable_and_documented() -> None:
    for name in compaudit.__all__:
        value = getattr(compaudit, name)
        if name != "__version__":
            assert value.__doc__, name
            assert not name.startswith("_"), name
    for module in PUBLIC_MODULES:
        mod = importlib.import_module(module)
        assert mod.__doc__, module
        for name in mod.__all__:
            value = getattr(mod, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                assert value.__doc__, f"{module}.{name}"


def test_no_public_name_is_also_a_submodule() -> None:
    # Importing compaudit.NAME (a module) would replace the exported attribute NAME.
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }
    assert set(compaudit._EXPORTS) & modules == set()


def test_type_checking_block_declares_every_export() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    [block] = [
        n
        for n in tree.body
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
    ]
    declared = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name  # re-exported as itself
    }
    assert declared == compaudit._EXPORTS
