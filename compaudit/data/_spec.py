"""Data specs (``name[:split][?key=value&...]``) and typed access to their options."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from compaudit.errors import InputError

__all__ = [
    "ERR_SPLIT",
    "BuiltinRequest",
    "builtin_request",
    "check_no_split",
    "check_options",
    "file_request",
    "merge_options",
    "opt_bool",
    "opt_int",
    "opt_list",
    "parse_data_spec",
]

ERR_EMPTY_SPEC = "empty data spec; give a file, a folder or a dataset name such as 'digits:test'"
ERR_BAD_OPTION = (
    "data spec '{spec}': option '{part}' is not key=value; "
    "write options as 'NAME?key=value&key2=a,b'"
)
ERR_DUP_OPTION = "data spec '{spec}': option '{key}' is given twice; keep one"
ERR_UNKNOWN_OPTION = "{src}: unknown option(s) {unknown}; this dataset accepts: {allowed}"
ERR_OPT_BOOL = "{src}: option {key}={value} is not a boolean; use 1/0, true/false or yes/no"
ERR_OPT_INT = "{src}: option {key}={value} is not an integer >= {minimum}"
ERR_NO_SPLITS = "{src}: a {kind} has no splits; remove ':{split}' from the data spec"

# A split is a short word after the last ':' ("test", "train", "val-2"), never a path part.
# No dots, so that "data:v2.npz" stays a file name.
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_data_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """Split a data spec into its name or path, split, and options.

    Parameters
    ----------
    spec : str
        ``NAME_OR_PATH[:SPLIT][?key=value&key=value...]``, e.g. ``"adult:train"``,
        ``"table.csv?label=income&attributes=sex,race"``. Option values may be
        percent-encoded (``%26`` for ``&``). A ``:`` is only read as a split
        separator when the whole string is not an existing path and the part
        after it is a plain word.

    Returns
    -------
    name_or_path : str
    split : str or None
        ``None`` when the spec names no split (the provider picks its default).
    options : dict of str to str

    Raises
    ------
    InputError
        Empty spec, an option without ``=``, or an option given twice.
    """
    if not spec.strip():
        raise InputError(ERR_EMPTY_SPEC)
    base, _, query = spec.partition("?")
    options: dict[str, str] = {}
    for part in query.split("&") if query else []:
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise InputError(ERR_BAD_OPTION.format(spec=spec, part=part))
        key = urllib.parse.unquote(key).strip()
        if key in options:
            raise InputError(ERR_DUP_OPTION.format(spec=spec, key=key))
        options[key] = urllib.parse.unquote(value).strip()
    split: str | None = None
    if ":" in base and not Path(base).exists():
        head, _, tail = base.rpartition(":")
        if head and _SPLIT_RE.match(tail):
            base, split = head, tail
    return base, split, options


def merge_options(
    spec: str, options: Mapping[str, str] | None
) -> tuple[str, str | None, dict[str, str]]:
    """Parse ``spec`` and overlay ``options`` (explicit options win over the spec's)."""
    base, split, parsed = parse_data_spec(spec)
    parsed.update(options or {})
    return base, split, parsed


def check_options(options: Mapping[str, str], allowed: Iterable[str], *, src: str) -> None:
    """Fail closed on unknown options, so that a typo (``lable=``) is not ignored."""
    allowed_set = set(allowed)
    unknown = sorted(set(options) - allowed_set)
    if unknown:
        raise InputError(
            ERR_UNKNOWN_OPTION.format(
                src=src,
                unknown=", ".join(unknown),
                allowed=", ".join(sorted(allowed_set)) or "(none)",
            )
        )


ERR_SPLIT = "{src}: unknown split '{split}'; use one of: {splits}"


@dataclass(frozen=True)
class BuiltinRequest:
    """A parsed ``name[:split][?options]`` for a built-in dataset."""

    base: str
    split: str
    options: dict[str, str]
    src: str
    explicit: Path | None
    """A folder given by ``path=`` or as the spec itself, searched before anything else."""


def builtin_request(
    name: str,
    spec: str,
    options: Mapping[str, str] | None,
    *,
    splits: Iterable[str],
    allowed: Iterable[str],
    default_split: str = "test",
) -> BuiltinRequest:
    """Parse a built-in dataset spec; fail closed on an unknown split or option."""
    base, split, opts = merge_options(spec, options)
    split = split or default_split
    src = f"{name}:{split}"
    check_options(opts, allowed, src=src)
    known = list(splits)
    if split not in known:
        raise InputError(ERR_SPLIT.format(src=src, split=split, splits=", ".join(known)))
    explicit = Path(opts["path"]) if opts.get("path") else None
    if explicit is None and base != name:
        explicit = Path(base)
    return BuiltinRequest(base, split, opts, src, explicit)


def file_request(
    spec: str, options: Mapping[str, str] | None, *, allowed: Iterable[str], kind: str
) -> tuple[Path, str, dict[str, str]]:
    """Parse a file or folder spec: ``(path, src, options)``; no split, no unknown option."""
    base, split, opts = merge_options(spec, options)
    path = Path(base)
    src = str(path)
    check_options(opts, allowed, src=src)
    check_no_split(split, kind=kind, src=src)
    return path, src, opts


def check_no_split(split: str | None, *, kind: str, src: str) -> None:
    """Files and folders have no splits: reject ``table.csv:train`` rather than ignore it."""
    if split is not None:
        raise InputError(ERR_NO_SPLITS.format(src=src, kind=kind, split=split))


def opt_list(options: Mapping[str, str], key: str) -> list[str]:
    """Comma-separated option value as a list (empty items dropped)."""
    return [item.strip() for item in options.get(key, "").split(",") if item.strip()]


def opt_bool(options: Mapping[str, str], key: str, *, src: str, default: bool = False) -> bool:
    """Boolean option: ``1/0``, ``true/false``, ``yes/no``, ``on/off``."""
    if key not in options:
        return default
    value = options[key].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(ERR_OPT_BOOL.format(src=src, key=key, value=options[key]))


def opt_int(
    options: Mapping[str, str], key: str, *, src: str, default: int | None = None, minimum: int = 0
) -> int | None:
    """Integer option ``>= minimum``; ``default`` when absent."""
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InputError(ERR_OPT_INT.format(src=src, key=key, value=options[key], minimum=minimum))
    return value
