"""What :func:`compaudit.audit` accepts, turned into populations: arrays, lists,
pandas Series and DataFrames, string labels with ``class_names``, populations as 2-D
arrays, :class:`~compaudit.population.Population` objects and predictions files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compaudit.errors import InputError
from compaudit.population import PREDICTIONS_SUFFIXES, Population, load_population

__all__ = [
    "as_array",
    "attribute_arrays",
    "member_names",
    "refuse_unnamed_list",
    "to_populations",
]

ERR_CANDIDATE_LIST = (
    "candidates: a list of {n} unnamed population(s) or predictions file(s); give a mapping of "
    "name to predictions, e.g. {{'int8': preds_int8, 'p90': preds_p90}} (one array of "
    "[N] or [K, N] predictions is one candidate)"
)
ERR_NEED_Y = (
    "{name}: an array of predictions needs the true labels: pass y=... "
    "(or a Population / predictions file, which carries them)"
)
ERR_UNKNOWN_LABEL = (
    "{name}: label {label!r} is not one of class_names ({known}); add it to class_names "
    "or fix the labels"
)
ERR_MIXED_LABELS = (
    "{name}: got {kind}; give string labels everywhere (y, reference and candidates), "
    "or class_names to say which index each string is"
)
ERR_LABEL_ATTRIBUTE = (
    "attributes: a column named 'label' would shadow the true label; rename it "
    "(the true label is always available as the attribute 'label')"
)


def as_array(values: Any) -> np.ndarray:
    """numpy from arrays, lists, pandas Series (values) and DataFrames (models as rows)."""
    if hasattr(values, "to_numpy") and hasattr(values, "columns"):  # DataFrame: N x K
        return np.asarray(values.to_numpy()).T
    return np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)


def _is_text(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "USO"


def _label_space(arrays: Sequence[np.ndarray], class_names: Sequence[Any] | None) -> list[str]:
    """Class names in index order: the ones given, else the sorted labels seen."""
    if class_names is not None:
        return [str(c) for c in class_names]
    seen: set[str] = set()
    for arr in arrays:
        seen.update(str(v) for v in np.unique(arr.astype(str)))
    return sorted(seen)


def _encode(arr: np.ndarray, names: list[str], name: str) -> np.ndarray:
    """String labels to class indices (``names`` order); an unknown label is an error."""
    index = {n: i for i, n in enumerate(names)}
    flat = arr.astype(str).ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    missing = [u for u in uniq.tolist() if u not in index]
    if missing:
        known = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise InputError(ERR_UNKNOWN_LABEL.format(name=name, label=missing[0], known=known))
    codes = np.asarray([index[u] for u in uniq.tolist()], dtype=np.int64)
    return codes[inverse].reshape(arr.shape)


def attribute_arrays(attributes: Any) -> dict[str, np.ndarray]:
    if attributes is None:
        return {}
    if hasattr(attributes, "columns"):  # DataFrame
        attrs = {str(c): np.asarray(attributes[c].to_numpy()) for c in attributes.columns}
    elif isinstance(attributes, Mapping):
        attrs = {str(k): as_array(v) for k, v in attributes.items()}
    else:
        raise InputError("attributes: give a pandas DataFrame or a mapping name -> values")
    if "label" in attrs:
        raise InputError(ERR_LABEL_ATTRIBUTE)
    return attrs


def member_names(values: Any) -> list[str] | None:
    """Member names of a DataFrame population (its columns)."""
    if hasattr(values, "columns"):
        return [str(c) for c in values.columns]
    return None


def to_populations(
    reference: Any,
    candidates: Mapping[str, Any],
    *,
    y: Any,
    class_names: Sequence[Any] | None,
    ids: Any,
    attributes: Any,
) -> tuple[Population, dict[str, Population]]:
    """Populations from whatever the caller holds (all on the same examples)."""
    sides = {"reference": reference, **{str(k): v for k, v in candidates.items()}}
    loaded: dict[str, Population] = {}
    raw: dict[str, np.ndarray] = {}
    for name, value in sides.items():
        if isinstance(value, Population):
            loaded[name] = value
        elif isinstance(value, str | Path):
            loaded[name] = load_population(value)
        else:
            raw[name] = as_array(value)
    if raw:
        y_arr = as_array(y) if y is not None else None
        if y_arr is None:
            first = next(iter(loaded.values()), None)
            if first is None:
                raise InputError(ERR_NEED_Y.format(name=next(iter(raw))))
            y_arr = first.y
            class_names = class_names or first.class_names
        arrays = [y_arr, *raw.values()]
        names: list[str] | None = None
        if any(_is_text(a) for a in arrays):
            # String labels: class_names fixes the order (int arrays are then
            # indices into it); without it every side must be strings.
            if class_names is None and not all(_is_text(a) for a in arrays):
                raise InputError(ERR_MIXED_LABELS.format(name="labels", kind="strings and ints"))
            names = _label_space([a for a in arrays if _is_text(a)], class_names)
            if _is_text(y_arr):
                y_arr = _encode(y_arr, names, "y")
        for name, arr in raw.items():
            if names is not None and _is_text(arr):
                arr = _encode(arr, names, name)
            meta = {"members": member_names(sides[name])} if member_names(sides[name]) else {}
            loaded[name] = Population.create(
                arr,
                y_arr,
                ids=as_array(ids) if ids is not None else None,
                class_names=names if names is not None else class_names,
                meta=meta,
                source=name,
            )
    ref = loaded.pop("reference")
    attrs = attribute_arrays(attributes)
    if attrs:
        ref = ref.with_attributes(attrs)
    return ref, loaded


def _is_list_of_sides(value: Any) -> bool:
    """A list or tuple of populations: several unnamed candidates.

    Its items are ``Population`` objects, predictions files (a ``Path``, or a
    string ending in ``.npz`` or naming a file) or 2-D ``[K, N]`` arrays. A list
    of 1-D arrays or of lists stacks into one ``[K, N]`` population, and a list
    of strings is one model's string labels: each stays one candidate, as for
    the reference.
    """
    if not isinstance(value, list | tuple) or not value:
        return False

    def side(v: Any) -> bool:
        if isinstance(v, Population | Path):
            return True
        if isinstance(v, str):
            return v.lower().endswith(PREDICTIONS_SUFFIXES) or Path(v).is_file()
        return len(getattr(v, "shape", ())) >= 2

    return all(side(v) for v in value)  # stops at the first label or 1-D member


def refuse_unnamed_list(candidates: Any) -> None:
    """Raise :data:`ERR_CANDIDATE_LIST` for a list of unnamed candidates (see
    :func:`_is_list_of_sides`); anything else is one candidate."""
    if _is_list_of_sides(candidates):
        raise InputError(ERR_CANDIDATE_LIST.format(n=len(candidates)))
