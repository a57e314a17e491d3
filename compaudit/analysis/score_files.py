"""Per-example score files (memorization, C-scores...): read, checked and joined by id.

:func:`read_scores` reads a CSV (``id`` and one numeric column) or an ``.npz``
(``ids``, ``scores``; never unpickled) and aligns the scores with the audit's example
ids; :mod:`compaudit.analysis.long_tail` tests them on the flagged examples and
re-exports :func:`read_scores`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from compaudit._npz import read_npz
from compaudit.errors import DataNotFoundError, InputError

__all__ = ["read_scores"]

ERR_FILE_MISSING = "{path}: no such score file; check the path"
ERR_FILE_HUGE = (
    "{path}: {count} score(s) beyond +-{limit:g}, e.g. id {example!r}; the statistics of "
    "such values overflow: rescale the scores"
)
MAX_SCORE = 1e50
"""Largest score magnitude: its fourth power (in the Welch df) still fits a float, and
memorization, influence and C-scores lie in [-1, 1]; the audit checks the same bound."""
ERR_FILE_KIND = (
    "{path}: a score file must be a .csv (an 'id' column and one numeric score column) "
    "or an .npz (arrays 'ids' and 'scores')"
)
ERR_FILE_UNREADABLE = (
    "{path}: cannot read the score file ({reason}); write a UTF-8 CSV or an .npz of "
    "plain arrays (no pickles)"
)
ERR_CSV_EMPTY = "{path}: the file is empty; the first row must name the columns ('id' and a score)"
ERR_CSV_NO_ROWS = "{path}: the file has a header but no rows; add one row per example"
ERR_CSV_NO_ID = (
    "{path}: no 'id' column (columns: {columns}); a score CSV needs an 'id' column holding "
    "the audit's example ids and one numeric score column"
)
ERR_CSV_COLUMNS = (
    "{path}: expected an 'id' column and exactly one score column, got columns {columns}; "
    "drop the others or choose one with column=NAME"
)
ERR_CSV_NO_COLUMN = "{path}: no score column {column!r}; the columns are {columns}"
ERR_CSV_RAGGED = (
    "{path}: line {line} has {got} fields but the header has {want}; give every row an id "
    "and a score"
)
ERR_NOT_NUMERIC = (
    "{path}: score column {column!r} has a non-numeric value {value!r} (line {line}); "
    "scores must be numbers"
)
ERR_NPZ_KEYS = "{path}: a score .npz holds exactly the arrays 'ids' and 'scores'; it has {found}"
ERR_NPZ_LENGTH = (
    "{path}: 'ids' has shape {ids} but 'scores' has shape {scores}; give one score per id "
    "(two 1-D arrays of the same length)"
)
ERR_NPZ_NOT_NUMERIC = "{path}: 'scores' has dtype {dtype}; scores must be numbers"
ERR_FILE_NONFINITE = (
    "{path}: {count} audited example(s) have a NaN or infinite score, e.g. id {example!r}; "
    "give every audited example a finite score"
)
ERR_FILE_DUP = (
    "{path}: {count} id(s) appear more than once, e.g. {examples}; keep one score per example"
)
ERR_FILE_MISSING_IDS = (
    "{path}: {count} of {n} audited example id(s) have no score, e.g. {examples}; add a score "
    "for every audited example (ids are compared as strings; extra ids are ignored)"
)


def _examples(values: np.ndarray) -> str:
    return ", ".join(repr(str(v)) for v in values[:5])


def _read_csv(path: Path, src: str, column: str | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows: list[list[str]] = []
            lines: list[int] = []
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if header is not None and len(fields) != len(header):
                    raise InputError(
                        ERR_CSV_RAGGED.format(
                            path=src, line=reader.line_num, got=len(fields), want=len(header)
                        )
                    )
                rows.append([c.strip() for c in fields])
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(ERR_FILE_UNREADABLE.format(path=src, reason=exc)) from None
    if header is None:
        raise InputError(ERR_CSV_EMPTY.format(path=src))
    header = [h.strip() for h in header]
    if "id" not in header:
        raise InputError(ERR_CSV_NO_ID.format(path=src, columns=header))
    if column is None:
        others = [h for h in header if h != "id"]
        if len(others) != 1:
            raise InputError(ERR_CSV_COLUMNS.format(path=src, columns=header))
        column = others[0]
    elif column not in header or column == "id":
        raise InputError(ERR_CSV_NO_COLUMN.format(path=src, column=column, columns=header))
    if not rows:
        raise InputError(ERR_CSV_NO_ROWS.format(path=src))
    i_id, i_score = header.index("id"), header.index(column)
    ids = np.asarray([r[i_id] for r in rows], dtype=np.str_)
    cells = [r[i_score] for r in rows]
    values = np.empty(len(cells))
    for k, cell in enumerate(cells):
        try:
            values[k] = float(cell)
        except ValueError:
            raise InputError(
                ERR_NOT_NUMERIC.format(path=src, column=column, value=cell, line=lines[k])
            ) from None
    return ids, values


def _read_npz(path: Path, src: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = read_npz(path, what="scores file")  # bounded: a forged header allocates nothing
    found = sorted(arrays)
    if found != ["ids", "scores"]:
        # Exactly these two, as a predictions file holds only its own: an extra array
        # (another score, a typo) would be ignored without a word.
        raise InputError(ERR_NPZ_KEYS.format(path=src, found=found))
    ids, scores = arrays["ids"], arrays["scores"]
    if ids.ndim != 1 or scores.ndim != 1 or ids.shape != scores.shape:
        raise InputError(ERR_NPZ_LENGTH.format(path=src, ids=ids.shape, scores=scores.shape))
    if scores.dtype.kind not in "biuf":
        raise InputError(ERR_NPZ_NOT_NUMERIC.format(path=src, dtype=scores.dtype))
    return np.asarray([str(i) for i in ids.tolist()], dtype=np.str_), scores.astype(np.float64)


def read_scores(
    path: str | os.PathLike[str], ids: npt.ArrayLike, *, column: str | None = None
) -> np.ndarray:
    """Read per-example scores and align them with the audit's example ids.

    A ``.csv`` has an ``id`` column and one numeric score column (or several,
    with ``column`` naming the score); an ``.npz`` holds 1-D arrays ``ids``
    and ``scores`` of the same length (read with ``allow_pickle=False``).
    Ids are compared as strings (``7`` matches ``"7"``, not ``"007"``), in
    any order; every audited id needs exactly one score, and ids the audit
    does not have are ignored.

    Parameters
    ----------
    path : str or PathLike
        The score file.
    ids : array-like, shape (N,)
        The audit's example ids.
    column : str, optional
        The score column of a CSV with more than one besides ``id``.

    Returns
    -------
    ndarray of float64, shape (N,)
        ``scores[i]`` is the score of example ``ids[i]``.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputError
        Another suffix; an unreadable or pickled file, or an ``.npz`` whose
        arrays claim more than they hold or exceed the size limit (read with
        :func:`compaudit._npz.read_npz`); no ``id`` column or not
        exactly one score column; a ragged row or ``ids``/``scores`` of
        different lengths; a non-numeric score; duplicated ids; audited ids
        without a score; a NaN or infinite score of an audited example. Each
        message names the file and the fix.
    """
    src = str(path)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise InputError(ERR_FILE_KIND.format(path=src))
    if not file.is_file():
        raise DataNotFoundError(ERR_FILE_MISSING.format(path=src))
    file_ids, values = _read_csv(file, src, column) if suffix == ".csv" else _read_npz(file, src)
    order = np.argsort(file_ids, kind="stable")
    sorted_ids = file_ids[order]
    repeated = sorted_ids[1:] == sorted_ids[:-1]
    if repeated.any():
        dup = np.unique(sorted_ids[1:][repeated])
        raise InputError(ERR_FILE_DUP.format(path=src, count=dup.size, examples=_examples(dup)))
    wanted = np.asarray([str(i) for i in np.asarray(ids).tolist()], dtype=np.str_)
    pos = np.searchsorted(sorted_ids, wanted)
    found = pos < sorted_ids.size
    found[found] = sorted_ids[pos[found]] == wanted[found]
    if not found.all():
        missing = wanted[~found]
        raise InputError(
            ERR_FILE_MISSING_IDS.format(
                path=src, count=missing.size, n=wanted.size, examples=_examples(missing)
            )
        )
    out = values[order[pos]]
    bad = ~np.isfinite(out)
    if bad.any():
        raise InputError(
            ERR_FILE_NONFINITE.format(path=src, count=int(bad.sum()), example=str(wanted[bad][0]))
        )
    huge = np.abs(out) > MAX_SCORE
    if huge.any():
        raise InputError(
            ERR_FILE_HUGE.format(
                path=src, count=int(huge.sum()), example=str(wanted[huge][0]), limit=MAX_SCORE
            )
        )
    return out
