"""Checks every provider shares: labels, ids, per-example arrays, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from compaudit._io import progress_enabled
from compaudit.data.base import Dataset
from compaudit.errors import InputError

ERR_LABELS_NOT_INT = (
    "{src}: labels must be integer class indices, got dtype {dtype}; "
    "store class indices 0..C-1 (names go in class_names)"
)
ERR_LABELS_SHAPE = "{src}: labels must be one value per example (shape [N]), got shape {shape}"
ERR_LABELS_NEGATIVE = "{src}: labels have negative values (min {vmin}); class indices start at 0"
ERR_LABELS_RANGE = (
    "{src}: labels go up to {vmax} but there are only {c} class names; "
    "fix class_names or the labels"
)
ERR_LENGTH = "{src}: '{key}' has {got} entries but there are {n} examples; give one per example"
ERR_DUP_IDS = (
    "{src}: example ids must be unique; {count} duplicated, e.g. {examples}; "
    "make the ids unique or leave them out (row numbers are used)"
)
ERR_EMPTY = "{src}: the dataset has no examples"

T = TypeVar("T")

# Progress bars only for work that is long enough to be worth watching (> ~2 s).
PROGRESS_MIN_ITEMS = 2000


def check_labels(y: Any, *, src: str) -> np.ndarray:
    """Return ``y`` as int64 class indices, or raise naming ``src``.

    Integral floats (``3.0``) are accepted, as many tools store labels so.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(ERR_LABELS_SHAPE.format(src=src, shape=arr.shape))
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
            raise InputError(ERR_LABELS_NOT_INT.format(src=src, dtype=arr.dtype))
    elif arr.dtype.kind not in "iub":
        raise InputError(ERR_LABELS_NOT_INT.format(src=src, dtype=arr.dtype))
    if arr.size and arr.min() < 0:
        raise InputError(ERR_LABELS_NEGATIVE.format(src=src, vmin=arr.min()))
    return arr.astype(np.int64, copy=False)


def check_length(arr: np.ndarray, n: int, *, key: str, src: str) -> None:
    """Require one entry per example along the first axis."""
    got = arr.shape[0] if arr.ndim else 0
    if got != n:
        raise InputError(ERR_LENGTH.format(src=src, key=key, got=got, n=n))


def check_unique_ids(ids: np.ndarray, *, src: str) -> None:
    """Raise when ids repeat, naming a few of them and how many."""
    uniq, counts = np.unique(ids, return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        examples = ", ".join(repr(str(v)) for v in dup[:5])
        raise InputError(ERR_DUP_IDS.format(src=src, count=dup.size, examples=examples))


def check_dataset(ds: Dataset, *, src: str) -> None:
    """Check a dataset against the contract of :class:`~compaudit.data.base.Dataset`.

    Run on whatever a provider returns, so that a third-party plugin that
    breaks the contract fails here, with its name, rather than deep in the
    audit.
    """
    y = check_labels(ds.y, src=src)
    n = y.shape[0]
    if n == 0:
        raise InputError(ERR_EMPTY.format(src=src))
    if y.max() >= len(ds.class_names):
        raise InputError(ERR_LABELS_RANGE.format(src=src, vmax=y.max(), c=len(ds.class_names)))
    check_length(np.asarray(ds.x), n, key="x", src=src)
    check_length(np.asarray(ds.ids), n, key="ids", src=src)
    check_unique_ids(np.asarray(ds.ids), src=src)
    for name, values in ds.attributes.items():
        check_length(np.asarray(values), n, key=f"attribute {name}", src=src)
    if ds.images is not None:
        check_length(np.asarray(ds.images), n, key="images", src=src)


def progress(items: Iterable[T], *, total: int, description: str) -> Iterator[T]:
    """Iterate with a transient rich progress bar on stderr when ``total`` is large.

    The bar shows only when :func:`~compaudit._io.progress_enabled` (no
    ``-q``, stderr a terminal).
    """
    if total < PROGRESS_MIN_ITEMS or not progress_enabled():
        yield from items
        return
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def strings(values: Iterable[Any]) -> np.ndarray:
    """A numpy unicode array (the dtype used for string ids and attributes)."""
    return np.asarray([str(v) for v in values], dtype=np.str_)


def compact(values: np.ndarray) -> np.ndarray:
    """A copy of a unicode column with the narrowest itemsize that holds it."""
    width = int(np.char.str_len(values).max(initial=1))
    return values.astype(f"<U{max(width, 1)}")
