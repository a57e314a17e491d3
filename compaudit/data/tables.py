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
``encoding``
    A JSON file holding a recorded encoding (a ``Preprocessing.to_dict()`` or
    its ``params``) to apply instead of fitting one, so that a test table is
    encoded exactly like its training table.

Empty cells are rejected: fill or drop them first.
"""

from __future__ import annotations

import csv
import json
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
from compaudit.errors import DataNotFoundError, InputError

__all__ = ["CsvProvider", "class_index", "read_csv_columns"]

OPTIONS = ("label", "id", "attributes", "keep_attributes", "categorical", "classes", "encoding")

ERR_CSV_MISSING = "{src}: file not found; check the path of the data spec"
ERR_CSV_UNREADABLE = "{src}: cannot read as a UTF-8 CSV table ({reason})"
ERR_CSV_NO_HEADER = "{src}: the table is empty; the first row must name the columns"
ERR_CSV_HEADER = "{src}: column names must be unique and non-empty; bad: {bad}"
ERR_CSV_RAGGED = "{src}: line {line} has {got} fields but the header has {want}"
ERR_CSV_NO_ROWS = "{src}: the table has a header but no rows"
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
ERR_ENCODING_BOTH = "{src}: give either encoding= or categorical=, not both"
ERR_ENCODING_COLUMNS = (
    "{src}: the table's feature columns {got} differ from the recorded encoding's {want}; "
    "use the same columns (and attributes/keep_attributes options) as when it was recorded"
)
ERR_ENCODING_FILE = "{src}: cannot read encoding file {path} ({reason})"


def read_csv_columns(path: Path, *, src: str) -> tuple[list[str], np.ndarray, list[int]]:
    """Read a CSV table into its header, a ``[N, C]`` string array and line numbers.

    Cells are stripped of surrounding whitespace; blank lines are skipped.
    """
    if not path.is_file():
        raise DataNotFoundError(ERR_CSV_MISSING.format(src=src))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
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
    bad = sorted({h for h in header if not h or header.count(h) > 1})
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


def _read_encoding(path: str, *, src: str) -> TableEncoding:
    try:
        blob: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(ERR_ENCODING_FILE.format(src=src, path=path, reason=exc)) from None
    if isinstance(blob, dict) and isinstance(blob.get("params"), dict):
        blob = blob["params"]  # a whole Preprocessing.to_dict()
    if not isinstance(blob, dict):
        raise InputError(ERR_ENCODING_FILE.format(src=src, path=path, reason="not a JSON object"))
    return TableEncoding.from_params(blob, src=path)


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

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Load and encode the table named by ``spec``."""
        path, src, opts = file_request(spec, options, allowed=OPTIONS, kind="CSV table")
        header, cells, _ = read_csv_columns(path, src=src)
        table = {col: cells[:, i] for i, col in enumerate(header)}

        label = opts.get("label") or "label"
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
        if "encoding" in opts:
            if categorical is not None:
                raise InputError(ERR_ENCODING_BOTH.format(src=src))
            encoding = _read_encoding(opts["encoding"], src=src)
            if sorted(encoding.columns) != sorted(features):
                raise InputError(
                    ERR_ENCODING_COLUMNS.format(src=src, got=features, want=list(encoding.columns))
                )
        else:
            encoding = TableEncoding.fit(table, features, categorical=categorical, src=src)
        x = encoding.transform(table, unknown="error", src=src)

        classes = opt_list(opts, "classes") if "classes" in opts else None
        y, class_names = class_index(table[label], classes=classes, src=src)
        ids = _ids(table[id_col]) if id_col in table else np.arange(y.shape[0], dtype=np.int64)
        check_unique_ids(ids, src=f"{src} (column '{id_col}')")
        params: dict[str, Any] = {"label": label, **encoding.to_params()}
        return Dataset(
            name=spec,
            x=x,
            y=y,
            ids=ids,
            class_names=class_names,
            attributes={a: compact(table[a]) for a in attributes},
            preprocessing=Preprocessing(
                layout="NF",
                dtype="float32",
                scaling="standardize" if encoding.numeric else "none",
                encoding="onehot" if encoding.categories else "none",
                params=params,
            ),
            source=src,
        )
