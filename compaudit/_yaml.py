"""YAML helpers for error messages (recipes, policies): where a key is, and duplicate keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["duplicate_keys", "key_name", "line_of"]


def line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the key at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def duplicate_keys(node: yaml.Node, path: tuple[str | int, ...] = ()) -> list[tuple[Any, ...]]:
    """``(key path, line)`` of every mapping key given twice (PyYAML keeps the last silently)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue  # a complex key; schema validation rejects it later
            if key.value in seen:
                found.append(((*path, key.value), key.start_mark.line + 1))
            seen.add(key.value)
            found += duplicate_keys(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys(item, (*path, i))
    return found


def key_name(loc: Sequence[str | int]) -> str:
    """``("variants", 1, "prune")`` as ``variants[1].prune``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"
