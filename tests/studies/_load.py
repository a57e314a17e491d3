"""Import a case study's module from examples/ (its folders are not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_example(relpath: str, name: str) -> ModuleType:
    """Execute ``ROOT/relpath`` as a module called ``name`` and return it."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
