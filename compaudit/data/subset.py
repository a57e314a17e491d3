"""``?subset=`` on any data spec: a list of ids, or a seeded fraction.

``subset=ids.txt``
    Keep the examples whose ids are listed in the file (one per line; blank
    lines and lines starting with ``#`` are skipped; ids compared as
    strings). Every listed id must be in the dataset. Dataset order is kept.
``subset=0.5&seed=0``
    Keep ``round(0.5 * N)`` examples drawn without replacement by
    ``numpy.random.default_rng(seed)`` (``seed`` defaults to 0), in dataset
    order: the same spec gives the same examples on every run. ``seed=``
    belongs to the subset only when ``subset=`` is given (so on ``digits``,
    whose own ``seed=`` draws its split, the two cannot both be set).

The subset is taken after loading (and preprocessing), and recorded in
:attr:`Dataset.subset <compaudit.data.base.Dataset.subset>`, which is part of
the dataset fingerprint (ids files by their content's sha256).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np

from compaudit.data.base import Dataset
from compaudit.errors import DataNotFoundError, InputError

__all__ = ["SUBSET_OPTIONS", "take_subset"]

SUBSET_OPTIONS = ("subset", "seed")

ERR_SUBSET_FRACTION = "{src}: subset={value} must be a fraction in (0, 1] or an ids file"
ERR_SUBSET_FILE = "{src}: cannot read subset ids file {path} ({reason})"
ERR_SUBSET_MISSING = "{src}: subset ids file {path} not found; give a file of ids or a fraction"
ERR_SUBSET_EMPTY = "{src}: subset {what} selects no example; list at least one id"
ERR_SUBSET_UNKNOWN = (
    "{src}: {count} id(s) of {path} are not in the dataset, e.g. {examples}; "
    "list ids the dataset has (compared as strings)"
)
ERR_SUBSET_DUP = "{src}: {path} lists {count} id(s) twice, e.g. {examples}; list each once"
ERR_SEED_ALONE = "{src}: seed= only applies to a fractional subset; add subset=FRACTION"
ERR_SEED = "{src}: seed={value} is not an integer >= 0"

_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?$")


def _ids_from_file(path: Path, src: str) -> tuple[list[str], str]:
    if not path.is_file():
        raise DataNotFoundError(ERR_SUBSET_MISSING.format(src=src, path=path))
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(ERR_SUBSET_FILE.format(src=src, path=path, reason=exc)) from None
    ids = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return ids, hashlib.sha256(data).hexdigest()


def _select(ds: Dataset, keep: np.ndarray, record: str) -> Dataset:
    return dataclasses.replace(
        ds,
        x=ds.x[keep],
        y=ds.y[keep],
        ids=ds.ids[keep],
        attributes={k: np.asarray(v)[keep] for k, v in ds.attributes.items()},
        images=None if ds.images is None else ds.images[keep],
        subset=f"{ds.subset}|{record}" if ds.subset else record,
    )


def take_subset(ds: Dataset, subset: str, seed: str | None, *, src: str) -> Dataset:
    """The examples of ``ds`` that ``subset`` (and ``seed``) select (see the module docstring).

    Raises
    ------
    InputError
        A fraction outside (0, 1], a seed without a fraction, an ids file
        with unknown or repeated ids, or a selection of no example.
    DataNotFoundError
        The ids file does not exist.
    """
    if _NUMBER.match(subset):
        fraction = float(subset)
        if not 0 < fraction <= 1:
            raise InputError(ERR_SUBSET_FRACTION.format(src=src, value=subset))
        try:
            rng_seed = int(seed) if seed is not None else 0
        except ValueError:
            rng_seed = -1
        if rng_seed < 0:
            raise InputError(ERR_SEED.format(src=src, value=seed))
        m = round(fraction * ds.n)
        if m == 0:
            raise InputError(ERR_SUBSET_EMPTY.format(src=src, what=f"={subset}"))
        keep = np.sort(np.random.default_rng(rng_seed).permutation(ds.n)[:m])
        return _select(ds, keep, f"fraction={fraction!r};seed={rng_seed};n={ds.n}")
    if seed is not None:
        raise InputError(ERR_SEED_ALONE.format(src=src))
    path = Path(subset)
    wanted, digest = _ids_from_file(path, src)
    if not wanted:
        raise InputError(ERR_SUBSET_EMPTY.format(src=src, what=str(path)))
    uniq, counts = np.unique(np.asarray(wanted, dtype=np.str_), return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        examples = ", ".join(repr(str(d)) for d in dup[:5])
        raise InputError(
            ERR_SUBSET_DUP.format(src=src, path=path, count=dup.size, examples=examples)
        )
    have = np.asarray([str(i) for i in np.asarray(ds.ids).tolist()], dtype=np.str_)
    unknown = np.setdiff1d(uniq, have)
    if unknown.size:
        examples = ", ".join(repr(str(u)) for u in unknown[:5])
        raise InputError(
            ERR_SUBSET_UNKNOWN.format(src=src, count=unknown.size, path=path, examples=examples)
        )
    keep = np.flatnonzero(np.isin(have, uniq))
    return _select(ds, keep, f"ids={digest}")
