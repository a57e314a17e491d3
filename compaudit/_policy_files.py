"""Reading policy files: YAML / TOML / pyproject parsing and error sentences (private).

:func:`compaudit.policy.load_policy` is the public entry point; this module
turns a file into a mapping, and a pydantic error into a sentence that names
the file, the line and the key.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from compaudit._yaml import YamlLimitError, line_of, problem_line, read_text
from compaudit._yaml import load as load_yaml
from compaudit.errors import PolicyError
from compaudit.settings import SettingValueError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Lines", "Loc", "TomlLines", "YamlLines", "describe", "read_policy_data"]

ERR_NOT_FOUND = "policy file {file} does not exist; check the --policy path"
ERR_SUFFIX = (
    "policy file {file} has an unknown extension {suffix!r}; "
    "write it as .yaml, .yml or .toml (or [tool.compaudit] in pyproject.toml)"
)
ERR_SYNTAX = "{file}: not valid {fmt}: {problem}"
ERR_LIMIT = "{file}: {problem}"
ERR_TOML_DEPTH = "nested too deeply; flatten the arrays and inline tables"
ERR_NO_TOOL_TABLE = "{file} has no [tool.compaudit] table; add one or pass a .yaml/.toml policy"
ERR_NOT_MAPPING = "{file}: the policy must be a mapping of keys (version, gates, ...), got {got}"
ERR_DUPLICATE_KEY = "{file}:{line}: key {key!r} appears twice; keep one"
ERR_UNKNOWN_KEY = "{where}: unknown key {key!r} under {parent}{hint}; allowed keys: {allowed}"
ERR_BAD_VALUE = "{where}: {path}: {msg}"


def read_policy_data(path: str | Path) -> tuple[Path, dict[str, Any], Lines]:
    """Parse a policy file into a mapping and a way to find the line of a key.

    Raises
    ------
    PolicyError
        The file is missing, not UTF-8, of an unknown extension, unparsable,
        has a duplicate YAML key, lacks ``[tool.compaudit]`` (pyproject), or is
        not a mapping.
    """
    file = Path(path)
    if not file.is_file():
        raise PolicyError(ERR_NOT_FOUND.format(file=file))
    try:
        text = read_text(file, kind="policy")  # bounded: at most MAX_BYTES are read
    except YamlLimitError as exc:
        raise PolicyError(ERR_LIMIT.format(file=file, problem=exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(ERR_SYNTAX.format(file=file, fmt="UTF-8 text", problem=exc)) from None
    suffix = file.suffix.lower()
    lines: Lines
    if suffix in (".yaml", ".yml"):
        data, lines = _parse_yaml(text, file)
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(ERR_SYNTAX.format(file=file, fmt="TOML", problem=exc)) from None
        except RecursionError:  # tomllib recurses once per nested array or inline table
            raise PolicyError(
                ERR_SYNTAX.format(file=file, fmt="TOML", problem=ERR_TOML_DEPTH)
            ) from None
        pyproject = file.name == "pyproject.toml"
        if pyproject:
            tool = data.get("tool")
            data = tool.get("compaudit") if isinstance(tool, dict) else None
            if data is None:
                raise PolicyError(ERR_NO_TOOL_TABLE.format(file=file))
        lines = TomlLines(text, ("tool", "compaudit") if pyproject else ())
    else:
        raise PolicyError(ERR_SUFFIX.format(file=file, suffix=file.suffix))
    if not isinstance(data, dict):
        raise PolicyError(ERR_NOT_MAPPING.format(file=file, got=type(data).__name__))
    return file, data, lines


Loc = tuple[int | str, ...]
"""A pydantic error location: keys and list indices from the top of the policy."""


class YamlLines:
    """Map a pydantic error location to a 1-based line through yaml node marks."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line(self, loc: Loc) -> int | None:
        return line_of(self.root, loc) if self.root is not None else None


class TomlLines:
    """Best-effort line of a key in TOML text: find each path part in order."""

    def __init__(self, text: str, prefix: tuple[str, ...]) -> None:
        # Drop comments (roughly: a '#' outside quotes is rare in policy values).
        self.lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
        self.prefix = prefix

    def line(self, loc: Loc) -> int | None:
        start, found = 0, None
        for part in (*self.prefix, *loc):
            if not isinstance(part, str):
                continue
            pat = re.compile(rf"(^|[\s.{{,\[])[\"']?{re.escape(part)}[\"']?\s*(=|\]|\.)")
            for i in range(start, len(self.lines)):
                if pat.search(self.lines[i]):
                    start = found = i
                    break
            else:
                break
        return None if found is None else found + 1


def _parse_yaml(text: str, file: Path) -> tuple[Any, YamlLines]:
    try:
        doc = load_yaml(text)  # bounded depth and alias expansion (issue 11)
    except yaml.YAMLError as exc:
        raise PolicyError(
            ERR_SYNTAX.format(file=file, fmt="YAML", problem=problem_line(exc))
        ) from None
    # safe_load keeps the last of two equal keys silently; a policy must not.
    for path, line in doc.duplicates[:1]:
        raise PolicyError(ERR_DUPLICATE_KEY.format(file=file, line=line, key=path[-1]))
    return doc.data, YamlLines(doc.node)


def describe(err: Any, file: Path, lines: Lines, allowed_keys: Callable[[Loc], list[str]]) -> str:
    """One pydantic error as a sentence naming file, line and key (closest valid key too)."""
    loc: Loc = tuple(err["loc"])
    line = lines.line(loc)
    where = f"{file}:{line}" if line is not None else str(file)
    path = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        key, parent = str(loc[-1]), ".".join(str(p) for p in loc[:-1]) or "the top level"
        allowed = allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ERR_UNKNOWN_KEY.format(
            where=where, key=key, parent=parent, hint=hint, allowed=", ".join(allowed)
        )
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, SettingValueError):
        # A shared setting validator (compaudit.settings): its sentence names the value.
        return ERR_BAD_VALUE.format(where=where, path=path, msg=error)
    msg = err["msg"]
    if err["type"] == "value_error":
        # A policy validator's own sentence: it names the value and the fix already.
        return ERR_BAD_VALUE.format(where=where, path=path, msg=msg.removeprefix("Value error, "))
    if not isinstance(err.get("input"), dict | list):
        msg += f" (got {err.get('input')!r})"
    return ERR_BAD_VALUE.format(where=where, path=path, msg=msg)


Lines = YamlLines | TomlLines
