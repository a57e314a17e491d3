"""Fitted preprocessing as an artifact: written once from training data, applied everywhere.

A prep file (``prep.json``, schema ``compaudit.prep/v1``) holds one
:class:`~compaudit.data.base.Preprocessing` and the data it was fitted on::

    {"schema": "compaudit.prep/v1", "fitted_on": "train.csv",
     "preprocessing": {"layout": "NF", "dtype": "float32", "scaling": "standardize",
                       "encoding": "onehot", "params": {...}}}

``compaudit fit-data TRAIN_SPEC --out prep.json`` writes one; the trainer
writes one into every run directory; ``?prep=prep.json`` on a data spec
applies it. :func:`read_prep` also reads a bare ``Preprocessing.to_dict()``
and the bare table-encoding params older ``encoding=`` files hold.

A mismatch between the preprocessing a model expects and the one a dataset
was given is reported by :func:`prep_mismatch` as a short diff of the fields
that differ, the file each side came from, and the command that fixes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compaudit._io import atomic_write_text
from compaudit.data.base import Preprocessing
from compaudit.errors import InputError

__all__ = [
    "ERR_PREP_FILE",
    "ERR_PREP_MISMATCH",
    "ONNX_PREP_KEY",
    "PREP_FILE",
    "PREP_SCHEMA",
    "fit_command",
    "given_prep",
    "onnx_prep_metadata",
    "plain",
    "prep_diff",
    "prep_from_dict",
    "prep_mismatch",
    "read_prep",
    "write_prep",
]

PREP_SCHEMA = "compaudit.prep/v1"
PREP_FILE = "prep.json"
"""Name of the prep file the trainer writes into a run directory."""
ONNX_PREP_KEY = "compaudit.preprocessing"
"""ONNX ``metadata_props`` key under which the trainer's exports carry their preprocessing
(a ``Preprocessing.to_dict()`` as JSON)."""

ERR_PREP_FILE = "{src}: cannot read prep file {path} ({reason}); write one with {command}"
ERR_PREP_MISMATCH = (
    "{data}: the data are prepared differently from what {model} expects: {diff}. Fix: {fix}"
)
DIFF_LIMIT = 4
"""Differing fields shown in a mismatch message (the rest are counted)."""
_FIELDS = ("layout", "dtype", "scaling", "encoding")


def onnx_prep_metadata(prep: Mapping[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` entry that makes an ONNX export carry ``prep`` (a to_dict())."""
    return {ONNX_PREP_KEY: json.dumps(dict(prep), sort_keys=True, default=str)}


def fit_command(train_spec: str = "TRAIN_SPEC") -> str:
    """The command that writes a prep file from the training data."""
    return f"`compaudit fit-data '{train_spec}' --out prep.json`"


def prep_from_dict(blob: Any, *, src: str) -> Preprocessing:
    """A :class:`Preprocessing` from a prep document, a ``to_dict()`` or bare encoding params."""
    if isinstance(blob, Mapping) and blob.get("schema") == PREP_SCHEMA:
        blob = blob.get("preprocessing")
    if not isinstance(blob, Mapping):
        raise InputError(
            ERR_PREP_FILE.format(
                src=src, path=src, reason="not a JSON object", command=fit_command()
            )
        )
    if "layout" not in blob and "columns" in blob:
        # Bare TableEncoding params (what `encoding=` files held before prep files).
        from compaudit.data.encoding import TableEncoding

        enc = TableEncoding.from_params(blob, src=src)
        return Preprocessing(
            layout="NF",
            scaling="standardize" if enc.numeric else "none",
            encoding="onehot" if enc.categories else "none",
            params=dict(blob),
        )
    params = blob.get("params", {})
    if not isinstance(blob.get("layout"), str) or not isinstance(params, Mapping):
        reason = "needs a 'layout' string and a 'params' object"
        raise InputError(
            ERR_PREP_FILE.format(src=src, path=src, reason=reason, command=fit_command())
        )
    return Preprocessing(
        layout=str(blob["layout"]),
        dtype=str(blob.get("dtype", "float32")),
        scaling=str(blob.get("scaling", "none")),
        encoding=str(blob.get("encoding", "none")),
        params=dict(params),
    )


def read_prep(path: str | os.PathLike[str], *, src: str | None = None) -> Preprocessing:
    """Read a prep file (see the module docstring for the accepted forms).

    Raises
    ------
    InputError
        Unreadable file, invalid JSON or not a preprocessing; the message
        names the file and the command that writes a good one.
    """
    where = src or str(path)
    try:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc if not isinstance(exc, RecursionError) else "nested too deeply"
        raise InputError(
            ERR_PREP_FILE.format(src=where, path=path, reason=reason, command=fit_command())
        ) from None
    return prep_from_dict(blob, src=str(path))


