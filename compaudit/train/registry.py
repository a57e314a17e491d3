"""Typed lookups of the trainer's plugins (compressors and executors).

Built-ins register through the plugin registry like any plugin
(:data:`compaudit.plugins.BUILTIN_PLUGINS` lists ``compaudit.train.builtin``),
so this module needs no import of them: the trainer's modules form no cycle.
A plugin provider with a built-in's name replaces it.
"""

from __future__ import annotations

from typing import Any

from compaudit.errors import InputError, PluginError
from compaudit.plugins import get_registry
from compaudit.train.base import Compressor, Executor, Pruner, Quantizer

__all__ = ["compressors", "executor", "executors", "pruners", "quantizers"]

ERR_NO_EXECUTOR = "unknown executor '{name}'; known: {known}"
ERR_KIND = "compressor '{name}' (plugin {plugin}) has kind '{kind}' but is not a {contract}"

_COMPRESSORS = "register_compressors"


def compressors() -> dict[str, Compressor]:
    """Every compressor by name."""
    found: dict[str, Compressor] = get_registry().providers(_COMPRESSORS, Compressor)
    return found


def _of_kind(kind: str, contract: Any) -> dict[str, Any]:
    # ``contract`` is a Protocol (mypy does not take one as ``type[T]``); callers annotate.
    out: dict[str, Any] = {}
    for name, c in compressors().items():
        if c.kind != kind:
            continue
        if not isinstance(c, contract):
            plugin = get_registry().origin(_COMPRESSORS, name)
            raise PluginError(
                ERR_KIND.format(name=name, plugin=plugin, kind=kind, contract=contract.__name__)
            )
        out[name] = c
    return out


def pruners() -> dict[str, Pruner]:
    """Pruning compressors by name (``prune.method``)."""
    found: dict[str, Pruner] = _of_kind("prune", Pruner)
    return found


def quantizers() -> dict[str, Quantizer]:
    """Quantization compressors by name (``quantize.method``)."""
    found: dict[str, Quantizer] = _of_kind("quantize", Quantizer)
    return found


def executors() -> dict[str, Executor]:
    """Executors by name."""
    found: dict[str, Executor] = get_registry().providers("register_executors", Executor)
    return found


def executor(name: str) -> Executor:
    """The executor called ``name`` (``InputError`` listing the known ones)."""
    found = executors()
    if name not in found:
        raise InputError(ERR_NO_EXECUTOR.format(name=name, known=sorted(found)))
    return found[name]
