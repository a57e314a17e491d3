"""Typed lookups of the trainer's plugins (built-ins first, then the registry's)."""

from __future__ import annotations

from typing import Any

from compaudit.errors import InputError
from compaudit.train import builtin
from compaudit.train.base import Executor, Pruner, Quantizer

__all__ = ["compressors", "executor", "executors", "pruners", "quantizers"]

ERR_NO_EXECUTOR = "unknown executor '{name}'; known: {known}"


def _merged(hook: str) -> dict[str, Any]:
    # Built-ins are listed directly so that they work even where the plugin
    # manager does not (yet) register compaudit.train.builtin; registry entries
    # (third-party plugins) override them by name.
    from compaudit.plugins import get_registry

    found = {c.name: c for c in getattr(builtin, hook)()}
    registry = get_registry()
    found.update(registry.compressors() if hook == "register_compressors" else registry.executors())
    return found


def compressors() -> dict[str, Any]:
    """Every compressor by name."""
    return _merged("register_compressors")


def pruners() -> dict[str, Pruner]:
    """Pruning compressors by name (``prune.method``)."""
    return {n: c for n, c in compressors().items() if getattr(c, "kind", None) == "prune"}


def quantizers() -> dict[str, Quantizer]:
    """Quantization compressors by name (``quantize.method``)."""
    return {n: c for n, c in compressors().items() if getattr(c, "kind", None) == "quantize"}


def executors() -> dict[str, Executor]:
    """Executors by name."""
    return _merged("register_executors")


def executor(name: str) -> Executor:
    """The executor called ``name`` (``InputError`` listing the known ones)."""
    found = executors()
    if name not in found:
        raise InputError(ERR_NO_EXECUTOR.format(name=name, known=sorted(found)))
    return found[name]