def write_prep(path: str | os.PathLike[str], prep: Preprocessing, *, fitted_on: str) -> Path:
    """Write ``prep`` as a prep file, atomically; returns the path."""
    doc = {"schema": PREP_SCHEMA, "fitted_on": fitted_on, "preprocessing": prep.to_dict()}
    target = Path(path)
    atomic_write_text(target, json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    return target


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _leaves(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Flatten to ``field`` / ``field[key]`` paths, the form a diff line names."""
    if isinstance(value, Mapping) and value:
        for key in sorted(value, key=str):
            _leaves(f"{prefix}[{key}]" if prefix else str(key), value[key], out)
    else:
        out[prefix] = value


def _flat(prep: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: prep.get(f) for f in _FIELDS}
    params = dict(prep.get("params") or {})
    params.pop("features", None)  # derived from the columns and categories
    numeric = params.pop("numeric", None)
    if isinstance(numeric, Mapping):
        for col, stats in numeric.items():
            if isinstance(stats, Mapping):
                for stat, v in stats.items():
                    out[f"{stat}[{col}]"] = v
            else:
                out[f"numeric[{col}]"] = stats
    cats = params.pop("categorical", None)
    if isinstance(cats, Mapping):
        for col, values in cats.items():
            out[f"categories[{col}]"] = values
    _leaves("", params, out)
    out.pop("", None)
    return out


def _order(key: str) -> tuple[int, str]:
    """Kinds first, then where it was fitted, statistics, categories, anything else."""
    if key in _FIELDS:
        return 0, key
    if key == "fitted_on":
        return 1, key
    if key.startswith(("mean[", "std[")):
        return 2, key
    if key.startswith("categories["):
        return 3, key
    return 4, key


def prep_diff(
    expected: Mapping[str, Any], got: Mapping[str, Any], *, limit: int = DIFF_LIMIT
) -> str:
    """The fields where two ``Preprocessing.to_dict()`` forms differ, most telling first.

    Each item reads ``field: expected vs got`` (``mean[age]: 38.6 vs 38.4``);
    category lists show what one side has and the other lacks. At most
    ``limit`` items are shown; the rest are counted.
    """
    a, b = _flat(expected), _flat(got)
    items: list[str] = []
    for key in sorted(set(a) | set(b), key=_order):
        va, vb = a.get(key), b.get(key)
        if json.dumps(va, sort_keys=True, default=str) == json.dumps(
            vb, sort_keys=True, default=str
        ):
            continue
        if isinstance(va, list) and isinstance(vb, list):
            only_a = [str(v) for v in va if v not in vb]
            only_b = [str(v) for v in vb if v not in va]
            parts = []
            if only_a:
                parts.append(f"only expected {_short(only_a)}")
            if only_b:
                parts.append(f"only in data {_short(only_b)}")
            items.append(f"{key}: {'; '.join(parts) or 'order differs'}")
        else:
            items.append(f"{key}: {_short(va)} vs {_short(vb)}")
    shown = items[:limit]
    if len(items) > limit:
        shown.append(f"and {len(items) - limit} more field(s)")
    return ", ".join(shown) or "no field differs"


def prep_mismatch(
    expected: Mapping[str, Any],
    got: Mapping[str, Any],
    *,
    model: str,
    data: str,
    fix: str | None = None,
) -> InputError:
    """The one-message error for data prepared unlike the model expects (to raise)."""
    if fix is None:
        fix = (
            f"load the data with the model's preprocessing: add ?prep=PREP.json "
            f"(written by {fit_command()} on the training data)"
        )
    return InputError(
        ERR_PREP_MISMATCH.format(data=data, model=model, diff=prep_diff(expected, got), fix=fix)
    )


def plain(obj: Any) -> Any:
    """Round-trip through JSON so tuples/lists and numpy scalars compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def given_prep(
    path: str, prep: Preprocessing | None, *, src: str, model: str = "the model"
) -> Preprocessing:
    """The prep file a spec's ``prep=`` names; it must agree with ``model``'s ``prep`` if given."""
    found = read_prep(path, src=src)
    if prep is not None and plain(prep.to_dict()) != plain(found.to_dict()):
        raise prep_mismatch(prep.to_dict(), found.to_dict(), model=model, data=path)
    return found
