"""Subgroups: every combination of protected attributes (paper's CelebA table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from compaudit.errors import InputError
from compaudit.population import LABEL_ATTRIBUTE

__all__ = ["LABEL_ATTRIBUTE", "group_codes", "pie_shares"]  # LABEL_ATTRIBUTE: the true label

ERR_UNKNOWN_ATTRIBUTE = (
    "{src}: no attribute '{name}'; available: {available}. Pass it with --attributes CSV "
    "(an 'id' column plus one column per attribute) or as attr_{name} in the predictions file"
)


def group_codes(
    attributes: Mapping[str, np.ndarray],
    names: Sequence[str],
    *,
    y: np.ndarray,
    class_names: Sequence[str],
    source: str = "<memory>",
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Index every example by its combination of attribute values.

    Parameters
    ----------
    attributes : mapping of str to ndarray of shape (N,)
        Protected attributes.
    names : sequence of str
        Attributes to cross; ``"label"`` means the true label.
    y : ndarray of shape (N,)
        True labels.
    class_names : sequence of str
        Class names, used for the ``label`` attribute.
    source : str
        Named in error messages.

    Returns
    -------
    codes : ndarray of int, shape (N,)
        Group index of each example, groups sorted by attribute values.
    keys : list of dict
        For each group, attribute name to value.
    """
    if not names:
        raise InputError("subgroups need at least one attribute")
    columns: list[np.ndarray] = []
    for name in names:
        if name == LABEL_ATTRIBUTE and name not in attributes:
            columns.append(np.asarray(class_names)[y])
        elif name in attributes:
            columns.append(np.asarray(attributes[name]))
        else:
            available = sorted([*attributes, LABEL_ATTRIBUTE])
            raise InputError(
                ERR_UNKNOWN_ATTRIBUTE.format(src=source, name=name, available=available)
            )
    levels: list[np.ndarray] = []
    code = np.zeros(y.shape[0], dtype=np.int64)
    for col in columns:
        uniq, inv = np.unique(col, return_inverse=True)
        levels.append(uniq)
        code = code * len(uniq) + inv
    combos, codes = np.unique(code, return_inverse=True)
    keys: list[dict[str, Any]] = []
    for combo in combos.tolist():
        parts: list[Any] = []
        for uniq in reversed(levels):
            combo, idx = divmod(combo, len(uniq))
            parts.append(uniq[idx].item())
        keys.append(dict(zip(names, reversed(parts), strict=True)))
    return codes.astype(np.intp), keys


def pie_shares(codes: np.ndarray, n_groups: int, pie: np.ndarray) -> dict[str, np.ndarray]:
    """Counts and shares of PIEs and non-PIEs per group (paper's Table 1).

    ``pct_pie`` is the group's share of all PIEs in percent, ``pct_non_pie``
    its share of all non-PIEs, and ``pct_growth = (pct_pie / pct_non_pie - 1)
    * 100``. Shares are NaN when there are no PIEs (or no non-PIEs) at all;
    growth is NaN when the group has no non-PIEs.
    """
    n = np.bincount(codes, minlength=n_groups)
    n_pie = np.bincount(codes, weights=pie, minlength=n_groups).astype(np.int64)
    n_non = n - n_pie
    tot_pie, tot_non = int(n_pie.sum()), int(n_non.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_pie = n_pie / tot_pie * 100 if tot_pie else np.full(n_groups, np.nan)
        pct_non = n_non / tot_non * 100 if tot_non else np.full(n_groups, np.nan)
        growth = np.where(pct_non > 0, (pct_pie / pct_non - 1) * 100, np.nan)
    return {
        "n": n,
        "n_pie": n_pie,
        "n_non_pie": n_non,
        "pct_pie": np.asarray(pct_pie, dtype=float),
        "pct_non_pie": np.asarray(pct_non, dtype=float),
        "pct_growth": np.asarray(growth, dtype=float),
    }
