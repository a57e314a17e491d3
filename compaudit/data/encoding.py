"""Reproducible table encoding: standardised numerics and one-hot categoricals.

A :class:`TableEncoding` is fitted once (on a training split) and applied to
any split, so train and test rows get the same feature columns, category
order, means and scales. Its :meth:`~TableEncoding.to_params` form is what
tables record in ``Preprocessing.params``; :meth:`~TableEncoding.from_params`
rebuilds it, so a recorded encoding can be re-applied exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from compaudit.errors import InputError

__all__ = ["TableEncoding", "is_numeric"]

ERR_NOT_NUMERIC = (
    "{src}: column '{col}' was encoded as numeric but has the value {value!r}; "
    "declare it categorical or fix the value"
)
ERR_NOT_FINITE = "{src}: column '{col}' has a non-finite value ({value!r}); fix or drop the row"
ERR_UNKNOWN_CATEGORY = (
    "{src}: column '{col}' has {count} value(s) the encoding was not fitted on, e.g. {examples}; "
    "add ?unknown=ignore to encode them as all zeros (the model never saw them), or fix the values"
)
ERR_MISSING_COLUMN = "{src}: the encoding needs column '{col}', which the table does not have"
ERR_BAD_PARAMS = "{src}: not a table encoding ({detail}); give the params a table loader recorded"


def is_numeric(values: np.ndarray) -> bool:
    """Whether every value of a string column parses as a float."""
    try:
        values.astype(np.float64)
    except ValueError:
        return False
    return True


def _to_float(values: np.ndarray, col: str, src: str) -> np.ndarray:
    try:
        out = values.astype(np.float64)
    except ValueError:
        bad = next(v for v in values if not _parses(v))
        raise InputError(ERR_NOT_NUMERIC.format(src=src, col=col, value=str(bad))) from None
    finite = np.isfinite(out)
    if not finite.all():
        value = str(values[np.argmin(finite)])
        raise InputError(ERR_NOT_FINITE.format(src=src, col=col, value=value))
    return out


def _parses(value: Any) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TableEncoding:
    """Column-wise encoding of a table into float32 features.

    Attributes
    ----------
    columns : tuple of str
        Input columns, in output order.
    numeric : mapping of str to (mean, scale)
        Numeric columns become ``(value - mean) / scale``; ``scale`` is the
        population standard deviation, or 1 for a constant column.
    categories : mapping of str to tuple of str
        Categorical columns become one indicator per category (sorted).
    """

    columns: tuple[str, ...]
    numeric: Mapping[str, tuple[float, float]]
    categories: Mapping[str, tuple[str, ...]]

    @classmethod
    def fit(
        cls,
        table: Mapping[str, np.ndarray],
        columns: Sequence[str],
        *,
        categorical: Collection[str] | None = None,
        src: str,
    ) -> TableEncoding:
        """Learn means, scales and category lists from ``table``.

        Parameters
        ----------
        table : mapping of str to ndarray of str
            Column values as strings.
        columns : sequence of str
            Feature columns to encode, in order.
        categorical : collection of str or None
            Columns to one-hot encode; ``None`` infers them (a column is
            categorical when any value does not parse as a number).
        src : str
            Named in error messages.
        """
        numeric: dict[str, tuple[float, float]] = {}
        categories: dict[str, tuple[str, ...]] = {}
        for col in columns:
            values = table[col]
            is_cat = col in categorical if categorical is not None else not is_numeric(values)
            if is_cat:
                categories[col] = tuple(str(v) for v in np.unique(values))
            else:
                v = _to_float(values, col, src)
                std = float(v.std())
                # A constant column carries no information; scale 1 keeps it finite (0).
                numeric[col] = (float(v.mean()), std if std > 0 else 1.0)
        return cls(tuple(columns), numeric, categories)

    def feature_names(self) -> list[str]:
        """Output column names: ``col`` for numerics, ``col=category`` for indicators."""
        names: list[str] = []
        for col in self.columns:
            if col in self.numeric:
                names.append(col)
            else:
                names.extend(f"{col}={c}" for c in self.categories[col])
        return names

    @property
    def width(self) -> int:
        """Number of output features."""
        return sum(1 if c in self.numeric else len(self.categories[c]) for c in self.columns)

    def transform(
        self,
        table: Mapping[str, np.ndarray],
        *,
        unknown: Literal["error", "ignore"] = "error",
        src: str,
    ) -> np.ndarray:
        """Encode ``table`` into a float32 array of shape ``[N, width]``.

        ``unknown="ignore"`` encodes a category never seen at fit time as all
        zeros (scikit-learn's ``handle_unknown="ignore"``); ``"error"`` raises.
        """
        for col in self.columns:
            if col not in table:
                raise InputError(ERR_MISSING_COLUMN.format(src=src, col=col))
        n = len(table[self.columns[0]]) if self.columns else 0
        out = np.zeros((n, self.width), dtype=np.float32)
        at = 0
        for col in self.columns:
            values = table[col]
            if col in self.numeric:
                mean, scale = self.numeric[col]
                out[:, at] = (_to_float(values, col, src) - mean) / scale
                at += 1
                continue
            cats = np.asarray(self.categories[col], dtype=np.str_)
            idx = np.searchsorted(cats, values)
            known = idx < cats.size
            known[known] = cats[idx[known]] == values[known]
            if unknown == "error" and not known.all():
                bad = np.unique(values[~known])
                examples = ", ".join(repr(str(b)) for b in bad[:5])
                raise InputError(
                    ERR_UNKNOWN_CATEGORY.format(
                        src=src, col=col, count=int((~known).sum()), examples=examples
                    )
                )
            rows = np.flatnonzero(known)
            out[rows, at + idx[rows]] = 1.0
            at += cats.size
        return out

    def to_params(self) -> dict[str, Any]:
        """JSON-serialisable form recorded in ``Preprocessing.params``."""
        return {
            "columns": list(self.columns),
            "numeric": {c: {"mean": m, "std": s} for c, (m, s) in self.numeric.items()},
            "categorical": {c: list(v) for c, v in self.categories.items()},
            "features": self.feature_names(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, src: str) -> TableEncoding:
        """Rebuild an encoding from :meth:`to_params` output (extra keys ignored)."""
        try:
            columns = tuple(str(c) for c in params["columns"])
            numeric = {
                str(c): (float(v["mean"]), float(v["std"])) for c, v in params["numeric"].items()
            }
            categories = {
                str(c): tuple(sorted(str(x) for x in v)) for c, v in params["categorical"].items()
            }
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InputError(ERR_BAD_PARAMS.format(src=src, detail=repr(exc))) from None
        for col in columns:
            if (col in numeric) == (col in categories):
                detail = f"column {col!r} must be either numeric or categorical"
                raise InputError(ERR_BAD_PARAMS.format(src=src, detail=detail))
            if col in numeric and not numeric[col][1] > 0:
                raise InputError(ERR_BAD_PARAMS.format(src=src, detail=f"std of {col!r} <= 0"))
        return cls(columns, numeric, categories)
