"""Report form of frozen dataclasses: :class:`Record` writes and reads them generically.

A record's fields, in order, are its ``compaudit.report/v1`` object's keys
(field metadata ``key`` renames one; :data:`OMIT_NONE` / :data:`OMIT_EMPTY` leave
it out); :meth:`Record.from_dict` checks every type on the way back and names
where a saved report does not fit. :mod:`compaudit.results` declares the records.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Literal, Self, TypeVar, Union, get_args, get_origin, get_type_hints

from compaudit.errors import InputError

__all__ = ["ERR_SHAPE", "OMIT_EMPTY", "OMIT_NONE", "Record", "RowTable"]

ERR_SHAPE = (
    "report {where} does not follow compaudit.report/v1 ({problem}); "
    "regenerate it with this compaudit version"
)

R = TypeVar("R", bound="Record")


OMIT_NONE = {"omit_none": True}
"""Field metadata: a key the report omits when the value is None (``pairs``...)."""
OMIT_EMPTY = {"omit_empty": True}
"""Field metadata: a key the report omits when the value is empty (``long_tail``)."""


class RowTable:
    """Base of a field held as columns and written as a list of rows (a report can hold
    hundreds of thousands of PIEs: rows are built only when asked for)."""

    def to_list(self) -> list[dict[str, Any]]:
        """The report's list of rows."""
        raise NotImplementedError

    @classmethod
    def from_list(cls, rows: Any, where: str) -> Self:
        """The columns of the report's rows; :class:`InputError` naming ``where`` if bad."""
        raise NotImplementedError


class Record:
    """Mixin: report form of a frozen dataclass, generic over its fields
    (written in field order, which is the schema's key order)."""

    def to_dict(self) -> dict[str, Any]:
        """The report form (JSON-serialisable; keys in schema order)."""
        out: dict[str, Any] = {}
        for name, key, omit in _plan(type(self)):
            value = getattr(self, name)
            if value is None:
                if not omit:
                    out[key] = None
            elif type(value) in _SCALARS:
                out[key] = value
            elif omit == _EMPTY and not value:
                continue
            else:
                out[key] = _dump(value)
        return out

    @classmethod
    def report_keys(cls) -> list[str]:
        """Every key :meth:`to_dict` can write, in schema order (an empty table's columns)."""
        return [key for _, key, _ in _plan(cls)]

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """Read the report form back (unknown keys are ignored)."""
        label = where or "top level"
        if not isinstance(data, Mapping):
            raise InputError(ERR_SHAPE.format(where=label, problem="expected an object"))
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("key", f.name)
            if key not in data:
                if f.default is not dataclasses.MISSING or (
                    f.default_factory is not dataclasses.MISSING
                ):
                    continue
                raise InputError(ERR_SHAPE.format(where=label, problem=f"missing key {key!r}"))
            kwargs[f.name] = _load(hints[f.name], data[key], f"{where}.{key}" if where else key)
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}
_PLANS: dict[type, list[tuple[str, str, int]]] = {}
_SCALARS = (int, float, str, bool)
_EMPTY = 2


def _plan(cls: type) -> list[tuple[str, str, int]]:
    """``(field, report key, omit: 0 never, 1 when None, 2 when None or empty)`` per field,
    once per class (a report holds tens of thousands of records, so the field metadata is
    read once)."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = [
            (
                f.name,
                f.metadata.get("key", f.name),
                _EMPTY if f.metadata.get("omit_empty") else int(bool(f.metadata.get("omit_none"))),
            )
            for f in dataclasses.fields(cls)
        ]
    return plan


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types, once per class (``from __future__`` makes them strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, RowTable):
        return value.to_list()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _load(arg, value, where)
                except InputError:
                    continue
        raise InputError(ERR_SHAPE.format(where=where, problem=f"unexpected value {value!r:.60}"))
    if origin is Literal:
        if value not in get_args(tp):
            raise InputError(ERR_SHAPE.format(where=where, problem=f"unknown value {value!r:.60}"))
        return value
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value, where)
    if isinstance(tp, type) and issubclass(tp, RowTable):
        return tp.from_list(value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise InputError(ERR_SHAPE.format(where=where, problem="expected a list"))
        item = get_args(tp)[0]
        return tuple(_load(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise InputError(ERR_SHAPE.format(where=where, problem="expected an object"))
        item = get_args(tp)[1]
        return {str(k): _load(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(ERR_SHAPE.format(where=where, problem="expected a number"))
        return float(value)
    if tp in (int, str, bool) and not (type(value) is tp or (tp is int and _is_int(value))):
        raise InputError(ERR_SHAPE.format(where=where, problem=f"expected {tp.__name__}"))
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
