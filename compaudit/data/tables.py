"""CSV tables: a label column, protected attribute columns, encoded features.

Options (``table.csv?key=value&...``):

``label``
    Label column (default ``label``). Class names are the sorted distinct
    labels: numerically when every label is an integer, else as strings;
    ``classes=a,b,c`` fixes the order (and keeps classes absent from this file).
``id``
    Id column (default ``id``, used when present; else ids are row numbers from 0).
``attributes``
    Protected attribute columns (``attributes=sex,race``), kept out of the
    features unless ``keep_attributes=1``.
``categorical``
    Columns to one-hot encode; default: every column with a non-numeric value.
    Numeric columns are standardised. Both are recorded in
    ``Preprocessing.params`` (see :class:`~compaudit.data.encoding.TableEncoding`).
``prep`` (alias ``encoding``)
    A prep file (``compaudit fit-data TRAIN.csv --out prep.json``, or
    ``RUN_DIR/prep.json`` from the trainer; see :mod:`compaudit.data.prep`)
    whose encoding is applied instead of fitting one, so that a test table is
    encoded exactly like its training table. Its label column is the default
    ``label``. A category of the training table missing here is fine.
``fit``
    ``fit=train``: this table is training data, fit the encoding on it (what
    ``fit-data`` and the trainer do). ``fit=eval``: fit on this evaluation
    table itself, only for models trained on its raw features. Without
    ``prep`` or ``fit`` (and outside the trainer), loading is an error that
    names the command to run: an encoding silently fitted on evaluation data
    changes what a model sees.
``unknown``
    ``error`` (default): a category never seen when the encoding was fitted
    is an error naming the column and values; ``ignore``: it encodes as all
    zeros, like scikit-learn's ``OneHotEncoder(handle_unknown="ignore")``.

Empty cells are rejected: fill or drop them first.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compaudit.data._common import check_unique_ids, compact
from compaudit.data._spec import (
    file_request,
    merge_options,
    opt_bool,
    opt_list,
)
from compaudit.data.base import Dataset, Preprocessing
from compaudit.data.encoding import TableEncoding
from compaudit.data.prep import fit_command, given_prep
from compaudit.errors import DataNotFoundError, InputError

__all__ = ["CsvProvider", "class_index", "read_csv_columns"]

OPTIONS = (
    "label",
    "id",
    "attributes",
    "keep_attributes",
    "categorical",
    "classes",
    "encoding",
    "prep",
    "fit",
    "unknown",
)

ERR_CSV_MISSING = "{src}: file not found; check the path"
ERR_CSV_UNREADABLE = "{src}: cannot read as a UTF-8 CSV table ({reason})"
ERR_CSV_NO_HEADER = "{src}: the table is empty; the first row must name the columns"
ERR_CSV_HEADER = "{src}: column names must be unique and non-empty; bad: {bad}"
ERR_CSV_RAGGED = "{src}: line {line} has {got} fields but the header has {want}"
ERR_CSV_NO_ROWS = "{src}: the table has a header but no rows"
ERR_CSV_TOO_LARGE = (
    "{src}: {size:,} bytes; compaudit reads CSV tables of at most {limit:,} bytes "
    "(save a larger table as .npz)"
)
ERR_CSV_TOO_WIDE = (
    "{src}: the header has {got:,} columns; compaudit reads at most {limit:,} "
    "(keep the columns the audit needs, or save a wider table as .npz)"
)
MAX_CSV_BYTES = 1 << 30
"""Largest CSV table read (1 GiB: parsed cells take several times the file's size)."""
MAX_CSV_COLUMNS = 10_000
ERR_CSV_EMPTY_CELL = (
    "{src}: line {line}, column '{col}' is empty ({count} empty cell(s) in all); "
    "fill or drop those rows first"
)
ERR_NO_LABEL = (
    "{src}: no label column '{label}'; columns are: {columns}; name it with ?label=COLUMN"
)
ERR_NO_COLUMN = "{src}: option {option} names column(s) {missing} that the table does not have"
ERR_NO_FEATURES = "{src}: no feature columns left after removing the label, id and attributes"
ERR_LABEL_NOT_IN_CLASSES = (
    "{src}: label value(s) {values} are not in classes={classes}; add them to the classes option"
)
ERR_DUP_CLASSES = "{src}: classes option lists a class twice: {classes}"
ERR_ENCODING_BOTH = "{src}: give either prep= (encoding=) or categorical=, not both"
ERR_PREP_TWICE = "{src}: give prep= or its alias encoding=, not both"
ERR_PREP_AND_FIT = "{src}: give prep= (apply a fitted encoding) or fit= (fit one here), not both"
ERR_ENCODING_COLUMNS = (
    "{src}: the table's feature columns differ from those of the prep from {prep} ({diff}); "
    "use the same columns (and attributes/keep_attributes options) as the training table"
)
ERR_NOT_TABLE_PREP = (
    "{src}: the prep from {prep} is not a table encoding (layout {layout}); "
    "give the prep of the model's training table"
)
ERR_NEEDS_PREP = (
    "{src}: no preprocessing given, and fitting one on evaluation data would change what the "
    "model sees. Fix: run {command} on the model's training table and add ?prep=prep.json "
    "(a trainer run has RUN_DIR/prep.json), or add ?fit=eval if the model was trained on "
    "this table's own encoding"
)
ERR_FIT_VALUE = "{src}: fit={value} is not supported; use fit=train or fit=eval"
ERR_UNKNOWN_VALUE = "{src}: unknown={value} is not supported; use unknown=error or unknown=ignore"


def read_csv_columns(path: Path, *, src: str) -> tuple[list[str], np.ndarray, list[int]]:
    """Read a CSV table into its header, a ``[N, C]`` string array and line numbers.

    Cells are stripped of surrounding whitespace; blank lines are skipped.
    """
    if not path.is_file():
        raise DataNotFoundError(ERR_CSV_MISSING.format(src=src))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_CSV_BYTES:
                raise InputError(ERR_CSV_TOO_LARGE.format(src=src, size=size, limit=MAX_CSV_BYTES))
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is not None and len(header) > MAX_CSV_COLUMNS:
                raise InputError(
                    ERR_CSV_TOO_WIDE.format(src=src, got=len(header), limit=MAX_CSV_COLUMNS)
                )
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if header is not None and len(row) != len(header):
                    raise InputError(
                        ERR_CSV_RAGGED.format(
                            src=src, line=reader.line_num, got=len(row), want=len(header)
                        )
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(ERR_CSV_UNREADABLE.format(src=src, reason=exc)) from None
    if header is None:
        raise InputError(ERR_CSV_NO_HEADER.format(src=src))
    header = [h.strip() for h in header]
    seen = Counter(header)  # not header.count: quadratic in the columns
    bad = sorted(h for h, n in seen.items() if not h or n > 1)
    if bad:
        raise InputError(ERR_CSV_HEADER.format(src=src, bad=bad))
    if not rows:
        raise InputError(ERR_CSV_NO_ROWS.format(src=src))
    cells = np.char.strip(np.asarray(rows, dtype=np.str_))
    empty = np.char.str_len(cells) == 0
    if empty.any():
        r, c = np.argwhere(empty)[0]
        raise InputError(
            ERR_CSV_EMPTY_CELL.format(src=src, line=lines[r], col=header[c], count=int(empty.sum()))
        )
    return header, cells, lines


def class_index(
    labels: np.ndarray, *, classes: list[str] | None, src: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map string labels to class indices.

    Without ``classes``, class names are the sorted distinct labels, sorted
    numerically when all are integers (so ``"10"`` comes after ``"9"``).
    """
    distinct = [str(v) for v in np.unique(labels)]
    if classes is None:
        try:
            names = sorted(distinct, key=int)
        except ValueError:
            names = sorted(distinct)
    else:
        if len(set(classes)) != len(classes):
            raise InputError(ERR_DUP_CLASSES.format(src=src, classes=",".join(classes)))
        missing = sorted(set(distinct) - set(classes))
        if missing:
            raise InputError(
                ERR_LABEL_NOT_IN_CLASSES.format(
                    src=src, values=", ".join(missing[:5]), classes=",".join(classes)
                )
            )
        names = list(classes)
    lookup = {name: i for i, name in enumerate(names)}
    y = np.fromiter((lookup[str(v)] for v in labels), dtype=np.int64, count=len(labels))
    return y, tuple(names)


def _ids(values: np.ndarray) -> np.ndarray:
    try:
        return values.astype(np.int64)
    except ValueError:
        return compact(values)


class CsvProvider:
    """Loads ``*.csv`` tables (see the module docstring for the options)."""

    name: str = "csv"
    summary: str = "file.csv (a table with a label column; options label=, attributes=, ...)"

    def matches(self, spec: str) -> bool:
        """Any spec whose path ends in ``.csv``."""
        base, _, _ = merge_options(spec, None)
        return base.lower().endswith(".csv")

    def load(
        self,
        spec: str,
        *,
        options: Mapping[str, str] | None = None,
        prep: Preprocessing | None = None,
        fit: bool = False,
    ) -> Dataset:
        """Load and encode the table named by ``spec``.

        ``prep`` (a model's preprocessing) is applied like ``?prep=``; with
        ``fit`` the table is training data and the encoding is fitted on it.
        """
        path, src, opts = file_request(spec, options, allowed=OPTIONS, kind="CSV table")
        prep, prep_src = _given_prep(opts, prep, src=src)
        fit_value = opts.get("fit")
        if fit_value is not None and fit_value not in ("train", "eval"):
            raise InputError(ERR_FIT_VALUE.format(src=src, value=fit_value))
        if prep is not None and fit_value is not None:
            raise InputError(ERR_PREP_AND_FIT.format(src=src))
        unknown = opts.get("unknown", "error")
        if unknown not in ("error", "ignore"):
            raise InputError(ERR_UNKNOWN_VALUE.format(src=src, value=unknown))
        header, cells, _ = read_csv_columns(path, src=src)
        table = {col: cells[:, i] for i, col in enumerate(header)}

        recorded: Mapping[str, Any] = prep.params if prep is not None else {}
        label = opts.get("label") or str(recorded.get("label") or "label")
        if label not in table:
            raise InputError(ERR_NO_LABEL.format(src=src, label=label, columns=", ".join(header)))
        id_col = opts.get("id") or "id"
        attributes = opt_list(opts, "attributes")
        categorical = opt_list(opts, "categorical") if "categorical" in opts else None
        for option, cols in (("attributes", attributes), ("categorical", categorical or [])):
            missing = [c for c in cols if c not in table]
            if missing:
                raise InputError(ERR_NO_COLUMN.format(src=src, option=option, missing=missing))
        if "id" in opts and id_col not in table:
            raise InputError(ERR_NO_COLUMN.format(src=src, option="id", missing=[id_col]))

        keep = opt_bool(opts, "keep_attributes", src=src)
        excluded = {label, id_col} | (set() if keep else set(attributes))
        features = [c for c in header if c not in excluded]
        if not features:
            raise InputError(ERR_NO_FEATURES.format(src=src))
        if prep is not None:
            if categorical is not None:
                raise InputError(ERR_ENCODING_BOTH.format(src=src))
            encoding = _table_encoding(prep, prep_src, src=src)
            if sorted(encoding.columns) != sorted(features):
                raise InputError(
                    ERR_ENCODING_COLUMNS.format(
                        src=src, prep=prep_src, diff=_column_diff(list(encoding.columns), features)
                    )
                )
        elif fit or fit_value is not None:
            encoding = TableEncoding.fit(table, features, categorical=categorical, src=src)
        else:
            query = "&".join(f"{k}={v}" for k, v in opts.items() if k not in ("unknown",))
            train = "TRAIN.csv" + (f"?{query}" if query else "")
            raise InputError(ERR_NEEDS_PREP.format(src=src, command=fit_command(train)))
        x = encoding.transform(table, unknown=unknown, src=src)  # type: ignore[arg-type]

        classes = opt_list(opts, "classes") if "classes" in opts else None
        if classes is None and isinstance(recorded.get("classes"), list):
            classes = [str(c) for c in recorded["classes"]]
        y, class_names = class_index(table[label], classes=classes, src=src)
        ids = _ids(table[id_col]) if id_col in table else np.arange(y.shape[0], dtype=np.int64)
        check_unique_ids(ids, src=f"{src} (column '{id_col}')")
        if prep is None:
            params: dict[str, Any] = {
                "label": label,
                "classes": list(class_names),
                "fitted_on": path.name,
                **encoding.to_params(),
            }
            prep = Preprocessing(
                layout="NF",
                dtype="float32",
                scaling="standardize" if encoding.numeric else "none",
                encoding="onehot" if encoding.categories else "none",
                params=params,
            )
        return Dataset(
            name=spec,
            x=x,
            y=y,
            ids=ids,
            class_names=class_names,
            attributes={a: compact(table[a]) for a in attributes},
            # Exactly the model's (so its recorded preprocessing matches) when applied.
            preprocessing=prep,
            source=src,
        )


def _given_prep(
    opts: Mapping[str, str], prep: Preprocessing | None, *, src: str
) -> tuple[Preprocessing | None, str]:
    """The prep to apply: ``prep=``/``encoding=`` of the spec, which must agree with ``prep``."""
    if "prep" in opts and "encoding" in opts:
        raise InputError(ERR_PREP_TWICE.format(src=src))
    path = opts.get("prep", opts.get("encoding"))
    if path is None:
        return prep, "the model"
    return given_prep(path, prep, src=src), path


def _table_encoding(prep: Preprocessing, prep_src: str, *, src: str) -> TableEncoding:
    if prep.layout != "NF" or "columns" not in prep.params:
        raise InputError(ERR_NOT_TABLE_PREP.format(src=src, prep=prep_src, layout=prep.layout))
    return TableEncoding.from_params(prep.params, src=prep_src)


def _column_diff(want: list[str], got: list[str]) -> str:
    parts = []
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    if missing:
        parts.append(f"missing here: {', '.join(missing[:5])}")
    if extra:
        parts.append(f"not in the prep: {', '.join(extra[:5])}")
    return "; ".join(parts)
