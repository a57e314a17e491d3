"""YAML for recipes and policies: bounded parsing, duplicate keys, and where a key is.

Policies and recipes come from pull requests, so parsing is bounded (issue
11): the file size, the nesting depth and the size of the document once its
aliases are expanded are all limited, and a recursive alias is refused. Every
limit is a :class:`YamlLimitError`, a :class:`yaml.YAMLError`, so the callers'
handlers turn it into their one-line "not valid YAML" message.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_EXPANDED",
    "Document",
    "YamlLimitError",
    "YamlValueError",
    "duplicate_keys",
    "key_name",
    "line_of",
    "load",
    "problem_line",
    "read_text",
]

MAX_BYTES = 1024 * 1024
"""Largest YAML file read, in bytes (a policy or recipe is a few kilobytes)."""
MAX_DEPTH = 50
"""Deepest nesting of mappings and sequences, aliases expanded."""
MAX_EXPANDED = 4_000_000
"""Largest document once aliases are expanded: nodes plus scalar characters."""

ERR_TOO_LARGE = (
    "the file is larger than {limit:,} bytes, too large for a YAML {kind}; is it the right file?"
)
ERR_DEPTH = "nested deeper than {limit} levels; flatten the document"
ERR_EXPANDED = (
    "its aliases expand to more than {limit:,} nodes and characters (a 'billion laughs' "
    "document?); write the repeated values out"
)
ERR_AT = "{problem} (line {line}, column {column})"
ERR_RECURSIVE = "a recursive alias (a node that contains itself); remove the alias"
ERR_HUGE_INT = "an integer of more than {limit:,} digits; no setting needs one: write it shorter"
ERR_TAGGED_VALUE = (
    "a tagged value cannot be read ({kind}: {exc}); write the value plainly, without its !!tag"
)


class _OneLineError(yaml.MarkedYAMLError):
    """A YAML error of ours: its message is one line, with the spot when known."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)

    def __str__(self) -> str:
        # One line: PyYAML's own form quotes the offending text over several lines.
        mark = self.problem_mark
        if mark is None:
            return str(self.problem)
        return ERR_AT.format(problem=self.problem, line=mark.line + 1, column=mark.column + 1)


class YamlLimitError(_OneLineError):
    """A YAML document beyond a parsing limit (size, depth, alias expansion, recursion)."""


class YamlValueError(_OneLineError):
    """A tagged value its constructor cannot read (``!!int x``): invalid YAML, one line."""


def problem_line(exc: yaml.YAMLError) -> str:
    """``exc`` as one line: what is wrong and where (``line L, column C``).

    PyYAML's own message quotes the offending text under a caret over several
    lines; an error message must stay one line (a newline would be shown escaped).
    """
    if isinstance(exc, _OneLineError) or not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())

    def at(text: object, mark: yaml.Mark | None) -> str:
        text = " ".join(str(text).split())
        if mark is None:
            return text
        return ERR_AT.format(problem=text, line=mark.line + 1, column=mark.column + 1)

    parts = [at(exc.context, exc.context_mark)] if exc.context else []
    parts += [at(exc.problem, exc.problem_mark)] if exc.problem else []
    return ": ".join(parts) or "not valid YAML"


@dataclass(frozen=True)
class Document:
    """One parsed YAML document."""

    data: Any
    """The constructed value (None for an empty document)."""
    node: yaml.Node | None
    """The composed node graph, for line numbers in messages."""
    duplicates: list[tuple[tuple[str | int, ...], int]]
    """``(key path, line)`` of every mapping key given twice, found before construction."""


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses nesting deeper than :data:`MAX_DEPTH` while composing.

    The composer recurses once per level, so without this a 20,000-level
    document raises RecursionError before any check could run.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise YamlLimitError(ERR_DEPTH.format(limit=MAX_DEPTH), mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_text(path: Path, *, kind: str) -> str:
    """Read a YAML (or TOML) file of at most :data:`MAX_BYTES` as UTF-8.

    Raises
    ------
    YamlLimitError
        The file is larger than :data:`MAX_BYTES` (only that much is read).
    UnicodeDecodeError
        The file is not UTF-8.
    OSError
        The file cannot be read.
    """
    with path.open("rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise YamlLimitError(ERR_TOO_LARGE.format(limit=MAX_BYTES, kind=kind))
    return raw.decode("utf-8")


def load(text: str) -> Document:
    """Parse one YAML document within the limits (safe types only).

    The node graph is measured once, each shared (aliased) node a single
    time, so a "billion laughs" document costs what its text costs; it is
    refused before anything walks or builds its expansion.

    Raises
    ------
    yaml.YAMLError
        Invalid YAML, or :class:`YamlLimitError` for a document beyond a limit.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, None, [])
        _measure(node)
        # Before construction: construction merges '<<' keys into the nodes.
        dups = duplicate_keys(node)
        try:
            data = loader.construct_document(node)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            # A tag its constructor cannot read ("!!int x", "!!timestamp nope") raises
            # these from inside PyYAML; they are the file's fault, not ours.
            if "integer string conversion" in str(exc):  # plain, untagged: Python's limit
                limit = sys.get_int_max_str_digits()
                raise YamlValueError(ERR_HUGE_INT.format(limit=limit)) from None
            raise YamlValueError(
                ERR_TAGGED_VALUE.format(kind=type(exc).__name__, exc=exc)
            ) from None
    finally:
        loader.dispose()
    return Document(data, node, dups)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node) -> None:
    """Refuse recursive aliases, and a depth or expanded size beyond the limits.

    An iterative post-order walk that measures each node once: an alias
    chain can make the expansion exponential and arbitrarily deep.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()  # the nodes on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            size[key] = 1 + own + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_.discard(key)
            if size[key] > MAX_EXPANDED:
                raise YamlLimitError(ERR_EXPANDED.format(limit=MAX_EXPANDED), node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise YamlLimitError(ERR_DEPTH.format(limit=MAX_DEPTH), node.start_mark)
            continue
        if key in size:
            continue
        if key in open_:
            raise YamlLimitError(ERR_RECURSIVE, node.start_mark)
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))


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


def duplicate_keys(
    node: yaml.Node,
    path: tuple[str | int, ...] = (),
    _seen: set[int] | None = None,
) -> list[tuple[tuple[str | int, ...], int]]:
    """``(key path, line)`` of every mapping key given twice (PyYAML keeps the last silently).

    Each node is visited once, under the path it is first reached by: an
    aliased node is not walked again for every place it is used. The
    recursion is as deep as the document, which :func:`load` bounds first.
    """
    seen = set() if _seen is None else _seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    found: list[tuple[tuple[str | int, ...], int]] = []
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue  # a complex key; schema validation rejects it later
            if key.value in keys:
                found.append(((*path, key.value), key.start_mark.line + 1))
            keys.add(key.value)
            found += duplicate_keys(value, (*path, key.value), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys(item, (*path, i), seen)
    return found


def key_name(loc: Sequence[str | int]) -> str:
    """``("variants", 1, "prune")`` as ``variants[1].prune``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"
